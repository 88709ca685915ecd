package websocket

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
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

// heapPer returns the heap (HeapInuse) that n objects built by build hold,
// per object, measured with runtime.MemStats around building them after
// prepare has built what must not be counted.
func heapPer(n int, prepare func(i int), build func(i int)) float64 {
	for i := 0; i < n; i++ {
		prepare(i)
	}
	// Twice, so that sync.Pool contents from earlier work are gone from
	// both readings.
	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		build(i)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return (float64(after.HeapInuse) - float64(before.HeapInuse)) / float64(n)
}

// BenchmarkMemoryPerConnParts measures what each part of a connection's
// compression state costs, each part on its own, for 500 server
// connections over in-memory transports:
//
//   - conn: a plain connection after three 160-byte messages each way;
//   - encoder/level=L/window=W: what setupDeflate with sending context
//     takeover adds to a connection (its own encoder) after it sent three
//     compressed messages, the connection having sent the same messages
//     uncompressed before the first reading;
//   - window/window=W: what setupDeflate with receiving context takeover
//     adds (the peer's window kept between messages) after it read three
//     compressed messages, likewise;
//   - inflater: a compress/flate decompressor as the receiving side
//     borrows it from a pool while a compressed message is read (with a
//     2 KiB source buffer in the pooled object, not counted here).
func BenchmarkMemoryPerConnParts(b *testing.B) {
	const n = 500
	msg := []byte(strings.Repeat(`{"symbol":"ACME","price":123.45,"seq":1}`, 4))
	opts := &CompressionOptions{Enabled: true, Threshold: -1}
	ctx := context.Background()
	report := func(b *testing.B, measure func() float64) {
		var per float64
		for i := 0; i < b.N; i++ {
			per = measure()
		}
		b.ReportMetric(per, "bytes/conn")
		b.ReportMetric(0, "ns/op")
	}
	// frames returns three messages as a client sends them, plain or
	// compressed with context takeover at the given window.
	frames := func(windowBits int) []byte {
		rec := &recordRWC{}
		c := NewConn(rec, nil, RoleClient, "", nil)
		if windowBits > 0 {
			c.setupDeflate(deflateParams{clientMaxWindowBits: windowBits, serverMaxWindowBits: 15}, opts)
		}
		for k := 0; k < 3; k++ {
			c.Write(ctx, MessageText, msg)
		}
		return rec.buf.Bytes()
	}
	read3 := func(c *Conn) {
		for k := 0; k < 3; k++ {
			if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
				b.Fatalf("%d bytes, %v", len(p), err)
			}
		}
	}
	write3 := func(c *Conn) {
		for k := 0; k < 3; k++ {
			if err := c.Write(ctx, MessageText, msg); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.Run("conn", func(b *testing.B) {
		in := frames(0)
		report(b, func() float64 {
			conns := make([]*Conn, n)
			per := heapPer(n, func(int) {}, func(i int) {
				conns[i] = NewConn(&loopRWC{data: in}, nil, RoleServer, "", nil)
				read3(conns[i])
				write3(conns[i])
			})
			runtime.KeepAlive(conns)
			return per
		})
	})
	for _, level := range []int{1, 6} {
		for _, wb := range []int{15, 12, 9} {
			b.Run(fmt.Sprintf("encoder/level=%d/window=%d", level, wb), func(b *testing.B) {
				lopts := &CompressionOptions{Enabled: true, Threshold: -1, Level: level}
				params := deflateParams{serverMaxWindowBits: wb, clientMaxWindowBits: 15, clientNoContextTakeover: true}
				report(b, func() float64 {
					conns := make([]*Conn, n)
					per := heapPer(n, func(i int) {
						conns[i] = NewConn(&countSink{}, nil, RoleServer, "", nil)
						write3(conns[i])
					}, func(i int) {
						conns[i].setupDeflate(params, lopts)
						write3(conns[i])
					})
					for _, c := range conns {
						if c.send.enc == nil || c.recv.hist != nil {
							b.Fatal("not an encoder alone")
						}
					}
					runtime.KeepAlive(conns)
					return per
				})
			})
		}
	}
	for _, wb := range []int{15, 12, 9} {
		b.Run(fmt.Sprintf("window/window=%d", wb), func(b *testing.B) {
			in := append(frames(0), frames(wb)...)
			params := deflateParams{serverNoContextTakeover: true, serverMaxWindowBits: 15, clientMaxWindowBits: wb}
			report(b, func() float64 {
				conns := make([]*Conn, n)
				per := heapPer(n, func(i int) {
					conns[i] = NewConn(&loopRWC{data: in}, nil, RoleServer, "", nil)
					read3(conns[i])
				}, func(i int) {
					conns[i].setupDeflate(params, opts)
					read3(conns[i])
				})
				for _, c := range conns {
					if c.send.enc != nil || c.recv.hist == nil {
						b.Fatal("not a window alone")
					}
				}
				runtime.KeepAlive(conns)
				return per
			})
		})
	}
	b.Run("inflater", func(b *testing.B) {
		var comp bytes.Buffer
		fw, _ := flate.NewWriter(&comp, flate.BestSpeed)
		fw.Write(msg)
		fw.Close()
		report(b, func() float64 {
			rs := make([]io.ReadCloser, n)
			per := heapPer(n, func(int) {}, func(i int) {
				rs[i] = flate.NewReader(bytes.NewReader(comp.Bytes()))
				if p, err := io.ReadAll(rs[i]); err != nil || !bytes.Equal(p, msg) {
					b.Fatal(len(p), err)
				}
			})
			runtime.KeepAlive(rs)
			return per
		})
	})
}
