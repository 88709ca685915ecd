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

// BenchmarkPreparedFanOut sends one message to N server connections, each
// writing to an in-memory sink, with WritePrepared (one PreparedMessage per
// message, built inside the timed loop) or with a Write per connection, by
// compression mode. One op is one message delivered to all N connections;
// ns/delivery is the time per connection, and B/op and allocs/op are per
// message (the PreparedMessage's frame and its compressed frame are
// allocated once per message, whatever N). Messages are distinct 2300-byte
// JSON records, as in BenchmarkCompressedWrite.
func BenchmarkPreparedFanOut(b *testing.B) {
	modes := []struct {
		name   string
		params *deflateParams
	}{
		{"off", nil},
		{"no-takeover", &deflateParams{serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 15, clientMaxWindowBits: 15}},
		{"takeover", &deflateParams{serverMaxWindowBits: 15, clientMaxWindowBits: 15}},
	}
	const size = 2300
	msgs := make([][]byte, 32) // 72 KB: more than a window
	for i := range msgs {
		msgs[i] = compressPayload("json", size+i)[:size]
	}
	for _, m := range modes {
		for _, n := range []int{1, 100, 1000} {
			for _, prepared := range []bool{true, false} {
				api := "write"
				if prepared {
					api = "prepared"
				}
				b.Run(fmt.Sprintf("compression=%s/conns=%d/%s", m.name, n, api), func(b *testing.B) {
					conns := make([]*Conn, n)
					sinks := make([]*countSink, n)
					for i := range conns {
						sinks[i] = &countSink{}
						conns[i] = NewConn(sinks[i], nil, RoleServer, "", nil)
						if m.params != nil {
							conns[i].setupDeflate(*m.params, &CompressionOptions{Enabled: true, Threshold: -1})
						}
					}
					ctx := context.Background()
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						msg := msgs[i%len(msgs)]
						if prepared {
							pm, err := NewPreparedMessage(MessageText, msg)
							if err != nil {
								b.Fatal(err)
							}
							for _, c := range conns {
								if err := c.WritePrepared(ctx, pm); err != nil {
									b.Fatal(err)
								}
							}
						} else {
							for _, c := range conns {
								if err := c.Write(ctx, MessageText, msg); err != nil {
									b.Fatal(err)
								}
							}
						}
					}
					b.StopTimer()
					deliveries := float64(b.N) * float64(n)
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
					var wire int64
					for _, s := range sinks {
						wire += s.n
					}
					b.ReportMetric(float64(wire)/deliveries, "wire-B/delivery")
				})
			}
		}
	}
}

type nopRWC struct{}

func (nopRWC) Read(p []byte) (int, error)  { select {} }
func (nopRWC) Write(p []byte) (int, error) { return len(p), nil }
func (nopRWC) Close() error                { return nil }
