//go:build linux && !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only checked without it.

package eventloop

import (
	"encoding/binary"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// drain reads and discards everything p receives until the test ends, and
// counts the bytes.
func drain(t *testing.T, p *peer) *counter {
	c := &counter{}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := p.c.Read(buf)
			c.add(n)
			if err != nil {
				return
			}
		}
	}()
	return c
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) add(n int) {
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
}

func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitBytes waits until every counter reached n.
func waitBytes(t *testing.T, cs []*counter, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for _, c := range cs {
		for c.get() < n {
			if time.Now().After(deadline) {
				t.Fatalf("a reader got %d bytes, want %d", c.get(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestAllocs: in steady state, Write and the read path allocate nothing,
// and Broadcast allocates its shared frame and nothing per connection.
func TestAllocs(t *testing.T) {
	opened := make(chan *Conn, 1)
	s := &Server{Loops: 2, OnOpen: func(c *Conn) { opened <- c }}
	addr := startServer(t, s)
	peers, conns := subscribers(t, addr, opened, 50, nil)
	counters := make([]*counter, len(peers)-1)
	for i, p := range peers[1:] {
		counters[i] = drain(t, p)
	}
	msg := make([]byte, 100)
	frameLen := 2 + len(msg)
	const runs = 200

	// Write, on a connection whose peer drains.
	c := conns[1]
	if n := testing.AllocsPerRun(runs, func() { c.Write(websocket.MessageBinary, msg) }); n != 0 {
		t.Errorf("Write allocates %v times, want 0", n)
	}
	waitBytes(t, counters[:1], (runs+1)*frameLen)

	// Broadcast to 49 connections.
	subs := conns[1:]
	if n := testing.AllocsPerRun(runs, func() { s.Broadcast(websocket.MessageBinary, msg, subs) }); n > 1 {
		t.Errorf("Broadcast to %d connections allocates %v times, want 1 (its frame)", len(subs), n)
	}
	waitBytes(t, counters[1:], (runs+1)*frameLen)
	waitBytes(t, counters[:1], 2*(runs+1)*frameLen)

	// The read path: a message in, its echo out (default OnMessage).
	p := peers[0]
	in := frame(true, 0x2, msg)
	out := make([]byte, frameLen)
	echo := func() {
		p.c.Write(in)
		if _, err := io.ReadFull(p.c, out); err != nil || binary.BigEndian.Uint16(out) != 0x8264 {
			t.Fatalf("echo: %v, header % x", err, out[:2])
		}
	}
	p.c.SetDeadline(time.Now().Add(waitFor))
	if n := testing.AllocsPerRun(runs, echo); n != 0 {
		t.Errorf("an echo allocates %v times, want 0", n)
	}
}

// TestAllocsSplitMessage: a message larger than a loop's read buffer is
// gathered across reads into a pooled buffer sized from its frame header,
// so that in steady state receiving such messages allocates nothing.
func TestAllocsSplitMessage(t *testing.T) {
	got := make(chan int, 1)
	s := &Server{Loops: 1, OnMessage: func(_ *Conn, _ websocket.MessageType, p []byte) { got <- len(p) }}
	addr := startServer(t, s)
	p := open(t, addr)
	timeout := time.NewTimer(waitFor) // reused: time.After would allocate
	for _, size := range []int{readBufSize + 1, 1 << 20, 3 << 20} {
		in := frame(true, 0x2, make([]byte, size))
		send := func() {
			if _, err := p.c.Write(in); err != nil {
				t.Fatal(err)
			}
			timeout.Reset(waitFor)
			select {
			case n := <-got:
				if n != size {
					t.Fatalf("got a message of %d bytes, want %d", n, size)
				}
			case <-timeout.C:
				t.Fatalf("no message of %d bytes within %v", size, waitFor)
			}
		}
		send() // the first fills the pool
		if n := testing.AllocsPerRun(20, send); n != 0 {
			t.Errorf("receiving a %d-byte message allocates %v times, want 0", size, n)
		}
	}
}

// TestAnnouncedLengthNotReserved: a frame header may announce far more
// than the peer ever sends (any length when there is no read limit); the
// loop reserves at most maxBufHint for it, grows the buffer with the bytes
// that come, and goes on serving everyone (before: a header announcing
// 2^62 bytes made the loop ask for that much memory and the process die).
func TestAnnouncedLengthNotReserved(t *testing.T) {
	s := &Server{Loops: 1, Options: &websocket.AcceptOptions{Options: websocket.Options{ReadLimit: -1}}}
	addr := startServer(t, s)
	liar := open(t, addr)
	var hdr []byte
	hdr = append(hdr, 0x82, 0x80|127)
	hdr = binary.BigEndian.AppendUint64(hdr, 1<<62)
	hdr = append(hdr, 1, 2, 3, 4)                         // mask key
	liar.write(append(hdr, make([]byte, readBufSize)...)) // a first read's worth, then nothing
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	// Another connection still gets its echo, after the loop read the
	// liar's bytes (the loop serves in turn).
	p := open(t, addr)
	p.write(frame(true, 0x2, []byte("still here")))
	p.expectMessage(0x2, []byte("still here"))
	runtime.ReadMemStats(&after)
	if grown := after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc); grown > 64<<20 {
		t.Fatalf("the heap grew by %d MiB for a message announced at 2^62 bytes", grown>>20)
	}
}

// TestAllocsBatchedEcho: 8 connections send a message each, then read
// their echoes, so that the loop reads several in a round and defers their
// echoes to a batched flush (with io_uring): in steady state that
// allocates nothing either.
func TestAllocsBatchedEcho(t *testing.T) {
	s := &Server{Loops: 1}
	addr := startServer(t, s)
	peers := make([]*peer, 8)
	for i := range peers {
		peers[i] = open(t, addr)
		peers[i].c.SetDeadline(time.Now().Add(waitFor))
	}
	batched := batching(t, s)
	msg := make([]byte, 100)
	in := frame(true, 0x2, msg)
	out := make([]byte, 2+len(msg))
	echo := func() {
		for _, p := range peers {
			p.c.Write(in)
		}
		for _, p := range peers {
			if _, err := io.ReadFull(p.c, out); err != nil || binary.BigEndian.Uint16(out) != 0x8264 {
				t.Fatalf("echo: %v, header % x", err, out[:2])
			}
		}
	}
	before := batchCalls(s)
	if n := testing.AllocsPerRun(200, echo); n != 0 {
		t.Errorf("8 echoes allocate %v times, want 0", n)
	}
	if calls := batchCalls(s) - before; batched && calls == 0 {
		t.Errorf("no io_uring batch in 200 rounds of 8 echoes")
	}
}
