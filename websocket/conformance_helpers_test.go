package websocket_test

// A raw WebSocket peer for conformance tests: a bare TCP connection that
// sends exactly the bytes a test asks for and reads back exactly the bytes
// the other side sends, with no WebSocket library in the way. It lets a test
// break the protocol on purpose and check the precise answer (RFC 6455).

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const (
	// rawTimeout bounds every raw read and write unless a test asks for less.
	rawTimeout = 10 * time.Second
	// rawMaxFrame is the largest frame payload readFrame accepts, so a
	// broken length cannot make a test allocate without bound.
	rawMaxFrame = 64 << 20

	// rfcKey and rfcAccept are the example of RFC 6455 §1.3.
	rfcKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	rfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// Frame opcodes, as raw bytes.
const (
	opCont   byte = 0x0
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPing   byte = 0x9
	opPong   byte = 0xA
)

// rawMaskKey is the masking key of RFC 6455 §5.7's examples. It is not zero,
// so a peer that forgets to unmask sees garbage.
var rawMaskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// rawPeer is one raw TCP connection.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

// dialRaw opens a TCP connection to addr; it is closed when the test ends.
func dialRaw(t testing.TB, addr string) *rawPeer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, rawTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawPeer{t: t, conn: conn, br: bufio.NewReaderSize(conn, 64<<10)}
}

// write sends b, failing the test on error.
func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	p.conn.SetWriteDeadline(time.Now().Add(rawTimeout))
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("raw write of %d bytes: %v", len(b), err)
	}
}

// writeAsync sends b from another goroutine, for payloads large enough that
// the peer may answer before it has read them all.
func (p *rawPeer) writeAsync(b []byte) <-chan error {
	ch := make(chan error, 1)
	p.conn.SetWriteDeadline(time.Now().Add(rawTimeout))
	go func() {
		_, err := p.conn.Write(b)
		ch <- err
	}()
	return ch
}

// writeFrames encodes and sends frames in a single write.
func (p *rawPeer) writeFrames(frames ...outFrame) {
	p.t.Helper()
	p.write(encodeFrames(frames...))
}

// --- opening handshake ---

// rawResponse is an HTTP response as it came off the wire.
type rawResponse struct {
	StatusLine string // without CRLF
	Status     int
	Header     http.Header
	Body       string
}

// baseHandshake returns the header lines of a valid client handshake
// (RFC 6455 §4.1), without Host, using the RFC's example key.
func baseHandshake() []string {
	return []string{
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: " + rfcKey,
		"Sec-WebSocket-Version: 13",
	}
}

// replaceHeader returns lines without any line of the named header, with
// extra appended.
func replaceHeader(lines []string, name string, extra ...string) []string {
	var out []string
	for _, l := range lines {
		n, _, _ := strings.Cut(l, ":")
		if !strings.EqualFold(strings.TrimSpace(n), name) {
			out = append(out, l)
		}
	}
	return append(out, extra...)
}

// request sends a request with the given method, protocol version, Host
// and header lines, and reads the response head (and body, unless 101).
func (p *rawPeer) request(method, proto, host string, lines []string) *rawResponse {
	p.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s / %s\r\n", method, proto)
	if host != "" {
		fmt.Fprintf(&b, "Host: %s\r\n", host)
	}
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	p.write([]byte(b.String()))
	return p.readResponse()
}

// readResponse reads a response: the status line exactly, the header, and
// for any status but 101 the body.
func (p *rawPeer) readResponse() *rawResponse {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(rawTimeout))
	defer p.conn.SetReadDeadline(time.Time{})
	line, err := p.br.ReadString('\n')
	if err != nil {
		p.t.Fatalf("reading status line (got %q): %v", line, err)
	}
	if !strings.HasSuffix(line, "\r\n") {
		p.t.Fatalf("status line %q does not end with CRLF", line)
	}
	resp := &rawResponse{StatusLine: strings.TrimSuffix(line, "\r\n")}
	parts := strings.SplitN(resp.StatusLine, " ", 3)
	if len(parts) < 2 || !strings.HasPrefix(parts[0], "HTTP/1.") {
		p.t.Fatalf("malformed status line %q", resp.StatusLine)
	}
	if resp.Status, err = strconv.Atoi(parts[1]); err != nil {
		p.t.Fatalf("malformed status line %q", resp.StatusLine)
	}
	mh, err := textproto.NewReader(p.br).ReadMIMEHeader()
	if err != nil {
		p.t.Fatalf("reading response header: %v", err)
	}
	resp.Header = http.Header(mh)
	if resp.Status == http.StatusSwitchingProtocols {
		return resp
	}
	var body io.Reader
	switch {
	case resp.Header.Get("Content-Length") != "":
		n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
		if err != nil || n < 0 || n > 1<<20 {
			p.t.Fatalf("bad Content-Length %q", resp.Header.Get("Content-Length"))
		}
		body = io.LimitReader(p.br, n)
	case strings.EqualFold(resp.Header.Get("Transfer-Encoding"), "chunked"):
		body = httputil.NewChunkedReader(p.br)
	default:
		body = p.br // the server closes the connection after the body
	}
	b, err := io.ReadAll(io.LimitReader(body, 1<<20))
	if err != nil {
		p.t.Fatalf("reading response body: %v", err)
	}
	resp.Body = string(b)
	return resp
}

// handshake performs a valid opening handshake with the RFC's key plus any
// extra header lines, and checks the 101 answer: the exact status line,
// Upgrade, Connection and the exact Sec-WebSocket-Accept.
func (p *rawPeer) handshake(host string, extra ...string) *rawResponse {
	p.t.Helper()
	resp := p.request("GET", "HTTP/1.1", host, append(baseHandshake(), extra...))
	checkSwitching(p.t, resp)
	return resp
}

// checkSwitching checks a 101 response of RFC 6455 §4.2.2 item 5.
func checkSwitching(t testing.TB, resp *rawResponse) {
	t.Helper()
	if resp.StatusLine != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("status line %q, want %q (body %q)", resp.StatusLine, "HTTP/1.1 101 Switching Protocols", resp.Body)
	}
	if got := resp.Header.Values("Upgrade"); len(got) != 1 || !strings.EqualFold(got[0], "websocket") {
		t.Errorf("Upgrade header %q, want websocket", got)
	}
	if got := resp.Header.Values("Connection"); !hasToken(got, "upgrade") {
		t.Errorf("Connection header %q, want the Upgrade token", got)
	}
	if got := resp.Header.Values("Sec-WebSocket-Accept"); len(got) != 1 || got[0] != rfcAccept {
		t.Errorf("Sec-WebSocket-Accept %q, want %q", got, rfcAccept)
	}
}

// hasToken reports whether the comma-separated header values list token,
// compared case-insensitively.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// --- frames ---

// outFrame is a frame to send. The zero value of unmasked means masked, as a
// client's frames must be; announce, when set, is the payload length put in
// the header instead of len(payload), to send a frame's beginning only.
type outFrame struct {
	fin      bool
	rsv      byte // RSV bits in their header positions: 0x40, 0x20, 0x10
	op       byte
	unmasked bool
	announce *uint64
	payload  []byte
}

// frame is a final, masked frame.
func frame(op byte, payload []byte) outFrame {
	return outFrame{fin: true, op: op, payload: payload}
}

// fragment is a non-final, masked frame.
func fragment(op byte, payload []byte) outFrame {
	return outFrame{op: op, payload: payload}
}

// announced returns f with its header announcing n payload bytes.
func (f outFrame) announced(n uint64) outFrame {
	f.announce = &n
	return f
}

// encodeLength appends the payload length in its minimal form (§5.2): 7
// bits, 126 and 16 bits, or 127 and 64 bits, with maskBit or'ed in.
func encodeLength(b []byte, maskBit byte, n uint64) []byte {
	switch {
	case n <= 125:
		return append(b, maskBit|byte(n))
	case n <= 0xFFFF:
		return append(b, maskBit|126, byte(n>>8), byte(n))
	default:
		b = append(b, maskBit|127)
		return binary.BigEndian.AppendUint64(b, n)
	}
}

// encodeFrame returns the bytes of f, its payload masked with rawMaskKey
// unless f.unmasked.
func encodeFrame(f outFrame) []byte {
	b0 := f.op&0x0F | f.rsv&0x70
	if f.fin {
		b0 |= 0x80
	}
	n := uint64(len(f.payload))
	if f.announce != nil {
		n = *f.announce
	}
	var maskBit byte
	if !f.unmasked {
		maskBit = 0x80
	}
	b := encodeLength([]byte{b0}, maskBit, n)
	if f.unmasked {
		return append(b, f.payload...)
	}
	b = append(b, rawMaskKey[:]...)
	for i, c := range f.payload {
		b = append(b, c^rawMaskKey[i&3])
	}
	return b
}

// encodeFrames concatenates the encodings of frames.
func encodeFrames(frames ...outFrame) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, encodeFrame(f)...)
	}
	return b
}

// inFrame is a frame as it was read: its raw header bytes and its decoded
// fields, with the payload unmasked if it was masked.
type inFrame struct {
	header  []byte
	fin     bool
	rsv     byte
	op      byte
	masked  bool
	length  uint64
	payload []byte
}

func (f inFrame) String() string {
	s := fmt.Sprintf("frame{fin=%v rsv=%#x op=%#x masked=%v len=%d", f.fin, f.rsv, f.op, f.masked, f.length)
	if f.op == opClose && len(f.payload) >= 2 {
		s += fmt.Sprintf(" code=%d reason=%q", binary.BigEndian.Uint16(f.payload), f.payload[2:])
	} else if len(f.payload) <= 32 {
		s += fmt.Sprintf(" payload=%q", f.payload)
	}
	return s + "}"
}

// tryReadFrame reads exactly one frame within d.
func (p *rawPeer) tryReadFrame(d time.Duration) (inFrame, error) {
	p.conn.SetReadDeadline(time.Now().Add(d))
	defer p.conn.SetReadDeadline(time.Time{})
	var f inFrame
	hdr := make([]byte, 2, 14)
	if _, err := io.ReadFull(p.br, hdr); err != nil {
		return f, fmt.Errorf("reading frame header: %w", err)
	}
	f.fin = hdr[0]&0x80 != 0
	f.rsv = hdr[0] & 0x70
	f.op = hdr[0] & 0x0F
	f.masked = hdr[1]&0x80 != 0
	switch l := hdr[1] & 0x7F; l {
	case 126:
		hdr = hdr[:4]
		if _, err := io.ReadFull(p.br, hdr[2:]); err != nil {
			return f, fmt.Errorf("reading 16-bit length: %w", err)
		}
		f.length = uint64(binary.BigEndian.Uint16(hdr[2:]))
	case 127:
		hdr = hdr[:10]
		if _, err := io.ReadFull(p.br, hdr[2:]); err != nil {
			return f, fmt.Errorf("reading 64-bit length: %w", err)
		}
		f.length = binary.BigEndian.Uint64(hdr[2:])
	default:
		f.length = uint64(l)
	}
	var key [4]byte
	if f.masked {
		k := len(hdr)
		hdr = hdr[:k+4]
		if _, err := io.ReadFull(p.br, hdr[k:]); err != nil {
			return f, fmt.Errorf("reading masking key: %w", err)
		}
		copy(key[:], hdr[k:])
	}
	f.header = hdr
	if f.length > rawMaxFrame {
		return f, fmt.Errorf("frame announces %d payload bytes", f.length)
	}
	f.payload = make([]byte, f.length)
	if _, err := io.ReadFull(p.br, f.payload); err != nil {
		return f, fmt.Errorf("reading %d payload bytes of %v: %w", f.length, f, err)
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= key[i&3]
		}
	}
	return f, nil
}

// readFrame reads exactly one frame within d, failing the test on error.
func (p *rawPeer) readFrame(d time.Duration) inFrame {
	p.t.Helper()
	f, err := p.tryReadFrame(d)
	if err != nil {
		p.t.Fatalf("%v", err)
	}
	return f
}

// checkServerFrame checks the rules every frame from a server obeys: no RSV
// bits (no extension is negotiated), not masked (§5.1), and the length in
// its minimal form (§5.2), so the header is exactly what encodeLength makes.
func checkServerFrame(t testing.TB, f inFrame) {
	t.Helper()
	b0 := f.op | f.rsv
	if f.fin {
		b0 |= 0x80
	}
	want := encodeLength([]byte{b0}, 0, f.length)
	if f.rsv != 0 || f.masked || !bytes.Equal(f.header, want) {
		t.Fatalf("server frame header % x (%v), want % x: unmasked, no RSV bits, minimal length", f.header, f, want)
	}
}

// readMessage reads the frames of one data message within d and returns its
// opcode, its payload and the frames it came in. Every frame must obey
// checkServerFrame and the fragmentation rules (§5.4); a control frame
// fails the test.
func (p *rawPeer) readMessage(d time.Duration) (op byte, payload []byte, frames []inFrame) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		f := p.readFrame(time.Until(deadline))
		checkServerFrame(p.t, f)
		if f.op >= 0x8 {
			p.t.Fatalf("control frame %v while reading a message", f)
		}
		if len(frames) == 0 {
			if f.op != opText && f.op != opBinary {
				p.t.Fatalf("message starts with %v, want text or binary", f)
			}
			op = f.op
		} else if f.op != opCont {
			p.t.Fatalf("frame %d of a message is %v, want a continuation", len(frames), f)
		}
		frames = append(frames, f)
		payload = append(payload, f.payload...)
		if f.fin {
			return op, payload, frames
		}
	}
}

// expectMessage reads one message and checks its opcode and exact payload.
func (p *rawPeer) expectMessage(op byte, want []byte) []inFrame {
	p.t.Helper()
	gotOp, got, frames := p.readMessage(rawTimeout)
	if gotOp != op || !bytes.Equal(got, want) {
		p.t.Fatalf("echo: opcode %#x with %d bytes (%q...), want opcode %#x with %d bytes (%q...)",
			gotOp, len(got), trunc(got), op, len(want), trunc(want))
	}
	return frames
}

// echo sends payload as one masked frame of type op and expects it back.
func (p *rawPeer) echo(op byte, payload []byte) {
	p.t.Helper()
	p.writeFrames(frame(op, payload))
	p.expectMessage(op, payload)
}

func trunc(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

// expectClose reads one frame within d and checks that it is a well-formed
// close frame (FIN, opcode 8, unmasked, no RSV, a 2-byte code and a UTF-8
// reason) with the given code. It returns the reason.
func (p *rawPeer) expectClose(code int, d time.Duration) string {
	p.t.Helper()
	f := p.readFrame(d)
	if !f.fin || f.op != opClose {
		p.t.Fatalf("got %v, want a close frame with code %d", f, code)
	}
	checkServerFrame(p.t, f)
	if len(f.payload) < 2 {
		p.t.Fatalf("close frame with payload % x, want code %d", f.payload, code)
	}
	if got := int(binary.BigEndian.Uint16(f.payload)); got != code {
		p.t.Fatalf("close code %d (reason %q), want %d", got, f.payload[2:], code)
	}
	if !utf8.Valid(f.payload[2:]) {
		p.t.Fatalf("close reason % x is not UTF-8", f.payload[2:])
	}
	return string(f.payload[2:])
}

// expectEOF checks that the peer closes TCP within d without sending
// anything more.
func (p *rawPeer) expectEOF(d time.Duration) {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(d))
	defer p.conn.SetReadDeadline(time.Time{})
	var b [512]byte
	n, err := p.br.Read(b[:])
	if n > 0 {
		p.t.Fatalf("got % x after the close frame, want TCP EOF", b[:n])
	}
	if !errors.Is(err, io.EOF) {
		p.t.Fatalf("want TCP EOF within %v, got %v", d, err)
	}
}

// promptly bounds how long a server may take to send its close frame after
// the peer broke the rules, and to close TCP after its close frame. It is
// well under the default CloseTimeout (5 s), so a server that waits out a
// timeout instead of acting at once is caught.
const promptly = 2 * time.Second

// expectFail checks that the server failed the connection: a close frame
// with code, then TCP EOF, each promptly.
func (p *rawPeer) expectFail(code int) string {
	p.t.Helper()
	reason := p.expectClose(code, promptly)
	p.expectEOF(promptly)
	return reason
}

// closeBody returns a close frame payload: code then reason.
func closeBody(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}
