// Package compress measures the choice of compressor for permessage-deflate:
// Duplex's own encoder (through the public API: a server Conn from Accept
// over an in-memory transport) against compress/flate and
// github.com/klauspost/compress/flate. It is a
// separate module so that the main module does not depend on klauspost.
//
//	go test -run '^$' -bench . -benchmem -count 3 ./compress/
//	go test -v -run 'TestWriterMemory|TestSmallMessageBlocks' ./compress/
package compress

import (
	"bufio"
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
	"testing"
	"time"

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

// payloadSink is the transport of a server Conn made by Accept over an
// in-memory connection: it drops what the Conn writes, counting the payload
// bytes of its frames (server frames are not masked), so that Duplex is
// measured on compressed payload bytes, like the flate writers. It counts
// only once on is set, after the handshake's 101 response.
type payloadSink struct {
	on      bool
	hdr     []byte // the frame header read so far
	left    int64  // payload bytes left in the current frame
	payload int64
}

func (s *payloadSink) Write(p []byte) (int, error) {
	if !s.on {
		return len(p), nil
	}
	n := len(p)
	for len(p) > 0 {
		if s.left > 0 {
			k := int64(len(p))
			if k > s.left {
				k = s.left
			}
			s.left -= k
			s.payload += k
			p = p[k:]
			continue
		}
		s.hdr = append(s.hdr, p[0])
		p = p[1:]
		if len(s.hdr) < 2 {
			continue
		}
		switch l := int64(s.hdr[1] & 0x7f); {
		case l < 126:
			s.left, s.hdr = l, s.hdr[:0]
		case l == 126 && len(s.hdr) == 4:
			s.left, s.hdr = int64(s.hdr[2])<<8|int64(s.hdr[3]), s.hdr[:0]
		case l == 127 && len(s.hdr) == 10:
			var v int64
			for _, b := range s.hdr[2:] {
				v = v<<8 | int64(b)
			}
			s.left, s.hdr = v, s.hdr[:0]
		}
	}
	return n, nil
}

func (s *payloadSink) Read([]byte) (int, error)         { return 0, io.EOF }
func (s *payloadSink) Close() error                     { return nil }
func (s *payloadSink) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *payloadSink) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *payloadSink) SetDeadline(time.Time) error      { return nil }
func (s *payloadSink) SetReadDeadline(time.Time) error  { return nil }
func (s *payloadSink) SetWriteDeadline(time.Time) error { return nil }

// hijackRW is a ResponseWriter whose connection is the sink.
type hijackRW struct {
	h    http.Header
	conn net.Conn
}

func (w *hijackRW) Header() http.Header         { return w.h }
func (w *hijackRW) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackRW) WriteHeader(int)             {}
func (w *hijackRW) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

// acceptInMemory returns a server Conn from websocket.Accept, with
// permessage-deflate at level (context takeover, 15-bit windows), writing
// to sink.
func acceptInMemory(tb testing.TB, sink *payloadSink, level int) *websocket.Conn {
	r := httptest.NewRequest(http.MethodGet, "http://example.test/", nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	r.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate")
	w := &hijackRW{h: http.Header{}, conn: sink}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Options: websocket.Options{
		Compression: websocket.CompressionOptions{Enabled: true, Threshold: -1, Level: level},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	if got := w.h.Get("Sec-WebSocket-Extensions"); got != "permessage-deflate" {
		tb.Fatalf("extension answer %q", got)
	}
	return c
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
	sink := &payloadSink{}
	c := acceptInMemory(b, sink, level)
	defer c.CloseNow()
	sink.on = true
	ctx := context.Background()
	b.SetBytes(int64(p.size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, m := range p.msgs {
			if err := c.Write(ctx, websocket.MessageBinary, m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(sink.payload)/float64(int64(p.size)*int64(b.N)), "ratio")
}

func BenchmarkCompressors(b *testing.B) {
	type flateCase struct {
		name string
		new  func(io.Writer) flushWriter
	}
	flates := []flateCase{
		{"klauspost-1", func(w io.Writer) flushWriter { f, _ := kflate.NewWriter(w, 1); return f }},
		{"klauspost-5", func(w io.Writer) flushWriter { f, _ := kflate.NewWriter(w, 5); return f }},
		{"klauspost-9", func(w io.Writer) flushWriter { f, _ := kflate.NewWriter(w, 9); return f }},
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
		{"klauspost NewWriter level 9", func(w io.Writer) flushWriter { f, _ := kflate.NewWriter(w, 9); return f }},
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

// TestSmallMessageBlocks logs, for each flate writer and level, how many of
// 1000 ticker messages (one persistent writer, a sync flush after each)
// came out as a single stored block (the message verbatim: no compression
// and no use of the context) and the ratio of compressed to input bytes
// (flush tails removed), and checks the stored counts against those the
// documented comparison rests on. The levels with stored blocks are those
// that gain nothing from context takeover on small messages.
func TestSmallMessageBlocks(t *testing.T) {
	msgs := tickers(1000)
	newStd := func(level int) func(io.Writer) flushWriter {
		return func(w io.Writer) flushWriter { f, _ := stdflate.NewWriter(w, level); return f }
	}
	newK := func(level int) func(io.Writer) flushWriter {
		return func(w io.Writer) flushWriter { f, _ := kflate.NewWriter(w, level); return f }
	}
	// want: messages stored verbatim, as measured with v1.18.0 and Go 1.26;
	// a change means the documented comparison needs measuring again.
	cases := []struct {
		name string
		new  func(io.Writer) flushWriter
		want int
	}{
		{"compress/flate level 1", newStd(1), 1000}, {"compress/flate level 2", newStd(2), 0}, {"compress/flate level 6", newStd(6), 0},
		{"klauspost level 1", newK(1), 1000}, {"klauspost level 5", newK(5), 1000}, {"klauspost level 6", newK(6), 1000},
		{"klauspost level 7", newK(7), 0}, {"klauspost level 9", newK(9), 0},
		{"klauspost NewWriterWindow 1024", func(w io.Writer) flushWriter { f, _ := kflate.NewWriterWindow(w, 1024); return f }, 1000},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		w := c.new(&buf)
		stored, in, out := 0, 0, 0
		for _, m := range msgs {
			buf.Reset()
			w.Write(m)
			w.Flush()
			o := buf.Bytes()
			// A stored block: BTYPE 00 in bits 1-2 of the first byte, then
			// LEN and NLEN (little-endian) at the next byte boundary.
			if o[0]&6 == 0 && len(o) >= 5 && int(o[1])|int(o[2])<<8 == len(m) && bytes.Equal(o[5:5+len(m)], m) {
				stored++
			}
			in += len(m)
			out += len(o) - 4
		}
		t.Logf("%-32s %4d of %d messages stored verbatim, ratio %.3f", c.name, stored, len(msgs), float64(out)/float64(in))
		if stored != c.want {
			t.Errorf("%s: %d messages stored verbatim, want %d", c.name, stored, c.want)
		}
	}
}
