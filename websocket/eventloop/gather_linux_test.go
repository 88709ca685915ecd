package eventloop

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
	"golang.org/x/sys/unix"
)

// TestSplitMessageReadInPlace checks the reads that go straight into the
// buffer of a message split across reads (Conn.gatherRoom). Three
// connections each send a large message in two writes: the first part
// alone, read by the server before anything else is sent; then, while the
// loop is held, the rest with more frames behind it, so that the loop
// reads all three connections in one round (one io_uring batch, when the
// loop has io_uring). Each rest must be read into place, and the read must
// stop at the frame's end, so that the frames behind it (a short text
// message, a ping, the next fragment) are parsed as ever. The cases: a
// 100 KiB binary message; a message of three fragments split inside the
// second; a 60 KiB text message split inside a two-byte rune (its UTF-8 is
// checked across the cut). The echoes must be exact, and frames must have
// found at least one piece in place per split message.
func TestSplitMessageReadInPlace(t *testing.T) {
	for _, noRing := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableIOURing=%v", noRing), func(t *testing.T) {
			opened := make(chan *Conn, 4)
			s := &Server{DisableIOURing: noRing, OnOpen: func(c *Conn) { opened <- c }}
			addr, g := gatedServer(t, s, func(c *Conn, typ websocket.MessageType, p []byte) {
				if err := c.Write(typ, p); err != nil {
					t.Errorf("Write: %v", err)
				}
			})
			<-opened // the gate's
			batched := !noRing && batching(t, s)

			a := payload(100<<10, 1)
			b1, b2, b3 := payload(40<<10, 2), payload(50<<10, 3), payload(1<<10, 4)
			text := []byte(strings.Repeat("é", 30<<10)) // 60 KiB of two-byte runes
			type split struct {
				stream []byte
				cut    int
				want   func(p *peer)
			}
			var cases []split
			stream := append(frame(true, 0x2, a), frame(true, 0x1, []byte("héllo wörld"))...)
			stream = append(stream, frame(true, 0x9, []byte("p"))...)
			cases = append(cases, split{stream, 14 + 20<<10, func(p *peer) { // header and 20 KiB of a
				p.expectMessage(0x2, a)
				p.expectMessage(0x1, []byte("héllo wörld"))
				p.expectMessage(0xA, []byte("p"))
			}})
			stream = append(frame(false, 0x2, b1), frame(false, 0x0, b2)...)
			stream = append(stream, frame(true, 0x0, b3)...)
			cases = append(cases, split{stream, len(frame(false, 0x2, b1)) + 8 + 10<<10, func(p *peer) { // inside b2, 40 KiB of it to come
				p.expectMessage(0x2, bytes.Join([][]byte{b1, b2, b3}, nil))
			}})
			cases = append(cases, split{frame(true, 0x1, text), 8 + 5001, func(p *peer) { // inside a rune
				p.expectMessage(0x1, text)
			}})

			peers := make([]*peer, len(cases))
			for i, sc := range cases {
				peers[i] = open(t, addr)
				c := <-opened
				c.mu.Lock()
				fd := int(c.fd)
				c.mu.Unlock()
				peers[i].write(sc.stream[:sc.cut])
				waitRead(t, fd)
			}
			calls := batchCalls(s)
			g.hold()
			for i, sc := range cases {
				peers[i].write(sc.stream[sc.cut:])
			}
			g.open()
			for i, sc := range cases {
				sc.want(peers[i])
			}
			if n := loopsOf(s)[0].inPlace.Load(); n < uint64(len(cases)) {
				t.Fatalf("%d payload pieces found in place, want at least one for each of the %d split messages", n, len(cases))
			}
			if batched && batchCalls(s) == calls {
				t.Fatal("no io_uring batch read the three connections")
			}
		})
	}
}

// waitRead returns once the server has read everything that arrived on
// its socket fd.
func waitRead(t *testing.T, fd int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
		if err != nil {
			t.Fatalf("SIOCINQ: %v", err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server left %d bytes unread for %v", n, waitFor)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGatherRoom checks the bounds of a read into a split message's
// buffer: exactly what the frame still owes when the buffer has room for
// it, the buffer's room when it has less, and no such read while fewer
// than directMin bytes are owed, outside a frame's payload, without a
// message in progress, or once the connection is ending.
func TestGatherRoom(t *testing.T) {
	const size = 100 << 10
	msg := payload(size, 5)
	f := frame(true, 0x2, msg) // 14-byte header
	c := &Conn{loop: &loop{}}
	c.p.Init(nil)
	if got := c.gatherRoom(connOpen); got != nil {
		t.Fatalf("no message in progress: %d bytes of room, want none", len(got))
	}
	first := 14 + 30<<10
	n, ev, err := c.p.Parse(f[:first])
	if err != nil || n != first || ev.Left != size-30<<10 {
		t.Fatalf("Parse: %d, Left %d, %v", n, ev.Left, err)
	}
	c.msg = getBuf(size)
	*c.msg = append(*c.msg, ev.Payload...)
	room := c.gatherRoom(connOpen)
	if len(room) != size-30<<10 || &room[0] != &(*c.msg)[:len(*c.msg)+1][len(*c.msg)] {
		t.Fatalf("room of %d bytes, want the frame's other %d right after the %d gathered", len(room), size-30<<10, len(*c.msg))
	}
	for _, st := range []uint8{connLinger, connClosed} {
		if got := c.gatherRoom(st); got != nil {
			t.Fatalf("state %d: %d bytes of room, want none", st, len(got))
		}
	}
	small := make([]byte, len(*c.msg), len(*c.msg)+20<<10) // less room than the frame owes
	copy(small, *c.msg)
	c.msg = &small
	if room := c.gatherRoom(connOpen); len(room) != 20<<10 {
		t.Fatalf("room of %d bytes in a buffer with 20 KiB free, want 20 KiB", len(room))
	}
	big := make([]byte, 0, 2*size)
	c.msg = &big
	rest := size - 30<<10 - directMin + 1 // leaves directMin - 1 owed
	if n, _, err := c.p.Parse(f[first : first+rest]); err != nil || n != rest {
		t.Fatalf("Parse: %d, %v", n, err)
	}
	if got := c.gatherRoom(connOpen); got != nil {
		t.Fatalf("%d bytes owed: %d bytes of room, want none below directMin", c.p.PayloadLeft(), len(got))
	}
	if n, ev, err := c.p.Parse(f[first+rest:]); err != nil || !ev.Final || n != len(f)-first-rest {
		t.Fatalf("Parse of the frame's end: %d, %+v, %v", n, ev.Final, err)
	}
	if got := c.gatherRoom(connOpen); got != nil {
		t.Fatalf("between frames: %d bytes of room, want none", len(got))
	}
}
