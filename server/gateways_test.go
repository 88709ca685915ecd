package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/bridge"
	"github.com/duplex-ws/duplex/websocket"
)

func TestParseGatewayRoutes(t *testing.T) {
	b, err := ParseBridgeRoute("/mqtt=tcp://127.0.0.1:1883?subprotocol=mqtt&subprotocol=mqttv3.1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Path != "/mqtt" || b.Target.String() != "tcp://127.0.0.1:1883" || !reflect.DeepEqual(b.Subprotocols, []string{"mqtt", "mqttv3.1"}) {
		t.Fatalf("got %+v", b)
	}
	b, err = ParseBridgeRoute("/secure=tls://127.0.0.1:8883?insecure=true&subprotocol=mqtt")
	if err != nil || b.Target.TLS == nil || !b.Target.TLS.InsecureSkipVerify || b.Subprotocols[0] != "mqtt" {
		t.Fatalf("got %+v, %v", b, err)
	}
	e, err := ParseExecRoute("/chat-bot=./bot.sh --room  lobby")
	if err != nil || e.Path != "/chat-bot" || !reflect.DeepEqual(e.Command, []string{"./bot.sh", "--room", "lobby"}) {
		t.Fatalf("got %+v, %v", e, err)
	}
	for _, bad := range []string{"/mqtt", "mqtt=tcp://127.0.0.1:1883", "/=tcp://127.0.0.1:1", "/a=", "/{x}=tcp://127.0.0.1:1",
		"/a=http://127.0.0.1:1", "/a=tcp://127.0.0.1:1?subprotocol=a%20b", "/a=tcp://127.0.0.1:1?other=1"} {
		if _, err := ParseBridgeRoute(bad); err == nil {
			t.Errorf("ParseBridgeRoute(%q) succeeded", bad)
		}
	}
	for _, bad := range []string{"/a=  ", "a=./x", "/a"} {
		if _, err := ParseExecRoute(bad); err == nil {
			t.Errorf("ParseExecRoute(%q) succeeded", bad)
		}
	}
}

// TestGatewayRouteTaken: a route on a path the server already serves
// makes Serve fail instead of starting half configured.
func TestGatewayRouteTaken(t *testing.T) {
	for _, cfg := range []Config{
		{Bridges: []BridgeRoute{{Path: "/ws", Target: bridge.Target{Addr: "127.0.0.1:1"}}}},
		{Execs: []ExecRoute{{Path: "/bot", Command: []string{"cat"}}, {Path: "/bot", Command: []string{"cat"}}}},
		{Execs: []ExecRoute{{Path: "/bot"}}},
	} {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
		s := New(cfg)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		err = s.Serve(ln)
		ln.Close()
		if err == nil {
			t.Errorf("%+v: Serve succeeded", cfg)
		}
		s.Shutdown(context.Background())
	}
}

// TestGatewayRoutes: a bridge route and an exec route in duplex serve's
// server; shutdown closes a bridge with 1001.
func TestGatewayRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	targetConns := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			targetConns <- c
		}
	}()
	sh := filepath.Join(t.TempDir(), "bot.sh")
	os.WriteFile(sh, []byte("#!/bin/sh\necho \"$SCRIPT_NAME$PATH_INFO\"\nread l\necho \"bot: $l\"\n"), 0o755)
	s := New(Config{
		Bridges: []BridgeRoute{{Path: "/tcp", Target: bridge.Target{Addr: ln.Addr().String()}, Subprotocols: []string{"mqtt"}}},
		Execs:   []ExecRoute{{Path: "/bot/", Command: []string{sh}}},
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	base := "ws" + strings.TrimPrefix(hs.URL, "http")

	bot, _, err := websocket.Dial(ctx, base+"/bot/lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bot.CloseNow()
	if _, p, err := bot.Read(ctx); err != nil || string(p) != "/bot/lobby" {
		t.Fatalf("bot said %q, %v", p, err)
	}
	bot.Write(ctx, websocket.MessageText, []byte("hi"))
	if _, p, err := bot.Read(ctx); err != nil || string(p) != "bot: hi" {
		t.Fatalf("bot said %q, %v", p, err)
	}
	_, _, err = bot.Read(ctx)
	if ce := websocket.CloseStatus(err); ce != websocket.StatusNormalClosure {
		t.Fatalf("bot ended with %v", err)
	}

	c, _, err := websocket.Dial(ctx, base+"/tcp", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != "mqtt" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	var tc net.Conn
	select {
	case tc = <-targetConns:
	case <-ctx.Done():
		t.Fatal("no connection to the target")
	}
	defer tc.Close()
	c.Write(ctx, websocket.MessageBinary, []byte("ping"))
	buf := make([]byte, 4)
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(tc, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("target got %q, %v", buf, err)
	}
	go s.Shutdown(ctx)
	_, _, err = c.Read(ctx)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
		t.Fatalf("bridge ended with %v, want 1001", err)
	}
	if n, err := tc.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("target read %d, %v; want EOF", n, err)
	}
}
