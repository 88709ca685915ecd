package websocket

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
)

// answerFor runs AnswerUpgrade on the RFC 6455 sample request with the
// given Sec-WebSocket-Extensions lines.
func answerFor(t *testing.T, opts *AcceptOptions, ext ...string) (string, Agreement, error) {
	t.Helper()
	req := "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, e := range ext {
		req += "Sec-WebSocket-Extensions: " + e + "\r\n"
	}
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(req + "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	resp, agreed, err := AnswerUpgrade(r, opts)
	return string(resp), agreed, err
}

func TestAnswerUpgradeDeflate(t *testing.T) {
	const head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	on := &AcceptOptions{Options: Options{Compression: CompressionOptions{Enabled: true}}}
	for _, tt := range []struct {
		name     string
		opts     *AcceptOptions
		ext      []string
		wantExt  string // "" for no extension
		wantBits int
	}{
		{"off", nil, []string{"permessage-deflate"}, "", 0},
		{"no offer", on, nil, "", 0},
		{"plain offer", on, []string{"permessage-deflate"},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15},
		{"browser offer", on, []string{"permessage-deflate; client_max_window_bits"},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15},
		{"client bounds the server's window", on, []string{"permessage-deflate; server_max_window_bits=10"},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10", 10},
		{"server bounds its own window", &AcceptOptions{Options: Options{Compression: CompressionOptions{Enabled: true, ServerMaxWindowBits: 12}}},
			[]string{"permessage-deflate"},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12", 12},
		{"unusable first offer, usable second", on, []string{"permessage-deflate; server_max_window_bits=7, permessage-deflate"},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15},
		{"malformed header", on, []string{"permessage-deflate; =x"}, "", 0},
		{"other extension only", on, []string{"x-webkit-deflate-frame"}, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, agreed, err := answerFor(t, tt.opts, tt.ext...)
			want := head
			if tt.wantExt != "" {
				want += "\r\nSec-WebSocket-Extensions: " + tt.wantExt
			}
			want += "\r\n\r\n"
			if err != nil || resp != want || agreed != (Agreement{DeflateWindowBits: tt.wantBits}) {
				t.Fatalf("AnswerUpgrade = %q, %+v, %v;\nwant %q, bits %d", resp, agreed, err, want, tt.wantBits)
			}
		})
	}
}

func TestAnswerUpgradeInvalidCompressionOptions(t *testing.T) {
	resp, agreed, err := answerFor(t, &AcceptOptions{Options: Options{Compression: CompressionOptions{Enabled: true, Level: 12}}}, "permessage-deflate")
	var he *HandshakeError
	if !errors.As(err, &he) || he.Status != http.StatusInternalServerError || he.Check != CheckOptions || he.Err == nil ||
		he.Err.Error() != "websocket: CompressionOptions.Level is 12, want 0..9" {
		t.Fatalf("error %#v, want a 500 CheckOptions HandshakeError wrapping the Level error", err)
	}
	if !strings.HasPrefix(resp, "HTTP/1.1 500 Internal Server Error\r\n") || agreed != (Agreement{}) {
		t.Fatalf("response %q, agreement %+v", resp, agreed)
	}
}

// parseAll feeds stream to s at once and returns the payload of the one
// data message in it, joined, and whether its frames said Compressed.
func parseAll(t *testing.T, s *ServerParser, stream []byte) (typ MessageType, payload []byte, compressed bool, err error) {
	t.Helper()
	for len(stream) > 0 {
		n, ev, err := s.Parse(stream)
		if err != nil {
			return 0, nil, false, err
		}
		stream = stream[n:]
		if ev.Kind == ParsedData {
			payload = append(payload, ev.Payload...)
			typ, compressed = ev.Type, ev.Compressed
		}
	}
	return typ, payload, compressed, nil
}

func TestServerParserCompressedMessage(t *testing.T) {
	text := strings.Repeat(`{"channel":"prices","data":{"bid":101.5,"ask":101.7}}`, 40)
	z := pmdDeflate(t, []byte(text), nil, 6)
	// Three frames: RSV1 on the first only (RFC 7692 §6.1).
	third := len(z) / 3
	stream := append(pmdFrame(0x40|0x1, z[:third]), pmdFrame(0x0, z[third:2*third])...)
	stream = append(stream, pmdFrame(0x80, z[2*third:])...)

	var s ServerParser
	s.Init(nil)
	s.SetAgreement(Agreement{DeflateWindowBits: 15})
	if s.DeflateWindowBits() != 15 {
		t.Fatalf("DeflateWindowBits = %d, want 15", s.DeflateWindowBits())
	}
	typ, payload, compressed, err := parseAll(t, &s, bytes.Clone(stream))
	if err != nil || typ != MessageText || !compressed || !bytes.Equal(payload, z) {
		t.Fatalf("parsed %v %v compressed=%v (%d bytes), want the compressed text payload", typ, err, compressed, len(payload))
	}
	got, err := s.Inflate([]byte("prefix:"), payload, typ)
	if err != nil || string(got) != "prefix:"+text {
		t.Fatalf("Inflate = %.40q…, %v; want prefix:%.30q…", got, err, text)
	}

	// Without the agreement RSV1 is a protocol error, as on Conn.
	var plain ServerParser
	plain.Init(nil)
	_, _, _, err = parseAll(t, &plain, bytes.Clone(stream))
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != StatusProtocolError {
		t.Fatalf("RSV1 without permessage-deflate: %v, want 1002", err)
	}
	// An agreement without deflate turns it off again.
	s.Init(nil)
	s.SetAgreement(Agreement{Subprotocol: "chat"})
	if _, _, _, err = parseAll(t, &s, bytes.Clone(stream)); !errors.As(err, &pe) || pe.Code != StatusProtocolError || s.DeflateWindowBits() != 0 {
		t.Fatalf("RSV1 after an agreement without deflate: %v (bits %d), want 1002", err, s.DeflateWindowBits())
	}
}

func TestInflateChecks(t *testing.T) {
	parser := func(o *Options) *ServerParser {
		var s ServerParser
		s.Init(o)
		s.SetAgreement(Agreement{DeflateWindowBits: 15})
		return &s
	}
	hundred := bytes.Repeat([]byte("a"), 100)
	for _, tt := range []struct {
		name    string
		opts    *Options
		payload []byte
		typ     MessageType
		want    string     // the message, when no error
		code    StatusCode // the error's close code, 0 for none
		reason  string
	}{
		{"at the limit", &Options{ReadLimit: 100}, pmdDeflate(t, hundred, nil, 6), MessageBinary, string(hundred), 0, ""},
		{"one past the limit", &Options{ReadLimit: 100}, pmdDeflate(t, append(hundred, 'a'), nil, 6), MessageBinary, "",
			StatusMessageTooBig, "message inflates to more than the limit of 100 bytes"},
		{"a bomb", &Options{ReadLimit: 1 << 20}, pmdDeflate(t, make([]byte, 64<<20), nil, 9), MessageBinary, "",
			StatusMessageTooBig, "message inflates to more than the limit of 1048576 bytes"},
		{"not DEFLATE", nil, []byte{0xff, 0xff, 0xff, 0xff}, MessageBinary, "",
			StatusInvalidFramePayloadData, "compressed message is not valid DEFLATE data"},
		{"cut inside a stored block", nil, pmdDeflate(t, []byte(strings.Repeat("hello world ", 50)), nil, 0)[:20], MessageBinary, "",
			StatusInvalidFramePayloadData, "compressed message is not valid DEFLATE data"},
		{"invalid UTF-8 text", nil, pmdDeflate(t, []byte("abc\xff"), nil, 6), MessageText, "",
			StatusInvalidFramePayloadData, "text message is not valid UTF-8"},
		{"text cut inside a character", nil, pmdDeflate(t, []byte("abc\xe2\x82"), nil, 6), MessageText, "",
			StatusInvalidFramePayloadData, "text message is not valid UTF-8"},
		{"invalid UTF-8 unchecked", &Options{DisableUTF8Check: true}, pmdDeflate(t, []byte("abc\xff"), nil, 6), MessageText, "abc\xff", 0, ""},
		{"binary is not checked", nil, pmdDeflate(t, []byte("abc\xff"), nil, 6), MessageBinary, "abc\xff", 0, ""},
		{"empty", nil, pmdDeflate(t, nil, nil, 6), MessageText, "", 0, ""},
		// RFC 7692 §7.2.3.6: an empty message compresses to 00; no bytes
		// at all are not DEFLATE data, for Conn too.
		{"empty payload", nil, nil, MessageText, "", StatusInvalidFramePayloadData, "compressed message is not valid DEFLATE data"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parser(tt.opts).Inflate([]byte("x"), tt.payload, tt.typ)
			if tt.code == 0 {
				if err != nil || string(got) != "x"+tt.want {
					t.Fatalf("Inflate = %.60q, %v; want x%.60q", got, err, tt.want)
				}
				return
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != tt.code || pe.Reason != tt.reason || string(got) != "x" {
				t.Fatalf("Inflate = %.20q, %v; want dst unchanged and %d %q", got, err, tt.code, tt.reason)
			}
		})
	}
}

func TestAppendCompressed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 50<<10)
	for i := range random {
		random[i] = byte(rng.IntN(256))
	}
	// Repeats 2000 bytes apart: reachable with a 12-bit window, not with 10.
	var far bytes.Buffer
	for far.Len() < 64<<10 {
		far.Write(random[:2000])
	}
	for _, tt := range []struct {
		name  string
		msg   []byte
		bits  int
		level int
	}{
		{"empty", nil, 15, 0},
		{"short", []byte("hello"), 15, 1},
		{"random", random, 15, 1},
		{"far repeats, 15 bits", far.Bytes(), 15, 0},
		{"far repeats, 12 bits", far.Bytes(), 12, 6},
		{"far repeats, 10 bits", far.Bytes(), 10, 9},
		{"far repeats, 8 bits", far.Bytes(), 8, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			z := AppendCompressed([]byte("head"), tt.msg, tt.bits, tt.level)
			if string(z[:4]) != "head" {
				t.Fatalf("dst's bytes were changed: %q", z[:4])
			}
			z = z[4:]
			if bytes.HasSuffix(z, pmdTail) && len(tt.msg) > 0 {
				t.Fatalf("the 00 00 ff ff tail was not removed: % x", z[max(0, len(z)-6):])
			}
			got, err := pmdInflate(z, nil)
			if err != nil || !bytes.Equal(got, tt.msg) {
				t.Fatalf("inflates to %d bytes, %v; want the %d bytes sent", len(got), err, len(tt.msg))
			}
			window := 1 << tt.bits
			w := &pmdWalker{window: window}
			if _, err := w.message(z); err != nil {
				t.Fatalf("walker: %v (window %d)", err, window)
			}
			if w.maxDist > window {
				t.Fatalf("a back-reference reaches %d bytes back, past the window of %d", w.maxDist, window)
			}
			if strings.HasPrefix(tt.name, "far repeats") && tt.bits >= 12 {
				if w.maxDist != 2000 || len(z) > len(tt.msg)/10 {
					t.Fatalf("%d-bit window: longest distance %d, %d bytes compressed; want 2000 and far smaller than %d",
						tt.bits, w.maxDist, len(z), len(tt.msg))
				}
			}
			// The parser inflates what AppendCompressed made.
			var s ServerParser
			s.Init(nil)
			s.SetAgreement(Agreement{DeflateWindowBits: 15})
			if got, err := s.Inflate(nil, z, MessageBinary); err != nil || !bytes.Equal(got, tt.msg) {
				t.Fatalf("ServerParser.Inflate: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestInflateFaultOrder checks that where a compressed text message both
// holds bytes that are not UTF-8 and inflates past the limit, the first
// fault in its bytes decides the close code, whatever inflates it and
// however much at a time: Conn's Read (which inflates up to the limit at
// once), Conn's Reader read in small pieces, and ServerParser.Inflate.
func TestInflateFaultOrder(t *testing.T) {
	const limit = 1024
	for _, tt := range []struct {
		name string
		text string
		code StatusCode
	}{
		{"bad UTF-8 before the limit", "ab\xffcd" + strings.Repeat("z", limit), StatusInvalidFramePayloadData},
		{"bad UTF-8 after the limit", strings.Repeat("z", limit) + "ab\xffcd", StatusMessageTooBig},
		{"bad UTF-8 straddling the limit", strings.Repeat("z", limit-1) + "\xe2\x28\xa1", StatusMessageTooBig},
		{"valid text past the limit", strings.Repeat("z", limit+1), StatusMessageTooBig},
	} {
		t.Run(tt.name, func(t *testing.T) {
			z := pmdDeflate(t, []byte(tt.text), nil, 6)
			stream := pmdFrame(0xC1, z)
			opts := &Options{ReadLimit: limit}
			codeOf := func(err error) StatusCode {
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Fatalf("error %v, want a *ProtocolError", err)
				}
				return pe.Code
			}
			newConn := func() *Conn {
				c := NewConn(&fzStream{data: bytes.Clone(stream)}, nil, RoleServer, "", opts)
				c.setupDeflate(deflateParams{serverNoContextTakeover: true, clientNoContextTakeover: true,
					serverMaxWindowBits: 15, clientMaxWindowBits: 15}, &CompressionOptions{Enabled: true})
				t.Cleanup(func() { c.CloseNow() })
				return c
			}
			ctx := t.Context()
			if _, _, err := newConn().Read(ctx); codeOf(err) != tt.code {
				t.Errorf("Conn.Read: %v, want %d", err, tt.code)
			}
			_, r, err := newConn().Reader(ctx)
			if err == nil {
				buf := make([]byte, 7)
				for err == nil {
					_, err = r.Read(buf)
				}
			}
			if codeOf(err) != tt.code {
				t.Errorf("Conn.Reader in 7-byte reads: %v, want %d", err, tt.code)
			}
			var s ServerParser
			s.Init(opts)
			s.SetAgreement(Agreement{DeflateWindowBits: 15})
			if _, err := s.Inflate(nil, z, MessageText); codeOf(err) != tt.code {
				t.Errorf("ServerParser.Inflate: %v, want %d", err, tt.code)
			}
		})
	}
}

// TestWindowBitsOutOfRangePanic checks that AppendCompressed and
// SetAgreement refuse a window no handshake agrees to, rather than
// compress for a peer that did not agree (0) or guess a window.
func TestWindowBitsOutOfRangePanic(t *testing.T) {
	for _, bits := range []int{-1, 0, 7, 16} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), fmt.Sprintf("window bits %d, want 8 to 15", bits)) {
					t.Errorf("AppendCompressed with %d bits: panic %v", bits, r)
				}
			}()
			AppendCompressed(nil, []byte("x"), bits, 0)
		}()
		if bits == 0 {
			continue // SetAgreement: no permessage-deflate
		}
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), fmt.Sprintf("window bits %d, want 8 to 15", bits)) {
					t.Errorf("SetAgreement with %d bits: panic %v", bits, r)
				}
			}()
			var s ServerParser
			s.Init(nil)
			s.SetAgreement(Agreement{DeflateWindowBits: bits})
		}()
	}
}
