package eventloop

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// BenchmarkBroadcast sends each message to 1000 subscribers over loopback,
// read by raw readers that count bytes, from a goroutine of its own:
// mode=write calls Conn.Write on each connection, mode=broadcast calls
// Server.Broadcast once. One op is one message to every subscriber, timed
// until the readers got all of them; ns/delivery is the time per message
// and subscriber, cpu-ns/delivery the process's CPU time (server, readers
// and publisher) per delivery. The publisher stays at most 64 messages
// ahead of the readers. Run with one loop, as on one server core.
func BenchmarkBroadcast(b *testing.B) {
	const subs = 1000
	for _, size := range []int{32, 1024} {
		for _, mode := range []string{"write", "broadcast"} {
			b.Run(fmt.Sprintf("size=%d/mode=%s", size, mode), func(b *testing.B) {
				benchBroadcast(b, subs, size, mode == "broadcast")
			})
		}
	}
}

func benchBroadcast(b *testing.B, subs, size int, broadcast bool) {
	const window = 64 // messages the publisher may be ahead of the readers
	frameLen := size + 2
	if size > 125 {
		frameLen += 2
	}
	opened := make(chan *Conn, subs)
	s := &Server{
		Loops:           1,
		WriteQueueLimit: window * subs * frameLen, // the readers' skew, not a slow peer
		OnOpen:          func(c *Conn) { opened <- c },
		OnMessage:       func(*Conn, websocket.MessageType, []byte) {},
	}
	addr := serveBench(b, s)

	var delivered atomic.Int64 // bytes read by all readers
	var waiting atomic.Bool
	progress := make(chan struct{}, 1)
	conns := make([]*Conn, subs)
	for i := range subs {
		nc := dialRaw(b, addr)
		conns[i] = <-opened
		buf := make([]byte, 64<<10) // here: allocations in the timed part are the server's
		go func() {
			for {
				n, err := nc.Read(buf)
				delivered.Add(int64(n))
				if waiting.Load() {
					select {
					case progress <- struct{}{}:
					default:
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i)
	}
	perMsg := int64(subs * frameLen)
	// wait blocks until the readers are at most ahead messages behind the
	// sent ones.
	stuck := time.NewTimer(time.Hour)
	wait := func(sent int64, ahead int64) {
		for sent*perMsg-delivered.Load() > ahead*perMsg {
			waiting.Store(true)
			if sent*perMsg-delivered.Load() <= ahead*perMsg {
				break
			}
			stuck.Reset(waitFor)
			select {
			case <-progress:
			case <-stuck.C:
				b.Fatalf("readers stuck at %d of %d bytes", delivered.Load(), sent*perMsg)
			}
		}
		waiting.Store(false)
	}

	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if broadcast {
			if err := s.Broadcast(websocket.MessageBinary, msg, conns); err != nil {
				b.Fatal(err)
			}
		} else {
			for _, c := range conns {
				if err := c.Write(websocket.MessageBinary, msg); err != nil {
					b.Fatal(err)
				}
			}
		}
		wait(int64(i+1), window)
	}
	wait(int64(b.N), 0)
	elapsed := time.Since(start)
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	deliveries := float64(b.N) * float64(subs)
	b.ReportMetric(float64(elapsed.Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkEcho runs closed-loop echoes over loopback against a server of
// one loop whose OnMessage writes each message back: conns connections,
// each driven by a goroutine that writes one pre-masked frame and reads its
// echo whole before the next. One op is one echo; cpu-ns/op is the
// process's CPU time (server and clients) per echo. Run it with -cpu 1 to
// see a server core's cost with the clients sharing it. iouring=false
// sets Server.DisableIOURing: benchstat -col /iouring compares the two.
func BenchmarkEcho(b *testing.B) {
	for _, size := range []int{32, 1024, 65536} {
		for _, conns := range []int{1, 64} {
			for _, uring := range []bool{true, false} {
				b.Run(fmt.Sprintf("size=%d/conns=%d/iouring=%v", size, conns, uring), func(b *testing.B) {
					benchEcho(b, size, conns, !uring)
				})
			}
		}
	}
}

func benchEcho(b *testing.B, size, conns int, noURing bool) {
	s := &Server{
		Loops:          1,
		DisableIOURing: noURing,
		OnMessage: func(c *Conn, typ websocket.MessageType, p []byte) {
			c.Write(typ, p)
		},
	}
	addr := serveBench(b, s)
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i)
	}
	out := frame(true, 0x2, msg) // masked, as a client sends it
	echoLen := size + 2
	switch {
	case size > 0xFFFF:
		echoLen += 8
	case size > 125:
		echoLen += 2
	}
	ncs := make([]net.Conn, conns)
	for i := range ncs {
		ncs[i] = dialRaw(b, addr)
	}
	var next atomic.Int64 // echoes handed out
	errs := make(chan error, conns)
	var ru0, ru1 syscall.Rusage
	b.ReportAllocs()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for _, nc := range ncs {
		go func() {
			in := make([]byte, echoLen)
			for next.Add(1) <= int64(b.N) {
				if _, err := nc.Write(out); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(nc, in); err != nil {
					errs <- err
					return
				}
				if in[0] != 0x82 || !bytes.Equal(in[echoLen-size:], msg) {
					errs <- fmt.Errorf("echo % x… is not the message", in[:min(len(in), 8)])
					return
				}
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

// serveBench runs s on a loopback listener until the benchmark ends and
// returns its address.
func serveBench(b *testing.B, s *Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln)
	b.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// dialRaw opens a connection to the server at addr and runs the opening
// handshake; the connection is closed when the benchmark ends.
func dialRaw(b *testing.B, addr string) net.Conn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	nc.Write([]byte(requestFor(addr)))
	nc.SetReadDeadline(time.Now().Add(waitFor))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || br.Buffered() > 0 {
		b.Fatalf("handshake: %v, %v", resp, err)
	}
	nc.SetReadDeadline(time.Time{})
	return nc
}
