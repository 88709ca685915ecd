package eventloop

import (
	"bytes"
	"encoding/binary"
	"errors"
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

// round sends msg from each of peers while the loop is held, so that it
// reads them all in one round (the gate's own round reads only the gate).
func (g *gate) round(peers []*peer, msg []byte) {
	g.t.Helper()
	g.hold()
	for _, p := range peers {
		p.write(frame(true, 0x2, msg))
	}
	g.open()
}

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
// larger than deferMax, one split into fragments), plus a handshake and a
// connection whose peer left, and checks the exact echoes, the new
// connection's answer and the end reported for the one that left: the
// round's reads and the callbacks' writes go through io_uring when the
// kernel has it, one system call at a time otherwise.
func TestBatchedEcho(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableIOURing=%v", disable), func(t *testing.T) {
			e := newEnds()
			s := &Server{DisableIOURing: disable, OnClose: e.onClose}
			addr, g := gatedServer(t, s, func(c *Conn, typ websocket.MessageType, p []byte) { c.Write(typ, p) })
			batched := !disable && batching(t, s)
			sizes := []int{0, 1, 32, 125, 126, 1000, 4096, minSlot + 1, deferMax + 1, 70000, 1 << 20}
			peers := make([]*peer, 16)
			msgs := make([][]byte, len(peers))
			for i := range peers {
				peers[i] = open(t, addr)
			}
			gone := open(t, addr)
			late := dialPeer(t, addr, nil)
			g.hold()
			before := batchCalls(s)
			late.write([]byte(requestFor(addr)))
			gone.c.Close()
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
			late.expectSwitch()
			late.write(frame(true, 0x1, []byte("late")))
			late.expectMessage(0x1, []byte("late"))
			var ce *websocket.CloseError
			if err := e.next(t); !errors.As(err, &ce) || ce.Code != websocket.StatusAbnormalClosure {
				t.Fatalf("OnClose for the peer that left got %v, want a CloseError with 1006", err)
			}
			calls := batchCalls(s) - before
			if !batched && calls != 0 {
				t.Fatalf("%d io_uring batches without io_uring", calls)
			}
			if batched && calls < 2 {
				t.Fatalf("%d io_uring batches for 18 connections read in one round, want at least a read and a write batch", calls)
			}
		})
	}
}

// smallBuffers makes a connection's socket buffers as small as the kernel
// allows, so that a few KiB fill them.
var smallBuffers = &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1) })
}}

func openSmall(t *testing.T, addr string) *peer {
	t.Helper()
	p := dialPeer(t, addr, smallBuffers)
	p.write([]byte(requestFor(addr)))
	p.expectSwitch()
	return p
}

// numbered is frame i of a test's sequence: size bytes starting with i.
func numbered(i, size int) []byte {
	m := payload(size, byte(i))
	binary.BigEndian.PutUint32(m, uint32(i))
	return m
}

// writeNumbered writes frames 0 to n-1 of size bytes to c.
func writeNumbered(t *testing.T, c *Conn, n, size int) {
	for i := range n {
		if err := c.Write(websocket.MessageBinary, numbered(i, size)); err != nil {
			t.Errorf("Write %d: %v", i, err)
			return
		}
	}
}

// expectNumbered reads frames 0 to n-1 of size bytes, in order.
func (p *peer) expectNumbered(n, size int) {
	p.t.Helper()
	for i := range n {
		op, got := p.readFrame()
		if want := numbered(i, size); op != 0x2 || !bytes.Equal(got, want) {
			p.t.Fatalf("frame %d: opcode %#x, %d bytes starting % x; want frame %d", i, op, len(got), trunc(got), i)
		}
	}
}

// TestBatchedWritesOverflowSocket has the callbacks of one batched round
// defer 8 frames (8 KiB) each for two peers that read only later, through
// the smallest socket buffers: the batched flush meets full sockets, keeps
// the rest queued, and EPOLLOUT writes it. Every frame arrives, in order.
func TestBatchedWritesOverflowSocket(t *testing.T) {
	const frames, size = 8, 1000
	s := &Server{OnOpen: func(c *Conn) {
		unix.SetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 1)
	}}
	addr, g := gatedServer(t, s, func(c *Conn, typ websocket.MessageType, p []byte) {
		writeNumbered(t, c, frames, size)
	})
	batched := batching(t, s) // the batched flush when there is io_uring, writev otherwise
	peers := []*peer{openSmall(t, addr), openSmall(t, addr)}
	before := batchCalls(s)
	g.round(peers, []byte("go"))
	for _, p := range peers {
		p.expectNumbered(frames, size)
	}
	if calls := batchCalls(s) - before; batched && calls < 2 {
		t.Fatalf("%d io_uring batches, want a read and a write batch", calls)
	}
}

// TestDeferredWritesPassNoBound has the callbacks of a batched round write
// 60 KB each, in 3000-byte frames, with an 8 KiB WriteQueueLimit, to peers
// that read: the deferred frames are written as soon as the next would
// pass 8 KiB, so no Write fails on the bound the socket never made them
// reach, and every frame arrives in order.
func TestDeferredWritesPassNoBound(t *testing.T) {
	const frames, size = 20, 3000
	e := newEnds()
	s := &Server{WriteQueueLimit: 8 << 10, OnClose: e.onClose}
	addr, g := gatedServer(t, s, func(c *Conn, typ websocket.MessageType, p []byte) {
		if string(p) != "go" {
			c.Write(typ, p)
			return
		}
		writeNumbered(t, c, frames, size)
	})
	batched := batching(t, s)
	peers := []*peer{open(t, addr), open(t, addr)}
	before := batchCalls(s)
	g.round(peers, []byte("go"))
	for _, p := range peers {
		p.expectNumbered(frames, size)
		p.write(frame(true, 0x1, []byte("still open")))
		p.expectMessage(0x1, []byte("still open"))
	}
	if calls := batchCalls(s) - before; batched && calls < 1 {
		t.Fatalf("%d io_uring batches, want the round's reads batched", calls)
	}
}

// TestOverflowKeepsFrameWhole: a 64 KiB Write to a peer that does not
// read, through the smallest buffers and a 4 KiB WriteQueueLimit, is
// partly written and the rest passes the bound: Write returns
// ErrWriteQueueFull, and the peer still gets the whole frame, then the
// close frame with 1008, never a close frame in the middle of a frame.
func TestOverflowKeepsFrameWhole(t *testing.T) {
	msg := numbered(0, 64<<10)
	writeErr := make(chan error, 1)
	e := newEnds()
	addr := startServer(t, &Server{
		Loops:           1,
		WriteQueueLimit: 4 << 10,
		OnOpen: func(c *Conn) {
			unix.SetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 1)
		},
		OnMessage: func(c *Conn, typ websocket.MessageType, p []byte) { writeErr <- c.Write(websocket.MessageBinary, msg) },
		OnClose:   e.onClose,
	})
	p := openSmall(t, addr)
	p.write(frame(true, 0x2, []byte("go")))
	select {
	case err := <-writeErr:
		if !errors.Is(err, ErrWriteQueueFull) {
			t.Fatalf("Write returned %v, want ErrWriteQueueFull", err)
		}
	case <-time.After(waitFor):
		t.Fatal("OnMessage did not run")
	}
	p.expectMessage(0x2, msg)
	p.expectClose(1008, "write queue full")
	if err := e.next(t); !errors.Is(err, ErrWriteQueueFull) {
		t.Fatalf("OnClose got %v, want ErrWriteQueueFull", err)
	}
}
