package websocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
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

// With no read limit, compressed messages are read (regression: the room
// computed from the limit overflowed and panicked).
func TestCompressionNoReadLimit(t *testing.T) {
	a, z := net.Pipe()
	s := NewConn(a, nil, RoleServer, "", &Options{ReadLimit: -1})
	c := NewConn(z, nil, RoleClient, "", nil)
	defer s.CloseNow()
	defer c.CloseNow()
	params := deflateParams{serverMaxWindowBits: 15, clientMaxWindowBits: 15}
	s.setupDeflate(params, &CompressionOptions{Enabled: true})
	c.setupDeflate(params, &CompressionOptions{Enabled: true})
	msg := bytes.Repeat([]byte("no limit "), 5000)
	go c.Write(context.Background(), MessageText, msg)
	typ, p, err := s.Read(context.Background())
	if err != nil || typ != MessageText || !bytes.Equal(p, msg) {
		t.Fatalf("got %v %d bytes %v", typ, len(p), err)
	}
}

// Lowering the limit below what a compressed message already inflated to
// fails it with 1009 (regression: it panicked, or spun returning nothing).
func TestCompressionLimitLoweredMidMessage(t *testing.T) {
	for _, lower := range []int64{100, 4095} {
		a, z := net.Pipe()
		s := NewConn(a, nil, RoleServer, "", nil)
		c := NewConn(z, nil, RoleClient, "", nil)
		params := deflateParams{serverMaxWindowBits: 15, clientMaxWindowBits: 15}
		s.setupDeflate(params, &CompressionOptions{Enabled: true})
		c.setupDeflate(params, &CompressionOptions{Enabled: true})
		go func() {
			c.Write(context.Background(), MessageBinary, bytes.Repeat([]byte("0123456789abcdef"), 1000))
			c.Read(context.Background()) // take the close frame
		}()
		_, r, err := s.Reader(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		s.SetReadLimit(lower)
		done := make(chan error, 1)
		go func() { _, err := io.ReadAll(r); done <- err }()
		select {
		case err := <-done:
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != StatusMessageTooBig {
				t.Fatalf("limit %d: got %v, want 1009", lower, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("limit %d: reader spins or hangs", lower)
		}
		s.CloseNow()
		c.CloseNow()
	}
}

// Options out of range are refused: by Dial with an error, by Accept with
// 500, rather than silently replaced by defaults.
func TestCompressionOptionsValidated(t *testing.T) {
	bad := CompressionOptions{Enabled: true, ServerMaxWindowBits: 7}
	if _, _, err := Dial(context.Background(), "ws://127.0.0.1:1/", &DialOptions{Options: Options{Compression: bad}}); err == nil ||
		!strings.Contains(err.Error(), "ServerMaxWindowBits is 7") {
		t.Fatalf("Dial: %v", err)
	}
	accepted := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := Accept(w, r, &AcceptOptions{Options: Options{Compression: CompressionOptions{Enabled: true, Level: 10}}})
		accepted <- err
	}))
	defer srv.Close()
	_, resp, err := Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("Accept with Level 10: resp %v err %v", resp, err)
	}
	// The server's own misconfiguration is named as such, not as a
	// failed hijack or a fault of the request.
	var he *HandshakeError
	if err := <-accepted; !errors.As(err, &he) || he.Check != CheckOptions || he.Status != http.StatusInternalServerError ||
		he.Err == nil || he.Err.Error() != "websocket: CompressionOptions.Level is 10, want 0..9" {
		t.Fatalf("Accept = %#v, want a 500 CheckOptions HandshakeError wrapping the Level error", err)
	}
	if he.Check.String() != "options" {
		t.Fatalf("CheckOptions.String() = %q", he.Check.String())
	}
}
