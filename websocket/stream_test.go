package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// driveServerParser feeds stream to a ServerParser in chunks of the given
// size, each chunk a fresh copy (as an event loop reuses its read buffer),
// gathers data into whole messages and returns the events.
func driveServerParser(stream []byte, chunk int, opts *Options) ([]parsedEvent, error) {
	var s ServerParser
	s.Init(opts)
	var events []parsedEvent
	var msg []byte
	for off := 0; off < len(stream); off += chunk {
		b := append([]byte(nil), stream[off:min(off+chunk, len(stream))]...)
		for len(b) > 0 {
			n, ev, err := s.Parse(b)
			if n == 0 && err == nil {
				return events, fmt.Errorf("Parse consumed nothing of %d bytes", len(b))
			}
			b = b[n:]
			if err != nil {
				return events, err
			}
			switch ev.Kind {
			case ParsedData:
				msg = append(msg, ev.Payload...)
				if ev.Final {
					events = append(events, parsedEvent{opcode(ev.Type), string(msg)})
					msg = nil
				}
			case ParsedPing:
				events = append(events, parsedEvent{opPing, string(ev.Payload)})
			case ParsedPong:
				events = append(events, parsedEvent{opPong, string(ev.Payload)})
			case ParsedClose:
				events = append(events, parsedEvent{opClose, fmt.Sprintf("%d %s", ev.Close.Code, ev.Close.Reason)})
			}
		}
	}
	return events, nil
}

func TestServerParserEveryChunkSize(t *testing.T) {
	var stream []byte
	stream = append(stream, maskedFrame(true, opText, []byte("hello"))...)
	stream = append(stream, maskedFrame(false, opText, []byte("h\xc3"))...) // é split across frames
	stream = append(stream, maskedFrame(true, opPing, []byte("are you there"))...)
	stream = append(stream, maskedFrame(false, opContinuation, []byte("\xa9 "))...)
	stream = append(stream, maskedFrame(true, opContinuation, nil)...)
	stream = append(stream, maskedFrame(true, opBinary, nil)...)
	stream = append(stream, maskedFrame(true, opPong, nil)...)
	stream = append(stream, maskedFrame(true, opBinary, bytes.Repeat([]byte{7}, 300))...)
	stream = append(stream, maskedFrame(true, opPing, bytes.Repeat([]byte{'p'}, 125))...)
	stream = append(stream, maskedFrame(true, opClose, []byte{0x03, 0xE8, 'o', 'k'})...)
	want := []parsedEvent{
		{opText, "hello"},
		{opPing, "are you there"},
		{opText, "hé "},
		{opBinary, ""},
		{opPong, ""},
		{opBinary, string(bytes.Repeat([]byte{7}, 300))},
		{opPing, string(bytes.Repeat([]byte{'p'}, 125))},
		{opClose, "1000 ok"},
	}
	for chunk := 1; chunk <= len(stream); chunk++ {
		got, err := driveServerParser(stream, chunk, nil)
		if err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("chunk %d: events differ:\n got %.300v\nwant %.300v", chunk, got, want)
		}
	}
}

func TestServerParserFails(t *testing.T) {
	cases := []struct {
		name   string
		stream []byte
		code   StatusCode
	}{
		{"unmasked", appendHeader(nil, frameHeader{fin: true, op: opText, length: 1}), StatusProtocolError},
		{"RSV1 without an extension", append([]byte{0xC1}, maskedFrame(true, opText, []byte("x"))[1:]...), StatusProtocolError},
		{"reserved opcode", append([]byte{0x83}, maskedFrame(true, opText, []byte("x"))[1:]...), StatusProtocolError},
		{"ping of 126 bytes", maskedFrame(true, opPing, make([]byte, 126)), StatusProtocolError},
		{"fragmented ping", maskedFrame(false, opPing, nil), StatusProtocolError},
		{"continuation first", maskedFrame(true, opContinuation, []byte("x")), StatusProtocolError},
		{"text inside fragmented", append(maskedFrame(false, opText, []byte("a")), maskedFrame(true, opText, []byte("b"))...), StatusProtocolError},
		{"over limit", maskedFrame(true, opBinary, make([]byte, 101)), StatusMessageTooBig},
		{"over limit across fragments", append(maskedFrame(false, opBinary, make([]byte, 60)), maskedFrame(true, opContinuation, make([]byte, 41))...), StatusMessageTooBig},
		{"close with 1 byte", maskedFrame(true, opClose, []byte{3}), StatusProtocolError},
		{"close code 1005", maskedFrame(true, opClose, []byte{0x03, 0xED}), StatusProtocolError},
		{"close reason not UTF-8", maskedFrame(true, opClose, []byte{0x03, 0xE8, 0xFF}), StatusInvalidFramePayloadData},
	}
	for _, bad := range []string{"ab\xffcd", "ab\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xc0\xaf", "ok\xe2\x28\xa1"} {
		cases = append(cases, struct {
			name   string
			stream []byte
			code   StatusCode
		}{fmt.Sprintf("text % x", bad), maskedFrame(true, opText, []byte(bad)), StatusInvalidFramePayloadData})
	}
	for _, tc := range cases {
		for chunk := 1; chunk <= len(tc.stream); chunk++ {
			_, err := driveServerParser(tc.stream, chunk, &Options{ReadLimit: 100})
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Fatalf("%s, chunk %d: got %v, want code %d", tc.name, chunk, err, tc.code)
			}
		}
	}
	// Fail fast: an invalid byte is reported before the rest of its frame.
	head := maskedFrame(true, opText, append([]byte("abc\xff"), make([]byte, 500)...))[:8+4]
	for chunk := 1; chunk <= len(head); chunk++ {
		if _, err := driveServerParser(head, chunk, nil); err == nil {
			t.Fatalf("chunk %d: invalid UTF-8 not reported before the frame was complete", chunk)
		}
	}
	// DisableUTF8Check lets invalid text through, as on a Conn.
	if ev, err := driveServerParser(maskedFrame(true, opText, []byte("\xff")), 1, &Options{DisableUTF8Check: true}); err != nil || len(ev) != 1 {
		t.Fatalf("with DisableUTF8Check: %v, %v", ev, err)
	}
}

// TestServerParserLeft: each data event says how much of its frame is
// still to come, so that a caller can size the buffer it gathers into.
func TestServerParserLeft(t *testing.T) {
	stream := maskedFrame(true, opBinary, bytes.Repeat([]byte{7}, 300)) // 8-byte header
	var s ServerParser
	s.Init(nil)
	var lefts, between []int64
	var sizes []int
	for off := 0; off < len(stream); off += 100 {
		b := stream[off:min(off+100, len(stream))]
		for len(b) > 0 {
			n, ev, err := s.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			b = b[n:]
			if ev.Kind == ParsedData {
				lefts = append(lefts, ev.Left)
				sizes = append(sizes, len(ev.Payload))
				if got := s.PayloadLeft(); got != ev.Left {
					t.Fatalf("PayloadLeft %d after an event with Left %d", got, ev.Left)
				}
			}
		}
		between = append(between, s.PayloadLeft())
	}
	if fmt.Sprint(between) != "[208 108 8 0]" {
		t.Fatalf("PayloadLeft after each piece %v, want [208 108 8 0]", between)
	}
	ping := maskedFrame(true, opPing, []byte("abc"))
	if n, _, err := s.Parse(ping[:7]); err != nil || n != 7 || s.PayloadLeft() != 0 {
		t.Fatalf("inside a ping's payload: Parse %d, %v; PayloadLeft %d, want 7, nil, 0", n, err, s.PayloadLeft())
	}
	if fmt.Sprint(sizes) != "[92 100 100 8]" || fmt.Sprint(lefts) != "[208 108 8 0]" {
		t.Fatalf("payload sizes %v with Left %v, want [92 100 100 8] with [208 108 8 0]", sizes, lefts)
	}
}
