package websocket

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzServerParser checks the event loop's parser against Conn: the same
// client stream, cut into the fuzzer's pieces and fed to a ServerParser
// (each piece overwritten once parsed, as the loop reuses its buffer),
// must give the messages a server Conn reads from it, in the same order,
// the pings the Conn answered with pongs, the pongs its OnPong saw, and
// end the same way (the
// peer's close with its code and reason, a protocol error with its close
// code, or, for a stream that stops short, nothing more). Whatever the input, Parse must consume something of every
// non-empty input it is given (a loop calling it again would spin
// forever), give data no longer than what it consumed, never announce
// more of a message than the limit, and end every text message in valid
// UTF-8.
//
// With deflate set, both sides have permessage-deflate without context
// takeover (the only kind AnswerUpgrade agrees to): the parser's side
// gathers each compressed message and inflates it with Inflate at its end,
// which must give the message the Conn inflated as it read, or fail with
// the Conn's code (1007 for data that is not DEFLATE or text that is not
// UTF-8, 1009 past the limit; the first fault in the message's bytes
// decides). One difference is allowed, where a compressed message fails
// (fzInflateFailuresAgree): the Conn inflates as frames arrive and may
// fail the message before its end, where the parser's side meets what
// comes after it (a close, a bad frame, the end of the stream).
//
//	go test -run XXX -fuzz FuzzServerParser -fuzztime 30s ./websocket/
func FuzzServerParser(f *testing.F) {
	key := []byte{0x37, 0xFA, 0x21, 0x3D}
	for _, s := range fzFrameSeeds(key) {
		f.Add(s, []byte{}, false)
		f.Add(s, []byte{0}, false)
		f.Add(s, []byte{0, 2, 6}, false)
		f.Add(s, []byte{}, true)
		f.Add(s, []byte{0, 2, 6}, true)
	}
	for _, s := range fzDeflateSeeds(f, key) {
		f.Add(s, []byte{}, true)
		f.Add(s, []byte{0}, true)
		f.Add(s, []byte{0, 2, 6}, true)
		f.Add(s, []byte{}, false)
	}
	f.Fuzz(func(t *testing.T, stream, chunks []byte, deflate bool) {
		want := fzConnOutcome(t, stream, deflate)
		got, partial := fzParserOutcome(t, stream, chunks, deflate)
		if got != want && !fzInflateFailuresAgree(got, want, partial) {
			t.Fatalf("ServerParser and Conn disagree on stream % x (chunks %v, deflate %v):\nparser %s\nconn   %s", stream, chunks, deflate, got, want)
		}
	})
}

// fzDeflateSeeds returns client streams of compressed messages, masked
// with key: whole, fragmented, empty, bad in each way a compressed message
// can be.
func fzDeflateSeeds(t testing.TB, key []byte) [][]byte {
	fr := func(b0 byte, p []byte) []byte { return fzFrame(b0, key, p) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	comp := func(p string) []byte { return pmdDeflate(t, []byte(p), nil, 6) }
	text := "Ünïcödé: héllo wörld €𝄞, the quick brown fox, the quick brown fox, the quick brown fox."
	c := comp(text)
	third := len(c) / 3
	// A final block that the sender ended the message with, then bytes
	// after it, which the receiver ignores.
	var fin bytes.Buffer
	w, _ := flate.NewWriter(&fin, 6)
	w.Write([]byte("final block"))
	w.Close()
	// Text with invalid UTF-8 early and the limit broken later, in two
	// blocks: the first fault decides, 1007 on both sides (before the
	// byte-order rule, Inflate said 1009).
	var twoBlocks bytes.Buffer
	w, _ = flate.NewWriter(&twoBlocks, 6)
	w.Write([]byte("ab\xffcd"))
	w.Flush()
	w.Write(bytes.Repeat([]byte("z"), fzReadLimit))
	w.Flush()
	return [][]byte{
		fr(0xC1, c),
		fr(0xC2, comp("binary, binary, binary")),
		// Fragmented, RSV1 only on the first frame, a ping between.
		cat(fr(0x41, c[:third]), fr(0x89, []byte("ping")), fr(0x00, c[third:2*third]), fr(0x80, c[2*third:])),
		// One byte a frame.
		cat(fr(0x41, c[:1]), fr(0x00, c[1:2]), fr(0x00, nil), fr(0x80, c[2:])),
		// Compressed, plain and compressed again: no context between them.
		cat(fr(0xC1, comp("one, one")), fr(0x81, []byte("plain")), fr(0xC1, comp("one, one"))),
		fr(0xC1, comp("ab\xff")),     // inflates to invalid UTF-8
		fr(0xC1, comp("ab\xe2\x82")), // ends inside a UTF-8 sequence
		fr(0xC2, comp("ab\xff")),     // binary: not checked
		fr(0xC2, pmdBomb(100)),       // inflates past fzReadLimit
		fr(0xC1, comp(strings.Repeat("a", fzReadLimit))),
		fr(0xC1, comp(strings.Repeat("a", fzReadLimit+1))),
		fr(0xC1, twoBlocks.Bytes()[:twoBlocks.Len()-4]),
		fr(0xC2, []byte{0xff, 0xff, 0xff}), // not DEFLATE: reserved block type
		fr(0xC1, c[:len(c)/2]),             // cut off inside a block
		fr(0xC1, fin.Bytes()),
		fr(0xC1, append(fin.Bytes(), "after"...)),
		cat(fr(0x41, comp("a")), fr(0xC0, comp("b"))), // RSV1 on a continuation
		cat(fr(0x01, []byte("a")), fr(0xC0, comp("b"))),
		fr(0xC9, nil),          // RSV1 on a ping
		fr(0xC1, []byte{0x00}), // an empty message
		cat(fr(0x41, nil), fr(0x80, []byte{0x00})),
		fr(0xC1, nil),          // an empty payload: 1007
		fr(0xE1, comp("rsv2")), // RSV1 and RSV2
		// Bad data, then a ping, then a close: the Conn fails at the
		// data, the parser's side only meets the close.
		cat(fr(0x42, []byte{0xff, 0xff}), fr(0x89, []byte("late")), fr(0x88, fzClosePayload(1000, ""))),
		cat(fr(0x41, comp("ab\xffcd")), fr(0x89, []byte("late")), fr(0x88, fzClosePayload(1000, "bye"))),
		cat(fr(0x42, pmdBomb(20)), fr(0x00, []byte{0x00}), fr(0x88, fzClosePayload(1001, ""))),
		cat(fr(0x42, pmdBomb(20)), fr(0x80, []byte{0x00}), fr(0x82, nil)),
		fr(0xC1, c)[:20], // the stream stops inside the message
	}
}

// fzOutcome is what a server makes of a client stream: the data messages
// and the pings in order, then how the stream ended.
type fzOutcome struct {
	messages string // each message as "type:%q;"
	pings    string // each ping's payload as "%q;" (for a Conn: its pongs')
	pongs    string // each pong's payload as "%q;"
	end      string // "close CODE REASON", "fail CODE" or "short"
}

func (o fzOutcome) String() string {
	return fmt.Sprintf("messages %.400s, pings %.200s, pongs %.200s, end %s", o.messages, o.pings, o.pongs, o.end)
}

// fzConnOutcome reads stream with a server Conn, all of it at once, with
// permessage-deflate if deflate is set; the pings are those its pongs
// answered.
func fzConnOutcome(t *testing.T, stream []byte, deflate bool) (o fzOutcome) {
	rw := &fzStream{data: bytes.Clone(stream)}
	c := NewConn(rw, nil, RoleServer, "", &Options{ReadLimit: fzReadLimit, CloseTimeout: time.Second,
		OnPong: func(p []byte) { o.pongs += fmt.Sprintf("%q;", p) }}) // called by Read, on this goroutine
	defer c.CloseNow()
	if deflate {
		c.setupDeflate(deflateParams{serverNoContextTakeover: true, clientNoContextTakeover: true,
			serverMaxWindowBits: 15, clientMaxWindowBits: 15}, &CompressionOptions{Enabled: true})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer func() {
		out := bytes.NewReader(rw.written())
		for out.Len() > 0 {
			fr, err := ccReadFrame(out)
			if err != nil {
				t.Fatalf("Conn wrote a malformed frame: %v", err)
			}
			if fr.op == 0xA {
				o.pings += fmt.Sprintf("%q;", fr.payload)
			}
		}
	}()
	for {
		typ, p, err := c.Read(ctx)
		if err == nil {
			o.messages += fmt.Sprintf("%d:%q;", typ, p)
			continue
		}
		var pe *ProtocolError
		var ce *CloseError
		switch {
		case errors.As(err, &pe):
			o.end = fmt.Sprintf("fail %d", pe.Code)
		case errors.As(err, &ce) && ce.Code == StatusAbnormalClosure:
			o.end = "short"
		case errors.As(err, &ce):
			o.end = fmt.Sprintf("close %d %q", ce.Code, ce.Reason)
		default:
			t.Fatalf("Conn.Read failed with %T %v", err, err)
		}
		return o
	}
}

// fzPartial is a compressed message that a stream ended inside of, or
// that Inflate failed: the payload its frames brought, and its type.
type fzPartial struct {
	payload  []byte
	typ      MessageType
	inflated bool // whole, and Inflate failed it
}

// fzParserOutcome feeds stream to a ServerParser in the pieces chunks
// gives (byte k: a piece of k+1 bytes, in turn; none: all at once), each
// piece a copy that is overwritten once parsed, as an event loop reuses
// its read buffer. With deflate, the parser has permessage-deflate and
// each compressed message is gathered and inflated at its end, as an
// event loop does. partial is the compressed message the stream ended
// inside of or Inflate failed, if there is one.
func fzParserOutcome(t *testing.T, stream, chunks []byte, deflate bool) (o fzOutcome, partial *fzPartial) {
	var s ServerParser
	s.Init(&Options{ReadLimit: fzReadLimit})
	if deflate {
		s.SetAgreement(Agreement{DeflateWindowBits: 15})
		if s.DeflateWindowBits() != 15 {
			t.Fatalf("DeflateWindowBits %d after SetAgreement with 15", s.DeflateWindowBits())
		}
	}
	var (
		msg        []byte // the message so far: compressed if msgComp
		msgTyp     MessageType
		msgComp    bool
		inMsg      bool
		inflateBuf []byte
	)
	// end records how the stream ended, with the compressed message it
	// ended inside of.
	end := func(e string) (fzOutcome, *fzPartial) {
		o.end = e
		if inMsg && msgComp {
			return o, &fzPartial{payload: msg, typ: msgTyp}
		}
		return o, nil
	}
	for i := 0; len(stream) > 0; i++ {
		n := len(stream)
		if len(chunks) > 0 {
			n = min(n, int(chunks[i%len(chunks)])+1)
		}
		piece := bytes.Clone(stream[:n])
		stream = stream[n:]
		for b := piece; len(b) > 0; {
			k, ev, err := s.Parse(b)
			if k < 0 || k > len(b) {
				t.Fatalf("Parse of %d bytes consumed %d", len(b), k)
			}
			if err != nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Fatalf("Parse failed with %T %v, want a *ProtocolError", err, err)
				}
				return end(fmt.Sprintf("fail %d", pe.Code))
			}
			if k == 0 {
				t.Fatalf("Parse consumed nothing of %d bytes and found %+v", len(b), ev)
			}
			b = b[k:]
			switch ev.Kind {
			case ParsedData:
				if len(ev.Payload) > k {
					t.Fatalf("data event with a payload of %d bytes from %d consumed", len(ev.Payload), k)
				}
				if ev.Compressed && !deflate {
					t.Fatalf("compressed data event without permessage-deflate")
				}
				if !inMsg {
					inMsg, msgTyp, msgComp = true, ev.Type, ev.Compressed
				} else if ev.Type != msgTyp || ev.Compressed != msgComp {
					t.Fatalf("message of type %v (compressed %v) went on as type %v (compressed %v)", msgTyp, msgComp, ev.Type, ev.Compressed)
				}
				msg = append(msg, ev.Payload...)
				limit := int64(fzReadLimit)
				if msgComp {
					limit = compressedLimit(limit)
				}
				if int64(len(msg))+ev.Left > limit {
					t.Fatalf("message of %d bytes with %d to come, over the limit %d", len(msg), ev.Left, limit)
				}
				if !ev.Final {
					break
				}
				if ev.Left != 0 {
					t.Fatalf("final event with %d bytes still to come", ev.Left)
				}
				inMsg = false
				m := msg
				if msgComp {
					// A byte already in dst, which Inflate must keep.
					out, err := s.Inflate(append(inflateBuf[:0], '#'), msg, msgTyp)
					if len(out) == 0 || out[0] != '#' {
						t.Fatalf("Inflate returned %q, without what dst held", out)
					}
					if err != nil {
						var pe *ProtocolError
						if !errors.As(err, &pe) {
							t.Fatalf("Inflate failed with %T %v, want a *ProtocolError", err, err)
						}
						if len(out) != 1 {
							t.Fatalf("Inflate failed with %v and returned %q", err, out)
						}
						o.end = fmt.Sprintf("fail %d", pe.Code)
						return o, &fzPartial{payload: msg, typ: msgTyp, inflated: true}
					}
					inflateBuf = out
					m = out[1:]
					if len(m) > fzReadLimit {
						t.Fatalf("message inflated to %d bytes, over the limit %d", len(m), fzReadLimit)
					}
				}
				if ev.Type == MessageText && !utf8.Valid(m) {
					t.Fatalf("text message %q is not valid UTF-8", m)
				}
				o.messages += fmt.Sprintf("%d:%q;", ev.Type, m)
				msg = msg[:0]
			case ParsedPing, ParsedPong:
				if len(ev.Payload) > maxControlPayload {
					t.Fatalf("control frame with %d bytes", len(ev.Payload))
				}
				if ev.Kind == ParsedPing {
					o.pings += fmt.Sprintf("%q;", ev.Payload)
				} else {
					o.pongs += fmt.Sprintf("%q;", ev.Payload)
				}
			case ParsedClose:
				return end(fmt.Sprintf("close %d %q", ev.Close.Code, ev.Close.Reason))
			}
		}
		// The event loop reads the next piece into the same buffer: a
		// parser that kept a slice of this one would see the poison.
		for i := range piece {
			piece[i] = 0xA5
		}
	}
	return end("short")
}

// fzInflateFailuresAgree reports whether conn, the Conn's outcome,
// differs from parser's only as it may where a compressed message
// (partial) fails. The Conn, inflating as the frames come, may fail the
// message before the parser's side meets the stream's end, with a code
// that the payload received already shows, having answered the pings and
// seen the pongs that the parser's side saw up to that point.
func fzInflateFailuresAgree(parser, conn fzOutcome, partial *fzPartial) bool {
	if partial == nil || conn.messages != parser.messages ||
		!strings.HasPrefix(parser.pings, conn.pings) || !strings.HasPrefix(parser.pongs, conn.pongs) {
		return false
	}
	ends := fzPrefixFailures(partial.payload, partial.typ)
	if partial.inflated && !slices.Contains(ends, parser.end) {
		return false
	}
	return slices.Contains(ends, conn.end)
}

// fzPrefixFailures returns the end ("fail CODE") that a receiver
// inflating as it reads gives a compressed message of which payload has
// arrived, if that part already fails it: the first fault in the inflated
// bytes decides, whatever a receiver inflates at a time. Text with bytes
// that no continuation makes valid UTF-8 within fzReadLimit is 1007; else
// inflating past the limit is 1009; else data that is not valid DEFLATE
// (as far as it goes) is 1007.
func fzPrefixFailures(payload []byte, typ MessageType) (ends []string) {
	r := flate.NewReader(bytes.NewReader(payload))
	out, err := io.ReadAll(io.LimitReader(r, fzReadLimit+1))
	var v utf8Validator
	var ce flate.CorruptInputError
	switch {
	case typ == MessageText && !v.write(out[:min(len(out), fzReadLimit)]):
		return []string{"fail 1007"}
	case len(out) > fzReadLimit:
		return []string{"fail 1009"}
	case errors.As(err, &ce):
		return []string{"fail 1007"}
	}
	return nil
}
