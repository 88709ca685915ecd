package eventloop

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
	"golang.org/x/sys/unix"
)

// gate holds a one-loop server's loop inside OnMessage, so that a test
// can make several connections readable for the same round.
type gate struct {
	t       *testing.T
	p       *peer
	held    chan struct{}
	release chan struct{}
	once    sync.Once
}

// gatedServer starts s with one loop; its OnMessage holds the loop on the
// message "gate" until the gate opens, and passes other messages to
// onMessage.
func gatedServer(t *testing.T, s *Server, onMessage func(c *Conn, typ websocket.MessageType, p []byte)) (string, *gate) {
	t.Helper()
	g := &gate{t: t, held: make(chan struct{}, 1), release: make(chan struct{})}
	s.Loops = 1
	s.OnMessage = func(c *Conn, typ websocket.MessageType, p []byte) {
		if string(p) == "gate" {
			g.held <- struct{}{}
			<-g.release
			return
		}
		onMessage(c, typ, p)
	}
	addr := startServer(t, s)
	t.Cleanup(g.open) // before the server's cleanup: Close waits for the loop
	g.p = open(t, addr)
	return addr, g
}

// hold returns once the loop is held.
func (g *gate) hold() {
	g.t.Helper()
	g.p.write(frame(true, 0x1, []byte("gate")))
	select {
	case <-g.held:
	case <-time.After(waitFor):
		g.t.Fatal("the loop did not get the gate message")
	}
}

// open lets the loop go on.
func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// batching reports whether s's loops batch with io_uring. The build with
// eventloop_safe never does; otherwise the kernel must allow io_uring: the
// test fails without it under CI, and skips elsewhere.
func batching(t *testing.T, s *Server) bool {
	t.Helper()
	if !uringBuilt {
		return false
	}
	if loopsOf(s)[0].ring != nil {
		return true
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("io_uring is not available (io_uring_setup failed): the batched path is untested")
	}
	t.Skip("io_uring is not available here")
	return false
}

func loopsOf(s *Server) []*loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.impl.loops
}

func batchCalls(s *Server) uint64 {
	var n uint64
	for _, l := range loopsOf(s) {
		n += l.calls.Load()
	}
	return n
}

// TestBatchedEcho makes 16 connections readable in one round, with a
// message each of a different size (one larger than a read slot, one
// larger than deferMax, one split into fragments), and checks the exact
// echoes: the round's reads and the callbacks' writes go through io_uring
// when the kernel has it, one system call at a time otherwise.
func TestBatchedEcho(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableIOURing=%v", disable), func(t *testing.T) {
			s := &Server{DisableIOURing: disable}
			addr, g := gatedServer(t, s, func(c *Conn, typ websocket.MessageType, p []byte) { c.Write(typ, p) })
			batched := !disable && batching(t, s)
			sizes := []int{0, 1, 32, 125, 126, 1000, 4096, minSlot + 1, deferMax + 1, 70000, 1 << 20}
			peers := make([]*peer, 16)
			msgs := make([][]byte, len(peers))
			for i := range peers {
				peers[i] = open(t, addr)
			}
			g.hold()
			before := batchCalls(s)
			for i, p := range peers {
				m := payload(sizes[i%len(sizes)], byte(i))
				msgs[i] = m
				b := frame(true, 0x2, m)
				if i == 5 { // in three fragments
					b = frame(false, 0x2, m[:40])
					b = append(b, frame(false, 0x0, m[40:80])...)
					b = append(b, frame(true, 0x0, m[80:])...)
				}
				if len(m) > 100000 {
					go p.c.Write(b) // more than the socket holds: the write ends once the loop reads
					continue
				}
				// On loopback the bytes are in the server's socket once
				// Write returns, and wait there while the loop is held.
				p.write(b)
			}
			g.open()
			for i, p := range peers {
				p.expectMessage(0x2, msgs[i])
			}
			calls := batchCalls(s) - before
			if !batched && calls != 0 {
				t.Fatalf("%d io_uring batches without io_uring", calls)
			}
			if batched && calls < 2 {
				t.Fatalf("%d io_uring batches for 16 connections read in one round, want at least a read and a write batch", calls)
			}
		})
	}
}

// TestBatchedWritesOverflowSocket has callbacks of one batched round write
// 1.5 MiB each to two peers that read only later, through small socket
// buffers: the batched flush meets full sockets, keeps the rest queued, and
// EPOLLOUT writes it. Every frame arrives, in order.
func TestBatchedWritesOverflowSocket(t *testing.T) {
	const frames, size = 200, 8000
	s := &Server{OnOpen: func(c *Conn) {
		unix.SetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	}}
	addr, g := gatedServer(t, s, func(c *Conn, typ websocket.MessageType, p []byte) {
		for i := range frames {
			m := payload(size, byte(i))
			binary.BigEndian.PutUint32(m, uint32(i))
			if err := c.Write(websocket.MessageBinary, m); err != nil {
				t.Errorf("Write %d: %v", i, err)
				return
			}
		}
	})
	batching(t, s) // the batched flush when there is io_uring, writev otherwise
	small := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
	}}
	peers := make([]*peer, 2)
	for i := range peers {
		peers[i] = dialPeer(t, addr, small)
		peers[i].write([]byte(requestFor(addr)))
		peers[i].expectSwitch()
	}
	g.hold()
	for _, p := range peers {
		p.write(frame(true, 0x2, []byte("go")))
	}
	g.open()
	for _, p := range peers {
		for i := range frames {
			want := payload(size, byte(i))
			binary.BigEndian.PutUint32(want, uint32(i))
			op, got := p.readFrame()
			if op != 0x2 || !bytes.Equal(got, want) {
				t.Fatalf("frame %d: opcode %#x, %d bytes starting % x; want frame %d", i, op, len(got), trunc(got), i)
			}
		}
	}
}
