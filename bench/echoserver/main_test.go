package main

import (
	"bytes"
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// TestEchoServers checks that every library's echo server sends back text
// and binary messages of several sizes (7-bit, 16-bit and 64-bit frame
// lengths) with their type and exact bytes, so that the benchmark compares
// servers that really echo.
func TestEchoServers(t *testing.T) {
	if len(Libs) != len(servers) {
		t.Fatalf("Libs lists %d libraries, servers has %d", len(Libs), len(servers))
	}
	big := make([]byte, 70000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	msgs := []echoMsg{
		{websocket.MessageText, []byte("héllo, wörld")},
		{websocket.MessageBinary, []byte{0, 1, 2, 0xfe, 0xff}},
		{websocket.MessageText, bytes.Repeat([]byte("ab€"), 400)},
		{websocket.MessageBinary, big},
		{websocket.MessageBinary, []byte{}},
		{websocket.MessageText, []byte("after")},
	}
	for _, lib := range Libs {
		t.Run(lib, func(t *testing.T) {
			t.Parallel()
			addr := startServer(t, servers[lib])
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.CloseNow()
			want := msgs
			if lib == "nbio" {
				// nbio v1.6.8 never hands an empty message to OnMessage
				// (Conn.Parse keeps a nil message for a frame without
				// payload and skips it), so nothing comes back.
				want = slices.DeleteFunc(slices.Clone(msgs), func(m echoMsg) bool { return len(m.p) == 0 })
			}
			checkEchoes(ctx, t, c, want)
		})
	}
}

// echoMsg is a message of an echo test: its type and payload.
type echoMsg struct {
	typ websocket.MessageType
	p   []byte
}

// startServer starts serve on a new listener on 127.0.0.1, stopped when
// the test ends, and returns its address.
func startServer(t *testing.T, serve serveFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop, err := serve(ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return ln.Addr().String()
}

// checkEchoes sends each of msgs on c and checks that the same type and
// bytes come back before the next, then closes c normally.
func checkEchoes(ctx context.Context, t *testing.T, c *websocket.Conn, msgs []echoMsg) {
	t.Helper()
	for i, m := range msgs {
		if err := c.Write(ctx, m.typ, m.p); err != nil {
			t.Fatalf("message %d: write: %v", i, err)
		}
		typ, p, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: read: %v", i, err)
		}
		if typ != m.typ || !bytes.Equal(p, m.p) {
			t.Fatalf("message %d: got %v of %d bytes, want %v of %d bytes (equal bytes: %v)",
				i, typ, len(p), m.typ, len(m.p), bytes.Equal(p, m.p))
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
}
