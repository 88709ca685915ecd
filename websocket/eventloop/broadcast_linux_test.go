package eventloop

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
	"golang.org/x/sys/unix"
)

// subscribers opens n peers and returns them with their server Conns, in
// the same order. s must send every opened Conn to opened.
func subscribers(t *testing.T, addr string, opened <-chan *Conn, n int, d *net.Dialer) ([]*peer, []*Conn) {
	t.Helper()
	peers := make([]*peer, n)
	conns := make([]*Conn, n)
	for i := range n {
		p := dialPeer(t, addr, d)
		p.write([]byte(requestFor(addr)))
		p.expectSwitch()
		peers[i] = p
		select {
		case conns[i] = <-opened:
		case <-time.After(waitFor):
			t.Fatal("OnOpen was not called")
		}
	}
	return peers, conns
}

// payload is a message of n bytes that differs with seed.
func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + (seed+byte(i))%26
	}
	return b
}

// TestBroadcastSizes broadcasts text and binary messages of every header
// length from another goroutine to subscribers spread over two loops:
// each gets each message once, in order, byte for byte.
func TestBroadcastSizes(t *testing.T) {
	opened := make(chan *Conn, 1)
	s := &Server{Loops: 2, OnOpen: func(c *Conn) { opened <- c }}
	addr := startServer(t, s)
	peers, conns := subscribers(t, addr, opened, 12, nil)

	type msg struct {
		op byte
		p  []byte
	}
	var sent []msg
	for i, n := range []int{0, 1, 125, 126, 65535, 65536, 200_000} {
		for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
			m := msg{op: byte(typ), p: payload(n, byte(i))}
			buf := bytes.Clone(m.p)
			if err := s.Broadcast(typ, buf, conns); err != nil {
				t.Fatalf("Broadcast of %d bytes: %v", n, err)
			}
			clear(buf) // p is not kept
			sent = append(sent, m)
		}
	}
	for _, p := range peers { // the others' queues hold their messages meanwhile
		for _, m := range sent {
			p.expectMessage(m.op, m.p)
		}
	}
}

// TestBroadcastFromCallback: a publisher's OnMessage broadcasts each of
// its messages to every connection, itself included, then answers it
// with a Write: the publisher gets the broadcast before the answer, and
// every subscriber gets every message in order.
func TestBroadcastFromCallback(t *testing.T) {
	opened := make(chan *Conn, 1)
	var mu sync.Mutex
	var subs []*Conn
	var s *Server
	s = &Server{
		Loops: 2,
		OnOpen: func(c *Conn) {
			mu.Lock()
			subs = append(subs, c)
			mu.Unlock()
			opened <- c
		},
		OnMessage: func(c *Conn, typ websocket.MessageType, p []byte) {
			mu.Lock()
			all := subs
			mu.Unlock()
			if err := s.Broadcast(typ, p, all); err != nil {
				t.Errorf("Broadcast: %v", err)
			}
			c.Write(websocket.MessageText, append([]byte("ack "), p...))
		},
	}
	addr := startServer(t, s)
	peers, _ := subscribers(t, addr, opened, 8, nil)
	pub := peers[0]
	const msgs = 50
	var stream []byte
	for i := range msgs {
		stream = append(stream, frame(true, 0x2, fmt.Appendf(nil, "m%d", i))...)
	}
	pub.write(stream) // many messages per read: their broadcasts share writes
	for i := range msgs {
		pub.expectMessage(0x2, fmt.Appendf(nil, "m%d", i))
		pub.expectMessage(0x1, fmt.Appendf(nil, "ack m%d", i))
	}
	for _, p := range peers[1:] {
		for i := range msgs {
			p.expectMessage(0x2, fmt.Appendf(nil, "m%d", i))
		}
	}
}

// TestBroadcastOrderWithWrite interleaves Broadcast and Write from one
// goroutine while other goroutines broadcast too: each connection gets
// the publisher's messages in the order of its calls.
func TestBroadcastOrderWithWrite(t *testing.T) {
	opened := make(chan *Conn, 1)
	s := &Server{Loops: 2, OnOpen: func(c *Conn) { opened <- c }}
	addr := startServer(t, s)
	peers, conns := subscribers(t, addr, opened, 6, nil)
	const msgs, noise = 300, 2
	var wg sync.WaitGroup
	for g := range noise { // other publishers: their messages may go anywhere between
		wg.Go(func() {
			for i := range msgs {
				if err := s.Broadcast(websocket.MessageBinary, fmt.Appendf(nil, "n%d %d", g, i), conns); err != nil {
					t.Errorf("Broadcast: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range msgs {
			var err error
			if i%3 == 0 {
				for _, c := range conns {
					if e := c.Write(websocket.MessageText, fmt.Appendf(nil, "%d", i)); e != nil {
						err = e
					}
				}
			} else {
				err = s.Broadcast(websocket.MessageText, fmt.Appendf(nil, "%d", i), conns)
			}
			if err != nil {
				t.Errorf("message %d: %v", i, err)
				return
			}
		}
	})
	wg.Wait()
	for pi, p := range peers {
		next := 0
		noiseNext := make([]int, noise)
		for next < msgs || noiseNext[0] < msgs || noiseNext[1] < msgs {
			op, b := p.readFrame()
			var g, i int
			switch {
			case op == 0x1 && string(b) == fmt.Sprint(next):
				next++
			case op == 0x2 && len(b) > 0 && b[0] == 'n':
				if _, err := fmt.Sscanf(string(b), "n%d %d", &g, &i); err != nil || i != noiseNext[g] {
					t.Fatalf("peer %d: got %q, want n%d %d", pi, b, g, noiseNext[g])
				}
				noiseNext[g]++
			default:
				t.Fatalf("peer %d: got opcode %#x %q, want text %d", pi, op, b, next)
			}
		}
	}
}

// TestBroadcastSlowSubscriber: a subscriber that never reads is failed
// with 1008 once its queue passes WriteQueueLimit, the others get every
// message, and the slow one, when it reads at last, finds the messages
// queued before its failure, whole, then the close frame, then EOF.
func TestBroadcastSlowSubscriber(t *testing.T) {
	e := newEnds()
	opened := make(chan *Conn, 1)
	s := &Server{
		Loops:           2,
		WriteQueueLimit: 64 << 10,
		Options:         &websocket.AcceptOptions{Options: websocket.Options{CloseTimeout: waitFor}},
		OnOpen: func(c *Conn) {
			unix.SetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
			opened <- c
		},
		OnClose: e.onClose,
	}
	addr := startServer(t, s)
	fast, conns := subscribers(t, addr, opened, 10, nil)
	small := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
	}}
	slows, slowConns := subscribers(t, addr, opened, 1, small)
	slow := slows[0]
	all := append(slowConns, conns...) // the slow one first: the others must not wait for it

	// 20 KiB messages: a fast subscriber's queue may hold the one it is
	// reading and the next (bytes count until their writev returned), the
	// slow one's overflows after a few.
	const msgs, size = 16, 20 << 10
	for i := range msgs {
		m := bytes.Repeat([]byte{byte('A' + i)}, size)
		if err := s.Broadcast(websocket.MessageBinary, m, all); err != nil {
			t.Fatalf("Broadcast %d: %v", i, err)
		}
		for _, p := range fast {
			p.expectMessage(0x2, m)
		}
	}
	if err := e.next(t); !errors.Is(err, ErrWriteQueueFull) {
		t.Fatalf("OnClose got %v, want ErrWriteQueueFull", err)
	}
	got := 0
	for {
		op, b := slow.readFrame()
		if op == 0x8 {
			if want := append([]byte{0x03, 0xF0}, "write queue full"...); !bytes.Equal(b, want) {
				t.Fatalf("close payload %q, want 1008 \"write queue full\"", b)
			}
			break
		}
		if want := bytes.Repeat([]byte{byte('A' + got)}, size); op != 0x2 || !bytes.Equal(b, want) {
			t.Fatalf("message %d: opcode %#x, %d bytes starting %q; want message %d whole", got, op, len(b), trunc(b), got)
		}
		got++
	}
	if got == 0 || got >= msgs {
		t.Fatalf("%d messages before the failure, want some but not all %d", got, msgs)
	}
	slow.expectEOF()
	if err := s.Broadcast(websocket.MessageBinary, []byte("after"), all); err != nil {
		t.Fatalf("Broadcast after the failure: %v", err)
	}
	for _, p := range fast {
		p.expectMessage(0x2, []byte("after"))
	}
}

// TestBroadcastSkipsClosed: connections that are closing or closed are
// skipped, the others get the message; bad arguments are refused whole.
func TestBroadcastSkipsClosed(t *testing.T) {
	e := newEnds()
	opened := make(chan *Conn, 1)
	s := &Server{OnOpen: func(c *Conn) { opened <- c }, OnClose: e.onClose}
	if err := s.Broadcast(websocket.MessageText, []byte("x"), nil); err == nil || !strings.Contains(err.Error(), "not serving") {
		t.Fatalf("Broadcast before Serve: %v, want an error saying it is not serving", err)
	}
	addr := startServer(t, s)
	peers, conns := subscribers(t, addr, opened, 4, nil)

	// conns[0]: closing (this side sent its close frame, no answer yet).
	if err := conns[0].Close(4001, "bye"); err != nil {
		t.Fatal(err)
	}
	peers[0].expectClose(4001, "bye")
	// conns[1]: closed by its peer.
	peers[1].write(frame(true, 0x8, []byte{0x03, 0xE8}))
	peers[1].expectClose(1000, "")
	peers[1].expectEOF()
	if err := e.next(t); err == nil {
		t.Fatal("OnClose got nil")
	}

	if err := s.Broadcast(websocket.MessageText, []byte("to the open ones"), conns); err != nil {
		t.Fatalf("Broadcast with closed connections: %v", err)
	}
	peers[2].expectMessage(0x1, []byte("to the open ones"))
	peers[3].expectMessage(0x1, []byte("to the open ones"))
	// The closing peer gets nothing after the close frame: it answers, and
	// the server closes TCP.
	peers[0].write(frame(true, 0x8, []byte{0x0F, 0xA1}))
	peers[0].expectEOF()

	other := &Server{OnOpen: func(c *Conn) { opened <- c }}
	oaddr := startServer(t, other)
	_, foreign := subscribers(t, oaddr, opened, 1, nil)
	for _, tc := range []struct {
		typ   websocket.MessageType
		conns []*Conn
		want  string
	}{
		{websocket.MessageType(0), conns[2:], "cannot write a message of type"},
		{websocket.MessageBinary, []*Conn{conns[2], nil}, "conns[1] is nil"},
		{websocket.MessageBinary, []*Conn{conns[2], conns[3], foreign[0]}, "conns[2] is a connection of another Server"},
	} {
		if err := s.Broadcast(tc.typ, []byte("refused"), tc.conns); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Broadcast(%v, %d conns): %v, want an error containing %q", tc.typ, len(tc.conns), err, tc.want)
		}
	}
	// Nothing of the refused broadcasts was sent.
	if err := s.Broadcast(websocket.MessageText, []byte("next"), conns[2:]); err != nil {
		t.Fatal(err)
	}
	peers[2].expectMessage(0x1, []byte("next"))
	peers[3].expectMessage(0x1, []byte("next"))
}

// TestBroadcastManyRounds: 300 subscribers on one loop, more than a round
// writes (flushRound), get a publisher's 40 messages, broadcast from its
// OnMessage as they arrive in a few reads, each once and in order.
func TestBroadcastManyRounds(t *testing.T) {
	const subs, msgs = flushRound + 44, 40
	opened := make(chan *Conn, 1)
	var mu sync.Mutex
	var list []*Conn
	var s *Server
	s = &Server{
		Loops: 1,
		OnOpen: func(c *Conn) {
			opened <- c
		},
		OnMessage: func(c *Conn, typ websocket.MessageType, p []byte) {
			mu.Lock()
			all := list
			mu.Unlock()
			if err := s.Broadcast(typ, p, all); err != nil {
				t.Errorf("Broadcast: %v", err)
			}
		},
	}
	addr := startServer(t, s)
	peers, conns := subscribers(t, addr, opened, subs+1, nil)
	pub, peers := peers[0], peers[1:]
	mu.Lock()
	list = conns[1:]
	mu.Unlock()
	for i := range msgs {
		pub.write(frame(true, 0x1, fmt.Appendf(nil, "message %d", i)))
		if i%10 == 9 {
			peers[len(peers)-1].expectMessage(0x1, []byte("message "+fmt.Sprint(i-9))) // let rounds run between bursts
			peers[len(peers)-1].readN(t, 9, i-8)
		}
	}
	for pi, p := range peers {
		from := 0
		if pi == len(peers)-1 {
			from = msgs
		}
		p.readN(t, msgs-from, from)
	}
}

// readN expects n text messages "message FROM" onwards.
func (p *peer) readN(t *testing.T, n, from int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		p.expectMessage(0x1, fmt.Appendf(nil, "message %d", i))
	}
}
