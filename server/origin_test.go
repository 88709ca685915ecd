package server_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/duplex-ws/duplex/bridge"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// TestOriginPolicy: every WebSocket endpoint (/ws, /echo, /chat/{room},
// a bridge route, an exec route) applies Config.OriginPatterns the same
// way: a same-origin page, a page whose host matches a pattern and a
// program that sends no Origin connect; a page of another origin is
// refused with 403 and a one-line body saying so.
func TestOriginPolicy(t *testing.T) {
	ctx := testContext(t)
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	tcp, err := bridge.ParseTarget("tcp://" + target.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, server.Config{
		OriginPatterns: []string{"*.allowed.example", "localhost:3000"},
		Bridges:        []server.BridgeRoute{{Path: "/tcp", Target: tcp}},
		Execs:          []server.ExecRoute{{Path: "/cat", Command: []string{"cat"}}},
	})
	host := strings.TrimPrefix(ts.http, "http://")

	endpoints := []struct {
		path         string
		subprotocols []string
	}{
		{"/ws", []string{server.Subprotocol}},
		{"/echo", nil},
		{"/chat/lobby", nil},
		{"/tcp", nil},
		{"/cat", nil},
	}
	for _, ep := range endpoints {
		for _, origin := range []string{
			"",                                 // a program, not a browser
			"http://" + host,                   // same origin
			"https://" + host,                  // the same host by another scheme (the check compares hosts)
			"https://app.allowed.example",      // *.allowed.example
			"https://APP.Allowed.Example",      // patterns ignore case
			"https://deep.app.allowed.example", // path.Match's * spans dots (it stops at /)
			"http://localhost:3000",            // localhost:3000
		} {
			h := http.Header{}
			if origin != "" {
				h.Set("Origin", origin)
			}
			c, resp, err := websocket.Dial(ctx, ts.ws+ep.path, &websocket.DialOptions{Header: h, Subprotocols: ep.subprotocols, Proxy: noProxy})
			if err != nil {
				t.Fatalf("%s with Origin %q: %v (status %d)", ep.path, origin, err, statusOf(resp))
			}
			c.Close(websocket.StatusNormalClosure, "")
		}
		for _, origin := range []string{
			"https://evil.example",
			"https://allowed.example", // *.allowed.example needs a subdomain
			"http://localhost:3001",   // another port
			"http://127.0.0.1",        // the server's host without its port
		} {
			_, resp, err := websocket.Dial(ctx, ts.ws+ep.path, &websocket.DialOptions{
				Header: http.Header{"Origin": {origin}}, Subprotocols: ep.subprotocols, Proxy: noProxy})
			var he *websocket.HandshakeError
			if !errors.As(err, &he) || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%s with Origin %q: %v (status %d), want 403", ep.path, origin, err, statusOf(resp))
			}
			body, _ := io.ReadAll(resp.Body)
			if want := fmt.Sprintf("Origin %q is not allowed to connect to %q\n", origin, host); string(body) != want {
				t.Fatalf("%s with Origin %q: body %q, want %q", ep.path, origin, body, want)
			}
		}
	}
}

// statusOf is the status of a handshake's response, 0 without one.
func statusOf(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}
