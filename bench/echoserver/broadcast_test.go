package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// bcastPayload is message i of the broadcast test: its number in eight
// decimal digits, then bytes that depend on it (letters in the text
// messages, every third one, so that they are valid UTF-8); message 7 has
// a 16-bit length and message 11 a 64-bit one.
func bcastPayload(i int) []byte {
	n := 8 + i%40
	switch i {
	case 7:
		n = 3000
	case 11:
		n = 70000
	}
	p := fmt.Appendf(make([]byte, 0, n), "%08d", i)
	for j := 8; j < n; j++ {
		b := byte(i*7 + j*31)
		if i%3 == 0 {
			b = 'a' + b%26
		}
		p = append(p, b)
	}
	return p
}

// TestBroadcastServers checks every library's broadcast endpoint: 50
// subscribers each get the greeting, then every one of 300 messages, sent
// by the publisher without waiting, exactly once, in order, with its type
// and bytes, then the end marker and nothing else. A 51st subscriber that
// leaves at once must not stall the others, and echo still works on the
// same server. 300 messages are more than a subscriber's queue holds, so
// the publisher waits on full queues where the server keeps them.
func TestBroadcastServers(t *testing.T) {
	const subs, msgs = 50, 300
	for _, lib := range Libs {
		t.Run(lib, func(t *testing.T) {
			t.Parallel()
			addr := startServer(t, servers[lib])
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			base := "ws://" + addr
			dial := func(path, proto string) *websocket.Conn {
				t.Helper()
				c, _, err := websocket.Dial(ctx, base+path, &websocket.DialOptions{Subprotocols: []string{proto}})
				if err != nil {
					t.Fatalf("dial %s: %v", path, err)
				}
				c.SetReadLimit(1 << 20)
				return c
			}
			greeted := func(c *websocket.Conn) {
				t.Helper()
				typ, p, err := c.Read(ctx)
				if err != nil || typ != websocket.MessageText || string(p) != greeting {
					t.Fatalf("first message %v %q (%v), want the text %q", typ, p, err, greeting)
				}
			}

			// One subscriber leaves at once, without a close handshake.
			gone := dial(subPath, subProto)
			greeted(gone)
			gone.CloseNow()

			conns := make([]*websocket.Conn, subs)
			for i := range conns {
				conns[i] = dial(subPath, subProto)
				defer conns[i].CloseNow()
				greeted(conns[i])
			}
			errs := make(chan error, subs)
			var wg sync.WaitGroup
			for i, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- receiveAll(ctx, c, msgs)
					if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
						errs <- fmt.Errorf("subscriber %d: close: %v", i, err)
					}
				}()
			}

			pub := dial(pubPath, pubProto)
			defer pub.CloseNow()
			for i := range msgs {
				typ := websocket.MessageBinary
				if i%3 == 0 {
					typ = websocket.MessageText
				}
				if err := pub.Write(ctx, typ, bcastPayload(i)); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			if err := pub.Write(ctx, websocket.MessageText, []byte("end")); err != nil {
				t.Fatalf("publish end: %v", err)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			if err := pub.Close(websocket.StatusNormalClosure, ""); err != nil {
				t.Errorf("publisher close: %v", err)
			}

			// Echo on the same server is unaffected.
			echo, _, err := websocket.Dial(ctx, base+"/", nil)
			if err != nil {
				t.Fatalf("dial echo: %v", err)
			}
			defer echo.CloseNow()
			if err := echo.Write(ctx, websocket.MessageBinary, []byte("ping?")); err != nil {
				t.Fatal(err)
			}
			if typ, p, err := echo.Read(ctx); err != nil || typ != websocket.MessageBinary || string(p) != "ping?" {
				t.Fatalf("echo: %v %q %v", typ, p, err)
			}
		})
	}
}

// receiveAll reads msgs broadcast messages and the end marker from c and
// checks each one.
func receiveAll(ctx context.Context, c *websocket.Conn, msgs int) error {
	for i := range msgs {
		typ, p, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("message %d: %v", i, err)
		}
		want := websocket.MessageBinary
		if i%3 == 0 {
			want = websocket.MessageText
		}
		if typ != want || !bytes.Equal(p, bcastPayload(i)) {
			return fmt.Errorf("message %d: got %v of %d bytes starting %.8q, want %v of %d bytes", i, typ, len(p), p, want, len(bcastPayload(i)))
		}
	}
	typ, p, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(p) != "end" {
		return fmt.Errorf("after %d messages: got %v %.20q (%v), want the end marker", msgs, typ, p, err)
	}
	return nil
}
