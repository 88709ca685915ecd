package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// The scenario shared with every peer program (python/peer.py,
// node/peer.js and the Chromium page): the same messages in the same order,
// checked byte for byte on both sides. See README.md.

// sizes are the payload sizes of the sequence, in bytes.
var sizes = []int{0, 125, 126, 65536, 16 << 20}

const (
	// maxMessage is the read limit on every side: above the largest message.
	maxMessage = 64 << 20

	goCloseCode     websocket.StatusCode = 4001
	goCloseReason                        = "go closes ✓"
	peerCloseCode   websocket.StatusCode = 4002
	peerCloseReason                      = "peer closes ✓"

	// closerGo and closerPeer are the values of the closer query parameter.
	closerGo   = "go"
	closerPeer = "peer"
)

// connOptions are the Options of the Go side in every test.
var connOptions = websocket.Options{
	ReadLimit:    maxMessage,
	CloseTimeout: 60 * time.Second,
}

// textPayload is "é" (C3 A9) repeated n/2 times, plus "x" if n is odd:
// n bytes of UTF-8.
func textPayload(n int) []byte {
	b := bytes.Repeat([]byte("é"), n/2)
	if n%2 == 1 {
		b = append(b, 'x')
	}
	return b
}

// binaryPayload is the bytes (i*31+7) mod 256 for i in 0..n-1.
func binaryPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + 7)
	}
	return b
}

// message is one entry of a sequence.
type message struct {
	index int
	typ   websocket.MessageType
	frag  bool // sent as 3 frames, split at n/3 and 2n/3
	data  []byte

	// name is the payload's name in the compression scenario (json(n),
	// small(k), random(n), periodic(n,p)); empty in the plain one.
	name string
	// family is the payload family of the compression scenario: "json",
	// "small", "random" or "periodic"; period is p of periodic(n,p).
	family string
	period int
}

func (m message) String() string {
	kind := "text"
	if m.typ == websocket.MessageBinary {
		kind = "binary"
	}
	how := "whole"
	if m.frag {
		how = "fragmented"
	}
	if m.name != "" {
		return fmt.Sprintf("message #%d (%s %s, %d bytes, %s)", m.index, kind, m.name, len(m.data), how)
	}
	return fmt.Sprintf("message #%d (%s, %d bytes, %s)", m.index, kind, len(m.data), how)
}

var (
	sequenceOnce sync.Once
	sequenceMsgs []message
)

// sequence returns the 20 messages: for each type (text, binary), for each
// size, whole then fragmented. The payloads are shared: do not modify them.
func sequence() []message {
	sequenceOnce.Do(func() {
		for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
			for _, n := range sizes {
				data := textPayload(n)
				if typ == websocket.MessageBinary {
					data = binaryPayload(n)
				}
				for _, frag := range []bool{false, true} {
					sequenceMsgs = append(sequenceMsgs, message{index: len(sequenceMsgs), typ: typ, frag: frag, data: data})
				}
			}
		}
	})
	return sequenceMsgs
}

// flusher is the Flush method of the writer Conn.Writer returns: it sends
// what was written so far as one non-final frame.
type flusher interface{ Flush() error }

// sendSequence sends seq. With fragment, the fragmented entries go
// out in 3 parts (Writer, Write, Flush, Write, Flush, Write, Close): by the
// Writer's contract one frame per Flush and a final one for Close, except
// that a Write at least as large as the Writer's buffer (4 KiB) goes out at
// once as a frame of its own; when the last part does, Close then sends an
// empty final frame, 4 frames in all. The peers' libraries reassemble
// messages without showing frame boundaries; the compression tests check
// the layout on the wire. The others go with one Write.
func sendSequence(ctx context.Context, c *websocket.Conn, seq []message, fragment bool) error {
	for _, m := range seq {
		if !m.frag || !fragment {
			if err := c.Write(ctx, m.typ, m.data); err != nil {
				return fmt.Errorf("send %v: %w", m, err)
			}
			continue
		}
		if err := writeFragmented(ctx, c, m); err != nil {
			return fmt.Errorf("send %v: %w", m, err)
		}
	}
	return nil
}

func writeFragmented(ctx context.Context, c *websocket.Conn, m message) error {
	n := len(m.data)
	parts := [][]byte{m.data[:n/3], m.data[n/3 : 2*n/3], m.data[2*n/3:]}
	w, err := c.Writer(ctx, m.typ)
	if err != nil {
		return fmt.Errorf("Writer: %w", err)
	}
	f, ok := w.(flusher)
	if !ok {
		w.Close()
		return fmt.Errorf("the writer %T has no Flush method", w)
	}
	for i, p := range parts {
		if _, err := w.Write(p); err != nil {
			return fmt.Errorf("Write of fragment %d: %w", i, err)
		}
		if i < len(parts)-1 {
			if err := f.Flush(); err != nil {
				return fmt.Errorf("Flush of fragment %d: %w", i, err)
			}
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("Close of the writer (final fragment): %w", err)
	}
	return nil
}

// recvSequence reads seq and checks each message's type and bytes.
func recvSequence(ctx context.Context, c *websocket.Conn, seq []message) error {
	for _, m := range seq {
		typ, got, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("receive %v: %w", m, err)
		}
		if typ != m.typ {
			return fmt.Errorf("receive %v: got message type %d (%d bytes), want %d", m, typ, len(got), m.typ)
		}
		if !bytes.Equal(got, m.data) {
			return fmt.Errorf("receive %v: payload differs: %s", m, firstDiff(got, m.data))
		}
	}
	return nil
}

func firstDiff(got, want []byte) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d: got 0x%02x, want 0x%02x (got %d bytes, want %d)",
				i, got[i], want[i], len(got), len(want))
		}
	}
	return fmt.Sprintf("got %d bytes, want %d (one is a prefix of the other)", len(got), len(want))
}

// closeReason returns the Reason of the CloseError in err's chain.
func closeReason(err error) (string, bool) {
	for err != nil {
		switch e := any(err).(type) {
		case *websocket.CloseError:
			return e.Reason, true
		case websocket.CloseError:
			return e.Reason, true
		}
		if multi, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range multi.Unwrap() {
				if r, ok := closeReason(e); ok {
					return r, true
				}
			}
			return "", false
		}
		err = errors.Unwrap(err)
	}
	return "", false
}

// closePhase ends the connection: with closer "go" this side closes with
// 4001 and the reason, and checks the handshake completed; with "peer" it
// waits for the peer's close frame and checks its code and reason.
func closePhase(ctx context.Context, c *websocket.Conn, closer string) error {
	switch closer {
	case closerGo:
		if err := c.Close(goCloseCode, goCloseReason); err != nil {
			return fmt.Errorf("Close(%d, %q): %w", goCloseCode, goCloseReason, err)
		}
		if s := c.State(); s != websocket.StateClosed {
			return fmt.Errorf("after Close: State() = %v, want StateClosed", s)
		}
		if _, _, err := c.Read(ctx); !errors.Is(err, websocket.ErrClosed) {
			return fmt.Errorf("Read after Close: got %v, want an error wrapping ErrClosed", err)
		}
		return nil
	case closerPeer:
		typ, p, err := c.Read(ctx)
		if err == nil {
			return fmt.Errorf("waiting for the peer's close frame: got a message (type %d, %d bytes)", typ, len(p))
		}
		code := websocket.CloseStatus(err)
		reason, ok := closeReason(err)
		if !ok || code != peerCloseCode || reason != peerCloseReason {
			return fmt.Errorf("waiting for the peer's close frame: got code %d reason %q (CloseError found: %v; err: %v), want code %d reason %q",
				code, reason, ok, err, peerCloseCode, peerCloseReason)
		}
		c.CloseNow()
		return nil
	default:
		return fmt.Errorf("bad closer %q", closer)
	}
}

// runGoSide runs the Go side of the scenario on c with the messages seq.
// role is "server" (sends first) or "client" (receives first). The Go side
// always sends the fragmented entries as 3 frames, whatever the peer.
func runGoSide(ctx context.Context, c *websocket.Conn, role, closer string, seq []message) error {
	if closer != closerGo && closer != closerPeer {
		return fmt.Errorf("bad closer %q", closer)
	}
	var err error
	if role == "server" {
		if err = sendSequence(ctx, c, seq, true); err == nil {
			err = recvSequence(ctx, c, seq)
		}
	} else {
		if err = recvSequence(ctx, c, seq); err == nil {
			err = sendSequence(ctx, c, seq, true)
		}
	}
	if err != nil {
		return err
	}
	return closePhase(ctx, c, closer)
}
