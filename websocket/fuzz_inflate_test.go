package websocket

// FuzzInflate drives the receiving half of permessage-deflate with
// arbitrary compressed data: a server-role Conn set up for compression
// reads, over an in-memory transport, messages whose compressed payloads
// come from the fuzz input, cut into frames at points the input also
// chooses, with pings between frames. Run it with
//
//	go test -run XXX -fuzz FuzzInflate -fuzztime 60s ./websocket/
//
// Each message is also inflated on its own with compress/flate, the
// reference: what the Conn delivers must be exactly that, within the
// ReadLimit and valid UTF-8 for text, and a message the reference finds
// valid must be delivered. Every failure is a *ProtocolError with 1007 or
// 1009 (the framing is always valid here), and only where the reference
// shows why; the end of the input is a *CloseError with 1006.

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
	"unicode/utf8"
)

// fiMessage is one message of a fuzz stream: its compressed payload, as
// the frames carry it.
type fiMessage struct {
	payload []byte
}

// fiStream cuts payload into masked frames: each byte of splits takes the
// next (splits & 0x3f) bytes as one frame, which ends its message when
// 0x40 is set and follows a ping when 0x80 is set; what is left after the
// last split is the final frame of the last message. The first frame of
// every message has RSV1 and opcode op.
func fiStream(payload, splits []byte, op byte) (wire []byte, msgs []fiMessage) {
	key := []byte{0x11, 0x22, 0x33, 0x44}
	inMsg := false
	var cur []byte
	frame := func(p []byte, fin bool) {
		b0 := byte(0)
		if !inMsg {
			b0 = pmdRSV1 | op
		}
		if fin {
			b0 |= pmdFin
		}
		wire = append(wire, fzFrame(b0, key, p)...)
		cur = append(cur, p...)
		inMsg = !fin
		if fin {
			msgs = append(msgs, fiMessage{payload: cur})
			cur = nil
		}
	}
	for i, sp := range splits {
		n := min(int(sp&0x3f), len(payload))
		if sp&0x80 != 0 {
			wire = append(wire, fzFrame(pmdFin|9, key, []byte{byte(i)})...)
		}
		frame(payload[:n], sp&0x40 != 0)
		payload = payload[n:]
	}
	if inMsg || len(payload) > 0 || len(msgs) == 0 {
		frame(payload, true)
	}
	return wire, msgs
}

// fiReference inflates one message's payload as RFC 7692 §7.2.2 says,
// with compress/flate: the tail 00 00 ff ff appended, after the window
// dict. A well-formed payload ends at the tail's sync point; an empty
// final block appended after the tail (03 00) tells that apart from a
// payload cut off inside a block. out is what inflates before any error.
func fiReference(payload, dict []byte, limit int) (out []byte, valid bool) {
	src := append(append(bytes.Clone(payload), pmdTail...), 0x03, 0x00)
	r := flate.NewReaderDict(bytes.NewReader(src), dict)
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if len(out) > limit {
		// Past the limit: how the rest would go does not matter.
		return out, false
	}
	return out, err == nil
}

func FuzzInflate(f *testing.F) {
	t := f
	text := []byte("The quick brown fox jumps over the lazy dog. Ünïcödé: héllo wörld €𝄞, the quick brown fox again.")
	comp := func(p, dict []byte) []byte { return pmdDeflate(t, p, dict, 6) }
	const (
		fText     = 1 << 0
		fTakeover = 1 << 1
		fSmall    = 1 << 5 // ReadLimit 1024 instead of 64 KiB
		fReader   = 1 << 6 // read with Reader instead of Read
		fChunked  = 1 << 7 // the transport returns short reads
	)
	bits := func(b int) byte { return byte(b-8) << 2 }
	// Whole messages.
	f.Add(comp(text, nil), []byte{}, byte(fText))
	f.Add(comp(text, nil), []byte{}, byte(fText|fReader|fChunked))
	f.Add(comp(pmdRandom(1, 3000), nil), []byte{}, byte(0))
	// Three frames with pings between them.
	f.Add(comp(text, nil), []byte{0x85, 0x90}, byte(fText))
	f.Add(comp(text, nil), []byte{0x81, 0x81, 0x81, 0x81}, byte(fText|fReader))
	// The examples of RFC 7692 §7.2.3, in sequence, sharing the window.
	rfc := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xf2, 0x00, 0x11, 0x00, 0x00,
		0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
		0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}
	f.Add(rfc, []byte{0x47, 0x45, 0x4b}, byte(fText|fTakeover))
	f.Add(rfc, []byte{0x47, 0x45, 0x4b}, byte(fText)) // the second needs the first's window: 1007
	// Takeover: the second and third messages refer to the first.
	m1 := comp([]byte("hello, hello, hello"), nil)
	m2 := comp([]byte("hello, hello"), []byte("hello, hello, hello"))
	m3 := comp([]byte("hello"), []byte("hello, hello, hellohello, hello"))
	f.Add(bytes.Join([][]byte{m1, m2, m3}, nil), []byte{0x40 | byte(len(m1)), 0xc0 | byte(len(m2))}, byte(fText|fTakeover|bits(8)))
	// References at the edge of small windows.
	for _, b := range []int{8, 9} {
		_, _, t1, t2 := pmdWindowEdge(b)
		p1, p2 := pmdFixed(t1), pmdFixed(t2)
		var sp []byte
		for n := len(p1); n > 0; n -= 63 {
			sp = append(sp, byte(min(n, 63)))
		}
		sp[len(sp)-1] |= 0x40
		f.Add(append(p1, p2...), sp, byte(fTakeover|bits(b)))
	}
	// Cut short, corrupt, empty.
	c := comp(text, nil)
	f.Add(c[:len(c)/2], []byte{}, byte(fText))
	f.Add(c[:len(c)-1], []byte{0x83}, byte(fText|fReader))
	f.Add(append([]byte{0x00, 0x64, 0x00, 0x9b, 0xff}, "0123456789"...), []byte{}, byte(0))
	f.Add([]byte{0x06, 0x00}, []byte{}, byte(0))
	f.Add([]byte{}, []byte{}, byte(0))
	f.Add([]byte{0x00}, []byte{0x40, 0x41}, byte(fText))
	f.Add(bytes.Repeat([]byte{0xff}, 40), []byte{0x10}, byte(0))
	// Invalid UTF-8 in compressed text; binary is not checked.
	f.Add(comp([]byte("abc\xff\xfe"), nil), []byte{}, byte(fText))
	f.Add(comp([]byte("abc\xe2\x82"), nil), []byte{}, byte(fText))
	f.Add(comp([]byte("abc\xff\xfe"), nil), []byte{}, byte(0))
	// Bombs: past the limit.
	f.Add(pmdBomb(100), []byte{}, byte(fSmall))
	f.Add(pmdBomb(1000), []byte{0x84, 0x84}, byte(fReader))
	f.Add(comp(make([]byte, 1025), nil), []byte{}, byte(fSmall|fText))
	f.Add(comp(make([]byte, 1024), nil), []byte{}, byte(fSmall|fText))

	f.Fuzz(func(t *testing.T, payload, splits []byte, flags byte) {
		if len(payload) > 1<<16 || len(splits) > 1<<10 {
			return
		}
		op := byte(MessageBinary)
		if flags&fText != 0 {
			op = byte(MessageText)
		}
		takeover := flags&fTakeover != 0
		wbits := 8 + int(flags>>2&7)
		limit := 64 << 10
		if flags&fSmall != 0 {
			limit = 1024
		}
		wire, msgs := fiStream(payload, splits, op)
		stream := &fzStream{data: wire}
		if flags&fChunked != 0 {
			stream.chunks = append([]byte{}, splits...)
			if len(stream.chunks) == 0 {
				stream.chunks = []byte{0}
			}
		}
		c := NewConn(stream, nil, RoleServer, "", &Options{ReadLimit: int64(limit)})
		c.setupDeflate(deflateParams{
			clientNoContextTakeover: !takeover,
			clientMaxWindowBits:     wbits,
			serverMaxWindowBits:     15,
		}, &CompressionOptions{Enabled: true})
		defer c.CloseNow()

		read := func() (MessageType, []byte, error) {
			if flags&fReader == 0 {
				typ, p, err := c.Read(context.Background())
				return typ, bytes.Clone(p), err
			}
			typ, r, err := c.Reader(context.Background())
			if err != nil {
				return 0, nil, err
			}
			p, err := io.ReadAll(r)
			return typ, p, err
		}
		done := make(chan error, 1)
		go func() { done <- fiCheck(read, msgs, op, takeover, 1<<wbits, limit) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("reading did not end within 10 s")
		}
	})
}

// fiCheck reads until an error and checks every message and the error
// against the reference.
func fiCheck(read func() (MessageType, []byte, error), msgs []fiMessage, op byte, takeover bool, window, limit int) error {
	var hist []byte
	for k := 0; ; k++ {
		typ, got, err := read()
		if k == len(msgs) {
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != StatusAbnormalClosure {
				return fmt.Errorf("after the last message: %v, %d bytes, %v; want a *CloseError with 1006", typ, len(got), err)
			}
			return nil
		}
		var dict []byte
		if takeover {
			dict = hist[max(0, len(hist)-window):]
		}
		want, valid := fiReference(msgs[k].payload, dict, limit)
		tooBig := len(want) > limit || int64(len(msgs[k].payload)) > compressedLimit(int64(limit))
		badText := op == byte(MessageText) && !utf8.Valid(want)
		deliverable := valid && !tooBig && !badText
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				return fmt.Errorf("message %d: %v, want a *ProtocolError", k, err)
			}
			switch {
			case deliverable:
				return fmt.Errorf("message %d (%d bytes compressed) inflates to %d valid bytes, but Read failed: %v", k, len(msgs[k].payload), len(want), err)
			case pe.Code == StatusMessageTooBig && !tooBig:
				return fmt.Errorf("message %d: 1009, but it inflates to %d bytes, %d compressed, limit %d", k, len(want), len(msgs[k].payload), limit)
			case pe.Code == StatusInvalidFramePayloadData && valid && !badText:
				return fmt.Errorf("message %d: 1007, but it inflates to %d bytes of valid data", k, len(want))
			case pe.Code != StatusMessageTooBig && pe.Code != StatusInvalidFramePayloadData:
				return fmt.Errorf("message %d: code %d (%s), want 1007 or 1009", k, pe.Code, pe.Reason)
			}
			return nil
		}
		if !deliverable {
			return fmt.Errorf("message %d delivered (%d bytes), but the reference says valid=%v tooBig=%v badText=%v (%d bytes)", k, len(got), valid, tooBig, badText, len(want))
		}
		if byte(typ) != op || !bytes.Equal(got, want) {
			return fmt.Errorf("message %d: %v of %d bytes, want %d bytes", k, typ, len(got), len(want))
		}
		if len(got) > limit || (typ == MessageText && !utf8.Valid(got)) {
			return fmt.Errorf("message %d: %d bytes delivered, limit %d, UTF-8 %v", k, len(got), limit, utf8.Valid(got))
		}
		hist = append(hist, got...)
	}
}
