package server

// The echo service streams: a raw TCP client (no WebSocket library in the
// way) checks that the first fragment of a message comes back before the
// rest is sent, and that messages at the default limit pass while one byte
// more gets close 1009. Helpers here are prefixed "es".

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// esMaskKey is the masking key of the raw client's frames (RFC 6455 §5.7).
var esMaskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// esPeer is a raw WebSocket client over TCP.
type esPeer struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// esServer starts server.New's handler in httptest with a quiet log.
func esServer(t *testing.T, cfg Config) string {
	t.Helper()
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ts := httptest.NewServer(New(cfg).Handler())
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String()
}

// esOpen connects to addr and performs the opening handshake on /echo.
func esOpen(t *testing.T, addr string) *esPeer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &esPeer{t: t, conn: conn, br: bufio.NewReaderSize(conn, 64<<10)}
	p.write([]byte("GET /echo HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		t.Fatalf("reading the handshake answer: %v", err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake answer %s %v", resp.Status, resp.Header)
	}
	conn.SetReadDeadline(time.Time{})
	return p
}

func (p *esPeer) write(b []byte) {
	p.t.Helper()
	p.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("raw write: %v", err)
	}
}

// writeAsync writes b from another goroutine, for writes that the server
// answers while they are still going on.
func (p *esPeer) writeAsync(b []byte) <-chan error {
	ch := make(chan error, 1)
	p.conn.SetWriteDeadline(time.Now().Add(60 * time.Second))
	go func() {
		_, err := p.conn.Write(b)
		ch <- err
	}()
	return ch
}

// esFrameHeader encodes a masked frame header announcing n payload bytes.
func esFrameHeader(fin bool, op byte, n uint64) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, n)
	}
	return append(b, esMaskKey[:]...)
}

// esFrame encodes a whole masked frame.
func esFrame(fin bool, op byte, payload []byte) []byte {
	b := esFrameHeader(fin, op, uint64(len(payload)))
	n := len(b)
	b = append(b, payload...)
	esMask(b[n:])
	return b
}

// esMask masks p with esMaskKey, eight bytes at a time (the pattern of the
// key repeats every 4 bytes, so every 8 too).
func esMask(p []byte) {
	key8 := binary.LittleEndian.Uint64(append(esMaskKey[:], esMaskKey[:]...))
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^key8)
	}
	for ; i < len(p); i++ {
		p[i] ^= esMaskKey[i&3]
	}
}

type esInFrame struct {
	fin     bool
	op      byte
	payload []byte
}

func (f esInFrame) String() string {
	return fmt.Sprintf("frame{fin=%v op=%#x len=%d}", f.fin, f.op, len(f.payload))
}

// readFrame reads one server frame before deadline; it must be unmasked
// and without RSV bits.
func (p *esPeer) readFrame(deadline time.Time) (esInFrame, error) {
	p.conn.SetReadDeadline(deadline)
	defer p.conn.SetReadDeadline(time.Time{})
	var h [2]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		return esInFrame{}, err
	}
	if h[0]&0x70 != 0 || h[1]&0x80 != 0 {
		return esInFrame{}, fmt.Errorf("server frame header % x has RSV bits or a mask", h)
	}
	f := esInFrame{fin: h[0]&0x80 != 0, op: h[0] & 0x0F}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(p.br, e[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(p.br, e[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > websocket.DefaultReadLimit {
		return f, fmt.Errorf("frame of %d bytes", n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(p.br, f.payload); err != nil {
		return f, err
	}
	return f, nil
}

func (p *esPeer) mustReadFrame(deadline time.Time) esInFrame {
	p.t.Helper()
	f, err := p.readFrame(deadline)
	if err != nil {
		p.t.Fatalf("reading a server frame: %v", err)
	}
	return f
}

// expectClose reads a close frame with code, then TCP EOF.
func (p *esPeer) expectClose(code uint16) {
	p.t.Helper()
	f := p.mustReadFrame(time.Now().Add(10 * time.Second))
	if f.op != 0x8 || !f.fin || len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != code {
		p.t.Fatalf("got %v payload %q, want close %d", f, f.payload, code)
	}
	p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := p.br.ReadByte(); !errors.Is(err, io.EOF) {
		p.t.Fatalf("after the close frame: %v, want TCP EOF", err)
	}
}

// esPattern returns byte i of the test messages: a pattern that does not
// repeat every 4 bytes, so masking mistakes show.
func esPattern(i int) byte { return byte(i*31 + i>>11) }

var (
	esBigOnce sync.Once
	esBig     []byte // esPattern for the default limit and one byte more
)

// esPayload returns n pattern bytes from offset off (a fresh slice).
func esPayload(off, n int) []byte {
	esBigOnce.Do(func() {
		esBig = make([]byte, websocket.DefaultReadLimit+1)
		for i := range esBig {
			esBig[i] = esPattern(i)
		}
	})
	if off+n <= len(esBig) {
		return bytes.Clone(esBig[off : off+n])
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = esPattern(off + i)
	}
	return b
}

// TestEchoStreamsFirstFragmentBack sends the first 64 KiB fragment of a
// binary message and withholds the rest: part of it must come back, as a
// non-final frame, while the message is still unfinished.
func TestEchoStreamsFirstFragmentBack(t *testing.T) {
	addr := esServer(t, Config{Version: "test"})
	p := esOpen(t, addr)
	const firstLen, secondLen, lastLen = 64 << 10, 100000, 12345
	full := esPayload(0, firstLen+secondLen+lastLen)
	p.write(esFrame(false, 0x2, full[:firstLen]))

	var got []byte
	f := p.mustReadFrame(time.Now().Add(5 * time.Second))
	if f.op != 0x2 || f.fin || len(f.payload) == 0 {
		t.Fatalf("first echoed frame is %v, want a non-final binary frame with data", f)
	}
	if !bytes.Equal(f.payload, full[:len(f.payload)]) {
		t.Fatalf("first echoed frame does not match the start of the message")
	}
	got = append(got, f.payload...)

	// Now the rest, in two continuation frames.
	p.write(esFrame(false, 0x0, full[firstLen:firstLen+secondLen]))
	p.write(esFrame(true, 0x0, full[firstLen+secondLen:]))
	deadline := time.Now().Add(10 * time.Second)
	for !f.fin {
		f = p.mustReadFrame(deadline)
		if f.op != 0x0 {
			t.Fatalf("echoed frame %v after the first, want a continuation", f)
		}
		got = append(got, f.payload...)
	}
	if !bytes.Equal(got, full) {
		t.Fatalf("echo of %d bytes differs from the %d bytes sent", len(got), len(full))
	}

	// The connection goes on, and closes cleanly.
	p.write(esFrame(true, 0x1, []byte("after")))
	if f := p.mustReadFrame(time.Now().Add(5 * time.Second)); f.op != 0x1 || !f.fin || string(f.payload) != "after" {
		t.Fatalf("got %v %q, want text \"after\"", f, f.payload)
	}
	p.write(esFrame(true, 0x8, []byte{0x03, 0xE8}))
	p.expectClose(1000)
}

// esSendLarge sends a masked message of n pattern bytes as frames of at
// most frameLen bytes (the last one final unless open), from a goroutine.
func (p *esPeer) esSendLarge(n, frameLen int, open bool) <-chan error {
	var b []byte
	for off := 0; off < n; off += frameLen {
		k := min(frameLen, n-off)
		op := byte(0x0)
		if off == 0 {
			op = 0x2
		}
		b = append(b, esFrame(off+k == n && !open, op, esPayload(off, k))...)
	}
	return p.writeAsync(b)
}

// readEcho reads echoed frames and checks them against the pattern, until
// the final frame or, when untilClose is set, until a close frame, which it
// returns. It returns the number of bytes echoed, at most most.
func (p *esPeer) readEcho(most int, untilClose bool) (int, esInFrame) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	got := 0
	for first := true; ; first = false {
		f := p.mustReadFrame(deadline)
		if untilClose && f.op == 0x8 {
			return got, f
		}
		if wantOp := map[bool]byte{true: 0x2, false: 0x0}[first]; f.op != wantOp {
			p.t.Fatalf("echoed frame %v at offset %d, want op %#x", f, got, wantOp)
		}
		if got+len(f.payload) > most {
			p.t.Fatalf("echo is %d bytes long, longer than the %d sent", got+len(f.payload), most)
		}
		if want := esPayload(got, len(f.payload)); !bytes.Equal(f.payload, want) {
			p.t.Fatalf("echoed bytes %d to %d differ from those sent", got, got+len(f.payload))
		}
		got += len(f.payload)
		if f.fin {
			if untilClose {
				p.t.Fatalf("echo of a message over the limit ended with a final frame")
			}
			return got, f
		}
	}
}

func TestEchoDefaultLimit(t *testing.T) {
	const limit = websocket.DefaultReadLimit
	addr := esServer(t, Config{Version: "test"})

	t.Run("exactly the limit, one frame", func(t *testing.T) {
		p := esOpen(t, addr)
		sent := p.esSendLarge(limit, limit, false)
		if got, _ := p.readEcho(limit, false); got != limit {
			t.Fatalf("echo of %d bytes, want %d", got, limit)
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		p.write(esFrame(true, 0x8, []byte{0x03, 0xE8}))
		p.expectClose(1000)
	})

	t.Run("one byte over, announced in one header", func(t *testing.T) {
		p := esOpen(t, addr)
		// The header alone is enough: nothing is echoed, close 1009.
		p.write(esFrameHeader(true, 0x2, limit+1))
		p.expectClose(1009)
	})

	t.Run("one byte over, in the last fragment", func(t *testing.T) {
		p := esOpen(t, addr)
		// The limit's worth streams back in non-final frames (all but what
		// the echo's write buffer holds when the message fails); the
		// continuation with one more byte gets close 1009.
		sent := p.esSendLarge(limit+1, 1<<20, false)
		got, f := p.readEcho(limit, true)
		if got < limit-64<<10 {
			t.Errorf("only %d bytes came back before the close, want nearly all %d", got, limit)
		}
		if len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != 1009 {
			t.Fatalf("close payload %q, want code 1009", f.payload)
		}
		p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := p.br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the close frame: %v, want TCP EOF", err)
		}
		<-sent
	})
}
