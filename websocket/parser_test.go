package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// parsedEvent is what a driver of frameParser sees: a whole data message or
// a control frame.
type parsedEvent struct {
	op      opcode // opText/opBinary for messages, or a control opcode
	payload string
}

// driveParser feeds stream to a fresh server-side frameParser in chunks of
// the given size, as an event loop would with whatever bytes arrived, and
// collects the events. It does no I/O and never blocks.
func driveParser(stream []byte, chunk int, limit int64) ([]parsedEvent, error) {
	p := frameParser{checkUTF8: true}
	p.dec.expectMasked = true
	var events []parsedEvent
	var msg []byte
	var ctrl *frameHeader
	var ctrlBuf []byte
	for off := 0; off < len(stream); {
		b := stream[off:min(off+chunk, len(stream))]
		for len(b) > 0 {
			switch {
			case ctrl != nil: // gathering a control frame's payload
				k := min(len(b), int(ctrl.length)-len(ctrlBuf))
				ctrlBuf = append(ctrlBuf, b[:k]...)
				b, off = b[k:], off+k
				if len(ctrlBuf) == int(ctrl.length) {
					unmaskControl(*ctrl, ctrlBuf)
					events = append(events, parsedEvent{ctrl.op, string(ctrlBuf)})
					ctrl, ctrlBuf = nil, nil
				}
			case p.inFrame:
				k := int(min(int64(len(b)), p.payloadLeft()))
				part := append([]byte(nil), b[:k]...)
				if err := p.parsePayload(part); err != nil {
					return events, err
				}
				msg = append(msg, part...)
				b, off = b[k:], off+k
				if !p.inMessage {
					events = append(events, parsedEvent{opcode(p.msgType), string(msg)})
					msg = nil
				}
			default:
				n, h, done, err := p.parseHeader(b, limit)
				b, off = b[n:], off+n
				if err != nil {
					return events, err
				}
				if !done {
					continue
				}
				if h.op.isControl() {
					if h.length == 0 {
						events = append(events, parsedEvent{h.op, ""})
					} else {
						hc := h
						ctrl = &hc
					}
				} else if !p.inMessage { // an empty final frame ended the message
					events = append(events, parsedEvent{opcode(p.msgType), string(msg)})
					msg = nil
				}
			}
		}
	}
	return events, nil
}

func maskedFrame(fin bool, op opcode, payload []byte) []byte {
	key := [4]byte{0xA1, 0x02, 0xF3, 0x44}
	b := appendHeader(nil, frameHeader{fin: fin, op: op, masked: true, maskKey: key, length: int64(len(payload))})
	p := append([]byte(nil), payload...)
	maskBytes(key, 0, p)
	return append(b, p...)
}

// The parser gives the same events whatever the chunking of the stream.
func TestParserIncrementalEveryChunkSize(t *testing.T) {
	var stream []byte
	stream = append(stream, maskedFrame(true, opText, []byte("hello"))...)
	stream = append(stream, maskedFrame(false, opText, []byte("h\xc3"))...) // é split across frames
	stream = append(stream, maskedFrame(true, opPing, []byte("are you there"))...)
	stream = append(stream, maskedFrame(false, opContinuation, []byte("\xa9 "))...)
	stream = append(stream, maskedFrame(true, opContinuation, nil)...)
	stream = append(stream, maskedFrame(true, opBinary, bytes.Repeat([]byte{7}, 300))...)
	stream = append(stream, maskedFrame(true, opBinary, bytes.Repeat([]byte{9}, 70000))...)
	stream = append(stream, maskedFrame(true, opClose, []byte{0x03, 0xE8, 'o', 'k'})...)
	want := []parsedEvent{
		{opText, "hello"},
		{opPing, "are you there"},
		{opText, "hé "},
		{opBinary, string(bytes.Repeat([]byte{7}, 300))},
		{opBinary, string(bytes.Repeat([]byte{9}, 70000))},
		{opClose, "\x03\xe8ok"},
	}
	for _, chunk := range []int{1, 2, 3, 5, 7, 13, 64, 125, 4096, len(stream)} {
		got, err := driveParser(stream, chunk, 1<<20)
		if err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("chunk %d: events differ:\n got %.200v\nwant %.200v", chunk, got, want)
		}
	}
}

// The parser fails as soon as the byte that breaks a rule arrives, with the
// close code the rule calls for, whatever the chunking.
func TestParserFailsFast(t *testing.T) {
	cases := []struct {
		name   string
		stream []byte
		code   StatusCode
		limit  int64
	}{
		{"continuation first", maskedFrame(true, opContinuation, []byte("x")), StatusProtocolError, 100},
		{"text inside fragmented", append(maskedFrame(false, opText, []byte("a")), maskedFrame(true, opText, []byte("b"))...), StatusProtocolError, 100},
		{"over limit", maskedFrame(true, opBinary, make([]byte, 101)), StatusMessageTooBig, 100},
		{"over limit across fragments", append(maskedFrame(false, opBinary, make([]byte, 60)), maskedFrame(true, opContinuation, make([]byte, 41))...), StatusMessageTooBig, 100},
		{"invalid utf-8", maskedFrame(true, opText, []byte("ab\xffcd")), StatusInvalidFramePayloadData, 100},
		{"truncated utf-8", maskedFrame(true, opText, []byte("ab\xe2\x82")), StatusInvalidFramePayloadData, 100},
		{"unmasked", appendHeader(nil, frameHeader{fin: true, op: opText, length: 1}), StatusProtocolError, 100},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 3, len(tc.stream)} {
			_, err := driveParser(tc.stream, chunk, tc.limit)
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Errorf("%s, chunk %d: got %v, want code %d", tc.name, chunk, err, tc.code)
			}
		}
	}
	// Fail fast: the invalid byte is reported without the rest of the frame.
	head := maskedFrame(true, opText, append([]byte("abc\xff"), make([]byte, 500)...))[:8+4]
	if _, err := driveParser(head, 1, 1000); err == nil {
		t.Fatal("invalid UTF-8 not reported before the frame was complete")
	}
}
