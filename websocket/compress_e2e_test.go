package websocket

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// compressPair connects our client to our echo server, both with the given
// compression options, and returns the client.
func compressPair(t *testing.T, srvOpts, cliOpts CompressionOptions) *Conn {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{Options: Options{Compression: srvOpts}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, p, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), typ, p); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &DialOptions{Options: Options{Compression: cliOpts}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("not negotiated: %q", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	return c
}

// Messages of every kind round-trip through compression in both directions,
// with context takeover on and off and every window size.
func TestCompressionEchoRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 200000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var msgs [][]byte
	for i := 0; i < 30; i++ {
		msgs = append(msgs, []byte(fmt.Sprintf(`{"symbol":"ACME","price":%d.%02d,"seq":%d}`, 100+i%7, i%100, i)))
	}
	msgs = append(msgs, nil, []byte("x"), bytes.Repeat([]byte("héllo wörld "), 20000), random, random[:5000])
	for _, bits := range []int{8, 9, 12, 15} {
		for _, noCtx := range []bool{false, true} {
			opts := CompressionOptions{Enabled: true, Threshold: -1, ServerMaxWindowBits: bits, ClientMaxWindowBits: bits,
				ServerNoContextTakeover: noCtx, ClientNoContextTakeover: noCtx}
			t.Run(fmt.Sprintf("bits%d/noctx=%v", bits, noCtx), func(t *testing.T) {
				c := compressPair(t, opts, opts)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				for i, m := range msgs {
					typ := MessageText
					if bytes.Equal(m, random) || (len(m) == 5000 && m[0] == random[0]) {
						typ = MessageBinary
					}
					if err := c.Write(ctx, typ, m); err != nil {
						t.Fatal(err)
					}
					gt, p, err := c.Read(ctx)
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					if gt != typ || !bytes.Equal(p, m) {
						t.Fatalf("message %d: got %v of %d bytes, want %v of %d", i, gt, len(p), typ, len(m))
					}
				}
				// A streamed, fragmented message.
				w, _ := c.Writer(ctx, MessageText)
				for i := 0; i < 5; i++ {
					w.Write(bytes.Repeat([]byte("stream "), 3000))
					w.(interface{ Flush() error }).Flush()
				}
				w.Close()
				_, p, err := c.Read(ctx)
				if err != nil || string(p) != strings.Repeat("stream ", 15000) {
					t.Fatalf("streamed message: %d bytes, %v", len(p), err)
				}
				if err := c.Close(StatusNormalClosure, ""); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
