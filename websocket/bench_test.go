package websocket_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/duplex-ws/duplex/websocket"
)

// In-memory transports for benchmarks and allocation tests. Neither
// allocates nor blocks, so what is measured is the Conn alone.

// benchSink is a transport that copies every write into a scratch buffer,
// as a pipe or a socket would, and drops it.
type benchSink struct {
	n       int64
	scratch [16 << 10]byte
}

func (s *benchSink) Read([]byte) (int, error) { return 0, io.EOF }
func (s *benchSink) Write(p []byte) (int, error) {
	for b := p; len(b) > 0; {
		b = b[copy(s.scratch[:], b):]
	}
	s.n += int64(len(p))
	return len(p), nil
}
func (s *benchSink) Close() error { return nil }

// benchLoop is a transport whose reads replay the same bytes (whole frames)
// forever, and whose writes are dropped.
type benchLoop struct {
	data []byte
	pos  int
}

func (l *benchLoop) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.pos:])
	l.pos += n
	if l.pos == len(l.data) {
		l.pos = 0
	}
	return n, nil
}
func (l *benchLoop) Write(p []byte) (int, error) { return len(p), nil }
func (l *benchLoop) Close() error                { return nil }

// benchPayload returns n bytes of valid UTF-8 (so text messages pass the
// check) that are not all alike.
func benchPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

// benchReadConn returns a Conn of the given role that reads, forever, a
// message of type typ with size bytes sent by the peer in one frame (masked
// when the Conn is the server, as a client's frames are).
func benchReadConn(role websocket.Role, typ websocket.MessageType, size int) *websocket.Conn {
	frame := ctFrame(true, byte(typ), benchPayload(size), role == websocket.RoleServer)
	// Several frames per loop, so the read buffer sees frames at varied offsets.
	data := bytes.Repeat(frame, max(1, 16384/len(frame)))
	return websocket.NewConn(&benchLoop{data: data}, nil, role, "", nil)
}

var (
	benchSizes = []int{32, 2300, 64 << 10}
	benchRoles = []websocket.Role{websocket.RoleServer, websocket.RoleClient}
)

func benchName(role websocket.Role, api string, size int) string {
	return fmt.Sprintf("%s/%s/%d", ctRoleName(role), api, size)
}

// BenchmarkWrite measures sending one binary message per operation, whole
// (Write) and streamed (Writer, Write, Close), to an in-memory sink.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	for _, role := range benchRoles {
		for _, size := range benchSizes {
			p := benchPayload(size)
			b.Run(benchName(role, "whole", size), func(b *testing.B) {
				c := websocket.NewConn(&benchSink{}, nil, role, "", nil)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if err := c.Write(ctx, websocket.MessageBinary, p); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(benchName(role, "stream", size), func(b *testing.B) {
				c := websocket.NewConn(&benchSink{}, nil, role, "", nil)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					w, err := c.Writer(ctx, websocket.MessageBinary)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := w.Write(p); err != nil {
						b.Fatal(err)
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRead measures receiving one message per operation from an
// in-memory source, whole (Read) and streamed (Reader, then Read into a
// 4 KiB buffer until EOF). Binary messages; text adds the UTF-8 check
// (see the text variants).
func BenchmarkRead(b *testing.B) {
	ctx := context.Background()
	for _, role := range benchRoles {
		for _, size := range benchSizes {
			b.Run(benchName(role, "whole", size), func(b *testing.B) {
				c := benchReadConn(role, websocket.MessageBinary, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					_, p, err := c.Read(ctx)
					if err != nil || len(p) != size {
						b.Fatalf("Read: %d bytes, %v", len(p), err)
					}
				}
			})
			b.Run(benchName(role, "whole-text", size), func(b *testing.B) {
				c := benchReadConn(role, websocket.MessageText, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					_, p, err := c.Read(ctx)
					if err != nil || len(p) != size {
						b.Fatalf("Read: %d bytes, %v", len(p), err)
					}
				}
			})
			b.Run(benchName(role, "stream", size), func(b *testing.B) {
				c := benchReadConn(role, websocket.MessageBinary, size)
				buf := make([]byte, 4096)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					_, r, err := c.Reader(ctx)
					if err != nil {
						b.Fatal(err)
					}
					total := 0
					for {
						n, err := r.Read(buf)
						total += n
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					if total != size {
						b.Fatalf("read %d bytes, want %d", total, size)
					}
				}
			})
		}
	}
}

// BenchmarkPipe measures a whole message end to end: one Conn writes it
// over net.Pipe (synchronous, in memory) and the other reads it.
func BenchmarkPipe(b *testing.B) {
	ctx := context.Background()
	for _, sender := range benchRoles {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s-sends/%d", ctRoleName(sender), size), func(b *testing.B) {
				srv, cli := ctPipePair(b, nil, nil)
				w, r := srv, cli
				if sender == websocket.RoleClient {
					w, r = cli, srv
				}
				p := benchPayload(size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				errc := make(chan error, 1)
				go func() {
					for i := 0; i < b.N; i++ {
						if err := w.Write(ctx, websocket.MessageBinary, p); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
				for i := 0; i < b.N; i++ {
					_, m, err := r.Read(ctx)
					if err != nil || len(m) != size {
						b.Fatalf("Read: %d bytes, %v", len(m), err)
					}
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// benchEchoSizes are the message sizes of the echo benchmarks: the small
// and 1 KiB messages and the 64 KiB one of the side-by-side scenarios.
var benchEchoSizes = []int{32, 1024, 64 << 10}

// BenchmarkEcho measures what an echo server's loop costs in the Conn
// alone: per operation, a whole-message Read of a masked client frame from
// an in-memory source and a Write of it back to an in-memory sink.
func BenchmarkEcho(b *testing.B) {
	ctx := context.Background()
	for _, size := range benchEchoSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			frame := ctFrame(true, byte(websocket.MessageBinary), benchPayload(size), true)
			loop := &benchLoop{data: bytes.Repeat(frame, max(1, 16384/len(frame)))}
			c := websocket.NewConn(loop, nil, websocket.RoleServer, "", nil)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				typ, p, err := c.Read(ctx)
				if err != nil || len(p) != size {
					b.Fatalf("Read: %d bytes, %v", len(p), err)
				}
				if err := c.Write(ctx, typ, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEchoTCP measures one round trip over TCP on 127.0.0.1 per
// operation: a client made by Dial writes a message and reads its echo from
// a server made by Accept (through net/http's hijack) that reads and writes
// it back with whole-message Read and Write, as bench/echoserver does.
// System calls dominate; the server's share of what is left is what the
// side-by-side benchmark compares.
func BenchmarkEchoTCP(b *testing.B) {
	ctx := context.Background()
	for _, size := range benchEchoSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			srv, cli := ctPair(b, nil, nil)
			go func() {
				for {
					typ, p, err := srv.Read(ctx)
					if err != nil {
						return
					}
					if err := srv.Write(ctx, typ, p); err != nil {
						return
					}
				}
			}()
			p := benchPayload(size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := cli.Write(ctx, websocket.MessageBinary, p); err != nil {
					b.Fatal(err)
				}
				_, m, err := cli.Read(ctx)
				if err != nil || len(m) != size {
					b.Fatalf("Read: %d bytes, %v", len(m), err)
				}
			}
		})
	}
}
