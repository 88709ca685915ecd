package websocket

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// Benchmarks of compressed messages. Payloads: "json", small similar
// records (the ticker and chat case); "text", prose-like text; "random",
// incompressible bytes.

func compressPayload(kind string, n int) []byte {
	var b bytes.Buffer
	switch kind {
	case "json":
		for i := n * 7; b.Len() < n; i++ { // records differ with n
			fmt.Fprintf(&b, `{"symbol":"ACME","price":%d.%02d,"seq":%d}`, 100+i%13, i%100, i)
		}
	case "text":
		words := []string{"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "runs", "far", "away", "from", "home", "while", "singing"}
		r := rand.New(rand.NewPCG(uint64(n), 1))
		for b.Len() < n {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		}
	default:
		r := rand.New(rand.NewPCG(uint64(n), 2))
		for b.Len() < n {
			b.WriteByte(byte(r.Uint32()))
		}
	}
	return b.Bytes()[:n]
}

type countSink struct{ n int64 }

func (s *countSink) Read([]byte) (int, error)    { return 0, io.EOF }
func (s *countSink) Write(p []byte) (int, error) { s.n += int64(len(p)); return len(p), nil }
func (s *countSink) Close() error                { return nil }

// BenchmarkCompressedWrite measures Write with permessage-deflate, with and
// without context takeover, and reports the wire bytes per payload byte.
func BenchmarkCompressedWrite(b *testing.B) {
	for _, takeover := range []bool{true, false} {
		for _, kind := range []string{"json", "text", "random"} {
			for _, size := range []int{64, 2300, 64 << 10} {
				name := fmt.Sprintf("takeover=%v/%s/%d", takeover, kind, size)
				b.Run(name, func(b *testing.B) {
					sink := &countSink{}
					c := NewConn(sink, nil, RoleServer, "", nil)
					c.setupDeflate(deflateParams{serverNoContextTakeover: !takeover, clientNoContextTakeover: !takeover,
						serverMaxWindowBits: 15, clientMaxWindowBits: 15}, &CompressionOptions{Enabled: true, Threshold: -1})
					// Distinct messages, more than the window holds, so
					// takeover cannot just refer to an earlier copy.
					msgs := make([][]byte, max(16, 2*32768/size+1))
					for i := range msgs {
						msgs[i] = compressPayload(kind, size+i)[:size]
					}
					typ := MessageText
					if kind == "random" {
						typ = MessageBinary
					}
					ctx := context.Background()
					b.SetBytes(int64(size))
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						c.Write(ctx, typ, msgs[i%len(msgs)])
					}
					b.ReportMetric(float64(sink.n)/float64(int64(b.N)*int64(size)), "wire/payload")
				})
			}
		}
	}
}

// loopRWC replays data forever on reads and drops writes.
type loopRWC struct {
	data []byte
	pos  int
}

func (l *loopRWC) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.pos:])
	l.pos += n
	if l.pos == len(l.data) {
		l.pos = 0
	}
	return n, nil
}
func (l *loopRWC) Write(p []byte) (int, error) { return len(p), nil }
func (l *loopRWC) Close() error                { return nil }

// BenchmarkCompressedRead measures Read of a stream of distinct compressed
// messages (the same messages as BenchmarkCompressedWrite), compressed by
// the peer with one persistent context (takeover=true) or each on its own
// (takeover=false), and reports the wire bytes per payload byte. The
// recorded stream is replayed in a loop: with takeover, each message's
// back-references reach only the messages before it in the stream, which
// precede it again on every pass, so the replay stays valid.
func BenchmarkCompressedRead(b *testing.B) {
	opts := &CompressionOptions{Enabled: true, Threshold: -1}
	for _, takeover := range []bool{true, false} {
		params := deflateParams{serverNoContextTakeover: !takeover, clientNoContextTakeover: !takeover,
			serverMaxWindowBits: 15, clientMaxWindowBits: 15}
		for _, kind := range []string{"json", "text", "random"} {
			for _, size := range []int{64, 2300, 64 << 10} {
				b.Run(fmt.Sprintf("takeover=%v/%s/%d", takeover, kind, size), func(b *testing.B) {
					rec := &recordRWC{}
					w := NewConn(rec, nil, RoleClient, "", nil)
					w.setupDeflate(params, opts)
					typ := MessageText
					if kind == "random" {
						typ = MessageBinary
					}
					msgs := make([][]byte, max(16, 2*32768/size+1))
					for i := range msgs {
						msgs[i] = compressPayload(kind, size+i)[:size]
						if err := w.Write(context.Background(), typ, msgs[i]); err != nil {
							b.Fatal(err)
						}
					}
					c := NewConn(&loopRWC{data: rec.buf.Bytes()}, nil, RoleServer, "", nil)
					c.setupDeflate(params, opts)
					// One pass first: every message must come back intact.
					ctx := context.Background()
					for i := range msgs {
						if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msgs[i]) {
							b.Fatalf("message %d: %d bytes, %v", i, len(p), err)
						}
					}
					b.SetBytes(int64(size))
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if _, p, err := c.Read(ctx); err != nil || len(p) != size {
							b.Fatal(len(p), err)
						}
					}
					b.ReportMetric(float64(rec.buf.Len())/float64(len(msgs)*size), "wire/payload")
				})
			}
		}
	}
}

type recordRWC struct{ buf bytes.Buffer }

func (r *recordRWC) Read([]byte) (int, error)    { return 0, io.EOF }
func (r *recordRWC) Write(p []byte) (int, error) { return r.buf.Write(p) }
func (r *recordRWC) Close() error                { return nil }
