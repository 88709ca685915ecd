package deflate

// Benchmarks against compress/flate (BestSpeed and DefaultCompression) on
// the three inputs that matter for permessage-deflate:
//
//   - Tickers: small JSON messages, one Encode (or Write+Flush) per
//     message, with context takeover, so each message may refer to the
//     ones before. B/msg is the compressed size including the 4-byte
//     00 00 ff ff tail, which RFC 7692 has the sender strip.
//   - Text: 64 KiB of English-like text, one message, fresh context.
//   - Random: 64 KiB of random bytes, one message, fresh context.
//
// Each reports ratio (compressed/input) and MB/s of input.
//
//	go test -run '^$' -bench . -benchmem ./websocket/internal/deflate/

import (
	"bytes"
	"compress/flate"
	"fmt"
	"testing"
)

type benchInput struct {
	name     string
	msgs     [][]byte // messages in order
	takeover bool     // keep the context from message to message
}

func benchInputs() []benchInput {
	return []benchInput{
		{"Tickers", tickers(1000, true), true},
		{"Text64K", [][]byte{genText(64<<10, 1)}, false},
		{"Random64K", [][]byte{genRandom(64<<10, 1)}, false},
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, in := range benchInputs() {
		for _, level := range []int{1, 2, 6, 9} {
			b.Run(fmt.Sprintf("%s/deflate-%d", in.name, level), func(b *testing.B) {
				benchEncoder(b, in, 15, level)
			})
		}
		for _, c := range []struct {
			name  string
			level int
		}{{"flate-BestSpeed", flate.BestSpeed}, {"flate-Default", flate.DefaultCompression}} {
			b.Run(in.name+"/"+c.name, func(b *testing.B) {
				benchFlate(b, in, c.level)
			})
		}
	}
}

// BenchmarkWindowBits shows the cost and effect of smaller windows.
func BenchmarkWindowBits(b *testing.B) {
	in := benchInputs()[1]
	for _, wbits := range []int{9, 12, 15} {
		for _, level := range []int{1, 6} {
			b.Run(fmt.Sprintf("Text64K/w%d/deflate-%d", wbits, level), func(b *testing.B) {
				benchEncoder(b, in, wbits, level)
			})
		}
	}
}

func benchEncoder(b *testing.B, in benchInput, wbits, level int) {
	e := NewEncoder(wbits, level)
	dst := make([]byte, 0, 128<<10)
	var inBytes, outBytes int64
	i := 0
	b.SetBytes(int64(len(in.msgs[0])))
	if in.takeover {
		// Warm the context up as a long-lived connection would have.
		for _, m := range in.msgs[:100] {
			dst = e.Encode(dst[:0], m)
		}
		total := 0
		for _, m := range in.msgs {
			total += len(m)
		}
		b.SetBytes(int64(total / len(in.msgs)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		m := in.msgs[i]
		if i++; i == len(in.msgs) {
			i = 0
		}
		if !in.takeover {
			e.Reset()
		}
		dst = e.Encode(dst[:0], m)
		inBytes += int64(len(m))
		outBytes += int64(len(dst))
	}
	report(b, in, inBytes, outBytes)
}

func benchFlate(b *testing.B, in benchInput, level int) {
	var out bytes.Buffer
	out.Grow(128 << 10)
	w, _ := flate.NewWriter(&out, level)
	var inBytes, outBytes int64
	i := 0
	b.SetBytes(int64(len(in.msgs[0])))
	if in.takeover {
		for _, m := range in.msgs[:100] {
			w.Write(m)
			w.Flush()
		}
		total := 0
		for _, m := range in.msgs {
			total += len(m)
		}
		b.SetBytes(int64(total / len(in.msgs)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		m := in.msgs[i]
		if i++; i == len(in.msgs) {
			i = 0
		}
		out.Reset()
		if !in.takeover {
			w.Reset(&out)
		}
		w.Write(m)
		w.Flush()
		inBytes += int64(len(m))
		outBytes += int64(out.Len())
	}
	report(b, in, inBytes, outBytes)
}

func report(b *testing.B, in benchInput, inBytes, outBytes int64) {
	b.ReportMetric(float64(outBytes)/float64(inBytes), "ratio")
	if in.takeover {
		b.ReportMetric(float64(outBytes)/float64(b.N), "B/msg")
	}
}
