// Package compress measures the choice of compressor for permessage-deflate:
// Duplex's own encoder (through the public API, over a real connection)
// against compress/flate and github.com/klauspost/compress/flate. It is a
// separate module so that the main module does not depend on klauspost.
//
//	go test -run '^$' -bench . -benchmem -count 3 ./compress/
//	go test -v -run TestWriterMemory ./compress/
package compress

import (
	"bytes"
	stdflate "compress/flate"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/duplex-ws/duplex/websocket"
	kflate "github.com/klauspost/compress/flate"
)

// ---------------------------------------------------------------------------
// Payloads (the same generators as websocket/internal/deflate's tests).

var textWords = strings.Fields(`the of and to a in that is was he for it with as his on be at by I
this had not are but from or have an they which one you were her all she there would their we him
been has when who will more no if out so said what up its about into than them can only other new
some could time these two may then do first any my now such like our over man me even most made
after also did many before must through back years where much your way well down should because
each just those people Mr how too little state good very make world still own see men work long
get here between both life being under never day same another know while last might us great old
year off come since against go came right used take three light colours rays glass prism water
experiment reflected refracted observed sun image paper white red green blue violet yellow hole
window room distance inch feet lens object eye upon therefore whence which appears manner`)

// genText returns n bytes of English-like text (Zipf-distributed words).
func genText(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	z := rand.NewZipf(rng, 1.2, 2, uint64(len(textWords)-1))
	var b bytes.Buffer
	line := 0
	for b.Len() < n {
		words := 5 + rng.IntN(15)
		for i := 0; i < words; i++ {
			w := textWords[z.Uint64()]
			if i == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			if line+len(w) > 72 {
				b.WriteByte('\n')
				line = 0
			} else if i > 0 || line > 0 {
				b.WriteByte(' ')
				line++
			}
			b.WriteString(w)
			line += len(w)
			if i == words-1 {
				b.WriteByte(".,;:!?"[min(rng.IntN(10), 5)])
			} else if rng.IntN(12) == 0 {
				b.WriteByte(',')
			}
		}
	}
	return b.Bytes()[:n]
}

func genRandom(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// tickers returns n distinct messages like
// {"symbol":"ACME","price":123.45,"seq":1000}, about 45 bytes each.
func tickers(n int) [][]byte {
	rng := rand.New(rand.NewPCG(7, 7))
	syms := []string{"ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"}
	prices := []float64{123.45, 87.5, 1043.2, 12.07, 455.9}
	msgs := make([][]byte, n)
	for i := range msgs {
		s := rng.IntN(len(syms))
		prices[s] += float64(rng.IntN(21)-10) / 100
		msgs[i] = fmt.Appendf(nil, `{"symbol":%q,"price":%.2f,"seq":%d}`, syms[s], prices[s], 1000+i)
	}
	return msgs
}

type payload struct {
	name string
	msgs [][]byte // one op writes every message, in order
	size int
}

func payloads() []payload {
	ps := []payload{
		{name: "tickers1000", msgs: tickers(1000)},
		{name: "text64K", msgs: [][]byte{genText(64<<10, 1)}},
		{name: "random64K", msgs: [][]byte{genRandom(64<<10, 3)}},
	}
	for i := range ps {
		for _, m := range ps[i].msgs {
			ps[i].size += len(m)
		}
	}
	return ps
}

// ---------------------------------------------------------------------------
// Byte counting.

// countWriter counts bytes written.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// frameCounter counts the bytes the client writes once on is set. Its
// frames are masked: 6 bytes of header for a payload under 126 bytes, 8 up
// to 64 KiB; benchDuplex subtracts them, so that Duplex is measured on
// compressed payload bytes, like the flate writers.
type frameCounter struct {
	mu sync.Mutex
	on bool
	n  int64
}

func (f *frameCounter) write(p []byte) {
	f.mu.Lock()
	if f.on {
		f.n += int64(len(p))
	}
	f.mu.Unlock()
}

type countConn struct {
	net.Conn
	fc *frameCounter
}

func (c countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.fc.write(p[:n])
	return n, err
}

// ---------------------------------------------------------------------------
// Compressors.

// flushWriter is a flate writer used as permessage-deflate uses it: one
// persistent writer (context takeover), a sync flush after each message.
type flushWriter interface {
	io.Writer
	Flush() error
}

func benchFlate(b *testing.B, p payload, w flushWriter, cw *countWriter) {
	b.SetBytes(int64(p.size))
	b.ReportAllocs()
	var flushes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, m := range p.msgs {
			if _, err := w.Write(m); err != nil {
				b.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			flushes++
		}
	}
	b.StopTimer()
	// RFC 7692 strips the 4-byte 00 00 ff ff tail of each sync flush.
	b.ReportMetric(float64(cw.n-4*flushes)/float64(int64(p.size)*int64(b.N)), "ratio")
}

func benchDuplex(b *testing.B, p payload, level int) {
	srvErr := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Options: websocket.Options{
			Compression: websocket.CompressionOptions{Enabled: true, Threshold: -1, Level: level},
		}})
		if err != nil {
			return
		}
		c.SetReadLimit(-1)
		for {
			_, rd, err := c.Reader(context.Background())
			if err != nil {
				srvErr <- err
				c.CloseNow()
				return
			}
			if _, err := io.Copy(io.Discard, rd); err != nil {
				c.CloseNow()
				return
			}
		}
	}))
	defer srv.Close()

	fc := &frameCounter{}
	var d net.Dialer
	c, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
		Options: websocket.Options{
			Compression: websocket.CompressionOptions{Enabled: true, Threshold: -1, Level: level},
		},
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countConn{nc, fc}, nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()

	fc.mu.Lock()
	fc.on = true
	fc.mu.Unlock()
	ctx := context.Background()
	b.SetBytes(int64(p.size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, m := range p.msgs {
			if err := c.Write(ctx, websocket.MessageBinary, m); err != nil {
				select {
				case serr := <-srvErr:
					b.Fatalf("%v (server: %v)", err, serr)
				default:
					b.Fatal(err)
				}
			}
		}
	}
	b.StopTimer()
	fc.mu.Lock()
	fc.on = false
	got := fc.n
	fc.mu.Unlock()
	for _, m := range p.msgs {
		// Frame header and mask; a compressed message under 126 bytes when
		// the input is, otherwise under 64 KiB.
		hdr := int64(6)
		if len(m) >= 126 {
			hdr = 8
		}
		got -= hdr * int64(b.N)
	}
	b.ReportMetric(float64(got)/float64(int64(p.size)*int64(b.N)), "ratio")
}

func BenchmarkCompressors(b *testing.B) {
	type flateCase struct {
		name string
		new  func(io.Writer) flushWriter
	}
	flates := []flateCase{
		{"klauspost-1", func(w io.Writer) flushWriter { f, _ := kflate.NewWriter(w, 1); return f }},
		{"klauspost-5", func(w io.Writer) flushWriter { f, _ := kflate.NewWriter(w, 5); return f }},
		{"klauspost-window1024", func(w io.Writer) flushWriter { f, _ := kflate.NewWriterWindow(w, 1024); return f }},
		{"stdlib-BestSpeed", func(w io.Writer) flushWriter { f, _ := stdflate.NewWriter(w, stdflate.BestSpeed); return f }},
		{"stdlib-Default", func(w io.Writer) flushWriter {
			f, _ := stdflate.NewWriter(w, stdflate.DefaultCompression)
			return f
		}},
	}
	for _, p := range payloads() {
		for _, level := range []int{1, 6} {
			b.Run(fmt.Sprintf("%s/duplex-%d", p.name, level), func(b *testing.B) { benchDuplex(b, p, level) })
		}
		for _, fc := range flates {
			b.Run(p.name+"/"+fc.name, func(b *testing.B) {
				cw := &countWriter{}
				benchFlate(b, p, fc.new(cw), cw)
			})
		}
	}
}

// ---------------------------------------------------------------------------
// Memory per writer.

// TestWriterMemory logs the heap each flate writer holds once it has
// compressed a message. Duplex's encoder lives in an internal package; its
// cost per connection is measured by BenchmarkMemoryPerConn in
// ../websocket (about 72 KiB per level-1 encoder with a 15-bit window).
func TestWriterMemory(t *testing.T) {
	const n = 50
	msg := tickers(1)[0]
	cases := []struct {
		name string
		new  func(io.Writer) flushWriter
	}{
		{"compress/flate level 1", func(w io.Writer) flushWriter { f, _ := stdflate.NewWriter(w, 1); return f }},
		{"compress/flate level 6", func(w io.Writer) flushWriter { f, _ := stdflate.NewWriter(w, 6); return f }},
		{"klauspost NewWriter level 1", func(w io.Writer) flushWriter { f, _ := kflate.NewWriter(w, 1); return f }},
		{"klauspost NewWriter level 5", func(w io.Writer) flushWriter { f, _ := kflate.NewWriter(w, 5); return f }},
		{"klauspost NewWriterWindow 1024", func(w io.Writer) flushWriter { f, _ := kflate.NewWriterWindow(w, 1024); return f }},
		{"klauspost NewWriterWindow 32768", func(w io.Writer) flushWriter { f, _ := kflate.NewWriterWindow(w, 32768); return f }},
	}
	for _, c := range cases {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ws := make([]flushWriter, n)
		for i := range ws {
			ws[i] = c.new(io.Discard)
			ws[i].Write(msg)
			ws[i].Flush()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(after.HeapAlloc-before.HeapAlloc) / n
		t.Logf("%-32s %8.1f KiB per writer", c.name, per/1024)
		runtime.KeepAlive(ws)
	}
}
