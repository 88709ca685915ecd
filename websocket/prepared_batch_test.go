package websocket

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// WritePrepared with several messages sends them in order, each intact,
// over TCP (one vectored write) and over a non-TCP transport (net.Pipe),
// with compression off, on without takeover, and on with takeover (where a
// plain Write after the batch must still inflate right: the batch entered
// the compressor's history in order). Messages below the threshold go out
// uncompressed in the same batch.
func TestWritePreparedBatch(t *testing.T) {
	var pms []*PreparedMessage
	var want [][]byte
	for i := range 40 {
		p := []byte(fmt.Sprintf(`{"n":%d,"symbol":"ACME","note":"%s"}`, i, strings.Repeat("x", i*7)))
		typ := MessageText
		if i%5 == 4 {
			typ = MessageBinary
		}
		pm, err := NewPreparedMessage(typ, p)
		if err != nil {
			t.Fatal(err)
		}
		pms = append(pms, pm)
		want = append(want, p)
	}
	modes := map[string]CompressionOptions{
		"plain":      {},
		"deflate":    {Enabled: true, Threshold: 100, ServerNoContextTakeover: true},
		"takeover":   {Enabled: true, Threshold: 100},
		"takeover-9": {Enabled: true, Threshold: 100, ServerMaxWindowBits: 9},
	}
	for name, comp := range modes {
		t.Run("tcp/"+name, func(t *testing.T) {
			accepted := make(chan *Conn, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Accept(w, r, &AcceptOptions{Options: Options{Compression: comp}})
				if err == nil {
					accepted <- c
				}
			}))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client, _, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &DialOptions{Options: Options{Compression: comp}})
			if err != nil {
				t.Fatal(err)
			}
			defer client.CloseNow()
			server := <-accepted
			defer server.CloseNow()
			if _, ok := server.netConn.(*net.TCPConn); !ok {
				t.Fatalf("server transport is %T, want *net.TCPConn (the vectored path)", server.netConn)
			}
			checkBatch(ctx, t, server, client, pms, want)
		})
	}
	t.Run("pipe/takeover", func(t *testing.T) {
		a, b := net.Pipe()
		comp := &CompressionOptions{Enabled: true, Threshold: 100}
		server := NewConn(a, nil, RoleServer, "", nil)
		server.setupDeflate(deflateParams{serverMaxWindowBits: 15, clientMaxWindowBits: 15}, comp)
		client := NewConn(b, nil, RoleClient, "", nil)
		client.setupDeflate(deflateParams{serverMaxWindowBits: 15, clientMaxWindowBits: 15}, comp)
		defer server.CloseNow()
		defer client.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		checkBatch(ctx, t, server, client, pms, want)
	})
}

func checkBatch(ctx context.Context, t *testing.T, server, client *Conn, pms []*PreparedMessage, want [][]byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		if err := server.WritePrepared(ctx, pms...); err != nil {
			errc <- err
			return
		}
		errc <- server.Write(ctx, MessageText, []byte(`{"n":40,"symbol":"ACME","note":"after the batch, compressed with its history"}`))
	}()
	for i, w := range want {
		typ, p, err := client.Read(ctx)
		wantType := MessageText
		if i%5 == 4 {
			wantType = MessageBinary
		}
		if err != nil || typ != wantType || !bytes.Equal(p, w) {
			t.Fatalf("message %d: %v %q %v; want %v %q", i, typ, p, err, wantType, w)
		}
	}
	if _, p, err := client.Read(ctx); err != nil || string(p) != `{"n":40,"symbol":"ACME","note":"after the batch, compressed with its history"}` {
		t.Fatalf("write after the batch: %q %v", p, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
