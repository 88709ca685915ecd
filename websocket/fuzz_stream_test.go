package websocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
//	go test -run XXX -fuzz FuzzServerParser -fuzztime 30s ./websocket/
func FuzzServerParser(f *testing.F) {
	for _, s := range fzFrameSeeds([]byte{0x37, 0xFA, 0x21, 0x3D}) {
		f.Add(s, []byte{})
		f.Add(s, []byte{0})
		f.Add(s, []byte{0, 2, 6})
	}
	f.Fuzz(func(t *testing.T, stream, chunks []byte) {
		want := fzConnOutcome(t, stream)
		got := fzParserOutcome(t, stream, chunks)
		if got != want {
			t.Fatalf("ServerParser and Conn disagree on stream % x (chunks %v):\nparser %s\nconn   %s", stream, chunks, got, want)
		}
	})
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

// fzConnOutcome reads stream with a server Conn, all of it at once; the
// pings are those its pongs answered.
func fzConnOutcome(t *testing.T, stream []byte) (o fzOutcome) {
	rw := &fzStream{data: bytes.Clone(stream)}
	c := NewConn(rw, nil, RoleServer, "", &Options{ReadLimit: fzReadLimit, CloseTimeout: time.Second,
		OnPong: func(p []byte) { o.pongs += fmt.Sprintf("%q;", p) }}) // called by Read, on this goroutine
	defer c.CloseNow()
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

// fzParserOutcome feeds stream to a ServerParser in the pieces chunks
// gives (byte k: a piece of k+1 bytes, in turn; none: all at once), each
// piece a copy that is overwritten once parsed, as an event loop reuses
// its read buffer.
func fzParserOutcome(t *testing.T, stream, chunks []byte) fzOutcome {
	var s ServerParser
	s.Init(&Options{ReadLimit: fzReadLimit})
	var (
		o      fzOutcome
		msg    []byte
		msgTyp MessageType
	)
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
				o.end = fmt.Sprintf("fail %d", pe.Code)
				return o
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
				if len(msg) == 0 {
					msgTyp = ev.Type
				} else if ev.Type != msgTyp {
					t.Fatalf("message of type %v went on as type %v", msgTyp, ev.Type)
				}
				msg = append(msg, ev.Payload...)
				if int64(len(msg))+ev.Left > fzReadLimit {
					t.Fatalf("message of %d bytes with %d to come, over the limit %d", len(msg), ev.Left, fzReadLimit)
				}
				if ev.Final {
					if ev.Left != 0 {
						t.Fatalf("final event with %d bytes still to come", ev.Left)
					}
					if ev.Type == MessageText && !utf8.Valid(msg) {
						t.Fatalf("text message %q is not valid UTF-8", msg)
					}
					o.messages += fmt.Sprintf("%d:%q;", ev.Type, msg)
					msg = msg[:0]
				}
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
				o.end = fmt.Sprintf("close %d %q", ev.Close.Code, ev.Close.Reason)
				return o
			}
		}
		// The event loop reads the next piece into the same buffer: a
		// parser that kept a slice of this one would see the poison.
		for i := range piece {
			piece[i] = 0xA5
		}
	}
	o.end = "short"
	return o
}
