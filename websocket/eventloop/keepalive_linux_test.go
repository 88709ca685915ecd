package eventloop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
	"golang.org/x/sys/unix"
)

// TestKeepalivePingsAnsweredPeer checks that an open connection gets an
// empty ping PingInterval (give or take a walk of the loop) after it
// opened, and again after each pong, and that a peer that answers stays
// connected and served.
func TestKeepalivePingsAnsweredPeer(t *testing.T) {
	const interval = 150 * time.Millisecond
	e := newEnds()
	s := &Server{OnClose: e.onClose, Options: &websocket.AcceptOptions{Options: websocket.Options{
		PingInterval: interval, PingTimeout: 5 * time.Second}}}
	addr := startServer(t, s)
	// Each bound is timed from before what starts the server's clock (the
	// request, the pong): the server's clock starts later, never sooner.
	last := time.Now()
	p := open(t, addr)
	for i := range 3 {
		p.expectMessage(0x9, []byte{})
		if got := time.Since(last); got < interval || got > interval+keepaliveSlack {
			t.Fatalf("ping %d came %v after the open or the last pong; PingInterval is %v", i+1, got, interval)
		}
		last = time.Now()
		p.write(frame(true, 0xA, nil))
	}
	p.write(frame(true, 0x1, []byte("still here")))
	p.expectMessage(0x1, []byte("still here"))
	select {
	case c := <-e.ch:
		t.Fatalf("OnClose called for a peer that answered every ping: %v", e.errs[c])
	default:
	}
}

// keepaliveSlack bounds how late a ping or a drop may come in these tests:
// a walk of the loop (50 ms here) plus the scheduling of a busy, shared
// machine under the race detector.
const keepaliveSlack = 2 * time.Second

// TestKeepaliveDropsSilentPeer checks that a peer that never answers gets
// one ping, then, PingTimeout later, the end of TCP without a close frame,
// and that OnClose says websocket.ErrKeepaliveTimeout; a peer on the same
// server that answers its pings is not touched.
func TestKeepaliveDropsSilentPeer(t *testing.T) {
	const interval, timeout = 100 * time.Millisecond, 500 * time.Millisecond
	e := newEnds()
	s := &Server{OnClose: e.onClose, Options: &websocket.AcceptOptions{Options: websocket.Options{
		PingInterval: interval, PingTimeout: timeout}}}
	addr := startServer(t, s)
	opened := time.Now() // before the request: the server's clock starts later
	silent := open(t, addr)
	alive := open(t, addr)
	stop := make(chan struct{})
	answered := make(chan error, 1)
	go func() { // alive answers every ping until told to stop
		for {
			select {
			case <-stop:
				answered <- nil
				return
			default:
			}
			alive.c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			op, payload, err := readServerFrame(alive)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue // between frames: the header is read whole or not at all here
			}
			if err != nil {
				answered <- err
				return
			}
			if op != 0x9 || len(payload) != 0 {
				answered <- fmt.Errorf("the answering peer got opcode %#x payload %q, want an empty ping", op, payload)
				return
			}
			if _, err := alive.c.Write(frame(true, 0xA, nil)); err != nil {
				answered <- err
				return
			}
		}
	}()

	silent.expectMessage(0x9, []byte{})
	silent.expectEOF()
	if got := time.Since(opened); got < interval+timeout || got > interval+timeout+keepaliveSlack {
		t.Fatalf("dropped %v after the open; want PingInterval + PingTimeout, %v", got, interval+timeout)
	}
	if err := e.next(t); !errors.Is(err, websocket.ErrKeepaliveTimeout) {
		t.Fatalf("OnClose got %v, want websocket.ErrKeepaliveTimeout", err)
	}

	// The answering peer is still served, and was never reported.
	close(stop)
	if err := <-answered; err != nil {
		t.Fatalf("the answering peer: %v", err)
	}
	alive.write(frame(true, 0x2, []byte{1, 2, 3}))
	for { // a ping may have come in the meantime: answer it
		op, payload := alive.readFrame()
		if op == 0x9 {
			alive.write(frame(true, 0xA, nil))
			continue
		}
		if op != 0x2 || string(payload) != "\x01\x02\x03" {
			t.Fatalf("got opcode %#x payload % x, want the echo 01 02 03", op, payload)
		}
		break
	}
	select {
	case c := <-e.ch:
		t.Fatalf("OnClose called for the answering peer: %v", e.errs[c])
	default:
	}
}

// TestKeepaliveOffByDefault checks that without PingInterval no loop
// keeps a list of open connections to ping, and an idle connection gets
// nothing.
func TestKeepaliveOffByDefault(t *testing.T) {
	s := &Server{}
	addr, g := gatedServer(t, s, func(c *Conn, typ websocket.MessageType, p []byte) { c.Write(typ, p) })
	p := open(t, addr)
	p.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if b, err := p.br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("an idle connection without keepalive got byte %#x, error %v; want nothing", b, err)
	}
	g.hold()
	for _, l := range loopsOf(s) {
		if k := l.srv.keep.interval; k != 0 || len(l.alive) != 0 {
			t.Fatalf("keepalive interval %v with %d connections listed, want off and none", k, len(l.alive))
		}
	}
}

// readServerFrame is peer.readFrame for another goroutine: errors are
// returned, not fatal.
func readServerFrame(p *peer) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		return 0, nil, err
	}
	if n := h[1] & 0x7F; n > 125 {
		return 0, nil, errors.New("a frame longer than a control frame")
	}
	payload = make([]byte, h[1]&0x7F)
	if _, err := io.ReadFull(p.br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0F, payload, nil
}

// TestKeepaliveCloseWhilePingOut checks that a connection closed by the
// server while its ping waits for a pong ends as a close, not as a
// keepalive timeout: the peer gets the close frame, answers it, and
// OnClose says websocket.ErrClosed, even though the pong never came and
// PingTimeout passed during the closing handshake.
func TestKeepaliveCloseWhilePingOut(t *testing.T) {
	const interval, timeout = 100 * time.Millisecond, 200 * time.Millisecond
	e := newEnds()
	opened := make(chan *Conn, 1)
	s := &Server{OnOpen: func(c *Conn) { opened <- c }, OnClose: e.onClose, Options: &websocket.AcceptOptions{Options: websocket.Options{
		PingInterval: interval, PingTimeout: timeout, CloseTimeout: 5 * time.Second}}}
	addr := startServer(t, s)
	p := open(t, addr)
	c := <-opened
	p.expectMessage(0x9, []byte{}) // not answered
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	p.expectClose(1000, "bye")
	time.Sleep(2 * timeout) // past the pong's due time, during the closing handshake
	p.write(frame(true, 0x8, []byte{0x03, 0xE8}))
	p.expectEOF()
	if err := e.next(t); !errors.Is(err, websocket.ErrClosed) || errors.Is(err, websocket.ErrKeepaliveTimeout) {
		t.Fatalf("OnClose got %v, want websocket.ErrClosed (this side closed), not a keepalive timeout", err)
	}
}

// TestKeepaliveShutdownWhilePingOut checks that Shutdown during an
// unanswered ping runs the closing handshake to its end: the peer gets
// 1001, the pong's due time passing meanwhile does not drop the
// connection, the peer's answer closes it, OnClose says this side closed
// (not a keepalive timeout), and Shutdown returns nil.
func TestKeepaliveShutdownWhilePingOut(t *testing.T) {
	const interval, timeout = 100 * time.Millisecond, 200 * time.Millisecond
	e := newEnds()
	s := &Server{OnClose: e.onClose, Options: &websocket.AcceptOptions{Options: websocket.Options{
		PingInterval: interval, PingTimeout: timeout, CloseTimeout: 10 * time.Second}}}
	addr := startServer(t, s)
	p := open(t, addr)
	p.expectMessage(0x9, []byte{}) // not answered
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	p.expectClose(1001, "server shutting down")
	time.Sleep(3 * timeout) // past the pong's due time, during the closing handshake
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v before the peer answered its close", err)
	default:
	}
	p.write(frame(true, 0x8, []byte{0x03, 0xE9}))
	p.expectEOF()
	if err := e.next(t); !errors.Is(err, websocket.ErrClosed) || errors.Is(err, websocket.ErrKeepaliveTimeout) {
		t.Fatalf("OnClose got %v, want websocket.ErrClosed (this side closed), not a keepalive timeout", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown returned %v, want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Shutdown did not return after the last connection closed")
	}
}

// TestKeepalivePingBehindFullQueue checks that keepalive's ping joins a
// write queue filled to one byte short of WriteQueueLimit, where its two
// bytes pass the bound, instead of failing the connection with 1008 as a
// message would: the peer, once it reads, gets every queued message in
// order and then the ping, and after its pong the connection is still
// open and served, never reported to OnClose.
func TestKeepalivePingBehindFullQueue(t *testing.T) {
	const (
		interval = 2 * time.Second // room to fill the queue before the ping
		limit    = 64 << 10
		size     = 100 // payload of each filling message
	)
	e := newEnds()
	opened := make(chan *Conn, 1)
	s := &Server{
		WriteQueueLimit: limit,
		Options:         &websocket.AcceptOptions{Options: websocket.Options{PingInterval: interval, PingTimeout: 10 * time.Second}},
		OnOpen: func(c *Conn) {
			unix.SetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
			opened <- c
		},
		OnMessage: func(c *Conn, typ websocket.MessageType, p []byte) { c.Write(typ, p) },
		OnClose:   e.onClose,
	}
	addr := startServer(t, s)
	p := openSmall(t, addr) // and never reading until the ping is queued
	c := <-opened
	queued := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.out == nil {
			return 0
		}
		return c.out.size
	}
	sent := 0
	write := func(n int) {
		t.Helper()
		if err := c.Write(websocket.MessageBinary, numbered(sent, n)); err != nil {
			t.Fatalf("Write %d: %v", sent, err)
		}
		sent++
	}
	// Fill until the socket takes no more and the queue stands still
	// (the kernel takes a little more for a while as its buffers settle),
	// then to exactly one byte short of the bound.
	begin := time.Now()
	for still, last := 0, -1; still < 20; time.Sleep(10 * time.Millisecond) {
		for limit-queued() > 2*(size+2) {
			write(size)
			if sent > 1<<18 {
				t.Fatalf("%d messages written and %d bytes queued: the socket never filled", sent, queued())
			}
		}
		if q := queued(); q == last {
			still++
		} else {
			still, last = 0, q
		}
	}
	for limit-queued() > 120 {
		write(size)
	}
	last := limit - 1 - queued() - 2 // a frame of 2 + last bytes leaves the queue at limit - 1
	write(last)
	if q := queued(); q != limit-1 {
		t.Fatalf("the queue holds %d bytes after filling, want %d", q, limit-1)
	}
	if d := time.Since(begin); d > interval/2 {
		t.Fatalf("filling took %v: too close to the ping (PingInterval %v)", d, interval)
	}

	deadline := time.Now().Add(interval + keepaliveSlack)
	for {
		c.mu.Lock()
		out, state, flags, q := c.flags&flagPingOut != 0, c.state, c.flags, 0
		if c.out != nil {
			q = c.out.size
		}
		c.mu.Unlock()
		if out {
			if state != connOpen || flags&flagOverflow != 0 || q != limit+1 {
				t.Fatalf("after the ping: state %d, overflow %v, %d bytes queued; want open, no overflow, %d (the bound passed by one)",
					state, flags&flagOverflow != 0, q, limit+1)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ping %v after the open", interval+keepaliveSlack)
		}
		time.Sleep(10 * time.Millisecond)
	}

	for i := range sent {
		n := size
		if i == sent-1 {
			n = last
		}
		op, got := p.readFrame()
		if want := numbered(i, n); op != 0x2 || !bytes.Equal(got, want) {
			t.Fatalf("message %d of %d: opcode %#x, %d bytes starting % x; want message %d", i, sent, op, len(got), trunc(got), i)
		}
	}
	p.expectMessage(0x9, []byte{})
	p.write(frame(true, 0xA, nil))
	p.write(frame(true, 0x1, []byte("after the ping")))
	p.expectMessage(0x1, []byte("after the ping"))
	select {
	case c := <-e.ch:
		t.Fatalf("OnClose called: %v", e.errs[c])
	default:
	}
}
