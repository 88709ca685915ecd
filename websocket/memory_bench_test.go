package websocket

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
)

// BenchmarkMemoryPerConn reports the heap each connection endpoint holds
// while idle after exchanging a few messages, per compression mode. It is
// a measurement, not a speed: the metric is bytes/conn (b.N is ignored
// beyond running it once per iteration batch).
func BenchmarkMemoryPerConn(b *testing.B) {
	modes := []struct {
		name   string
		params *deflateParams
	}{
		{"plain", nil},
		{"deflate-no-takeover", &deflateParams{serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 15, clientMaxWindowBits: 15}},
		{"deflate-takeover-15", &deflateParams{serverMaxWindowBits: 15, clientMaxWindowBits: 15}},
		{"deflate-takeover-12", &deflateParams{serverMaxWindowBits: 12, clientMaxWindowBits: 12}},
		{"deflate-takeover-9", &deflateParams{serverMaxWindowBits: 9, clientMaxWindowBits: 9}},
	}
	msg := []byte(strings.Repeat(`{"symbol":"ACME","price":123.45,"seq":1}`, 4))
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			const pairs = 200
			var perConn float64
			for i := 0; i < b.N; i++ {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				conns := make([]*Conn, 0, 2*pairs)
				pipes := make([]net.Conn, 0, 2*pairs)
				for j := 0; j < pairs; j++ {
					a, z := net.Pipe()
					s := NewConn(a, nil, RoleServer, "", nil)
					c := NewConn(z, nil, RoleClient, "", nil)
					if m.params != nil {
						opts := &CompressionOptions{Enabled: true, Threshold: -1}
						s.setupDeflate(*m.params, opts)
						c.setupDeflate(*m.params, opts)
					}
					for k := 0; k < 3; k++ {
						go c.Write(context.Background(), MessageText, msg)
						if _, _, err := s.Read(context.Background()); err != nil {
							b.Fatal(err)
						}
						go s.Write(context.Background(), MessageText, msg)
						if _, _, err := c.Read(context.Background()); err != nil {
							b.Fatal(err)
						}
					}
					conns = append(conns, s, c)
					pipes = append(pipes, a, z)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perConn = float64(after.HeapInuse-before.HeapInuse) / float64(len(conns))
				for _, c := range conns {
					c.CloseNow()
				}
				runtime.KeepAlive(pipes)
			}
			b.ReportMetric(perConn, "bytes/conn")
			b.ReportMetric(0, "ns/op")
		})
	}
}
