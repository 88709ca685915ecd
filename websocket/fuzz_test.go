package websocket

// Fuzz targets for the parts of the package that read what a peer sends:
// the frame reader, the incremental header decoder, the incremental UTF-8
// validator and both sides of the opening handshake (the event loop's
// ServerParser against Conn: fuzz_stream_test.go). Run one with, e.g.,
//
//	go test -run XXX -fuzz FuzzFrameReader -fuzztime 30s ./websocket/
//
// Without -fuzz, `go test` runs each target on its seeds (f.Add and
// testdata/fuzz/<FuzzName>/) as an ordinary test.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// ---------------------------------------------------------------------------
// FuzzFrameReader

// fzStream is a fake transport: Read hands out the fuzz bytes in chunks whose
// sizes also come from the fuzz input, then reports io.EOF; Write records.
type fzStream struct {
	mu     sync.Mutex
	data   []byte
	chunks []byte
	i      int
	out    bytes.Buffer
	closed bool
}

func (s *fzStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(s.data))
	if len(s.chunks) > 0 {
		n = min(n, int(s.chunks[s.i%len(s.chunks)])+1)
		s.i++
	}
	copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

func (s *fzStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	return s.out.Write(p)
}

func (s *fzStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *fzStream) written() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.out.Bytes())
}

// fzFrame encodes a frame with first byte b0; masked when key is not nil.
func fzFrame(b0 byte, key []byte, payload []byte) []byte {
	var m byte
	if key != nil {
		m = 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if key == nil {
		return append(b, payload...)
	}
	b = append(b, key[:4]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

func fzClosePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// fzFrameSeeds returns peer streams for a server (masked frames, key not
// nil) or a client (unmasked frames, key nil).
func fzFrameSeeds(key []byte) [][]byte {
	fr := func(b0 byte, p []byte) []byte { return fzFrame(b0, key, p) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return [][]byte{
		fr(0x81, []byte("Hello")),
		fr(0x82, bytes.Repeat([]byte{0xAB}, 126)),
		fr(0x82, bytes.Repeat([]byte{0xCD}, fzReadLimit)),
		fr(0x82, bytes.Repeat([]byte{0xCD}, fzReadLimit+1)),
		cat(fr(0x01, []byte("Hel")), fr(0x89, []byte("ping")), fr(0x80, []byte("lo")), fr(0x81, nil)),
		cat(fr(0x01, []byte("h\xc3")), fr(0x00, nil), fr(0x80, []byte("\xa9llo"))),
		cat(fr(0x81, []byte("a")), fr(0x88, fzClosePayload(1000, "bye"))),
		cat(fr(0x88, nil), fr(0x81, []byte("after close"))),
		fr(0x88, fzClosePayload(1005, "")),
		fr(0x88, []byte{0x03}),
		fr(0x88, fzClosePayload(4000, "\xff")),
		fr(0x8A, []byte("unsolicited")),
		fr(0x81, []byte("\xed\xa0\x80")),
		fr(0x81, []byte("\xf4\x90\x80\x80")),
		fr(0xC1, []byte("rsv")),
		fr(0x83, nil),
		fr(0x09, nil),
		fr(0x89, bytes.Repeat([]byte("p"), 126)),
		cat(fr(0x01, []byte("a")), fr(0x81, []byte("b"))),
		fr(0x80, []byte("orphan")),
		{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
		{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0},
		fzFrame(0x81, []byte{1, 2, 3, 4}, []byte("masked")),
		fzFrame(0x81, nil, []byte("unmasked")),
		fr(0x81, []byte("truncated"))[:5],
	}
}

// fzReadLimit is the message limit of the fuzzed Conn, so that announced
// lengths cannot make it allocate much.
const fzReadLimit = 1 << 10

func FuzzFrameReader(f *testing.F) {
	for _, s := range fzFrameSeeds([]byte{0x37, 0xFA, 0x21, 0x3D}) {
		f.Add(s, []byte{}, false)
		f.Add(s, []byte{0, 2, 6}, false)
	}
	for _, s := range fzFrameSeeds(nil) {
		f.Add(s, []byte{}, true)
		f.Add(s, []byte{1, 0, 200}, true)
	}
	f.Fuzz(func(t *testing.T, stream, chunks []byte, client bool) {
		fzCheckHeaderDecoder(t, stream, chunks, !client)

		rw := &fzStream{data: bytes.Clone(stream), chunks: chunks}
		role := RoleServer
		if client {
			role = RoleClient
		}
		c := NewConn(rw, nil, role, "", &Options{ReadLimit: fzReadLimit, CloseTimeout: time.Second})
		defer c.CloseNow()

		type result struct {
			msgs int
			err  error
		}
		done := make(chan result, 1)
		go func() {
			ctx := context.Background()
			for n := 0; ; n++ {
				typ, p, err := c.Read(ctx)
				if err != nil {
					done <- result{n, err}
					return
				}
				if typ != MessageText && typ != MessageBinary {
					t.Errorf("message of type %v", typ)
				}
				if typ == MessageText && !utf8.Valid(p) {
					t.Errorf("text message %q is not valid UTF-8", p)
				}
				if len(p) > fzReadLimit {
					t.Errorf("message of %d bytes over the limit %d", len(p), fzReadLimit)
				}
				if 2*(n+1) > len(stream) {
					t.Errorf("%d messages from %d bytes", n+1, len(stream))
					done <- result{n, errors.New("too many messages")}
					return
				}
			}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Read hangs")
		}
		select {
		case <-c.closed:
		case <-time.After(10 * time.Second):
			t.Fatal("connection not closed after Read failed")
		}

		// What we sent: pongs and at most one close frame, the last one.
		out := bytes.NewReader(rw.written())
		var frames []ccWireFrame
		for out.Len() > 0 {
			fr, err := ccReadFrame(out)
			if err != nil {
				t.Fatalf("we wrote a malformed frame: %v", err)
			}
			if fr.masked != client {
				t.Fatalf("we (client=%v) wrote a frame with masked=%v", client, fr.masked)
			}
			if !fr.fin || fr.rsv != 0 || (fr.op != 0x8 && fr.op != 0xA) || len(fr.payload) > 125 {
				t.Fatalf("we wrote fin=%v rsv=%#x op=%#x len=%d; want only pongs and a close", fr.fin, fr.rsv, fr.op, len(fr.payload))
			}
			if len(frames) > 0 && frames[len(frames)-1].op == 0x8 {
				t.Fatalf("we wrote a frame after our close frame")
			}
			frames = append(frames, fr)
		}
		var sentClose *ccWireFrame
		if len(frames) > 0 && frames[len(frames)-1].op == 0x8 {
			sentClose = &frames[len(frames)-1]
		}
		sentCode := StatusCode(-1)
		if sentClose != nil {
			if len(sentClose.payload) >= 2 {
				sentCode = StatusCode(binary.BigEndian.Uint16(sentClose.payload))
			} else if len(sentClose.payload) == 1 {
				t.Fatalf("we sent a close frame with a 1-byte payload")
			} else {
				sentCode = StatusNoStatusRcvd
			}
		}

		var pe *ProtocolError
		var ce *CloseError
		switch {
		case errors.As(r.err, &pe):
			switch pe.Code {
			case StatusProtocolError, StatusInvalidFramePayloadData, StatusMessageTooBig:
			default:
				t.Fatalf("ProtocolError with code %d", pe.Code)
			}
			if sentCode != pe.Code {
				t.Fatalf("failed with %v but sent close code %d", pe, sentCode)
			}
		case errors.As(r.err, &ce):
			switch {
			case ce.Code == StatusAbnormalClosure:
				if sentClose != nil {
					t.Fatalf("sent close %d on a transport that ended without a close frame", sentCode)
				}
			case ce.Code == StatusNoStatusRcvd:
				if ce.Reason != "" || sentCode != StatusNoStatusRcvd {
					t.Fatalf("peer's empty close answered with code %d", sentCode)
				}
			case ce.Code.Sendable():
				if sentCode != ce.Code || len(sentClose.payload) != 2 {
					t.Fatalf("peer's close %d answered with close code %d", ce.Code, sentCode)
				}
				if !utf8.ValidString(ce.Reason) || len(ce.Reason) > 123 {
					t.Fatalf("close reason %q", ce.Reason)
				}
			default:
				t.Fatalf("CloseError with code %d", ce.Code)
			}
		default:
			t.Fatalf("Read failed with %T %v; want *ProtocolError or *CloseError", r.err, r.err)
		}
		if s := c.State(); s != StateClosed {
			t.Fatalf("state %v after the transport closed", s)
		}
		// The error is sticky.
		if _, _, err := c.Read(context.Background()); err != r.err {
			t.Fatalf("second Read = %v, first %v", err, r.err)
		}
	})
}

// fzCheckHeaderDecoder decodes the headers of stream (skipping payloads)
// three ways, all input at once, one byte at a time, and in the given chunk
// sizes, and checks that the results agree.
func fzCheckHeaderDecoder(t *testing.T, stream, chunks []byte, expectMasked bool) {
	type outcome struct {
		n    int
		h    frameHeader
		done bool
		err  error
	}
	run := func(p []byte, size func(i int) int) outcome {
		d := headerDecoder{expectMasked: expectMasked}
		var o outcome
		for i := 0; o.n < len(p); i++ {
			end := min(len(p), o.n+size(i))
			n, h, done, err := d.decode(p[o.n:end])
			if n > end-o.n {
				t.Fatalf("decode consumed %d of %d bytes", n, end-o.n)
			}
			if !done && err == nil && n != end-o.n {
				t.Fatalf("decode stopped after %d of %d bytes without a header or an error", n, end-o.n)
			}
			o.n += n
			if done || err != nil {
				o.h, o.done, o.err = h, done, err
				if done && d.inProgress() {
					t.Fatalf("decoder still in progress after a header")
				}
				return o
			}
			if !d.inProgress() {
				t.Fatalf("decoder not in progress after %d bytes of a header", o.n)
			}
		}
		return o
	}
	off := 0
	for k := 0; k < 32 && off < len(stream); k++ {
		p := stream[off:]
		whole := run(p, func(int) int { return len(p) })
		bytewise := run(p, func(int) int { return 1 })
		chunked := run(p, func(i int) int {
			if len(chunks) == 0 {
				return 3
			}
			return int(chunks[i%len(chunks)]%16) + 1
		})
		for _, o := range []outcome{bytewise, chunked} {
			if o.n != whole.n || o.done != whole.done || o.h != whole.h || (o.err == nil) != (whole.err == nil) {
				t.Fatalf("header decoding differs when split: %+v vs %+v", o, whole)
			}
			if o.err != nil {
				var a, b *ProtocolError
				if !errors.As(o.err, &a) || !errors.As(whole.err, &b) || *a != *b {
					t.Fatalf("decode errors differ: %v vs %v", o.err, whole.err)
				}
			}
		}
		if whole.err != nil {
			var pe *ProtocolError
			if !errors.As(whole.err, &pe) || pe.Code != StatusProtocolError {
				t.Fatalf("decode error %v, want a 1002 *ProtocolError", whole.err)
			}
			return
		}
		if !whole.done {
			return
		}
		h := whole.h
		if h.length < 0 || h.masked != expectMasked || (h.op.isControl() && (h.length > 125 || !h.fin)) || h.rsv != 0 {
			t.Fatalf("decoder accepted header %+v", h)
		}
		// Encoding the header again gives a header that decodes the same.
		enc := appendHeader(nil, h)
		if len(enc) > whole.n {
			t.Fatalf("re-encoded header is %d bytes, the original %d", len(enc), whole.n)
		}
		if again := run(enc, func(int) int { return len(enc) }); !again.done || again.h != h || again.n != len(enc) {
			t.Fatalf("re-encoded header %x decodes to %+v, want %+v", enc, again, h)
		}
		if h.length > int64(len(p)-whole.n) {
			return
		}
		off += whole.n + int(h.length)
	}
}

// ---------------------------------------------------------------------------
// FuzzUTF8Validator

var (
	fzPrefixOnce sync.Once
	fzPrefixes   map[string]bool // proper prefixes of the encodings of all scalar values
)

// fzValidPrefixLen returns the length of the longest prefix of b that is a
// prefix of some valid UTF-8 string: the index of the first byte at which
// no valid continuation exists, or len(b).
func fzValidPrefixLen(b []byte) int {
	fzPrefixOnce.Do(func() {
		fzPrefixes = map[string]bool{}
		var buf [4]byte
		for r := rune(0x80); r <= utf8.MaxRune; r++ {
			if r >= 0xD800 && r <= 0xDFFF {
				continue
			}
			n := utf8.EncodeRune(buf[:], r)
			for k := 1; k < n; k++ {
				fzPrefixes[string(buf[:k])] = true
			}
		}
	})
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			i += size
			continue
		}
		k := 0
		for k < 3 && i+k < len(b) && fzPrefixes[string(b[i:i+k+1])] {
			k++
		}
		return i + k
	}
	return len(b)
}

func FuzzUTF8Validator(f *testing.F) {
	seeds := []string{
		"", "hello", "héllo wörld", "日本語", "𝄞 clef", "\uFFFD", "\U0010FFFF",
		"\xc3", "\xe2\x82", "\xf0\x9d\x84", "\xc3\x28", "\xc0\xaf", "\xe0\x80\xaf",
		"\xed\xa0\x80", "\xed\x9f\xbf", "\xf4\x90\x80\x80", "\xf5", "\xff", "\x80",
		"abc\xe2\x82\xacdef", "\xf0\x90\x80", "\xf0\x80\x80\x80", "a\xf4\x8f\xbf\xbfz",
		strings.Repeat("é", 40) + "\xe2", strings.Repeat("x", 100) + "\xe2\x28",
	}
	for _, s := range seeds {
		f.Add([]byte(s), []byte{})
		f.Add([]byte(s), []byte{1})
		f.Add([]byte(s), []byte{0, 2, 1, 3})
	}
	f.Fuzz(func(t *testing.T, data, splits []byte) {
		var pieces [][2]int
		start := 0
		for _, s := range splits {
			end := min(len(data), start+int(s%8))
			pieces = append(pieces, [2]int{start, end})
			start = end
		}
		pieces = append(pieces, [2]int{start, len(data)})

		var v utf8Validator
		failed := -1
		for i, pc := range pieces {
			if !v.write(data[pc[0]:pc[1]]) {
				failed = i
				break
			}
		}
		whole := utf8.Valid(data)
		if got := failed < 0 && v.complete(); got != whole {
			t.Fatalf("validator says %v, utf8.Valid says %v (pieces %v)", got, whole, pieces)
		}
		good := fzValidPrefixLen(data)
		if good == len(data) {
			if failed >= 0 {
				t.Fatalf("rejected piece %v of a valid prefix (pieces %v)", pieces[failed], pieces)
			}
			if v.complete() != whole {
				t.Fatalf("complete() = %v for a text whose validity is %v", v.complete(), whole)
			}
			return
		}
		if failed < 0 {
			t.Fatalf("never failed, though byte %d can follow no valid prefix (pieces %v)", good, pieces)
		}
		if pc := pieces[failed]; good < pc[0] || good >= pc[1] {
			t.Fatalf("failed on piece %v, but the first bad byte is %d (pieces %v)", pc, good, pieces)
		}
	})
}

// ---------------------------------------------------------------------------
// FuzzServerHandshake

// fzConn is a net.Conn that records what is written and reads nothing.
type fzConn struct {
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *fzConn) Read([]byte) (int, error) { return 0, io.EOF }
func (c *fzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}
func (c *fzConn) Close() error                     { return nil }
func (c *fzConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *fzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (c *fzConn) SetDeadline(time.Time) error      { return nil }
func (c *fzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fzConn) SetWriteDeadline(time.Time) error { return nil }

// fzHijackWriter is a ResponseWriter that records a refusal and supports
// Hijack, handing out an fzConn.
type fzHijackWriter struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	conn     fzConn
	hijacked bool
}

func (w *fzHijackWriter) Header() http.Header { return w.header }
func (w *fzHijackWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *fzHijackWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
func (w *fzHijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	return &w.conn, bufio.NewReadWriter(bufio.NewReader(&w.conn), bufio.NewWriterSize(&w.conn, 4096)), nil
}

// fzAccept computes Sec-WebSocket-Accept independently of the library.
func fzAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// fzHasToken reports whether a comma-separated header lists token, written
// independently of headerHasToken.
func fzHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func FuzzServerHandshake(f *testing.F) {
	good := "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	seeds := []string{
		good + "\r\n",
		good + "Origin: http://server.example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n",
		good + "Origin: http://evil.example.org\r\n\r\n",
		good + "Origin: https://a.example.com\r\n\r\n",
		good + "Origin: null\r\n\r\n",
		good + "Sec-WebSocket-Protocol: superchat\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
		good + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		good + "Sec-WebSocket-Version: 8\r\n\r\n",
		strings.Replace(good, "GET", "POST", 1) + "\r\n",
		strings.Replace(good, "HTTP/1.1", "HTTP/1.0", 1) + "\r\n",
		strings.Replace(good, "HTTP/1.1", "HTTP/2.0", 1) + "\r\n",
		strings.Replace(good, "Upgrade: websocket", "Upgrade: WebSocket, h2c", 1) + "\r\n",
		strings.Replace(good, "Connection: Upgrade", "Connection: keep-alive, upgrade", 1) + "\r\n",
		strings.Replace(good, "Connection: Upgrade", "Connection: keep-alive", 1) + "\r\n",
		strings.Replace(good, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ", 1) + "\r\n",
		strings.Replace(good, "dGhlIHNhbXBsZSBub25jZQ==", "  dGhlIHNhbXBsZSBub25jZQ==  ", 1) + "\r\n",
		strings.Replace(good, "dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAAAA", 1) + "\r\n",
		strings.Replace(good, "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13, 8", 1) + "\r\n",
		"GET / HTTP/1.1\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	supported := []string{"superchat", "chat"}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		w := &fzHijackWriter{header: http.Header{}}
		opts := &AcceptOptions{Subprotocols: supported, OriginPatterns: []string{"*.example.com"}}
		c, err := Accept(w, req, opts)
		if err != nil {
			var he *HandshakeError
			if !errors.As(err, &he) {
				t.Fatalf("Accept error %T %v, want *HandshakeError", err, err)
			}
			if c != nil {
				t.Fatalf("Accept returned a Conn with its error")
			}
			if w.hijacked {
				t.Fatalf("refused (%v) after hijacking", he)
			}
			if he.Status < 400 || he.Status > 599 || w.status != he.Status {
				t.Fatalf("refused with status %d, wrote %d", he.Status, w.status)
			}
			return
		}
		defer c.CloseNow()
		// Accepted: the request must really be a valid handshake.
		if req.Method != http.MethodGet || !req.ProtoAtLeast(1, 1) {
			t.Fatalf("accepted %s %s", req.Method, req.Proto)
		}
		if !fzHasToken(req.Header, "Upgrade", "websocket") || !fzHasToken(req.Header, "Connection", "upgrade") {
			t.Fatalf("accepted without Upgrade/Connection tokens: %q", req.Header)
		}
		if v := req.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
			t.Fatalf("accepted Sec-WebSocket-Version %q", v)
		}
		keys := req.Header.Values("Sec-WebSocket-Key")
		if len(keys) != 1 {
			t.Fatalf("accepted Sec-WebSocket-Key %q", keys)
		}
		key := strings.TrimSpace(keys[0])
		if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
			t.Fatalf("accepted key %q", key)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(w.conn.out.Bytes())), req)
		if err != nil {
			t.Fatalf("101 response does not parse: %v\n%q", err, w.conn.out.Bytes())
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("accepted with status %d", resp.StatusCode)
		}
		if got := resp.Header.Values("Sec-WebSocket-Accept"); len(got) != 1 || got[0] != fzAccept(key) {
			t.Fatalf("Sec-WebSocket-Accept %q for key %q, want %q", got, key, fzAccept(key))
		}
		if !fzHasToken(resp.Header, "Upgrade", "websocket") || !fzHasToken(resp.Header, "Connection", "upgrade") {
			t.Fatalf("101 without Upgrade/Connection: %q", resp.Header)
		}
		proto := resp.Header.Values("Sec-WebSocket-Protocol")
		if len(proto) > 1 || c.Subprotocol() != strings.Join(proto, "") {
			t.Fatalf("Sec-WebSocket-Protocol %q, Subprotocol() %q", proto, c.Subprotocol())
		}
		if len(proto) == 1 {
			offered := false
			for _, v := range req.Header.Values("Sec-WebSocket-Protocol") {
				for _, o := range strings.Split(v, ",") {
					offered = offered || strings.TrimSpace(o) == proto[0]
				}
			}
			if !offered || (proto[0] != "chat" && proto[0] != "superchat") {
				t.Fatalf("chose subprotocol %q not offered by both sides", proto[0])
			}
		}
		if len(resp.Header.Values("Sec-WebSocket-Extensions")) != 0 {
			t.Fatalf("101 carries extensions")
		}
	})
}

// ---------------------------------------------------------------------------
// FuzzClientCheckResponse

func FuzzClientCheckResponse(f *testing.F) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	const accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" // RFC 6455 §1.3
	good := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n"
	seeds := []string{
		good + "\r\n",
		good + "Sec-WebSocket-Protocol: chat\r\n\r\n",
		good + "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n",
		good + "Sec-WebSocket-Protocol: other\r\n\r\n",
		good + "Sec-WebSocket-Protocol: \r\n\r\n",
		good + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
		good + "Sec-WebSocket-Accept: " + accept + "\r\n\r\n",
		strings.Replace(good, accept, "dGhlIHNhbXBsZSBub25jZQ==", 1) + "\r\n",
		strings.Replace(good, "Upgrade: websocket", "Upgrade: WebSocket", 1) + "\r\n",
		strings.Replace(good, "Connection: Upgrade", "Connection: keep-alive, Upgrade", 1) + "\r\n",
		strings.Replace(good, "Connection: Upgrade", "Connection: close", 1) + "\r\n",
		strings.Replace(good, "101 Switching Protocols", "200 OK", 1) + "Content-Length: 4\r\n\r\nnope",
		"HTTP/1.0 101 Switching Protocols\r\n\r\n",
		"HTTP/1.1 403 Forbidden\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	offered := []string{"chat", "superchat"}
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
		if err != nil {
			return
		}
		_, _, herr := checkResponse(resp, key, offered, nil)
		if herr != nil {
			if herr.Status != resp.StatusCode {
				t.Fatalf("HandshakeError status %d, response %d", herr.Status, resp.StatusCode)
			}
			switch herr.Check {
			case CheckStatus, CheckUpgrade, CheckConnection, CheckAccept, CheckSubprotocol, CheckExtension:
			default:
				t.Fatalf("client check %v", herr.Check)
			}
			if (resp.StatusCode != 101) != (herr.Check == CheckStatus) {
				t.Fatalf("status %d refused by check %v", resp.StatusCode, herr.Check)
			}
			return
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("accepted status %d", resp.StatusCode)
		}
		if got := resp.Header.Values("Sec-WebSocket-Accept"); len(got) != 1 || strings.TrimSpace(got[0]) != accept {
			t.Fatalf("accepted Sec-WebSocket-Accept %q", got)
		}
		if !fzHasToken(resp.Header, "Upgrade", "websocket") || !fzHasToken(resp.Header, "Connection", "upgrade") {
			t.Fatalf("accepted without Upgrade/Connection tokens: %q", resp.Header)
		}
		if len(resp.Header.Values("Sec-WebSocket-Extensions")) != 0 {
			t.Fatalf("accepted an extension")
		}
		if p := resp.Header.Values("Sec-WebSocket-Protocol"); len(p) > 1 ||
			(len(p) == 1 && strings.TrimSpace(p[0]) != "chat" && strings.TrimSpace(p[0]) != "superchat") {
			t.Fatalf("accepted subprotocol %q", p)
		}
	})
}
