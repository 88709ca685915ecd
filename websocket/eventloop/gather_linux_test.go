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
// buffer of a message split across reads (Conn.gatherRoom). Each large
// message below reaches the server in two writes, the second sent only
// once the server has read the first, so that the rest of the frame is
// read into place; that read must stop at the frame's end, so the frames
// behind it in the same write (a short text message, a ping, the next
// fragment) are parsed as ever. The cases: a 100 KiB binary message; a
// message of three fragments split inside the second; a 60 KiB text
// message split inside a two-byte rune (its UTF-8 is checked across the
// cut). The echoes must be exact, with io_uring's batched reads and
// without, and the loop must have read in place at least once per split.
func TestSplitMessageReadInPlace(t *testing.T) {
	for _, noRing := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableIOURing=%v", noRing), func(t *testing.T) {
			opened := make(chan *Conn, 1)
			s := &Server{
				DisableIOURing: noRing,
				OnOpen:         func(c *Conn) { opened <- c },
				OnMessage: func(c *Conn, typ websocket.MessageType, p []byte) {
					if err := c.Write(typ, p); err != nil {
						t.Errorf("Write: %v", err)
					}
				},
			}
			addr := startServer(t, s)
			p := open(t, addr)
			c := <-opened
			if !noRing && !batching(t, s) {
				return
			}
			c.mu.Lock()
			fd := int(c.fd)
			c.mu.Unlock()
			// sendSplit writes b[:cut], waits until the server has read it
			// all, then writes the rest.
			sendSplit := func(b []byte, cut int) {
				t.Helper()
				p.write(b[:cut])
				deadline := time.Now().Add(waitFor)
				for {
					n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
					if err != nil {
						t.Fatalf("SIOCINQ: %v", err)
					}
					if n == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the server left %d bytes unread for %v", n, waitFor)
					}
					time.Sleep(time.Millisecond)
				}
				p.write(b[cut:])
			}

			a := payload(100<<10, 1)
			var stream []byte
			stream = append(stream, frame(true, 0x2, a)...)
			stream = append(stream, frame(true, 0x1, []byte("héllo wörld"))...)
			stream = append(stream, frame(true, 0x9, []byte("p"))...)
			sendSplit(stream, 14+20<<10) // header and 20 KiB of a

			b1, b2, b3 := payload(40<<10, 2), payload(50<<10, 3), payload(1<<10, 4)
			stream = append(frame(false, 0x2, b1), frame(false, 0x0, b2)...)
			stream = append(stream, frame(true, 0x0, b3)...)
			sendSplit(stream, len(frame(false, 0x2, b1))+8+10<<10) // inside b2, 40 KiB of it to come

			text := []byte(strings.Repeat("é", 30<<10)) // 60 KiB of two-byte runes
			stream = frame(true, 0x1, text)
			sendSplit(stream, 8+5001) // inside a rune

			p.expectMessage(0x2, a)
			p.expectMessage(0x1, []byte("héllo wörld"))
			p.expectMessage(0xA, []byte("p"))
			p.expectMessage(0x2, bytes.Join([][]byte{b1, b2, b3}, nil))
			p.expectMessage(0x1, text)
			var direct uint64
			for _, l := range loopsOf(s) {
				direct += l.direct.Load()
			}
			if direct < 3 {
				t.Fatalf("%d reads into a message's buffer, want at least one for each of the 3 split messages", direct)
			}
		})
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
