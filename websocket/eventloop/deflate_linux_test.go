//go:build linux

package eventloop

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// End-to-end tests of permessage-deflate (RFC 7692) in the event loop: a
// raw client deflates what it sends with compress/flate and inflates what
// it gets back with it, independently of the package's own codec.

// noTakeover is the answer to a plain offer: the server always imposes no
// context takeover both ways.
const noTakeover = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// deflateOptions returns server options with permessage-deflate on, co's
// other fields and readLimit.
func deflateOptions(co websocket.CompressionOptions, readLimit int64) *websocket.AcceptOptions {
	co.Enabled = true
	return &websocket.AcceptOptions{Options: websocket.Options{Compression: co, ReadLimit: readLimit}}
}

// requestOffering is the test request with a Sec-WebSocket-Extensions
// line, none when offer is "".
func requestOffering(addr, offer string) string {
	req := requestFor(addr)
	if offer == "" {
		return req
	}
	return strings.Replace(req, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: "+offer+"\r\n\r\n", 1)
}

// openOffer dials addr, offers offer and returns the peer with the 101's
// Sec-WebSocket-Extensions lines.
func openOffer(t *testing.T, addr, offer string) (*peer, []string) {
	t.Helper()
	p := dialPeer(t, addr, nil)
	p.write([]byte(requestOffering(addr, offer)))
	return p, p.switched()
}

// compressedFrame is a masked client frame with RSV1 set.
func compressedFrame(fin bool, op byte, payload []byte) []byte {
	f := frame(fin, op, payload)
	f[0] |= 0x40
	return f
}

// serverFrame encodes an unmasked final server frame whose first byte is b0.
func serverFrame(b0 byte, payload []byte) []byte {
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// readRawFrame reads one server frame, whatever its first byte, and
// returns it whole (raw) and its first byte and payload. The frame must be
// unmasked and its length in the shortest form.
func (p *peer) readRawFrame() (raw []byte, b0 byte, payload []byte) {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(waitFor))
	var h [2]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		p.t.Fatalf("reading a frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		p.t.Fatalf("frame header % x: masked", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var x [2]byte
		if _, err := io.ReadFull(p.br, x[:]); err != nil {
			p.t.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		if _, err := io.ReadFull(p.br, x[:]); err != nil {
			p.t.Fatal(err)
		}
		n = binary.BigEndian.Uint64(x[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(p.br, payload); err != nil {
		p.t.Fatalf("reading a %d-byte payload: %v", n, err)
	}
	return serverFrame(h[0], payload), h[0], payload
}

// expectPlain reads a frame and checks it is exactly the unmasked final
// frame with first byte b0 (0x81, 0x82, 0x8A...) and payload msg.
func (p *peer) expectPlain(b0 byte, msg []byte) {
	p.t.Helper()
	raw, got, payload := p.readRawFrame()
	if want := serverFrame(b0, msg); !bytes.Equal(raw, want) {
		p.t.Fatalf("got frame %#x with %d-byte payload %q, want %#x with %q", got, len(payload), trunc(payload), b0, trunc(msg))
	}
}

// expectCompressed reads a frame and checks it is one final frame with
// RSV1 set and first byte b0 (0xC1 or 0xC2), whose payload is exactly
// websocket.AppendCompressed's for msg with bits and level, and inflates
// (with compress/flate) to msg. It returns the payload.
func (p *peer) expectCompressed(b0 byte, msg []byte, bits, level int) []byte {
	p.t.Helper()
	_, got, payload := p.readRawFrame()
	if got != b0 {
		p.t.Fatalf("got a frame with first byte %#x and %d-byte payload, want %#x", got, len(payload), b0)
	}
	if inflated := pmdInflate(p.t, payload); !bytes.Equal(inflated, msg) {
		p.t.Fatalf("the payload inflates to %d bytes %q, want %d bytes %q", len(inflated), trunc(inflated), len(msg), trunc(msg))
	}
	if want := websocket.AppendCompressed(nil, msg, bits, level); !bytes.Equal(payload, want) {
		p.t.Fatalf("payload % x, want % x (window %d, level %d)", trunc(payload), trunc(want), bits, level)
	}
	return payload
}

// expectFailure reads the close frame with code and reason, then EOF, and
// checks OnClose got a *websocket.ProtocolError with code.
func (p *peer) expectFailure(e *ends, code int, reason string) {
	p.t.Helper()
	p.expectClose(code, reason)
	p.expectEOF()
	var pe *websocket.ProtocolError
	if err := e.next(p.t); !errors.As(err, &pe) || int(pe.Code) != code || pe.Reason != reason {
		p.t.Fatalf("OnClose got %v, want a *websocket.ProtocolError with %d %q", err, code, reason)
	}
}

// pmdDeflate compresses msg as a permessage-deflate payload, with
// compress/flate: the data, a sync flush, its final 00 00 ff ff removed.
func pmdDeflate(t *testing.T, msg []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(msg)
	w.Flush()
	z := b.Bytes()
	if !bytes.HasSuffix(z, []byte{0, 0, 0xff, 0xff}) {
		t.Fatalf("compress/flate's flush ends % x", z[max(0, len(z)-4):])
	}
	return z[:len(z)-4]
}

// pmdInflate inflates a permessage-deflate payload with compress/flate:
// the 00 00 ff ff put back, then an empty final stored block.
func pmdInflate(t *testing.T, payload []byte) []byte {
	t.Helper()
	src := append(bytes.Clone(payload), 0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff)
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(src)))
	if err != nil {
		t.Fatalf("inflating % x: %v", trunc(payload), err)
	}
	return out
}

// jsonish is n bytes of repetitive JSON, as an API would send.
func jsonish(n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, `{"id":%d,"name":"item %d","tags":["a","b"],"ok":true},`, i, i%7)
	}
	return b[:n]
}

// randomBytes is n bytes that do not compress, the same for a seed.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// received is a message OnMessage got.
type received struct {
	typ websocket.MessageType
	p   []byte
}

// echoRecording returns an OnMessage that records each message (a copy)
// and echoes it with Conn.Write, and the channel it records to.
func echoRecording() (func(*Conn, websocket.MessageType, []byte), chan received) {
	ch := make(chan received, 100)
	return func(c *Conn, typ websocket.MessageType, p []byte) {
		ch <- received{typ, bytes.Clone(p)}
		c.Write(typ, p)
	}, ch
}

// expectReceived checks the next message OnMessage got.
func expectReceived(t *testing.T, ch <-chan received, typ websocket.MessageType, want []byte) {
	t.Helper()
	select {
	case m := <-ch:
		if m.typ != typ || !bytes.Equal(m.p, want) {
			t.Fatalf("OnMessage got %v %d bytes %q, want %v %d bytes %q", m.typ, len(m.p), trunc(m.p), typ, len(want), trunc(want))
		}
	case <-time.After(waitFor):
		t.Fatalf("OnMessage was not called (want %d bytes %q)", len(want), trunc(want))
	}
}

// TestDeflateNegotiation checks the exact Sec-WebSocket-Extensions answer
// to offers, and that the connection then works as agreed: compressed
// both ways when the extension was agreed, and otherwise plain, with RSV1
// from the client failing the connection with 1002.
func TestDeflateNegotiation(t *testing.T) {
	on := deflateOptions(websocket.CompressionOptions{}, 0)
	cases := []struct {
		name   string
		opts   *websocket.AcceptOptions
		offer  string
		answer string // "" for no extension
		bits   int    // the server's window when agreed
	}{
		{"plain offer", on, "permessage-deflate", noTakeover, 15},
		{"client_max_window_bits without a value", on, "permessage-deflate; client_max_window_bits", noTakeover, 15},
		{"client_max_window_bits bounded by the server",
			deflateOptions(websocket.CompressionOptions{ClientMaxWindowBits: 10}, 0),
			"permessage-deflate; client_max_window_bits", noTakeover + "; client_max_window_bits=10", 15},
		{"client_max_window_bits bound not offered",
			deflateOptions(websocket.CompressionOptions{ClientMaxWindowBits: 10}, 0),
			"permessage-deflate", noTakeover, 15},
		{"server_max_window_bits asked", on, "permessage-deflate; server_max_window_bits=10", noTakeover + "; server_max_window_bits=10", 10},
		{"server_max_window_bits imposed",
			deflateOptions(websocket.CompressionOptions{ServerMaxWindowBits: 12}, 0),
			"permessage-deflate; server_max_window_bits=14", noTakeover + "; server_max_window_bits=12", 12},
		{"context takeover offered both ways", on, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", noTakeover, 15},
		{"first acceptable offer", on, "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=7, permessage-deflate; client_no_context_takeover", noTakeover, 15},
		{"unknown parameter", on, "permessage-deflate; mux", "", 0},
		{"malformed header", on, "permessage-deflate; ; =x", "", 0},
		{"malformed quoted value", on, `permessage-deflate; server_max_window_bits="10`, "", 0},
		{"no offer", on, "", "", 0},
		{"compression not enabled", nil, "permessage-deflate; client_max_window_bits", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnds()
			onMessage, got := echoRecording()
			addr := startServer(t, &Server{Loops: 1, Options: tc.opts, OnMessage: onMessage, OnClose: e.onClose})
			p, answer := openOffer(t, addr, tc.offer)
			if tc.answer == "" {
				if len(answer) != 0 {
					t.Fatalf("Sec-WebSocket-Extensions %q, want none", answer)
				}
			} else if len(answer) != 1 || answer[0] != tc.answer {
				t.Fatalf("Sec-WebSocket-Extensions %q, want %q", answer, tc.answer)
			}
			msg := jsonish(300)
			if tc.answer == "" {
				// Plain both ways, even past the threshold.
				p.write(frame(true, 0x1, msg))
				expectReceived(t, got, websocket.MessageText, msg)
				p.expectPlain(0x81, msg)
				p.write(compressedFrame(true, 0x1, pmdDeflate(t, msg)))
				p.expectFailure(e, 1002, "reserved bits 0x4 set without a negotiated extension")
				return
			}
			p.write(compressedFrame(true, 0x1, pmdDeflate(t, msg)))
			expectReceived(t, got, websocket.MessageText, msg)
			p.expectCompressed(0xC1, msg, tc.bits, 0)
		})
	}
}

// TestDeflateServerWindow: with server_max_window_bits=10 agreed, the
// server's compressor refers back at most 1024 bytes. A message made of a
// 2 KiB random block twice can then not refer to the first copy: its
// payload is as long as the message; with the full window it is about
// half.
func TestDeflateServerWindow(t *testing.T) {
	addr := startServer(t, &Server{Loops: 1, Options: deflateOptions(websocket.CompressionOptions{}, 0)})
	block := randomBytes(2048, 1)
	msg := append(bytes.Clone(block), block...)

	p, answer := openOffer(t, addr, "permessage-deflate; server_max_window_bits=10")
	if want := noTakeover + "; server_max_window_bits=10"; len(answer) != 1 || answer[0] != want {
		t.Fatalf("Sec-WebSocket-Extensions %q, want %q", answer, want)
	}
	p.write(frame(true, 0x2, msg))
	if z := p.expectCompressed(0xC2, msg, 10, 0); len(z) < len(msg) {
		t.Fatalf("within a 1 KiB window, a 2 KiB random block repeated 2 KiB later compressed to %d bytes, less than its %d: the compressor referred back too far", len(z), len(msg))
	}

	p, _ = openOffer(t, addr, "permessage-deflate")
	p.write(frame(true, 0x2, msg))
	if z := p.expectCompressed(0xC2, msg, 15, 0); len(z) > len(block)+256 {
		t.Fatalf("with the full window, the repeated block compressed to %d bytes, want about %d", len(z), len(block))
	}
}

// TestDeflateEcho: compressed messages in are delivered inflated; Writes
// from the threshold up go out compressed as one frame with RSV1, smaller
// ones plain; the threshold and level options are applied.
func TestDeflateEcho(t *testing.T) {
	t.Run("default threshold", func(t *testing.T) {
		onMessage, got := echoRecording()
		addr := startServer(t, &Server{Loops: 1, Options: deflateOptions(websocket.CompressionOptions{}, 0), OnMessage: onMessage})
		p, _ := openOffer(t, addr, "permessage-deflate")

		text := jsonish(4096)
		zt := pmdDeflate(t, text)
		p.write(compressedFrame(true, 0x1, zt))
		expectReceived(t, got, websocket.MessageText, text)
		if z := p.expectCompressed(0xC1, text, 15, 0); len(z) >= len(text)/4 {
			t.Fatalf("4 KiB of repetitive JSON compressed to %d bytes", len(z))
		}

		bin := bytes.Repeat([]byte{0, 1, 2, 3, 0xfe, 0xff}, 700)
		p.write(compressedFrame(true, 0x2, pmdDeflate(t, bin)))
		expectReceived(t, got, websocket.MessageBinary, bin)
		p.expectCompressed(0xC2, bin, 15, 0)

		short := []byte("0123456789")
		p.write(compressedFrame(true, 0x1, pmdDeflate(t, short)))
		expectReceived(t, got, websocket.MessageText, short)
		p.expectPlain(0x81, short)

		// An uncompressed message on a connection that agreed to
		// compression is delivered as it is (RSV1 clear).
		p.write(frame(true, 0x2, short))
		expectReceived(t, got, websocket.MessageBinary, short)
		p.expectPlain(0x82, short)
		p.write(frame(true, 0x1, text))
		expectReceived(t, got, websocket.MessageText, text)
		p.expectCompressed(0xC1, text, 15, 0)

		// The default threshold is 64 bytes.
		p.write(frame(true, 0x1, text[:websocket.DefaultCompressionThreshold-1]))
		expectReceived(t, got, websocket.MessageText, text[:websocket.DefaultCompressionThreshold-1])
		p.expectPlain(0x81, text[:websocket.DefaultCompressionThreshold-1])
		p.write(frame(true, 0x1, text[:websocket.DefaultCompressionThreshold]))
		expectReceived(t, got, websocket.MessageText, text[:websocket.DefaultCompressionThreshold])
		p.expectCompressed(0xC1, text[:websocket.DefaultCompressionThreshold], 15, 0)

		// An empty compressed message: an empty stored block (0x00, RFC
		// 7692 §7.2.3.6) or an empty fixed Huffman block (0x02 0x00).
		for _, z := range [][]byte{{0x00}, {0x02, 0x00}} {
			p.write(compressedFrame(true, 0x1, z))
			expectReceived(t, got, websocket.MessageText, []byte{})
			p.expectPlain(0x81, nil)
		}
	})
	t.Run("negative threshold", func(t *testing.T) {
		onMessage, got := echoRecording()
		addr := startServer(t, &Server{Loops: 1, Options: deflateOptions(websocket.CompressionOptions{Threshold: -1}, 0), OnMessage: onMessage})
		p, _ := openOffer(t, addr, "permessage-deflate")
		short := []byte("0123456789")
		p.write(compressedFrame(true, 0x1, pmdDeflate(t, short)))
		expectReceived(t, got, websocket.MessageText, short)
		p.expectCompressed(0xC1, short, 15, 0)
		p.write(frame(true, 0x2, short))
		expectReceived(t, got, websocket.MessageBinary, short)
		p.expectCompressed(0xC2, short, 15, 0)
		p.write(frame(true, 0x2, nil))
		expectReceived(t, got, websocket.MessageBinary, []byte{})
		p.expectCompressed(0xC2, nil, 15, 0)
	})
	t.Run("threshold and level", func(t *testing.T) {
		onMessage, got := echoRecording()
		addr := startServer(t, &Server{Loops: 1, Options: deflateOptions(websocket.CompressionOptions{Threshold: 1000, Level: 9}, 0), OnMessage: onMessage})
		p, _ := openOffer(t, addr, "permessage-deflate")
		text := jsonish(4096)
		p.write(frame(true, 0x1, text[:999]))
		expectReceived(t, got, websocket.MessageText, text[:999])
		p.expectPlain(0x81, text[:999])
		p.write(frame(true, 0x1, text[:1000]))
		expectReceived(t, got, websocket.MessageText, text[:1000])
		p.expectCompressed(0xC1, text[:1000], 15, 9)
		p.write(frame(true, 0x1, text))
		expectReceived(t, got, websocket.MessageText, text)
		if z, z1 := p.expectCompressed(0xC1, text, 15, 9), websocket.AppendCompressed(nil, text, 15, 1); bytes.Equal(z, z1) {
			t.Fatal("level 9 compressed 4 KiB exactly as level 1 does")
		}
	})
}

// fragments returns a compressed message's payload z as three frames:
// RSV1 on the first only, then continuations.
func fragments(op byte, z []byte) [][]byte {
	a, b := len(z)/3, 2*len(z)/3
	return [][]byte{compressedFrame(false, op, z[:a]), frame(false, 0x0, z[a:b]), frame(true, 0x0, z[b:])}
}

// TestDeflateFragmented: a compressed message split into three frames
// (RSV1 on the first only) arrives whole, also when the server gets the
// handshake and the frames one byte at a time.
func TestDeflateFragmented(t *testing.T) {
	onMessage, got := echoRecording()
	addr := startServer(t, &Server{Loops: 1, Options: deflateOptions(websocket.CompressionOptions{}, 0), OnMessage: onMessage})
	text := jsonish(4096)
	z := pmdDeflate(t, text)

	p, _ := openOffer(t, addr, "permessage-deflate")
	p.write(bytes.Join(fragments(0x1, z), nil))
	expectReceived(t, got, websocket.MessageText, text)
	p.expectCompressed(0xC1, text, 15, 0)
	bin := randomBytes(3000, 2) // does not compress: longer deflated
	fs := fragments(0x2, pmdDeflate(t, bin))
	for _, f := range fs { // one write per frame
		p.write(f)
	}
	expectReceived(t, got, websocket.MessageBinary, bin)
	p.expectCompressed(0xC2, bin, 15, 0)

	p = dialPeer(t, addr, nil)
	p.c.(*net.TCPConn).SetNoDelay(true)
	stream := append([]byte(requestOffering(addr, "permessage-deflate")), bytes.Join(fragments(0x1, z), nil)...)
	for i := range stream {
		p.write(stream[i : i+1])
	}
	if answer := p.switched(); len(answer) != 1 || answer[0] != noTakeover {
		t.Fatalf("Sec-WebSocket-Extensions %q, want %q", answer, noTakeover)
	}
	expectReceived(t, got, websocket.MessageText, text)
	p.expectCompressed(0xC1, text, 15, 0)
}

// TestDeflateInterleavedPing: pings between the fragments of a compressed
// message are answered at once, and the message arrives intact.
func TestDeflateInterleavedPing(t *testing.T) {
	onMessage, got := echoRecording()
	addr := startServer(t, &Server{Loops: 1, Options: deflateOptions(websocket.CompressionOptions{}, 0), OnMessage: onMessage})
	p, _ := openOffer(t, addr, "permessage-deflate")
	text := jsonish(4096)
	fs := fragments(0x1, pmdDeflate(t, text))
	p.write(fs[0])
	p.write(frame(true, 0x9, []byte("p1")))
	p.expectPlain(0x8A, []byte("p1"))
	p.write(fs[1])
	p.write(frame(true, 0x9, []byte("p2")))
	p.write(fs[2])
	p.expectPlain(0x8A, []byte("p2"))
	expectReceived(t, got, websocket.MessageText, text)
	p.expectCompressed(0xC1, text, 15, 0)
}

// TestDeflateViolations: each way a peer can break permessage-deflate
// fails the connection with its close code and reason, reported to
// OnClose as a *websocket.ProtocolError; a binary message is not checked
// as UTF-8.
func TestDeflateViolations(t *testing.T) {
	e := newEnds()
	onMessage, got := echoRecording()
	addr := startServer(t, &Server{Loops: 1, Options: deflateOptions(websocket.CompressionOptions{}, 0), OnMessage: onMessage, OnClose: e.onClose})
	text := jsonish(4096)
	fs := fragments(0x1, pmdDeflate(t, text))
	badUTF8 := pmdDeflate(t, []byte("valid until here: \xff\xfe and after"))
	cases := []struct {
		name   string
		frames [][]byte
		code   int
		reason string
	}{
		{"RSV1 on a continuation of a compressed message",
			[][]byte{fs[0], compressedFrame(false, 0x0, pmdDeflate(t, nil)), fs[2]}, 1002, "RSV1 set on a continuation frame"},
		{"RSV1 on a continuation of a plain message",
			[][]byte{frame(false, 0x1, []byte("ab")), compressedFrame(true, 0x0, pmdDeflate(t, []byte("cd")))}, 1002, "RSV1 set on a continuation frame"},
		{"RSV1 on a ping", [][]byte{compressedFrame(true, 0x9, []byte("p"))}, 1002, "RSV1 set on a ping frame"},
		{"RSV1 on a close", [][]byte{compressedFrame(true, 0x8, []byte{0x03, 0xe8})}, 1002, "RSV1 set on a close frame"},
		{"RSV2", [][]byte{append([]byte{0xA1}, frame(true, 0x1, []byte("x"))[1:]...)}, 1002, "reserved bits 0x2 set without a negotiated extension"},
		// An empty payload is not one: with 00 00 ff ff appended it is a
		// stored block whose LEN and NLEN disagree (as Conn finds too).
		{"empty payload", [][]byte{compressedFrame(true, 0x2, nil)}, 1007, "compressed message is not valid DEFLATE data"},
		{"not DEFLATE", [][]byte{compressedFrame(true, 0x2, []byte{0xff, 0xff, 0xff, 0xff})}, 1007, "compressed message is not valid DEFLATE data"},
		{"truncated DEFLATE", [][]byte{compressedFrame(true, 0x2, pmdDeflate(t, randomBytes(100, 3))[:40])}, 1007, "compressed message is not valid DEFLATE data"},
		{"text not UTF-8", [][]byte{compressedFrame(true, 0x1, badUTF8)}, 1007, "text message is not valid UTF-8"},
		{"fragmented text not UTF-8", fragments(0x1, badUTF8), 1007, "text message is not valid UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := openOffer(t, addr, "permessage-deflate")
			for _, f := range tc.frames {
				p.write(f)
			}
			p.expectFailure(e, tc.code, tc.reason)
		})
	}
	select {
	case m := <-got:
		t.Fatalf("OnMessage got a %d-byte message from a peer that broke the protocol", len(m.p))
	default:
	}

	p, _ := openOffer(t, addr, "permessage-deflate")
	p.write(compressedFrame(true, 0x2, badUTF8))
	expectReceived(t, got, websocket.MessageBinary, []byte("valid until here: \xff\xfe and after"))
	p.expectPlain(0x82, []byte("valid until here: \xff\xfe and after"))
}

// TestDeflateBomb: the read limit applies to the inflated size. A message
// that inflates to exactly the limit is delivered; one byte more is 1009;
// 16 KiB that inflate to 16 MiB are 1009 at once, the process allocating
// meanwhile what the 1 MiB limit needs (the inflated buffer grows to about
// twice the limit; some 4 MiB in all) and not the 16 MiB, let alone the
// steps of growing to it.
func TestDeflateBomb(t *testing.T) {
	const limit = 1 << 20
	e := newEnds()
	lens := make(chan int, 10)
	addr := startServer(t, &Server{
		Loops:   1,
		Options: deflateOptions(websocket.CompressionOptions{}, limit),
		OnMessage: func(c *Conn, _ websocket.MessageType, p []byte) {
			lens <- len(p)
			c.Write(websocket.MessageBinary, p[:10])
		},
		OnClose: e.onClose,
	})
	zeros := make([]byte, 16<<20)
	bomb := pmdDeflate(t, zeros)
	if len(bomb) > 20<<10 {
		t.Fatalf("16 MiB of zeros deflate to %d bytes", len(bomb))
	}
	atLimit := compressedFrame(true, 0x2, pmdDeflate(t, zeros[:limit]))
	pastLimit := compressedFrame(true, 0x2, pmdDeflate(t, zeros[:limit+1]))
	bombFrame := compressedFrame(true, 0x2, bomb)

	p, _ := openOffer(t, addr, "permessage-deflate")
	p.write(atLimit)
	select {
	case n := <-lens:
		if n != limit {
			t.Fatalf("OnMessage got %d bytes, want %d", n, limit)
		}
	case <-time.After(waitFor):
		t.Fatal("a message of exactly the read limit was not delivered")
	}
	p.expectPlain(0x82, zeros[:10])

	reason := fmt.Sprintf("message inflates to more than the limit of %d bytes", limit)
	p.write(pastLimit)
	p.expectFailure(e, 1009, reason)

	p, _ = openOffer(t, addr, "permessage-deflate")
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	p.write(bombFrame)
	p.expectClose(1009, reason)
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if took > 2*time.Second {
		t.Errorf("the 1009 came %v after the bomb", took)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 12<<20 {
		t.Errorf("the process allocated %d KiB while failing a bomb under a 1 MiB limit", grown>>10)
	}
	var pe *websocket.ProtocolError
	if err := e.next(t); !errors.As(err, &pe) || pe.Code != 1009 || pe.Reason != reason {
		t.Fatalf("OnClose got %v, want a *websocket.ProtocolError with 1009", err)
	}
	if len(lens) != 0 {
		t.Fatalf("OnMessage was called for a message past the limit")
	}
}

// TestDeflateBroadcast: Broadcast sends its frame uncompressed, even to a
// connection that agreed to compression (whose Writes are compressed).
func TestDeflateBroadcast(t *testing.T) {
	opened := make(chan *Conn, 1)
	s := &Server{Loops: 1, Options: deflateOptions(websocket.CompressionOptions{}, 0), OnOpen: func(c *Conn) { opened <- c }}
	addr := startServer(t, s)
	p, answer := openOffer(t, addr, "permessage-deflate")
	if len(answer) != 1 || answer[0] != noTakeover {
		t.Fatalf("Sec-WebSocket-Extensions %q, want %q", answer, noTakeover)
	}
	var c *Conn
	select {
	case c = <-opened:
	case <-time.After(waitFor):
		t.Fatal("OnOpen was not called")
	}
	msg := jsonish(200)
	if err := s.Broadcast(websocket.MessageText, msg, []*Conn{c}); err != nil {
		t.Fatal(err)
	}
	raw, _, _ := p.readRawFrame()
	if want := append([]byte{0x81, 126, 0x00, 200}, msg...); !bytes.Equal(raw, want) {
		t.Fatalf("broadcast frame % x, want % x", trunc(raw), trunc(want))
	}
	if err := c.Write(websocket.MessageText, msg); err != nil {
		t.Fatal(err)
	}
	p.expectCompressed(0xC1, msg, 15, 0)
	if err := s.Broadcast(websocket.MessageBinary, msg, []*Conn{c}); err != nil {
		t.Fatal(err)
	}
	p.expectPlain(0x82, msg)
}

// countingConn counts the bytes read and written through a net.Conn.
type countingConn struct {
	net.Conn
	mu          sync.Mutex
	read, wrote int
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.read += n
	c.mu.Unlock()
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	c.wrote += n
	c.mu.Unlock()
	return n, err
}

func (c *countingConn) counts() (read, wrote int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read, c.wrote
}

// TestDeflateGoClient: the package's own client, with compression,
// against the event loop's echo: the negotiation agrees, 50 messages of
// every size class come back exactly, and what repeats crosses the wire
// compressed both ways.
func TestDeflateGoClient(t *testing.T) {
	onMessage, got := echoRecording()
	addr := startServer(t, &Server{Options: deflateOptions(websocket.CompressionOptions{}, 0), OnMessage: onMessage})
	var cc *countingConn
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{
		Options: websocket.Options{Compression: websocket.CompressionOptions{Enabled: true}},
		NetDialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if err != nil {
				return nil, err
			}
			cc = &countingConn{Conn: c}
			return cc, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if ext := resp.Header.Values("Sec-WebSocket-Extensions"); len(ext) != 1 || ext[0] != noTakeover {
		t.Fatalf("Sec-WebSocket-Extensions %q, want %q", ext, noTakeover)
	}

	letters := func(b []byte) []byte { // random bytes made valid text
		for i := range b {
			b[i] = 'a' + b[i]%26
		}
		return b
	}
	sizes := []int{0, 1, 10, 63, 64, 65, 125, 126, 1000, 1024, 4096, 65535, 65536, 100 << 10}
	var msgs []received
	for i := 0; len(msgs) < 50; i++ {
		n := sizes[i%len(sizes)]
		var m received
		switch i % 4 {
		case 0:
			m = received{websocket.MessageText, jsonish(n)}
		case 1:
			m = received{websocket.MessageBinary, randomBytes(n, uint64(i))}
		case 2:
			m = received{websocket.MessageText, letters(randomBytes(n, uint64(i)))}
		case 3:
			m = received{websocket.MessageBinary, bytes.Repeat([]byte{byte(i)}, n)}
		}
		msgs = append(msgs, m)
	}
	msgs = append(msgs, received{websocket.MessageBinary, randomBytes(100<<10, 99)}, received{websocket.MessageText, jsonish(100 << 10)})
	for i, m := range msgs {
		r0, w0 := cc.counts()
		if err := conn.Write(ctx, m.typ, m.p); err != nil {
			t.Fatalf("message %d: Write: %v", i, err)
		}
		expectReceived(t, got, m.typ, m.p)
		typ, p, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: Read: %v", i, err)
		}
		if typ != m.typ || !bytes.Equal(p, m.p) {
			t.Fatalf("message %d: echo %v of %d bytes, want %v of %d", i, typ, len(p), m.typ, len(m.p))
		}
		r1, w1 := cc.counts()
		if i == len(msgs)-1 { // 100 KiB of JSON, both ways
			if r1-r0 > 10<<10 || w1-w0 > 10<<10 {
				t.Fatalf("100 KiB of JSON took %d bytes out and %d back: not compressed", w1-w0, r1-r0)
			}
		}
	}
	if err := conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
}

// TestServeInvalidCompression: Serve checks the compression options at
// once and returns the error without serving.
func TestServeInvalidCompression(t *testing.T) {
	for _, tc := range []struct {
		co   websocket.CompressionOptions
		want string
	}{
		{websocket.CompressionOptions{Enabled: true, Level: 12}, "eventloop: websocket: CompressionOptions.Level is 12, want 0..9"},
		{websocket.CompressionOptions{Enabled: true, ServerMaxWindowBits: 20}, "eventloop: websocket: CompressionOptions.ServerMaxWindowBits is 20, want 0 or 8..15"},
		{websocket.CompressionOptions{ClientMaxWindowBits: 7}, "eventloop: websocket: CompressionOptions.ClientMaxWindowBits is 7, want 0 or 8..15"},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{
			Options:   &websocket.AcceptOptions{Options: websocket.Options{Compression: tc.co}},
			OnMessage: func(*Conn, websocket.MessageType, []byte) {},
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		select {
		case err := <-served:
			if err == nil || err.Error() != tc.want {
				t.Errorf("Serve with %+v returned %v, want %s", tc.co, err, tc.want)
			}
		case <-time.After(waitFor):
			s.Close()
			t.Fatalf("Serve with %+v is serving", tc.co)
		}
		// Serve closes ln when it returns, as documented: nothing listens.
		if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
			c.Close()
			ln.Close()
			t.Errorf("Serve with %+v returned, and its listener still accepts connections", tc.co)
		}
	}
}

// raceEnabled reports whether the test binary was built with -race, which
// makes sync.Pool drop items at random, so that allocation counts are not
// checked.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// TestDeflateAllocs: in steady state, a compressed echo (a 1 KiB message
// inflated in, deflated out) allocates at most maxAllocs times: the
// decompressor, compressor and buffers are pooled.
func TestDeflateAllocs(t *testing.T) {
	if raceEnabled() {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	const maxAllocs = 0
	addr := startServer(t, &Server{Loops: 1, Options: deflateOptions(websocket.CompressionOptions{}, 0)})
	p, _ := openOffer(t, addr, "permessage-deflate")
	msg := jsonish(1024)
	in := compressedFrame(true, 0x1, pmdDeflate(t, msg))
	p.write(in)
	z := p.expectCompressed(0xC1, msg, 15, 0)
	want := serverFrame(0xC1, z)
	out := make([]byte, len(want))
	echo := func() {
		p.c.Write(in)
		if _, err := io.ReadFull(p.c, out); err != nil || !bytes.Equal(out, want) {
			t.Fatalf("echo: %v, frame % x; want % x", err, trunc(out), trunc(want))
		}
	}
	p.c.SetDeadline(time.Now().Add(waitFor))
	echo() // the pools now hold what an echo needs
	n := testing.AllocsPerRun(200, echo)
	t.Logf("a compressed echo of %d bytes (%d compressed) allocates %v times", len(msg), len(z), n)
	if n > maxAllocs {
		t.Errorf("a compressed echo allocates %v times, want at most %d", n, maxAllocs)
	}
}

// TestDeflateConcurrentClients runs 6 compressing Go clients and one that
// does not offer the extension at once against one server, with io_uring
// and without: each connection's echoes are written by a goroutine of its
// own (Write from outside the loop, under the race detector in the
// suite), every echo must come back exact and in order, and
// Conn.Compression must say which connections agreed.
func TestDeflateConcurrentClients(t *testing.T) {
	for _, noRing := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableIOURing=%v", noRing), func(t *testing.T) {
			var mu sync.Mutex
			agreed := map[string]bool{} // by the client's address
			queues := map[*Conn]chan received{}
			srv := &Server{
				Options:        deflateOptions(websocket.CompressionOptions{}, 0),
				DisableIOURing: noRing,
				OnOpen: func(c *Conn) {
					q := make(chan received, 64)
					mu.Lock()
					agreed[c.RemoteAddr().String()] = c.Compression()
					queues[c] = q
					mu.Unlock()
					go func() {
						for m := range q {
							if err := c.Write(m.typ, m.p); err != nil {
								return
							}
						}
					}()
				},
				OnMessage: func(c *Conn, typ websocket.MessageType, p []byte) {
					mu.Lock()
					q := queues[c]
					mu.Unlock()
					q <- received{typ, bytes.Clone(p)}
				},
				OnClose: func(c *Conn, err error) {
					mu.Lock()
					close(queues[c])
					delete(queues, c)
					mu.Unlock()
				},
			}
			addr := startServer(t, srv)
			const clients, perClient = 7, 60
			errs := make(chan error, clients)
			for k := range clients {
				compress := k < clients-1
				go func() {
					errs <- func() error {
						ctx, cancel := context.WithTimeout(context.Background(), waitFor)
						defer cancel()
						var local string
						conn, _, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{
							Options: websocket.Options{Compression: websocket.CompressionOptions{Enabled: compress}},
							NetDialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
								c, err := (&net.Dialer{}).DialContext(ctx, network, a)
								if err == nil {
									local = c.LocalAddr().String()
								}
								return c, err
							}})
						if err != nil {
							return err
						}
						defer conn.CloseNow()
						for i := range perClient {
							msg := jsonish(i * 97 % 5000)
							typ := websocket.MessageText
							if i%3 == 0 {
								msg, typ = randomBytes(i*31%3000, uint64(k*1000+i)), websocket.MessageBinary
							}
							if err := conn.Write(ctx, typ, msg); err != nil {
								return err
							}
							gt, gp, err := conn.Read(ctx)
							if err != nil {
								return err
							}
							if gt != typ || !bytes.Equal(gp, msg) {
								return fmt.Errorf("client %d message %d: echo %v of %d bytes, want %v of %d", k, i, gt, len(gp), typ, len(msg))
							}
						}
						mu.Lock()
						a, ok := agreed[local]
						mu.Unlock()
						if !ok || a != compress {
							return fmt.Errorf("client %d (offers deflate: %v): Conn.Compression %v (seen: %v)", k, compress, a, ok)
						}
						return conn.Close(websocket.StatusNormalClosure, "")
					}()
				}()
			}
			for range clients {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestDeflateShutdownMidMessage: Shutdown while a compressed message is
// half gathered sends 1001, the rest of the message that still comes is
// dropped (never inflated nor delivered), the peer's answer ends the
// connection as closed by this side, and Shutdown returns nil.
func TestDeflateShutdownMidMessage(t *testing.T) {
	e := newEnds()
	onMessage, got := echoRecording()
	srv := &Server{Options: deflateOptions(websocket.CompressionOptions{}, 0), OnMessage: onMessage, OnClose: e.onClose}
	addr := startServer(t, srv)
	p, _ := openOffer(t, addr, "permessage-deflate")
	fs := fragments(0x1, pmdDeflate(t, jsonish(4096)))
	p.write(fs[0])
	p.write(frame(true, 0x9, []byte("sync"))) // the pong shows the first fragment was read
	p.expectMessage(0xA, []byte("sync"))
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	p.expectClose(1001, "server shutting down")
	for _, f := range fs[1:] {
		p.write(f)
	}
	p.write(frame(true, 0x8, []byte{0x03, 0xE9}))
	p.expectEOF()
	if err := e.next(t); !errors.Is(err, websocket.ErrClosed) {
		t.Fatalf("OnClose got %v, want websocket.ErrClosed (this side closed)", err)
	}
	select {
	case m := <-got:
		t.Fatalf("OnMessage got a %v message of %d bytes after the close frame", m.typ, len(m.p))
	default:
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown returned %v, want nil", err)
	}
}
