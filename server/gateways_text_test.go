package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// TestParseBridgeRouteText: text=refuse and text=accept in a --bridge
// route's URL set RefuseText and are not passed on as target parameters;
// anything else is refused.
func TestParseBridgeRouteText(t *testing.T) {
	for spec, want := range map[string]bool{
		"/mqtt=tcp://127.0.0.1:1883?subprotocol=mqtt&text=refuse": true,
		"/mqtt=tcp://127.0.0.1:1883?text=accept":                  false,
		"/mqtt=tcp://127.0.0.1:1883":                              false,
	} {
		r, err := ParseBridgeRoute(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if r.RefuseText != want || r.Target.String() != "tcp://127.0.0.1:1883" {
			t.Errorf("%s: RefuseText %v, target %s; want %v, tcp://127.0.0.1:1883", spec, r.RefuseText, r.Target, want)
		}
	}
	r, err := ParseBridgeRoute("/s=tls://127.0.0.1:8883?insecure=true&text=refuse")
	if err != nil || !r.RefuseText || r.Target.TLS == nil || !r.Target.TLS.InsecureSkipVerify {
		t.Fatalf("tls route: %+v, %v", r, err)
	}
	for _, bad := range []string{
		"/a=tcp://127.0.0.1:1?text=",
		"/a=tcp://127.0.0.1:1?text=yes",
		"/a=tcp://127.0.0.1:1?text=refuse&text=accept",
	} {
		if _, err := ParseBridgeRoute(bad); err == nil || !strings.Contains(err.Error(), "want text=refuse or text=accept") {
			t.Errorf("ParseBridgeRoute(%q): %v, want the text= error", bad, err)
		}
	}
}

// TestBridgeRouteRefuseText: on a route parsed with text=refuse, binary
// messages reach the target and a text message closes the connection
// with 1003.
func TestBridgeRouteRefuseText(t *testing.T) {
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
	route, err := ParseBridgeRoute("/mqtt=tcp://" + ln.Addr().String() + "?text=refuse")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Bridges: []BridgeRoute{route}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	var tc net.Conn
	select {
	case tc = <-targetConns:
	case <-ctx.Done():
		t.Fatal("no connection to the target")
	}
	defer tc.Close()
	if err := c.Write(ctx, websocket.MessageBinary, []byte("bin")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(tc, buf); err != nil || string(buf) != "bin" {
		t.Fatalf("target got %q, %v", buf, err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("text")); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusUnsupportedData || ce.Reason != "text messages are not accepted on this route" {
		t.Fatalf("read: %v, want close 1003 \"text messages are not accepted on this route\"", err)
	}
	// The text's bytes never reached the target: it reads EOF.
	if n, err := tc.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("target read %q, %v; want EOF", buf[:n], err)
	}
}
