package websocket

// Client-side conformance tests (RFC 6455 §4.1, §5, §7): our Dial and Conn
// against a raw TCP server on 127.0.0.1 that reads the HTTP request and
// answers exact bytes, so every byte the client sends and every byte it must
// tolerate or refuse is under the test's control.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// ccTimeout bounds every single wait in these tests.
const ccTimeout = 5 * time.Second

// ccPeer is the raw server side of one connection: the TCP connection, a
// buffered reader over it and the HTTP request the client sent.
type ccPeer struct {
	conn net.Conn
	br   *bufio.Reader
	req  *http.Request
}

// ccListen listens on 127.0.0.1 and, in the background, accepts one
// connection and reads its HTTP request. It returns the ws:// URL to dial and
// a channel that yields the peer (or is closed if that failed).
func ccListen(t *testing.T) (string, <-chan *ccPeer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan *ccPeer, 1)
	go func() {
		defer close(ch)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.SetDeadline(time.Now().Add(ccTimeout))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			c.Close()
			return
		}
		c.SetDeadline(time.Time{})
		ch <- &ccPeer{conn: c, br: br, req: req}
	}()
	return "ws://" + ln.Addr().String() + "/chat?room=1", ch
}

// ccAwaitPeer waits for the server side of the connection.
func ccAwaitPeer(t *testing.T, ch <-chan *ccPeer) *ccPeer {
	t.Helper()
	select {
	case p, ok := <-ch:
		if !ok {
			t.Fatal("server did not receive an HTTP request")
		}
		t.Cleanup(func() { p.conn.Close() })
		return p
	case <-time.After(ccTimeout):
		t.Fatal("timed out waiting for the client's connection")
	}
	return nil
}

// ccAcceptValue computes Sec-WebSocket-Accept independently of the library.
func ccAcceptValue(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// ccResponse101 is a correct 101 answer to req plus extra header lines
// (each ending in CRLF).
func ccResponse101(req *http.Request, extra string) string {
	return "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + ccAcceptValue(req.Header.Get("Sec-WebSocket-Key")) + "\r\n" +
		extra + "\r\n"
}

type ccDialResult struct {
	c    *Conn
	resp *http.Response
	err  error
}

// ccDialAsync starts Dial in the background.
func ccDialAsync(ctx context.Context, u string, opts *DialOptions) <-chan ccDialResult {
	ch := make(chan ccDialResult, 1)
	go func() {
		c, resp, err := Dial(ctx, u, opts)
		ch <- ccDialResult{c, resp, err}
	}()
	return ch
}

func ccAwaitDial(t *testing.T, ch <-chan ccDialResult) ccDialResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.c != nil {
			t.Cleanup(func() { r.c.CloseNow() })
		}
		return r
	case <-time.After(2 * ccTimeout):
		t.Fatal("Dial did not return")
	}
	return ccDialResult{}
}

// ccHandshake dials a raw server that answers with answer(req), and returns
// the Dial result and the server side.
func ccHandshake(t *testing.T, opts *DialOptions, answer func(*http.Request) string) (ccDialResult, *ccPeer) {
	t.Helper()
	u, peers := ccListen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*ccTimeout)
	defer cancel()
	res := ccDialAsync(ctx, u, opts)
	p := ccAwaitPeer(t, peers)
	p.write(t, []byte(answer(p.req)))
	return ccAwaitDial(t, res), p
}

// ccOpen returns a client Conn whose handshake succeeded, and the raw server.
func ccOpen(t *testing.T, opts *DialOptions) (*Conn, *ccPeer) {
	t.Helper()
	r, p := ccHandshake(t, opts, func(req *http.Request) string { return ccResponse101(req, "") })
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	return r.c, p
}

func (p *ccPeer) write(t *testing.T, b []byte) {
	t.Helper()
	p.conn.SetWriteDeadline(time.Now().Add(ccTimeout))
	if _, err := p.conn.Write(b); err != nil {
		t.Fatalf("server write: %v", err)
	}
}

// writeAsync writes b in the background, for writes larger than the socket
// buffers, and returns the write's error.
func (p *ccPeer) writeAsync(b []byte) <-chan error {
	ch := make(chan error, 1)
	go func() {
		p.conn.SetWriteDeadline(time.Now().Add(ccTimeout))
		_, err := p.conn.Write(b)
		ch <- err
	}()
	return ch
}

// ccWireFrame is a frame as the raw server read it off the wire.
type ccWireFrame struct {
	fin     bool
	rsv     byte // RSV bits in header position (0x70 mask)
	op      byte
	masked  bool
	key     [4]byte
	lenCode byte   // the 7-bit length field: the length, 126 or 127
	wire    []byte // the payload as sent (still masked)
	payload []byte // the payload, unmasked
}

// ccReadFrame parses one frame, independently of the library's decoder.
func ccReadFrame(r io.Reader) (ccWireFrame, error) {
	var f ccWireFrame
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return f, err
	}
	f.fin = h[0]&0x80 != 0
	f.rsv = h[0] & 0x70
	f.op = h[0] & 0x0F
	f.masked = h[1]&0x80 != 0
	f.lenCode = h[1] & 0x7F
	n := uint64(f.lenCode)
	switch f.lenCode {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > 64<<20 {
		return f, fmt.Errorf("frame length %d too large for a test", n)
	}
	if f.masked {
		if _, err := io.ReadFull(r, f.key[:]); err != nil {
			return f, err
		}
	}
	f.wire = make([]byte, n)
	if _, err := io.ReadFull(r, f.wire); err != nil {
		return f, err
	}
	f.payload = bytes.Clone(f.wire)
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= f.key[i%4]
		}
	}
	return f, nil
}

func (p *ccPeer) readFrame(t *testing.T) ccWireFrame {
	t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(ccTimeout))
	f, err := ccReadFrame(p.br)
	if err != nil {
		t.Fatalf("server: reading a frame from the client: %v", err)
	}
	return f
}

// expectEOF checks that the client closed (or shut the write side of) the
// TCP connection without sending anything more.
func (p *ccPeer) expectEOF(t *testing.T) {
	t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(ccTimeout))
	b, err := p.br.ReadByte()
	if err == nil {
		t.Fatalf("server: got byte %#x, want end of stream", b)
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("server: got %v, want end of stream", err)
	}
}

// expectSilence checks that nothing (neither bytes nor EOF) arrives for d.
func (p *ccPeer) expectSilence(t *testing.T, d time.Duration) {
	t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(d))
	b, err := p.br.ReadByte()
	if err == nil {
		t.Fatalf("server: got byte %#x, want silence", b)
	}
	if !isTimeout(err) {
		t.Fatalf("server: got %v, want silence (a read timeout)", err)
	}
}

// ccFrame encodes an unmasked frame with first byte b0 (FIN, RSV, opcode)
// and the minimal length encoding.
func ccFrame(b0 byte, payload []byte) []byte {
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

// ccClosePayload is a close frame body: the code and the reason.
func ccClosePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

func ccCat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// ccPattern returns n bytes that differ from a repeated byte, so a shifted
// or truncated copy is noticed.
func ccPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

type ccReadResult struct {
	typ MessageType
	p   []byte
	err error
}

// ccReadAsync runs one Read in the background, copying the message.
func ccReadAsync(c *Conn) <-chan ccReadResult {
	ch := make(chan ccReadResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*ccTimeout)
		defer cancel()
		typ, p, err := c.Read(ctx)
		ch <- ccReadResult{typ, bytes.Clone(p), err}
	}()
	return ch
}

func ccAwaitRead(t *testing.T, ch <-chan ccReadResult) ccReadResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(3 * ccTimeout):
		t.Fatal("Read did not return")
	}
	return ccReadResult{}
}

func ccRead(t *testing.T, c *Conn) ccReadResult {
	t.Helper()
	return ccAwaitRead(t, ccReadAsync(c))
}

// ccWaitClosed waits until the Conn has closed its transport.
func ccWaitClosed(t *testing.T, c *Conn) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(ccTimeout):
		t.Fatalf("connection not closed; state %v", c.State())
	}
	if s := c.State(); s != StateClosed {
		t.Fatalf("state %v after the transport closed, want closed", s)
	}
}

// ---------------------------------------------------------------------------
// Opening handshake

func TestClientConformanceHandshakeRequest(t *testing.T) {
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer t0ken")
	hdr.Add("X-Multi", "1")
	hdr.Add("X-Multi", "2")
	hdr.Set("Origin", "http://example.com")
	// The handshake's own headers cannot be overridden by the caller.
	hdr.Set("Upgrade", "h2c")
	hdr.Set("Sec-WebSocket-Version", "8")
	hdr.Set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")
	hdr.Set("Sec-WebSocket-Extensions", "permessage-deflate")
	opts := &DialOptions{Header: hdr, Subprotocols: []string{"chat", "superchat"}}
	r, p := ccHandshake(t, opts, func(req *http.Request) string {
		return ccResponse101(req, "Sec-WebSocket-Protocol: superchat\r\n")
	})
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	req := p.req
	if req.Method != "GET" {
		t.Errorf("method %q, want GET", req.Method)
	}
	if req.Proto != "HTTP/1.1" {
		t.Errorf("protocol %q, want HTTP/1.1", req.Proto)
	}
	if req.RequestURI != "/chat?room=1" {
		t.Errorf("request target %q, want /chat?room=1", req.RequestURI)
	}
	if want := p.conn.LocalAddr().String(); req.Host != want {
		t.Errorf("Host %q, want %q", req.Host, want)
	}
	if got := req.Header.Values("Upgrade"); len(got) != 1 || !strings.EqualFold(got[0], "websocket") {
		t.Errorf("Upgrade %q, want [websocket]", got)
	}
	if got := req.Header.Values("Connection"); len(got) != 1 || !strings.EqualFold(got[0], "Upgrade") {
		t.Errorf("Connection %q, want [Upgrade]", got)
	}
	if got := req.Header.Values("Sec-WebSocket-Version"); len(got) != 1 || got[0] != "13" {
		t.Errorf("Sec-WebSocket-Version %q, want [13]", got)
	}
	keys := req.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		t.Fatalf("Sec-WebSocket-Key %q, want exactly one", keys)
	}
	if raw, err := base64.StdEncoding.DecodeString(keys[0]); err != nil || len(raw) != 16 {
		t.Errorf("Sec-WebSocket-Key %q is not 16 bytes in base64 (err %v)", keys[0], err)
	}
	if keys[0] == "AAAAAAAAAAAAAAAAAAAAAA==" {
		t.Errorf("the caller's Sec-WebSocket-Key was sent instead of a fresh one")
	}
	if got := req.Header.Values("Sec-WebSocket-Protocol"); strings.Join(got, ",") != "chat, superchat" {
		t.Errorf("Sec-WebSocket-Protocol %q, want [\"chat, superchat\"]", got)
	}
	if got := req.Header.Values("Sec-WebSocket-Extensions"); len(got) != 0 {
		t.Errorf("Sec-WebSocket-Extensions %q sent, want none (none is supported)", got)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer t0ken" {
		t.Errorf("Authorization %q", got)
	}
	if got := req.Header.Values("X-Multi"); strings.Join(got, "|") != "1|2" {
		t.Errorf("X-Multi %q, want [1 2]", got)
	}
	if got := req.Header.Get("Origin"); got != "http://example.com" {
		t.Errorf("Origin %q", got)
	}
	if req.ContentLength != 0 || len(req.TransferEncoding) != 0 {
		t.Errorf("request has a body: length %d, encoding %q", req.ContentLength, req.TransferEncoding)
	}
	if got := r.c.Subprotocol(); got != "superchat" {
		t.Errorf("Subprotocol() = %q, want superchat", got)
	}
	if r.resp == nil || r.resp.StatusCode != 101 {
		t.Errorf("response %+v, want the 101", r.resp)
	}
	if s := r.c.State(); s != StateOpen {
		t.Errorf("state %v, want open", s)
	}
}

func TestClientConformanceHandshakeHostOverride(t *testing.T) {
	opts := &DialOptions{Header: http.Header{"Host": {"example.org:8080"}}}
	r, p := ccHandshake(t, opts, func(req *http.Request) string { return ccResponse101(req, "") })
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	if p.req.Host != "example.org:8080" {
		t.Errorf("Host %q, want example.org:8080", p.req.Host)
	}
	if got := p.req.Header.Values("Host"); len(got) != 0 {
		t.Errorf("Host also sent as a header field: %q", got)
	}
}

func TestClientConformanceHandshakeFreshKeys(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		_, p := ccOpen(t, nil)
		k := p.req.Header.Get("Sec-WebSocket-Key")
		if seen[k] {
			t.Fatalf("Sec-WebSocket-Key %q reused", k)
		}
		seen[k] = true
	}
}

func TestClientConformanceHandshakeRefused(t *testing.T) {
	good := func(req *http.Request) string {
		return "Sec-WebSocket-Accept: " + ccAcceptValue(req.Header.Get("Sec-WebSocket-Key")) + "\r\n"
	}
	const up = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	cases := []struct {
		name    string
		offered []string
		answer  func(req *http.Request) string
		check   HandshakeCheck
		status  int
		body    string // the response body Dial must hand back
		closeTC bool   // the server keeps the connection open: the client must close it
	}{
		{
			name:   "status 200",
			answer: func(*http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnope" },
			check:  CheckStatus, status: 200, body: "nope", closeTC: true,
		},
		{
			name: "status 403 with body",
			answer: func(*http.Request) string {
				return "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\norigin forbidden"
			},
			check: CheckStatus, status: 403, body: "origin forbidden", closeTC: true,
		},
		{
			name: "status 302 is not followed",
			answer: func(*http.Request) string {
				return "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
			},
			check: CheckStatus, status: 302, body: "", closeTC: true,
		},
		{
			name: "status 400 chunked body",
			answer: func(*http.Request) string {
				return "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbad\r\n0\r\n\r\n"
			},
			check: CheckStatus, status: 400, body: "bad", closeTC: true,
		},
		{
			name: "missing Upgrade",
			answer: func(req *http.Request) string {
				return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" + good(req) + "\r\n"
			},
			check: CheckUpgrade, status: 101, closeTC: true,
		},
		{
			name: "Upgrade names another protocol",
			answer: func(req *http.Request) string {
				return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" + good(req) + "\r\n"
			},
			check: CheckUpgrade, status: 101, closeTC: true,
		},
		{
			name: "missing Connection",
			answer: func(req *http.Request) string {
				return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" + good(req) + "\r\n"
			},
			check: CheckConnection, status: 101, closeTC: true,
		},
		{
			name: "Connection without upgrade token",
			answer: func(req *http.Request) string {
				return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n" + good(req) + "\r\n"
			},
			check: CheckConnection, status: 101, closeTC: true,
		},
		{
			name: "wrong Sec-WebSocket-Accept",
			answer: func(req *http.Request) string {
				return up + "Sec-WebSocket-Accept: " + ccAcceptValue("dGhlIHNhbXBsZSBub25jZQ==") + "\r\n\r\n"
			},
			check: CheckAccept, status: 101, closeTC: true,
		},
		{
			name: "Sec-WebSocket-Accept of the key itself",
			answer: func(req *http.Request) string {
				return up + "Sec-WebSocket-Accept: " + req.Header.Get("Sec-WebSocket-Key") + "\r\n\r\n"
			},
			check: CheckAccept, status: 101, closeTC: true,
		},
		{
			name:   "missing Sec-WebSocket-Accept",
			answer: func(req *http.Request) string { return up + "\r\n" },
			check:  CheckAccept, status: 101, closeTC: true,
		},
		{
			name:    "subprotocol not offered",
			offered: []string{"chat"},
			answer: func(req *http.Request) string {
				return up + good(req) + "Sec-WebSocket-Protocol: superchat\r\n\r\n"
			},
			check: CheckSubprotocol, status: 101, closeTC: true,
		},
		{
			name:    "subprotocol differs in case",
			offered: []string{"chat"},
			answer: func(req *http.Request) string {
				return up + good(req) + "Sec-WebSocket-Protocol: Chat\r\n\r\n"
			},
			check: CheckSubprotocol, status: 101, closeTC: true,
		},
		{
			name:    "two subprotocols chosen",
			offered: []string{"chat", "superchat"},
			answer: func(req *http.Request) string {
				return up + good(req) + "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"
			},
			check: CheckSubprotocol, status: 101, closeTC: true,
		},
		{
			name: "subprotocol when none offered",
			answer: func(req *http.Request) string {
				return up + good(req) + "Sec-WebSocket-Protocol: chat\r\n\r\n"
			},
			check: CheckSubprotocol, status: 101, closeTC: true,
		},
		{
			name: "extension not offered",
			answer: func(req *http.Request) string {
				return up + good(req) + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
			},
			check: CheckExtension, status: 101, closeTC: true,
		},
		{
			name: "unknown extension not offered",
			answer: func(req *http.Request) string {
				return up + good(req) + "Sec-WebSocket-Extensions: x-webkit-deflate-frame; max_window_bits=10\r\n\r\n"
			},
			check: CheckExtension, status: 101, closeTC: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, p := ccHandshake(t, &DialOptions{Subprotocols: tc.offered}, tc.answer)
			if r.err == nil {
				t.Fatalf("Dial succeeded, want a %v failure", tc.check)
			}
			if r.c != nil {
				t.Errorf("Dial returned a Conn with its error")
			}
			var he *HandshakeError
			if !errors.As(r.err, &he) {
				t.Fatalf("error %T %v, want *HandshakeError", r.err, r.err)
			}
			if he.Check != tc.check {
				t.Errorf("Check = %v, want %v (error: %v)", he.Check, tc.check, he)
			}
			if he.Status != tc.status {
				t.Errorf("Status = %d, want %d", he.Status, tc.status)
			}
			if r.resp == nil {
				t.Fatal("no *http.Response returned with the handshake error")
			}
			if r.resp.StatusCode != tc.status {
				t.Errorf("response status %d, want %d", r.resp.StatusCode, tc.status)
			}
			body, err := io.ReadAll(r.resp.Body)
			if err != nil {
				t.Errorf("reading the returned body: %v", err)
			}
			if string(body) != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if tc.closeTC {
				// The client must fail the connection: close it, without
				// sending any WebSocket frame.
				p.expectEOF(t)
			}
		})
	}
}

func TestClientConformanceHandshakeTokens(t *testing.T) {
	answers := map[string]func(req *http.Request) string{
		"odd case": func(req *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUPGRADE: WebSocket\r\nconnection: uPgRaDe\r\n" +
				"sec-websocket-accept: " + ccAcceptValue(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"
		},
		"comma lists": func(req *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive,  Upgrade \r\n" +
				"Sec-WebSocket-Accept: " + ccAcceptValue(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"
		},
		"repeated Connection lines": func(req *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nConnection: upgrade\r\n" +
				"Sec-WebSocket-Accept:   " + ccAcceptValue(req.Header.Get("Sec-WebSocket-Key")) + "  \r\n\r\n"
		},
		"reason phrase and extra headers": func(req *http.Request) string {
			return "HTTP/1.1 101 Web Socket Protocol Handshake\r\nServer: raw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: " + ccAcceptValue(req.Header.Get("Sec-WebSocket-Key")) + "\r\n" +
				"Sec-WebSocket-Protocol:  chat \r\n\r\n"
		},
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			r, p := ccHandshake(t, &DialOptions{Subprotocols: []string{"superchat", "chat"}}, func(req *http.Request) string {
				// A frame right behind the 101 must not be lost.
				return answer(req) + string(ccFrame(0x81, []byte("first")))
			})
			if r.err != nil {
				t.Fatalf("Dial: %v", r.err)
			}
			got := ccRead(t, r.c)
			if got.err != nil || got.typ != MessageText || string(got.p) != "first" {
				t.Fatalf("Read = %v %q %v, want text \"first\"", got.typ, got.p, got.err)
			}
			if err := r.c.Write(context.Background(), MessageBinary, []byte("ok")); err != nil {
				t.Fatal(err)
			}
			if f := p.readFrame(t); f.op != 0x2 || string(f.payload) != "ok" {
				t.Fatalf("server got opcode %#x %q", f.op, f.payload)
			}
			if name == "reason phrase and extra headers" && r.c.Subprotocol() != "chat" {
				t.Errorf("Subprotocol() = %q, want chat", r.c.Subprotocol())
			}
		})
	}
}

func TestClientConformanceHandshakeTimeout(t *testing.T) {
	answers := map[string]string{
		"no answer":       "",
		"partial headers": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
	}
	for name, partial := range answers {
		t.Run(name, func(t *testing.T) {
			u, peers := ccListen(t)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			res := ccDialAsync(ctx, u, nil)
			p := ccAwaitPeer(t, peers)
			if partial != "" {
				p.write(t, []byte(partial))
			}
			r := ccAwaitDial(t, res)
			elapsed := time.Since(start)
			if r.err == nil {
				t.Fatal("Dial succeeded against a server that never answered")
			}
			if elapsed > 3*time.Second {
				t.Errorf("Dial took %v with a 300ms context", elapsed)
			}
			var he *HandshakeError
			if !errors.As(r.err, &he) || he.Check != CheckTransport {
				t.Fatalf("error %v, want a HandshakeError with Check transport", r.err)
			}
			if !errors.Is(r.err, context.DeadlineExceeded) {
				t.Errorf("error %v does not wrap context.DeadlineExceeded", r.err)
			}
			p.expectEOF(t) // the client gave up and closed its connection
		})
	}
}

func TestClientConformanceHandshakeContextNotKept(t *testing.T) {
	// The Dial context bounds the handshake only: cancelling it afterwards
	// leaves the connection working.
	u, peers := ccListen(t)
	ctx, cancel := context.WithCancel(context.Background())
	res := ccDialAsync(ctx, u, nil)
	p := ccAwaitPeer(t, peers)
	p.write(t, []byte(ccResponse101(p.req, "")))
	r := ccAwaitDial(t, res)
	if r.err != nil {
		t.Fatal(r.err)
	}
	cancel()
	time.Sleep(20 * time.Millisecond)
	p.write(t, ccFrame(0x81, []byte("still here")))
	if got := ccRead(t, r.c); got.err != nil || string(got.p) != "still here" {
		t.Fatalf("Read after cancelling the Dial context: %q %v", got.p, got.err)
	}
}

func TestClientConformanceHandshakeBadURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), ccTimeout)
	defer cancel()
	for _, u := range []string{"ftp://127.0.0.1/", "://nope", "127.0.0.1:1/x"} {
		_, _, err := Dial(ctx, u, nil)
		var he *HandshakeError
		if !errors.As(err, &he) || he.Check != CheckTransport {
			t.Errorf("Dial(%q) = %v, want a HandshakeError with Check transport", u, err)
		}
	}
}

// ---------------------------------------------------------------------------
// Framing

func TestClientConformanceFrameLengths(t *testing.T) {
	c, p := ccOpen(t, nil)
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20} {
		for _, typ := range []MessageType{MessageBinary, MessageText} {
			payload := ccPattern(n)
			b0 := byte(0x82)
			if typ == MessageText {
				payload = bytes.Repeat([]byte("é"), n/2)
				payload = append(payload, bytes.Repeat([]byte("a"), n%2)...)
				b0 = 0x81
			}
			frame := ccFrame(b0, payload)
			switch {
			case n <= 125 && frame[1] != byte(n),
				n > 125 && n <= 0xFFFF && frame[1] != 126,
				n > 0xFFFF && frame[1] != 127:
				t.Fatalf("test encoder: length byte %d for %d", frame[1], n)
			}
			werr := p.writeAsync(frame)
			got := ccRead(t, c)
			if got.err != nil {
				t.Fatalf("n=%d: %v", n, got.err)
			}
			if got.typ != typ || !bytes.Equal(got.p, payload) {
				t.Fatalf("n=%d: got %v of %d bytes, want %v of %d bytes (equal=%v)", n, got.typ, len(got.p), typ, len(payload), bytes.Equal(got.p, payload))
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestClientConformanceFragmentedMessage(t *testing.T) {
	c, p := ccOpen(t, nil)
	// "héllo wörld" in four fragments, split inside characters, with a
	// ping and an empty fragment among them.
	msg := []byte("héllo wörld")
	p.write(t, ccCat(
		ccFrame(0x01, msg[:2]), // "h" and half of "é"
		ccFrame(0x00, msg[2:2]),
		ccFrame(0x89, []byte("p")),
		ccFrame(0x00, msg[2:8]),
		ccFrame(0x80, msg[8:]),
		ccFrame(0x02, []byte{1, 2}),
		ccFrame(0x80, []byte{3}),
	))
	if got := ccRead(t, c); got.err != nil || got.typ != MessageText || !bytes.Equal(got.p, msg) {
		t.Fatalf("Read = %v %q %v, want text %q", got.typ, got.p, got.err, msg)
	}
	if got := ccRead(t, c); got.err != nil || got.typ != MessageBinary || !bytes.Equal(got.p, []byte{1, 2, 3}) {
		t.Fatalf("Read = %v %q %v, want binary 010203", got.typ, got.p, got.err)
	}
	if f := p.readFrame(t); f.op != 0xA || string(f.payload) != "p" || !f.masked {
		t.Fatalf("pong: op %#x masked %v payload %q", f.op, f.masked, f.payload)
	}
}

func TestClientConformanceMaskedFrames(t *testing.T) {
	c, p := ccOpen(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), ccTimeout)
	defer cancel()
	keys := map[[4]byte]bool{}
	check := func(f ccWireFrame, fin bool, op byte, want []byte) {
		t.Helper()
		if !f.masked {
			t.Fatalf("client frame (op %#x, %d bytes) is not masked", f.op, len(f.payload))
		}
		if f.fin != fin || f.op != op || f.rsv != 0 {
			t.Fatalf("frame fin=%v op=%#x rsv=%#x, want fin=%v op=%#x rsv=0", f.fin, f.op, f.rsv, fin, op)
		}
		n := len(want)
		switch {
		case n <= 125 && f.lenCode != byte(n),
			n > 125 && n <= 0xFFFF && f.lenCode != 126,
			n > 0xFFFF && f.lenCode != 127:
			t.Fatalf("length of %d bytes encoded with length code %d (not minimal)", n, f.lenCode)
		}
		if !bytes.Equal(f.payload, want) {
			t.Fatalf("unmasked payload differs (%d bytes, want %d)", len(f.payload), len(want))
		}
		if n >= 16 && bytes.Equal(f.wire, want) {
			t.Fatalf("payload of %d bytes went out in the clear", n)
		}
		keys[f.key] = true
	}
	for _, n := range []int{0, 1, 5, 125, 126, 4096, 65535, 65536, 300000} {
		payload := ccPattern(n)
		done := make(chan error, 1)
		go func() { done <- c.Write(ctx, MessageBinary, payload) }()
		check(p.readFrame(t), true, 0x2, payload)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n <= 1000 {
			text := strings.Repeat("ü", n/2)
			go func() { done <- c.Write(ctx, MessageText, []byte(text)) }()
			check(p.readFrame(t), true, 0x1, []byte(text))
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(keys) < 5 {
		t.Errorf("only %d distinct masking keys over many frames", len(keys))
	}

	// A message written in fragments: every frame is masked, the first
	// carries the type, the rest are continuations, only the last has FIN.
	done := make(chan error, 1)
	go func() {
		w, err := c.Writer(ctx, MessageText)
		if err != nil {
			done <- err
			return
		}
		fl := w.(interface{ Flush() error })
		w.Write([]byte("frag"))
		if err := fl.Flush(); err != nil {
			done <- err
			return
		}
		w.Write([]byte("ment"))
		if err := fl.Flush(); err != nil {
			done <- err
			return
		}
		w.Write([]byte("ed"))
		done <- w.Close()
	}()
	check(p.readFrame(t), false, 0x1, []byte("frag"))
	check(p.readFrame(t), false, 0x0, []byte("ment"))
	check(p.readFrame(t), true, 0x0, []byte("ed"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestClientConformancePingPong(t *testing.T) {
	var mu sync.Mutex
	var pings, pongs []string
	opts := &DialOptions{Options: Options{
		OnPing: func(p []byte) { mu.Lock(); pings = append(pings, string(p)); mu.Unlock() },
		OnPong: func(p []byte) { mu.Lock(); pongs = append(pongs, string(p)); mu.Unlock() },
	}}
	c, p := ccOpen(t, opts)
	for _, payload := range [][]byte{[]byte("abc"), {}, ccPattern(125)} {
		p.write(t, ccCat(ccFrame(0x89, payload), ccFrame(0x81, []byte("after"))))
		if got := ccRead(t, c); got.err != nil || string(got.p) != "after" {
			t.Fatalf("Read = %q %v", got.p, got.err)
		}
		f := p.readFrame(t)
		if f.op != 0xA || !f.fin || !f.masked || !bytes.Equal(f.payload, payload) {
			t.Fatalf("answer to ping: op %#x fin %v masked %v payload %q, want masked pong %q", f.op, f.fin, f.masked, f.payload, payload)
		}
	}
	// An unsolicited pong is ignored (RFC 6455 §5.5.3), and not answered.
	p.write(t, ccCat(ccFrame(0x8A, []byte("unsolicited")), ccFrame(0x82, []byte("x"))))
	if got := ccRead(t, c); got.err != nil || string(got.p) != "x" {
		t.Fatalf("Read = %q %v", got.p, got.err)
	}
	p.expectSilence(t, 100*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(pings) != 3 || pings[0] != "abc" || pings[1] != "" || pings[2] != string(ccPattern(125)) {
		t.Errorf("OnPing saw %q", pings)
	}
	if len(pongs) != 1 || pongs[0] != "unsolicited" {
		t.Errorf("OnPong saw %q", pongs)
	}
}

// TestClientConformanceViolations sends frames that break RFC 6455 and checks
// that the client fails the connection with the right code: Read returns a
// *ProtocolError, the client sends one masked close frame with that code,
// then ends the TCP stream.
func TestClientConformanceViolations(t *testing.T) {
	long := func(b0 byte, n int) []byte { return ccFrame(b0, ccPattern(n)) }
	cases := []struct {
		name   string
		limit  int64
		before []string // messages that must be read first
		send   []byte
		code   StatusCode
	}{
		{name: "masked server frame", send: []byte{0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1}, code: 1002},
		{name: "masked empty server frame", send: []byte{0x82, 0x80, 1, 2, 3, 4}, code: 1002},
		{name: "masked server ping", send: []byte{0x89, 0x80, 1, 2, 3, 4}, code: 1002},
		{name: "RSV1", send: ccFrame(0xC1, []byte("a")), code: 1002},
		{name: "RSV2", send: ccFrame(0xA1, []byte("a")), code: 1002},
		{name: "RSV3", send: ccFrame(0x91, []byte("a")), code: 1002},
		{name: "RSV on ping", send: ccFrame(0xC9, nil), code: 1002},
		{name: "RSV on continuation", send: ccCat(ccFrame(0x01, []byte("a")), ccFrame(0xC0, []byte("b"))), code: 1002},
		{name: "opcode 3", send: ccFrame(0x83, nil), code: 1002},
		{name: "opcode 4", send: ccFrame(0x84, []byte("x")), code: 1002},
		{name: "opcode 5", send: ccFrame(0x85, nil), code: 1002},
		{name: "opcode 6", send: ccFrame(0x86, nil), code: 1002},
		{name: "opcode 7", send: ccFrame(0x87, nil), code: 1002},
		{name: "opcode 0xB", send: ccFrame(0x8B, nil), code: 1002},
		{name: "opcode 0xC", send: ccFrame(0x8C, nil), code: 1002},
		{name: "opcode 0xD", send: ccFrame(0x8D, nil), code: 1002},
		{name: "opcode 0xE", send: ccFrame(0x8E, nil), code: 1002},
		{name: "opcode 0xF", send: ccFrame(0x8F, []byte("x")), code: 1002},
		{name: "reserved opcode inside message", send: ccCat(ccFrame(0x01, []byte("a")), ccFrame(0x83, nil)), code: 1002},
		{name: "ping of 126 bytes", send: long(0x89, 126), code: 1002},
		{name: "pong of 126 bytes", send: long(0x8A, 126), code: 1002},
		{name: "close of 126 bytes", send: ccFrame(0x88, ccCat(ccClosePayload(1000, ""), ccPattern(124))), code: 1002},
		{name: "ping with 64-bit length", send: ccCat([]byte{0x89, 127}, make([]byte, 7), []byte{3}, []byte("abc")), code: 1002},
		{name: "fragmented ping", send: ccFrame(0x09, []byte("a")), code: 1002},
		{name: "fragmented pong", send: ccFrame(0x0A, nil), code: 1002},
		{name: "fragmented close", send: ccFrame(0x08, ccClosePayload(1000, "")), code: 1002},
		{name: "continuation without a message", send: ccFrame(0x80, []byte("a")), code: 1002},
		{name: "unfinished continuation without a message", send: ccFrame(0x00, nil), code: 1002},
		{name: "text inside a fragmented text", send: ccCat(ccFrame(0x01, []byte("a")), ccFrame(0x81, []byte("b"))), code: 1002},
		{name: "binary inside a fragmented text", send: ccCat(ccFrame(0x01, []byte("a")), ccFrame(0x02, []byte("b"))), code: 1002},
		{name: "text inside a fragmented binary", send: ccCat(ccFrame(0x02, []byte("a")), ccFrame(0x81, []byte("b"))), code: 1002},
		{name: "continuation after a finished message", before: []string{"a"}, send: ccCat(ccFrame(0x81, []byte("a")), ccFrame(0x80, []byte("b"))), code: 1002},
		{name: "64-bit length with the top bit", send: []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, code: 1002},
		{name: "64-bit length all ones", send: []byte{0x82, 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, code: 1002},
		{name: "close with a 1-byte payload", send: ccFrame(0x88, []byte{0x03}), code: 1002},
		{name: "close code 0", send: ccFrame(0x88, ccClosePayload(0, "")), code: 1002},
		{name: "close code 999", send: ccFrame(0x88, ccClosePayload(999, "")), code: 1002},
		{name: "close code 1004", send: ccFrame(0x88, ccClosePayload(1004, "")), code: 1002},
		{name: "close code 1005", send: ccFrame(0x88, ccClosePayload(1005, "")), code: 1002},
		{name: "close code 1006", send: ccFrame(0x88, ccClosePayload(1006, "")), code: 1002},
		{name: "close code 1015", send: ccFrame(0x88, ccClosePayload(1015, "")), code: 1002},
		{name: "close code 1016", send: ccFrame(0x88, ccClosePayload(1016, "")), code: 1002},
		{name: "close code 2999", send: ccFrame(0x88, ccClosePayload(2999, "")), code: 1002},
		{name: "close code 5000", send: ccFrame(0x88, ccClosePayload(5000, "")), code: 1002},
		{name: "close code 65535", send: ccFrame(0x88, ccClosePayload(65535, "")), code: 1002},
		{name: "invalid UTF-8", send: ccFrame(0x81, []byte{0xC3, 0x28}), code: 1007},
		{name: "invalid UTF-8 after valid text", send: ccFrame(0x81, []byte("héllo\xffworld")), code: 1007},
		{name: "overlong encoding", send: ccFrame(0x81, []byte{0xC0, 0xAF}), code: 1007},
		{name: "overlong 3-byte encoding", send: ccFrame(0x81, []byte{0xE0, 0x80, 0xAF}), code: 1007},
		{name: "UTF-16 surrogate", send: ccFrame(0x81, []byte{0xED, 0xA0, 0x80}), code: 1007},
		{name: "above U+10FFFF", send: ccFrame(0x81, []byte{0xF4, 0x90, 0x80, 0x80}), code: 1007},
		{name: "text ends inside a character", send: ccFrame(0x81, []byte{'a', 0xE2, 0x82}), code: 1007},
		{name: "fragmented text ends inside a character", send: ccCat(ccFrame(0x01, []byte{0xE2, 0x82}), ccFrame(0x80, nil)), code: 1007},
		{name: "character broken across fragments", send: ccCat(ccFrame(0x01, []byte{0xE2}), ccFrame(0x80, []byte{0x82, 0x28})), code: 1007},
		{name: "invalid text after a valid split character", before: []string{"€"}, send: ccCat(ccFrame(0x01, []byte{0xE2}), ccFrame(0x80, []byte{0x82, 0xAC}), ccFrame(0x81, []byte{0xFE})), code: 1007},
		{name: "close reason not UTF-8", send: ccFrame(0x88, ccClosePayload(1000, "\xff")), code: 1007},
		{name: "over ReadLimit in one frame", limit: 100, before: []string{string(ccPattern(100))}, send: ccCat(long(0x82, 100), long(0x82, 101)), code: 1009},
		{name: "over ReadLimit across fragments", limit: 100, send: ccCat(long(0x02, 60), long(0x80, 41)), code: 1009},
		{name: "over ReadLimit announced by the header alone", limit: 100, send: []byte{0x82, 126, 0x10, 0x00}, code: 1009},
		{name: "over the default ReadLimit", send: ccCat([]byte{0x82, 127}, binary.BigEndian.AppendUint64(nil, DefaultReadLimit+1)), code: 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, p := ccOpen(t, &DialOptions{Options: Options{ReadLimit: tc.limit}})
			werr := p.writeAsync(tc.send)
			for _, want := range tc.before {
				if got := ccRead(t, c); got.err != nil || string(got.p) != want {
					t.Fatalf("Read = %q %v, want message %q", got.p, got.err, want)
				}
			}
			got := ccRead(t, c)
			var pe *ProtocolError
			if !errors.As(got.err, &pe) {
				t.Fatalf("Read = %v %q %v, want a *ProtocolError", got.typ, got.p, got.err)
			}
			if pe.Code != tc.code {
				t.Errorf("ProtocolError code %d (%s), want %d", pe.Code, pe.Reason, tc.code)
			}
			f := p.readFrame(t)
			if f.op != 0x8 || !f.fin || !f.masked {
				t.Fatalf("client sent op %#x fin %v masked %v, want a masked close frame", f.op, f.fin, f.masked)
			}
			if len(f.payload) < 2 {
				t.Fatalf("close frame payload %q has no code", f.payload)
			}
			if code := StatusCode(binary.BigEndian.Uint16(f.payload)); code != tc.code {
				t.Errorf("client sent close code %d, want %d", code, tc.code)
			}
			if !utf8.Valid(f.payload[2:]) {
				t.Errorf("close reason %q is not UTF-8", f.payload[2:])
			}
			p.expectEOF(t)
			p.conn.Close() // ends the client's lingering drain
			ccWaitClosed(t, c)
			// The error is sticky.
			if got := ccRead(t, c); !errors.As(got.err, &pe) || pe.Code != tc.code {
				t.Errorf("second Read = %v, want the same *ProtocolError", got.err)
			}
			if err := c.Write(context.Background(), MessageText, []byte("x")); err == nil {
				t.Errorf("Write after the connection failed succeeded")
			}
			<-werr
		})
	}
}

// TestClientConformanceUTF8FailFast checks that invalid UTF-8 fails the
// connection as soon as it arrives, before the rest of the frame (§8.1).
func TestClientConformanceUTF8FailFast(t *testing.T) {
	c, p := ccOpen(t, nil)
	// A text frame announcing 1000 bytes of which only 5 arrive: the 5th
	// byte can never be part of valid UTF-8.
	p.write(t, ccCat([]byte{0x81, 126, 0x03, 0xE8}, []byte("abc\xE2\x28")))
	start := time.Now()
	got := ccRead(t, c)
	var pe *ProtocolError
	if !errors.As(got.err, &pe) || pe.Code != 1007 {
		t.Fatalf("Read = %v, want ProtocolError 1007", got.err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("failure took %v: the client waited for the rest of the frame", d)
	}
	f := p.readFrame(t)
	if f.op != 0x8 || len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != 1007 {
		t.Fatalf("client sent op %#x payload %q, want close 1007", f.op, f.payload)
	}
}

// ---------------------------------------------------------------------------
// Closing handshake

func TestClientConformanceServerCloses(t *testing.T) {
	c, p := ccOpen(t, nil)
	// A data frame after the close frame must not be delivered (§5.5.1).
	p.write(t, ccCat(ccFrame(0x88, ccClosePayload(1000, "bye")), ccFrame(0x81, []byte("after close"))))
	reads := ccReadAsync(c)
	f := p.readFrame(t)
	if f.op != 0x8 || !f.fin || !f.masked {
		t.Fatalf("client answered op %#x fin %v masked %v, want a masked close", f.op, f.fin, f.masked)
	}
	if len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != 1000 {
		t.Fatalf("close echo payload %q, want code 1000", f.payload)
	}
	// The client must wait for the server to close TCP (§7.1.1): the server
	// lingers and must see neither data nor EOF meanwhile.
	p.expectSilence(t, 200*time.Millisecond)
	select {
	case r := <-reads:
		t.Fatalf("Read returned (%v) before the server closed TCP", r.err)
	default:
	}
	if s := c.State(); s != StateClosing {
		t.Errorf("state %v while waiting for the server to close, want closing", s)
	}
	p.conn.Close()
	r := ccAwaitRead(t, reads)
	var ce *CloseError
	if !errors.As(r.err, &ce) || ce.Code != 1000 || ce.Reason != "bye" {
		t.Fatalf("Read = %v, want *CloseError{1000, \"bye\"}", r.err)
	}
	if CloseStatus(r.err) != 1000 {
		t.Errorf("CloseStatus = %d", CloseStatus(r.err))
	}
	ccWaitClosed(t, c)
	// Close after the handshake finished sends nothing and reports it.
	if err := c.Close(StatusNormalClosure, ""); err == nil {
		t.Errorf("Close after the peer closed returned nil")
	}
}

func TestClientConformanceServerClosesEmpty(t *testing.T) {
	c, p := ccOpen(t, nil)
	p.write(t, ccFrame(0x88, nil))
	reads := ccReadAsync(c)
	f := p.readFrame(t)
	if f.op != 0x8 || !f.masked || len(f.payload) != 0 {
		t.Fatalf("client answered op %#x masked %v payload %q, want a masked empty close", f.op, f.masked, f.payload)
	}
	p.conn.Close()
	r := ccAwaitRead(t, reads)
	var ce *CloseError
	if !errors.As(r.err, &ce) || ce.Code != StatusNoStatusRcvd || ce.Reason != "" {
		t.Fatalf("Read = %v, want *CloseError{1005}", r.err)
	}
}

func TestClientConformanceServerClosesTimeout(t *testing.T) {
	// A server that never closes TCP after the closing handshake: the client
	// closes it itself after CloseTimeout.
	c, p := ccOpen(t, &DialOptions{Options: Options{CloseTimeout: 300 * time.Millisecond}})
	p.write(t, ccFrame(0x88, ccClosePayload(4001, "")))
	reads := ccReadAsync(c)
	p.readFrame(t)
	r := ccAwaitRead(t, reads)
	if CloseStatus(r.err) != 4001 {
		t.Fatalf("Read = %v, want close 4001", r.err)
	}
	p.expectEOF(t)
}

func TestClientConformanceServerDropsTCP(t *testing.T) {
	c, p := ccOpen(t, nil)
	p.write(t, ccFrame(0x01, []byte("half")))
	p.conn.Close()
	r := ccRead(t, c)
	var ce *CloseError
	if !errors.As(r.err, &ce) || ce.Code != StatusAbnormalClosure {
		t.Fatalf("Read = %v, want *CloseError{1006}", r.err)
	}
	ccWaitClosed(t, c)
}

func TestClientConformanceClientCloses(t *testing.T) {
	c, p := ccOpen(t, nil)
	closed := make(chan error, 1)
	go func() { closed <- c.Close(4000, "x") }()
	f := p.readFrame(t)
	if f.op != 0x8 || !f.fin || !f.masked || f.rsv != 0 {
		t.Fatalf("client sent op %#x fin %v masked %v rsv %#x, want a masked close", f.op, f.fin, f.masked, f.rsv)
	}
	if want := []byte{0x0F, 0xA0, 'x'}; !bytes.Equal(f.payload, want) {
		t.Fatalf("close payload % x, want % x", f.payload, want)
	}
	if s := c.State(); s != StateClosing {
		t.Errorf("state %v after sending close, want closing", s)
	}
	// Data after the client's close is dropped, then the server echoes.
	p.write(t, ccCat(ccFrame(0x81, []byte("late")), ccFrame(0x88, ccClosePayload(4000, ""))))
	// The client must now wait for the server to close TCP.
	p.expectSilence(t, 200*time.Millisecond)
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the server closed TCP", err)
	default:
	}
	p.conn.Close()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close = %v, want nil after the server's echo", err)
		}
	case <-time.After(ccTimeout):
		t.Fatal("Close did not return after the server closed TCP")
	}
	ccWaitClosed(t, c)
	if _, _, err := c.Read(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
	if err := c.Write(context.Background(), MessageText, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
}

func TestClientConformanceClientClosesWhileReading(t *testing.T) {
	c, p := ccOpen(t, nil)
	reads := ccReadAsync(c)
	time.Sleep(20 * time.Millisecond) // let Read block
	closed := make(chan error, 1)
	go func() { closed <- c.Close(StatusGoingAway, "") }()
	f := p.readFrame(t)
	if f.op != 0x8 || !f.masked || !bytes.Equal(f.payload, []byte{0x03, 0xE9}) {
		t.Fatalf("client sent op %#x payload % x, want close 1001", f.op, f.payload)
	}
	p.write(t, ccFrame(0x88, ccClosePayload(1001, "")))
	p.expectSilence(t, 100*time.Millisecond)
	p.conn.Close()
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v", err)
	}
	if r := ccAwaitRead(t, reads); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("concurrent Read = %v, want ErrClosed", r.err)
	}
}

func TestClientConformanceClientCloseUnanswered(t *testing.T) {
	c, p := ccOpen(t, &DialOptions{Options: Options{CloseTimeout: 300 * time.Millisecond}})
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- c.Close(StatusNormalClosure, "") }()
	if f := p.readFrame(t); f.op != 0x8 {
		t.Fatalf("client sent op %#x, want close", f.op)
	}
	// The server never answers: the client gives up after CloseTimeout and
	// closes TCP itself.
	p.expectEOF(t)
	select {
	case err := <-closed:
		if err == nil {
			t.Errorf("Close = nil although the server never answered")
		}
	case <-time.After(ccTimeout):
		t.Fatal("Close did not return")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v with a 300ms CloseTimeout", d)
	}
}

func TestClientConformanceCloseArguments(t *testing.T) {
	c, p := ccOpen(t, nil)
	refused := []struct {
		code   StatusCode
		reason string
	}{
		{1005, "x"}, // no code, so no reason either
		{1006, ""},
		{1015, ""},
		{999, ""},
		{0, ""},
		{1004, ""},
		{1016, ""},
		{2999, ""},
		{5000, ""},
		{-1, ""},
		{1000, strings.Repeat("r", 124)},
		{1000, strings.Repeat("é", 62)}, // 124 bytes
		{1000, "\xff"},
	}
	for _, tc := range refused {
		if err := c.Close(tc.code, tc.reason); err == nil {
			t.Errorf("Close(%d, %d-byte reason) = nil, want an error", tc.code, len(tc.reason))
		}
	}
	// Nothing was sent, and the connection still works.
	p.expectSilence(t, 100*time.Millisecond)
	if s := c.State(); s != StateOpen {
		t.Fatalf("state %v after refused Close calls, want open", s)
	}
	if err := c.Write(context.Background(), MessageText, []byte("still open")); err != nil {
		t.Fatal(err)
	}
	if f := p.readFrame(t); f.op != 0x1 || string(f.payload) != "still open" {
		t.Fatalf("server got op %#x %q", f.op, f.payload)
	}
	// The longest reason, 123 bytes, is sent whole.
	reason := strings.Repeat("é", 61) + "!"
	closed := make(chan error, 1)
	go func() { closed <- c.Close(3000, reason) }()
	f := p.readFrame(t)
	if want := ccClosePayload(3000, reason); f.op != 0x8 || !f.masked || !bytes.Equal(f.payload, want) {
		t.Fatalf("close frame op %#x payload %q, want %q", f.op, f.payload, want)
	}
	p.write(t, ccFrame(0x88, ccClosePayload(3000, "")))
	p.conn.Close()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

func TestClientConformanceCloseWithoutCode(t *testing.T) {
	// StatusNoStatusRcvd with no reason means a close frame with no payload.
	c, p := ccOpen(t, nil)
	closed := make(chan error, 1)
	go func() { closed <- c.Close(StatusNoStatusRcvd, "") }()
	f := p.readFrame(t)
	if f.op != 0x8 || !f.masked || len(f.payload) != 0 {
		t.Fatalf("close frame op %#x masked %v payload % x, want a masked empty close", f.op, f.masked, f.payload)
	}
	p.write(t, ccFrame(0x88, nil))
	p.conn.Close()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// TLS and proxies

// ccEchoHandler accepts WebSocket connections and echoes messages.
func ccEchoHandler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 2*ccTimeout)
		defer cancel()
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, p); err != nil {
				return
			}
		}
	})
}

func ccEcho(t *testing.T, c *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ccTimeout)
	defer cancel()
	for _, msg := range [][]byte{[]byte("hello"), ccPattern(70000)} {
		typ := MessageBinary
		if len(msg) < 100 {
			typ = MessageText
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			t.Fatal(err)
		}
		gt, got, err := c.Read(ctx)
		if err != nil || gt != typ || !bytes.Equal(got, msg) {
			t.Fatalf("echo: %v of %d bytes, %v", gt, len(got), err)
		}
	}
	if err := c.Close(StatusNormalClosure, "done"); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func ccWSURL(httpURL string) string {
	return "ws" + strings.TrimPrefix(httpURL, "http")
}

func TestClientConformanceTLS(t *testing.T) {
	srv := httptest.NewTLSServer(ccEchoHandler(t))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	ctx, cancel := context.WithTimeout(context.Background(), ccTimeout)
	defer cancel()
	u := ccWSURL(srv.URL) + "/echo"
	if !strings.HasPrefix(u, "wss://127.0.0.1:") {
		t.Fatalf("URL %q", u)
	}
	c, resp, err := Dial(ctx, u, &DialOptions{TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.CloseNow()
	if resp.TLS == nil || !resp.TLS.HandshakeComplete {
		t.Errorf("response carries no TLS state")
	}
	if resp.TLS != nil && resp.TLS.NegotiatedProtocol == "h2" {
		t.Errorf("negotiated h2 for a WebSocket handshake")
	}
	ccEcho(t, c)

	// Without the test CA the certificate is refused.
	_, _, err = Dial(ctx, u, &DialOptions{TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}})
	var he *HandshakeError
	if !errors.As(err, &he) || he.Check != CheckTransport {
		t.Fatalf("Dial with an unknown CA = %v, want a transport HandshakeError", err)
	}
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &uae) {
		t.Errorf("error %v does not wrap x509.UnknownAuthorityError", err)
	}
}

// ccProxy is a small HTTP proxy on 127.0.0.1: it tunnels CONNECT requests
// and forwards absolute-form requests (plain http://, so ws://), then copies
// bytes both ways, which carries the WebSocket connection after a 101.
type ccProxy struct {
	ln   net.Listener
	mu   sync.Mutex
	seen []*http.Request
}

func ccStartProxy(t *testing.T) *ccProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &ccProxy{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); px.serve(c) }()
		}
	}()
	return px
}

func (px *ccProxy) url() *url.URL { return &url.URL{Scheme: "http", Host: px.ln.Addr().String()} }

func (px *ccProxy) requests() []*http.Request {
	px.mu.Lock()
	defer px.mu.Unlock()
	return append([]*http.Request(nil), px.seen...)
}

func (px *ccProxy) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * ccTimeout))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	px.mu.Lock()
	px.seen = append(px.seen, req.Clone(context.Background()))
	px.mu.Unlock()
	host := req.URL.Host
	if req.Method == http.MethodConnect {
		host = req.RequestURI
	}
	if h, _, err := net.SplitHostPort(host); err != nil || h != "127.0.0.1" {
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return
	}
	target, err := net.DialTimeout("tcp", host, ccTimeout)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer target.Close()
	target.SetDeadline(time.Now().Add(3 * ccTimeout))
	if req.Method == http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	} else {
		// Forward in origin form; Request.Write keeps Upgrade and Connection.
		req.RequestURI = ""
		if err := req.Write(target); err != nil {
			return
		}
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(target, br); done <- struct{}{} }()
	go func() { io.Copy(c, target); done <- struct{}{} }()
	<-done
}

func TestClientConformanceProxyPlain(t *testing.T) {
	srv := httptest.NewServer(ccEchoHandler(t))
	defer srv.Close()
	px := ccStartProxy(t)
	var asked []string
	opts := &DialOptions{Proxy: func(r *http.Request) (*url.URL, error) {
		asked = append(asked, r.URL.String())
		return px.url(), nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), ccTimeout)
	defer cancel()
	u := ccWSURL(srv.URL) + "/echo?via=proxy"
	c, _, err := Dial(ctx, u, opts)
	if err != nil {
		t.Fatalf("Dial through the proxy: %v", err)
	}
	defer c.CloseNow()
	ccEcho(t, c)
	reqs := px.requests()
	if len(reqs) != 1 {
		t.Fatalf("proxy saw %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if want := srv.URL + "/echo?via=proxy"; r.Method != "GET" || r.RequestURI != want {
		t.Errorf("proxy saw %s %s, want GET %s (absolute form)", r.Method, r.RequestURI, want)
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") || r.Header.Get("Sec-WebSocket-Key") == "" {
		t.Errorf("proxied request lacks the WebSocket headers: %v", r.Header)
	}
	if len(asked) != 1 || asked[0] != srv.URL+"/echo?via=proxy" {
		t.Errorf("Proxy func called with %q", asked)
	}
}

func TestClientConformanceProxyConnectTLS(t *testing.T) {
	srv := httptest.NewTLSServer(ccEchoHandler(t))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	px := ccStartProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), ccTimeout)
	defer cancel()
	c, _, err := Dial(ctx, ccWSURL(srv.URL)+"/echo", &DialOptions{
		TLSConfig: &tls.Config{RootCAs: pool},
		Proxy:     http.ProxyURL(px.url()),
	})
	if err != nil {
		t.Fatalf("Dial through the proxy: %v", err)
	}
	defer c.CloseNow()
	ccEcho(t, c)
	reqs := px.requests()
	if len(reqs) != 1 {
		t.Fatalf("proxy saw %d requests, want 1", len(reqs))
	}
	if want := strings.TrimPrefix(srv.URL, "https://"); reqs[0].Method != "CONNECT" || reqs[0].RequestURI != want {
		t.Errorf("proxy saw %s %s, want CONNECT %s", reqs[0].Method, reqs[0].RequestURI, want)
	}
}

func TestClientConformanceProxyErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), ccTimeout)
	defer cancel()
	boom := errors.New("no proxy for you")
	_, _, err := Dial(ctx, "ws://127.0.0.1:1/", &DialOptions{Proxy: func(*http.Request) (*url.URL, error) { return nil, boom }})
	var he *HandshakeError
	if !errors.As(err, &he) || he.Check != CheckTransport || !errors.Is(err, boom) {
		t.Errorf("Dial with a failing Proxy func = %v, want a transport HandshakeError wrapping it", err)
	}
	// A proxy that refuses the target: its answer is the failed handshake.
	px := ccStartProxy(t)
	_, resp, err := Dial(ctx, "ws://localhost:1/", &DialOptions{Proxy: http.ProxyURL(px.url())})
	if !errors.As(err, &he) || he.Check != CheckStatus || he.Status != 403 {
		t.Errorf("Dial through a refusing proxy = %v, want status 403", err)
	}
	if resp == nil || resp.StatusCode != 403 {
		t.Errorf("response %v, want the proxy's 403", resp)
	}
}
