package websocket

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// One prepared message goes to connections with different compression
// settings; each client reads it intact, frames are shared between
// connections with equal settings, and connections with context takeover
// keep compressing correctly afterwards (their history took the message in).
func TestPreparedMessageFanOut(t *testing.T) {
	pm, err := NewPreparedMessage(MessageText, []byte(strings.Repeat(`{"symbol":"ACME","price":123.45}`, 20)))
	if err != nil {
		t.Fatal(err)
	}
	settings := []CompressionOptions{
		{},
		{Enabled: true, Threshold: -1},
		{Enabled: true, Threshold: -1},
		{Enabled: true, Threshold: -1, ServerNoContextTakeover: true, ServerMaxWindowBits: 9},
		{Enabled: true, Threshold: 100000}, // above the threshold: sent plain
	}
	var (
		mu      sync.Mutex
		servers = map[string]*Conn{}
		ready   = make(chan struct{}, len(settings))
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := r.URL.Query().Get("i")
		n := 0
		fmt.Sscan(i, &n)
		c, err := Accept(w, r, &AcceptOptions{Options: Options{Compression: settings[n]}})
		if err != nil {
			return
		}
		mu.Lock()
		servers[i] = c
		mu.Unlock()
		ready <- struct{}{}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var clients []*Conn
	for i, s := range settings {
		c, _, err := Dial(ctx, fmt.Sprintf("ws%s/?i=%d", strings.TrimPrefix(srv.URL, "http"), i), &DialOptions{Options: Options{Compression: s}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		clients = append(clients, c)
		<-ready
	}
	for round := 0; round < 3; round++ {
		for i := range settings {
			s := servers[fmt.Sprint(i)]
			if err := s.WritePrepared(ctx, pm); err != nil {
				t.Fatal(err)
			}
			// A plain write after it must still inflate right on the peer.
			if err := s.Write(ctx, MessageText, []byte(fmt.Sprintf(`{"symbol":"ACME","price":123.4%d}`, round))); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range clients {
			typ, p, err := c.Read(ctx)
			if err != nil || typ != MessageText || !bytes.Equal(p, pm.data) {
				t.Fatalf("client %d round %d: %v %d bytes %v", i, round, typ, len(p), err)
			}
			_, p, err = c.Read(ctx)
			if want := fmt.Sprintf(`{"symbol":"ACME","price":123.4%d}`, round); err != nil || string(p) != want {
				t.Fatalf("client %d round %d: got %q %v, want %q", i, round, p, err, want)
			}
		}
	}
	// Two compressed settings: window 15 level 1 (shared by two
	// connections) and window 9 level 1.
	if len(pm.deflated) != 2 {
		t.Fatalf("compressed %d times, want 2: %v", len(pm.deflated), pm.deflated)
	}
	if f := pm.deflated[preparedKey{15, 1}]; f[0] != 0x80|rsv1Bit|byte(opText) {
		t.Fatalf("compressed frame header %#x", f[0])
	}
}

func BenchmarkPreparedFanOut(b *testing.B) {
	pm, _ := NewPreparedMessage(MessageText, []byte(strings.Repeat(`{"symbol":"ACME","price":123.45}`, 8)))
	c := NewConn(nopRWC{}, nil, RoleServer, "", nil)
	c.setupDeflate(deflateParams{serverMaxWindowBits: 15, clientMaxWindowBits: 15}, &CompressionOptions{Enabled: true, Threshold: -1})
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.WritePrepared(ctx, pm)
	}
}

type nopRWC struct{}

func (nopRWC) Read(p []byte) (int, error)  { select {} }
func (nopRWC) Write(p []byte) (int, error) { return len(p), nil }
func (nopRWC) Close() error                { return nil }
