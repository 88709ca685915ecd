package websocket_test

// Server-side conformance: a raw TCP peer sends exact bytes to an echo
// server built on Accept and checks the exact bytes, close codes and TCP
// closes that come back (RFC 6455). Every group runs against two echo
// servers: one that streams each message through Reader, Writer and
// io.Copy, and one that reads and writes whole messages with Read and Write;
// on Linux, also against the event-loop server of package
// websocket/eventloop, which drives the same parser from epoll.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// echoMode is how the test server echoes messages.
type echoMode int

const (
	echoStream    echoMode = iota // Reader + Writer + io.Copy
	echoWhole                     // Read + Write
	echoEventLoop                 // eventloop.Server, Write from OnMessage
)

func (m echoMode) String() string {
	switch m {
	case echoStream:
		return "stream"
	case echoEventLoop:
		return "eventloop"
	}
	return "whole"
}

// newEventLoopServer starts the event-loop echo server; it is set (and
// echoEventLoop added to echoModes) where the event loop runs.
var newEventLoopServer func(t *testing.T, opts *websocket.AcceptOptions) *confServer

var echoModes = []echoMode{echoStream, echoWhole}

// confServer is an httptest server whose handler accepts WebSocket
// connections and echoes every message. It records the error each handler
// ended with, keyed by the client's address, so a test can check what the
// server saw as well as what it sent.
type confServer struct {
	addr string
	ends sync.Map // remote address -> chan error
}

func newConfServer(t *testing.T, mode echoMode, opts *websocket.AcceptOptions) *confServer {
	t.Helper()
	if mode == echoEventLoop {
		return newEventLoopServer(t, opts)
	}
	s := &confServer{}
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			s.ended(r.RemoteAddr, err)
			return
		}
		if mode == echoStream {
			err = echoStreamed(ctx, c)
		} else {
			err = echoWholeMessages(ctx, c)
		}
		s.ended(r.RemoteAddr, err)
	}))
	s.addr = srv.Listener.Addr().String()
	t.Cleanup(func() {
		cancel()
		srv.Close()
	})
	return s
}

// echoStreamed echoes each message as it arrives, never holding it whole.
func echoStreamed(ctx context.Context, c *websocket.Conn) error {
	for {
		typ, r, err := c.Reader(ctx)
		if err != nil {
			return err
		}
		w, err := c.Writer(ctx, typ)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
}

// echoWholeMessages echoes each message with Read and Write.
func echoWholeMessages(ctx context.Context, c *websocket.Conn) error {
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			return err
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return err
		}
	}
}

func (s *confServer) endCh(addr string) chan error {
	ch, _ := s.ends.LoadOrStore(addr, make(chan error, 1))
	return ch.(chan error)
}

func (s *confServer) ended(addr string, err error) {
	select {
	case s.endCh(addr) <- err:
	default:
	}
}

// endErr waits for the handler serving p's connection to return, and
// returns its error.
func (s *confServer) endErr(t *testing.T, p *rawPeer) error {
	t.Helper()
	select {
	case err := <-s.endCh(p.conn.LocalAddr().String()):
		s.ends.Delete(p.conn.LocalAddr().String())
		return err
	case <-time.After(rawTimeout):
		t.Fatalf("the server handler for %s did not return", p.conn.LocalAddr())
		return nil
	}
}

// expectProtocolError checks that the server failed p's connection with a
// *ProtocolError carrying code.
func (s *confServer) expectProtocolError(t *testing.T, p *rawPeer, code int) {
	t.Helper()
	err := s.endErr(t, p)
	var pe *websocket.ProtocolError
	if !errors.As(err, &pe) || int(pe.Code) != code {
		t.Fatalf("server ended with %v, want a *ProtocolError with code %d", err, code)
	}
}

// open dials the server and performs a valid handshake.
func (s *confServer) open(t *testing.T) *rawPeer {
	t.Helper()
	p := dialRaw(t, s.addr)
	p.handshake(s.addr)
	return p
}

// checkAlive checks that a new connection to the server still echoes.
func (s *confServer) checkAlive(t *testing.T) {
	t.Helper()
	p := s.open(t)
	p.echo(opText, []byte("still alive"))
	p.conn.Close()
}

// failCase sends bytes that break the protocol and expects the server to
// fail the connection with code (after echoing echoed, if set).
type failCase struct {
	name   string
	send   []byte
	echoed []byte // a text message the server echoes before failing
	code   int
}

// runFailCases runs each case against both echo servers, on a connection of
// its own: the close frame with the case's code must arrive within 2 s
// without anything more being sent, then TCP EOF; the handler must end with
// a *ProtocolError of that code; and a new connection must still work.
func runFailCases(t *testing.T, opts *websocket.AcceptOptions, cases []failCase) {
	for _, mode := range echoModes {
		t.Run(mode.String(), func(t *testing.T) {
			s := newConfServer(t, mode, opts)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					p := s.open(t)
					p.write(tc.send)
					if tc.echoed != nil {
						p.expectMessage(opText, tc.echoed)
					}
					p.expectFail(tc.code)
					s.expectProtocolError(t, p, tc.code)
					s.checkAlive(t)
				})
			}
		})
	}
}

// payloadOf returns n bytes of a pattern that does not repeat every 4
// bytes, so a masking mistake cannot cancel out.
func payloadOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>11)
	}
	return b
}

// ---------------------------------------------------------------------------
// Opening handshake (RFC 6455 §4.2)

// hsCase is a handshake request and the answer it must get.
type hsCase struct {
	name     string
	patterns bool   // use the server with OriginPatterns
	method   string // default GET
	proto    string // default HTTP/1.1
	lines    []string
	status   int
	check    websocket.HandshakeCheck
	header   [2]string // a header the refusal must carry
	subproto string    // for 101: the subprotocol chosen, "" for none
}

func TestServerConformanceHandshake(t *testing.T) {
	base := baseHandshake()
	key := func(raw []byte) string { return "Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(raw) }

	cases := []hsCase{
		// Accepted.
		{name: "valid", lines: base, status: 101},
		{name: "upgrade header in odd case", lines: replaceHeader(base, "Upgrade", "upgrade: WebSocket"), status: 101},
		{name: "upgrade token in a list", lines: replaceHeader(base, "Upgrade", "Upgrade: foo/2, websocket"), status: 101},
		{name: "connection token in a list", lines: replaceHeader(base, "Connection", "Connection: keep-alive, Upgrade"), status: 101},
		{name: "connection header all caps", lines: replaceHeader(base, "Connection", "CONNECTION: UPGRADE"), status: 101},
		{name: "same-origin Origin", lines: append(base, "Origin: http://{host}"), status: 101},
		{name: "same-origin Origin in other case", lines: append(base, "Origin: HTTP://{HOST}"), status: 101},
		{name: "OriginPatterns allow", patterns: true, lines: append(base, "Origin: https://app.example.com"), status: 101},
		{name: "subprotocol by server preference", lines: append(base, "Sec-WebSocket-Protocol: chat.v1, chat.v2"), status: 101, subproto: "chat.v2"},
		{name: "subprotocol offered in two lines", lines: append(base, "Sec-WebSocket-Protocol: other, chat.v1", "Sec-WebSocket-Protocol: chat.v2"), status: 101, subproto: "chat.v2"},
		{name: "subprotocol only one supported offered", lines: append(base, "Sec-WebSocket-Protocol: other, chat.v1"), status: 101, subproto: "chat.v1"},
		{name: "subprotocol none supported offered", lines: append(base, "Sec-WebSocket-Protocol: other, chat.v3"), status: 101},
		{name: "subprotocol names are case-sensitive", lines: append(base, "Sec-WebSocket-Protocol: CHAT.V2"), status: 101},
		{name: "extension offered is not accepted", lines: append(base, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"), status: 101},

		// Refused.
		{name: "missing Upgrade", lines: replaceHeader(base, "Upgrade"), status: 426, check: websocket.CheckUpgrade, header: [2]string{"Upgrade", "websocket"}},
		{name: "Upgrade h2c", lines: replaceHeader(base, "Upgrade", "Upgrade: h2c"), status: 426, check: websocket.CheckUpgrade, header: [2]string{"Upgrade", "websocket"}},
		{name: "missing Connection", lines: replaceHeader(base, "Connection"), status: 400, check: websocket.CheckConnection},
		{name: "Connection without upgrade", lines: replaceHeader(base, "Connection", "Connection: keep-alive"), status: 400, check: websocket.CheckConnection},
		{name: "missing version", lines: replaceHeader(base, "Sec-WebSocket-Version"), status: 426, check: websocket.CheckVersion, header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "version 8", lines: replaceHeader(base, "Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"), status: 426, check: websocket.CheckVersion, header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "version 14", lines: replaceHeader(base, "Sec-WebSocket-Version", "Sec-WebSocket-Version: 14"), status: 426, check: websocket.CheckVersion, header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "key not base64", lines: replaceHeader(base, "Sec-WebSocket-Key", "Sec-WebSocket-Key: !!!!not*base64!!!!!!!=="), status: 400, check: websocket.CheckKey},
		{name: "key of 15 bytes", lines: replaceHeader(base, "Sec-WebSocket-Key", key(make([]byte, 15))), status: 400, check: websocket.CheckKey},
		{name: "key of 17 bytes", lines: replaceHeader(base, "Sec-WebSocket-Key", key(make([]byte, 17))), status: 400, check: websocket.CheckKey},
		{name: "key missing", lines: replaceHeader(base, "Sec-WebSocket-Key"), status: 400, check: websocket.CheckKey},
		{name: "two keys", lines: append(base, key(bytes.Repeat([]byte{1}, 16))), status: 400, check: websocket.CheckKey},
		{name: "two keys in one line", lines: replaceHeader(base, "Sec-WebSocket-Key", "Sec-WebSocket-Key: "+rfcKey+", "+rfcKey), status: 400, check: websocket.CheckKey},
		{name: "POST", method: "POST", lines: append(base, "Content-Length: 0"), status: 405, check: websocket.CheckMethod, header: [2]string{"Allow", "GET"}},
		{name: "HTTP/1.0", proto: "HTTP/1.0", lines: base, status: 505, check: websocket.CheckHTTPVersion},
		{name: "cross-origin", lines: append(base, "Origin: http://evil.example"), status: 403, check: websocket.CheckOrigin},
		{name: "cross-origin other port", lines: append(base, "Origin: http://127.0.0.1:1"), status: 403, check: websocket.CheckOrigin},
		{name: "Origin null", lines: append(base, "Origin: null"), status: 403, check: websocket.CheckOrigin},
		{name: "OriginPatterns do not match", patterns: true, lines: append(base, "Origin: https://example.org"), status: 403, check: websocket.CheckOrigin},
		{name: "OriginPatterns subdomain pattern excludes the parent", patterns: true, lines: append(base, "Origin: https://example.com"), status: 403, check: websocket.CheckOrigin},
	}

	modes := []echoMode{echoStream}
	if newEventLoopServer != nil {
		modes = append(modes, echoEventLoop) // the same statuses as Accept
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) { runHandshakeCases(t, mode, cases) })
	}
}

func runHandshakeCases(t *testing.T, mode echoMode, cases []hsCase) {
	plain := newConfServer(t, mode, &websocket.AcceptOptions{Subprotocols: []string{"chat.v2", "chat.v1"}})
	patterns := newConfServer(t, mode, &websocket.AcceptOptions{OriginPatterns: []string{"*.example.com"}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := plain
			if tc.patterns {
				s = patterns
			}
			method, proto := "GET", "HTTP/1.1"
			if tc.method != "" {
				method = tc.method
			}
			if tc.proto != "" {
				proto = tc.proto
			}
			var lines []string
			for _, l := range tc.lines {
				l = strings.ReplaceAll(l, "{host}", s.addr)
				l = strings.ReplaceAll(l, "{HOST}", strings.ToUpper(s.addr))
				lines = append(lines, l)
			}
			p := dialRaw(t, s.addr)
			resp := p.request(method, proto, s.addr, lines)

			if tc.status == http.StatusSwitchingProtocols {
				checkSwitching(t, resp)
				got := resp.Header.Values("Sec-WebSocket-Protocol")
				switch {
				case tc.subproto == "" && len(got) != 0:
					t.Errorf("Sec-WebSocket-Protocol %q, want none", got)
				case tc.subproto != "" && (len(got) != 1 || got[0] != tc.subproto):
					t.Errorf("Sec-WebSocket-Protocol %q, want %q", got, tc.subproto)
				}
				if got := resp.Header.Values("Sec-WebSocket-Extensions"); len(got) != 0 {
					t.Errorf("Sec-WebSocket-Extensions %q, want none", got)
				}
				p.echo(opText, []byte("handshake "+tc.name))
				return
			}

			if resp.Status != tc.status {
				t.Fatalf("status %d (%q), want %d", resp.Status, resp.StatusLine, tc.status)
			}
			body := resp.Body
			if line := strings.TrimSuffix(body, "\n"); line == "" || strings.ContainsAny(line, "\r\n") || !strings.HasSuffix(body, "\n") {
				t.Errorf("refusal body %q, want a single non-empty line", body)
			}
			if got := resp.Header.Values("Sec-WebSocket-Accept"); len(got) != 0 {
				t.Errorf("refusal carries Sec-WebSocket-Accept %q", got)
			}
			if name := tc.header[0]; name != "" {
				if got := resp.Header.Values(name); len(got) != 1 || got[0] != tc.header[1] {
					t.Errorf("%s %q, want %q", name, got, tc.header[1])
				}
			}
			err := s.endErr(t, p)
			var he *websocket.HandshakeError
			if !errors.As(err, &he) || he.Check != tc.check || he.Status != tc.status {
				t.Errorf("Accept returned %v, want a *HandshakeError with check %v and status %d", err, tc.check, tc.status)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Framing (RFC 6455 §5.2): payload lengths and their encodings, fragments.

func TestServerConformanceFraming(t *testing.T) {
	lengths := []struct {
		n      int
		header []byte // the exact header of a single unmasked binary frame
	}{
		{0, []byte{0x82, 0x00}},
		{125, []byte{0x82, 0x7D}},
		{126, []byte{0x82, 0x7E, 0x00, 0x7E}},
		{127, []byte{0x82, 0x7E, 0x00, 0x7F}},
		{65535, []byte{0x82, 0x7E, 0xFF, 0xFF}},
		{65536, []byte{0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
		{1 << 20, []byte{0x82, 0x7F, 0, 0, 0, 0, 0, 0x10, 0x00, 0x00}},
	}
	for _, mode := range echoModes {
		t.Run(mode.String(), func(t *testing.T) {
			s := newConfServer(t, mode, nil)
			for _, l := range lengths {
				t.Run(fmt.Sprintf("len=%d", l.n), func(t *testing.T) {
					p := s.open(t)
					payload := payloadOf(l.n)
					sent := p.writeAsync(encodeFrame(frame(opBinary, payload)))
					frames := p.expectMessage(opBinary, payload)
					if err := <-sent; err != nil {
						t.Fatalf("write: %v", err)
					}
					// Whole-message echo is one frame; the streamed echo is
					// one frame for small messages and several for large ones.
					if mode != echoStream || l.n <= 127 {
						if len(frames) != 1 || !bytes.Equal(frames[0].header, l.header) {
							t.Fatalf("echo came as %d frames, first header % x; want one frame with header % x", len(frames), frames[0].header, l.header)
						}
					}
					if mode == echoStream && l.n >= 65536 && len(frames) < 2 {
						t.Fatalf("streamed echo of %d bytes came as one frame: the message was buffered whole", l.n)
					}
				})
			}

			// A message in many fragments, some empty, some splitting a
			// character, comes back with the same bytes.
			text := []byte(strings.Repeat("fragments: é € 𝄞 ", 100))
			fragmented := []struct {
				name  string
				op    byte
				msg   []byte
				sizes []int // fragment sizes; the rest goes in the last fragment
			}{
				{"text in varying fragments", opText, text, []int{0, 1, 2, 3, 5, 8, 13, 21, 34, 0, 55, 89, 144, 233, 377, 1}},
				{"binary in 1000 one-byte fragments", opBinary, payloadOf(1000), func() []int {
					s := make([]int, 999)
					for i := range s {
						s[i] = 1
					}
					return s
				}()},
				{"empty text in three empty fragments", opText, []byte{}, []int{0, 0}},
				{"binary 70000 bytes in two fragments", opBinary, payloadOf(70000), []int{65536}},
			}
			for _, fc := range fragmented {
				t.Run(fc.name, func(t *testing.T) {
					p := s.open(t)
					var frames []outFrame
					rest := fc.msg
					op := fc.op
					for _, n := range fc.sizes {
						frames = append(frames, fragment(op, rest[:n]))
						rest = rest[n:]
						op = opCont
					}
					frames = append(frames, frame(op, rest))
					sent := p.writeAsync(encodeFrames(frames...))
					got := p.expectMessage(fc.op, fc.msg)
					if err := <-sent; err != nil {
						t.Fatalf("write: %v", err)
					}
					if mode != echoStream && len(got) != 1 {
						t.Fatalf("whole-message echo came as %d frames, want 1", len(got))
					}
				})
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Masking (RFC 6455 §5.1): a server must fail on an unmasked client frame.

func TestServerConformanceMasking(t *testing.T) {
	unmasked := func(f outFrame) outFrame { f.unmasked = true; return f }
	runFailCases(t, nil, []failCase{
		{name: "unmasked text", send: encodeFrame(unmasked(frame(opText, []byte("hello")))), code: 1002},
		{name: "unmasked empty binary", send: encodeFrame(unmasked(frame(opBinary, nil))), code: 1002},
		{name: "unmasked ping", send: encodeFrame(unmasked(frame(opPing, []byte("p")))), code: 1002},
		{name: "unmasked close", send: encodeFrame(unmasked(frame(opClose, closeBody(1000, "")))), code: 1002},
		{name: "unmasked continuation", send: encodeFrames(fragment(opText, []byte("a")), unmasked(frame(opCont, []byte("b")))), code: 1002},
		// The server must not lose its close frame to a TCP reset by
		// closing with our input unread (RFC 6455 §7.1.1, lingering close).
		{name: "unmasked frame followed by 256 KiB of input", send: encodeFrames(unmasked(frame(opText, []byte("x"))), frame(opBinary, payloadOf(256<<10))), code: 1002},
	})
}

// ---------------------------------------------------------------------------
// Reserved bits and opcodes (RFC 6455 §5.2): no extension is negotiated, so
// any RSV bit or reserved opcode fails the connection.

func TestServerConformanceReservedBits(t *testing.T) {
	withRSV := func(f outFrame, rsv byte) outFrame { f.rsv = rsv; return f }
	runFailCases(t, nil, []failCase{
		{name: "RSV1", send: encodeFrame(withRSV(frame(opText, []byte("hi")), 0x40)), code: 1002},
		{name: "RSV2", send: encodeFrame(withRSV(frame(opText, []byte("hi")), 0x20)), code: 1002},
		{name: "RSV3", send: encodeFrame(withRSV(frame(opText, []byte("hi")), 0x10)), code: 1002},
		{name: "all RSV bits", send: encodeFrame(withRSV(frame(opBinary, []byte("hi")), 0x70)), code: 1002},
		{name: "RSV1 on ping", send: encodeFrame(withRSV(frame(opPing, []byte("hi")), 0x40)), code: 1002},
		{name: "RSV1 on continuation", send: encodeFrames(fragment(opText, []byte("a")), withRSV(frame(opCont, []byte("b")), 0x40)), code: 1002},
	})
}

func TestServerConformanceReservedOpcodes(t *testing.T) {
	var cases []failCase
	for _, op := range []byte{0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		cases = append(cases, failCase{name: fmt.Sprintf("opcode %#x", op), send: encodeFrame(frame(op, []byte("x"))), code: 1002})
	}
	cases = append(cases, failCase{name: "opcode 0x3 inside a fragmented message",
		send: encodeFrames(fragment(opText, []byte("a")), frame(0x3, nil)), code: 1002})
	runFailCases(t, nil, cases)
}

// ---------------------------------------------------------------------------
// Control frames (RFC 6455 §5.5).

func TestServerConformanceControlFrames(t *testing.T) {
	t.Run("protocol errors", func(t *testing.T) {
		runFailCases(t, nil, []failCase{
			{name: "ping of 126 bytes", send: encodeFrame(frame(opPing, payloadOf(126))), code: 1002},
			{name: "ping announcing 65535 bytes", send: encodeFrame(frame(opPing, nil).announced(65535)), code: 1002},
			{name: "fragmented ping", send: encodeFrame(fragment(opPing, []byte("p"))), code: 1002},
			{name: "pong of 126 bytes", send: encodeFrame(frame(opPong, payloadOf(126))), code: 1002},
			{name: "fragmented pong", send: encodeFrame(fragment(opPong, []byte("p"))), code: 1002},
		})
	})

	ping125 := bytes.Repeat([]byte("P"), 125)
	copy(ping125, "ping with 125 bytes: ")
	cases := []struct {
		name string
		run  func(t *testing.T, p *rawPeer)
	}{
		{"ping of 125 bytes is answered by an identical pong", func(t *testing.T, p *rawPeer) {
			p.writeFrames(frame(opPing, ping125))
			f := p.readFrame(rawTimeout)
			want := append([]byte{0x8A, 0x7D}, ping125...)
			if got := append(f.header, f.payload...); !bytes.Equal(got, want) {
				t.Fatalf("got %v, want pong % x...", f, want[:8])
			}
			p.echo(opText, []byte("after ping"))
		}},
		{"empty ping is answered by an empty pong", func(t *testing.T, p *rawPeer) {
			p.writeFrames(frame(opPing, nil))
			f := p.readFrame(rawTimeout)
			if got := append(f.header, f.payload...); !bytes.Equal(got, []byte{0x8A, 0x00}) {
				t.Fatalf("got %v (% x), want 8a 00", f, got)
			}
			p.echo(opText, []byte("after ping"))
		}},
		{"ping between fragments", func(t *testing.T, p *rawPeer) {
			p.writeFrames(
				fragment(opText, []byte("Hello, ")),
				frame(opPing, []byte("between")),
				frame(opCont, []byte("world!")),
			)
			f := p.readFrame(rawTimeout)
			if got := append(f.header, f.payload...); !bytes.Equal(got, append([]byte{0x8A, 0x07}, "between"...)) {
				t.Fatalf("got %v, want the pong first", f)
			}
			p.expectMessage(opText, []byte("Hello, world!"))
		}},
		{"ping between fragments split across writes", func(t *testing.T, p *rawPeer) {
			p.writeFrames(fragment(opBinary, []byte{1, 2, 3}))
			p.writeFrames(frame(opPing, []byte{9}))
			f := p.readFrame(rawTimeout)
			if got := append(f.header, f.payload...); !bytes.Equal(got, []byte{0x8A, 0x01, 9}) {
				t.Fatalf("got %v, want pong 8a 01 09 before the message is finished", f)
			}
			p.writeFrames(frame(opCont, []byte{4, 5}))
			p.expectMessage(opBinary, []byte{1, 2, 3, 4, 5})
		}},
		{"unsolicited pong is ignored", func(t *testing.T, p *rawPeer) {
			p.writeFrames(frame(opPong, []byte("unsolicited")), frame(opText, []byte("after pong")))
			p.expectMessage(opText, []byte("after pong"))
		}},
		{"unsolicited empty pong between fragments is ignored", func(t *testing.T, p *rawPeer) {
			p.writeFrames(fragment(opText, []byte("a")), frame(opPong, nil), frame(opCont, []byte("b")))
			p.expectMessage(opText, []byte("ab"))
		}},
	}
	for _, mode := range echoModes {
		t.Run(mode.String(), func(t *testing.T) {
			s := newConfServer(t, mode, nil)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, s.open(t))
				})
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Fragmentation errors (RFC 6455 §5.4).

func TestServerConformanceFragmentationErrors(t *testing.T) {
	runFailCases(t, nil, []failCase{
		{name: "continuation without a message", send: encodeFrame(frame(opCont, []byte("x"))), code: 1002},
		{name: "non-final continuation without a message", send: encodeFrame(fragment(opCont, []byte("x"))), code: 1002},
		{name: "text frame inside a fragmented text message", send: encodeFrames(fragment(opText, []byte("a")), frame(opText, []byte("b"))), code: 1002},
		{name: "binary frame inside a fragmented text message", send: encodeFrames(fragment(opText, []byte("a")), frame(opBinary, []byte("b"))), code: 1002},
		{name: "text frame inside a fragmented binary message", send: encodeFrames(fragment(opBinary, []byte("a")), fragment(opCont, []byte("b")), frame(opText, []byte("c"))), code: 1002},
		{name: "continuation after a finished message", send: encodeFrames(frame(opText, []byte("done")), frame(opCont, []byte("more"))), echoed: []byte("done"), code: 1002},
	})
}

// ---------------------------------------------------------------------------
// UTF-8 (RFC 6455 §5.6, §8.1).

func TestServerConformanceUTF8Valid(t *testing.T) {
	texts := []struct{ name, text string }{
		{"2-byte", "aéb"},
		{"3-byte", "a€b"},
		{"4-byte", "a𝄞b"},
		{"mixed", "é€𝄞\U0010FFFF\u07FF\uFFFF"},
	}
	for _, mode := range echoModes {
		t.Run(mode.String(), func(t *testing.T) {
			s := newConfServer(t, mode, nil)
			for _, tx := range texts {
				b := []byte(tx.text)
				for k := 0; k <= len(b); k++ {
					t.Run(fmt.Sprintf("%s split at %d", tx.name, k), func(t *testing.T) {
						p := s.open(t)
						p.writeFrames(fragment(opText, b[:k]), frame(opCont, b[k:]))
						p.expectMessage(opText, b)
					})
				}
			}
		})
	}
}

func TestServerConformanceUTF8Invalid(t *testing.T) {
	var cases []failCase
	for _, c := range []struct {
		name    string
		payload []byte
	}{
		{"overlong 2-byte C0 AF", []byte{0xC0, 0xAF}},
		{"overlong 2-byte C1 BF", []byte{0xC1, 0xBF}},
		{"overlong 3-byte E0 80 AF", []byte{0xE0, 0x80, 0xAF}},
		{"overlong 4-byte F0 80 80 AF", []byte{0xF0, 0x80, 0x80, 0xAF}},
		{"surrogate ED A0 80", []byte{0xED, 0xA0, 0x80}},
		{"surrogate ED BF BF", []byte{0xED, 0xBF, 0xBF}},
		{"above U+10FFFF F4 90 80 80", []byte{0xF4, 0x90, 0x80, 0x80}},
		{"above U+10FFFF F5 80 80 80", []byte{0xF5, 0x80, 0x80, 0x80}},
		{"byte FE", []byte("ab\xFEcd")},
		{"byte FF", []byte("ab\xFFcd")},
		{"lone continuation byte", []byte("ab\x80cd")},
		{"bad continuation", []byte("a\xE2\x28\xA1")},
		{"truncated at the end of the message", []byte("abc\xE2\x82")},
		{"truncated 4-byte at the end of the message", []byte("abc\xF0\x9D\x84")},
	} {
		cases = append(cases, failCase{name: c.name, send: encodeFrame(frame(opText, c.payload)), code: 1007})
	}
	cases = append(cases,
		failCase{name: "sequence completed wrongly in the next fragment",
			send: encodeFrames(fragment(opText, []byte("abc\xE2\x82")), frame(opCont, []byte("("))), code: 1007},
		failCase{name: "message ends inside a sequence after fragments",
			send: encodeFrames(fragment(opText, []byte("a\xF0\x9D")), frame(opCont, []byte("\x84"))), code: 1007},
		failCase{name: "message ends inside a sequence with an empty final fragment",
			send: encodeFrames(fragment(opText, []byte("a\xE2\x82")), frame(opCont, nil)), code: 1007},
		failCase{name: "invalid text after a valid message",
			send: encodeFrames(frame(opText, []byte("fine")), frame(opText, []byte{0xC0, 0x80})), echoed: []byte("fine"), code: 1007},
	)
	runFailCases(t, nil, cases)
}

// TestServerConformanceUTF8FailFast sends only the beginning of a message
// whose first bytes cannot be valid UTF-8 and expects the close frame
// without sending the rest (§8.1: fail as soon as invalid data is seen).
func TestServerConformanceUTF8FailFast(t *testing.T) {
	runFailCases(t, nil, []failCase{
		{name: "frame of 1000 bytes with an invalid byte at position 5, only 10 sent",
			send: encodeFrame(frame(opText, []byte("abcde\xFFghij")).announced(1000)), code: 1007},
		{name: "frame of 1000 bytes with an overlong sequence at position 5, only 10 sent",
			send: encodeFrame(frame(opText, []byte("abcde\xE0\x80jkl")).announced(1000)), code: 1007},
		{name: "first fragment ends with F4 90",
			send: encodeFrame(fragment(opText, []byte("ab\xF4\x90"))), code: 1007},
		{name: "first fragment ends with E0 80",
			send: encodeFrame(fragment(opText, []byte("ab\xE0\x80"))), code: 1007},
		{name: "first fragment ends with ED A0",
			send: encodeFrame(fragment(opText, []byte("ab\xED\xA0"))), code: 1007},
		{name: "first fragment ends with C0",
			send: encodeFrame(fragment(opText, []byte("ab\xC0"))), code: 1007},
		{name: "second fragment of 100 bytes starts invalid, only 2 sent",
			send: encodeFrames(fragment(opText, []byte("ok")), fragment(opCont, []byte("x\xF8")).announced(100)), code: 1007},
		{name: "continuation breaks a sequence begun in the first fragment",
			send: encodeFrames(fragment(opText, []byte("ab\xF0\x9D")), fragment(opCont, []byte("\x41"))), code: 1007},
	})
}

// ---------------------------------------------------------------------------
// Closing handshake (RFC 6455 §5.5.1, §7.4).

func TestServerConformanceClose(t *testing.T) {
	closeFrame := func(code uint16) []byte { return binary.BigEndian.AppendUint16([]byte{0x88, 0x02}, code) }
	type closeCase struct {
		name   string
		send   []byte
		want   []byte // the exact close frame echoed, or nil when the server fails
		status int    // CloseStatus of the handler's error (echo), or the failure code
	}
	cases := []closeCase{
		{name: "empty close is echoed empty", send: encodeFrame(frame(opClose, nil)), want: []byte{0x88, 0x00}, status: 1005},
		{name: "close with a 123-byte reason", send: encodeFrame(frame(opClose, closeBody(1000, strings.Repeat("r", 123)))), want: closeFrame(1000), status: 1000},
		{name: "close with a UTF-8 reason", send: encodeFrame(frame(opClose, closeBody(1001, "au revoir, 𝄞"))), want: closeFrame(1001), status: 1001},
		{name: "data frame after close is ignored", send: encodeFrames(frame(opClose, closeBody(1000, "bye")), frame(opText, []byte("late"))), want: closeFrame(1000), status: 1000},
		{name: "close between fragments", send: encodeFrames(fragment(opText, []byte("abc")), frame(opClose, closeBody(1000, ""))), want: closeFrame(1000), status: 1000},
		{name: "1-byte payload", send: encodeFrame(frame(opClose, []byte{0x03})), status: 1002},
		{name: "126-byte payload", send: encodeFrame(frame(opClose, closeBody(1000, strings.Repeat("r", 124)))), status: 1002},
		{name: "fragmented close", send: encodeFrame(fragment(opClose, closeBody(1000, ""))), status: 1002},
		{name: "invalid UTF-8 reason", send: encodeFrame(frame(opClose, closeBody(1000, "bad \xFF\xFE reason"))), status: 1007},
		{name: "reason truncated inside a character", send: encodeFrame(frame(opClose, closeBody(1000, "ab\xE2\x82"))), status: 1007},
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, closeCase{name: fmt.Sprintf("invalid code %d", code), send: encodeFrame(frame(opClose, closeBody(code, ""))), status: 1002})
	}
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, closeCase{name: fmt.Sprintf("valid code %d", code), send: encodeFrame(frame(opClose, closeBody(code, "bye"))), want: closeFrame(code), status: int(code)})
	}
	for _, mode := range echoModes {
		t.Run(mode.String(), func(t *testing.T) {
			s := newConfServer(t, mode, nil)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					p := s.open(t)
					p.write(tc.send)
					if tc.want == nil {
						p.expectFail(tc.status)
						s.expectProtocolError(t, p, tc.status)
						s.checkAlive(t)
						return
					}
					f := p.readFrame(promptly)
					if got := append(f.header, f.payload...); !bytes.Equal(got, tc.want) {
						t.Fatalf("got %v (% x), want % x", f, got, tc.want)
					}
					// The server closes TCP first after the exchange (§7.1.1),
					// and sends nothing after its close frame (§5.5.1).
					p.expectEOF(promptly)
					err := s.endErr(t, p)
					if got := websocket.CloseStatus(err); int(got) != tc.status {
						t.Fatalf("server ended with %v (close status %d), want the peer's close %d", err, got, tc.status)
					}
				})
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Limits: the 64-bit length and ReadLimit (RFC 6455 §5.2, §10.4).

func TestServerConformanceLimits(t *testing.T) {
	binHeader := func(fin bool, op byte, n uint64) []byte {
		f := outFrame{fin: fin, op: op}
		return encodeFrame(f.announced(n))
	}
	t.Run("default limit", func(t *testing.T) {
		runFailCases(t, nil, []failCase{
			{name: "64-bit length 2^63-1", send: binHeader(true, opBinary, 1<<63-1), code: 1009},
			{name: "64-bit length 32 MiB + 1", send: binHeader(true, opBinary, 32<<20+1), code: 1009},
			{name: "64-bit length with the top bit set", send: binHeader(true, opBinary, 1<<63), code: 1002},
			{name: "64-bit length of all ones", send: binHeader(true, opText, 1<<64-1), code: 1002},
		})
	})
	small := &websocket.AcceptOptions{Options: websocket.Options{ReadLimit: 1024}}
	t.Run("ReadLimit 1024", func(t *testing.T) {
		runFailCases(t, small, []failCase{
			{name: "frame announcing 1025 bytes, header only", send: binHeader(true, opBinary, 1025), code: 1009},
			{name: "64-bit length 2^63-1", send: binHeader(true, opBinary, 1<<63-1), code: 1009},
			{name: "600+600 bytes in two fragments", send: encodeFrames(fragment(opBinary, payloadOf(600)), frame(opCont, payloadOf(600))), code: 1009},
			{name: "text 600+600 bytes in two fragments", send: encodeFrames(fragment(opText, bytes.Repeat([]byte("a"), 600)), frame(opCont, bytes.Repeat([]byte("b"), 600))), code: 1009},
			{name: "1024 bytes then one more in a third fragment", send: encodeFrames(fragment(opBinary, payloadOf(1000)), fragment(opCont, payloadOf(24)), frame(opCont, []byte{0})), code: 1009},
		})
	})
	t.Run("ReadLimit 1024 within limit", func(t *testing.T) {
		for _, mode := range echoModes {
			t.Run(mode.String(), func(t *testing.T) {
				s := newConfServer(t, mode, small)
				for _, tc := range []struct {
					name   string
					frames []outFrame
					msgs   [][]byte
				}{
					{"1024 bytes in one frame", []outFrame{frame(opBinary, payloadOf(1024))}, [][]byte{payloadOf(1024)}},
					{"1024 bytes as 512+512", []outFrame{fragment(opBinary, payloadOf(1024)[:512]), frame(opCont, payloadOf(1024)[512:])}, [][]byte{payloadOf(1024)}},
					{"1024 bytes then an empty final fragment", []outFrame{fragment(opBinary, payloadOf(1024)), frame(opCont, nil)}, [][]byte{payloadOf(1024)}},
					{"the limit is per message", []outFrame{frame(opBinary, payloadOf(1000)), frame(opBinary, payloadOf(1000))}, [][]byte{payloadOf(1000), payloadOf(1000)}},
				} {
					t.Run(tc.name, func(t *testing.T) {
						p := s.open(t)
						p.writeFrames(tc.frames...)
						for _, m := range tc.msgs {
							p.expectMessage(opBinary, m)
						}
					})
				}
			})
		}
	})
}

// ---------------------------------------------------------------------------
// Isolation: a failed or stalled connection does not disturb the others.

func TestServerConformanceIsolation(t *testing.T) {
	for _, mode := range echoModes {
		t.Run(mode.String(), func(t *testing.T) {
			s := newConfServer(t, mode, nil)
			b := s.open(t)
			b.echo(opText, []byte("before"))

			// A breaks the rules; B keeps working before A's failure is read.
			a := s.open(t)
			unmasked := frame(opText, []byte("unmasked"))
			unmasked.unmasked = true
			a.writeFrames(unmasked)
			b.echo(opText, []byte("while A fails"))
			a.expectFail(1002)
			s.expectProtocolError(t, a, 1002)
			b.echo(opBinary, payloadOf(70000))

			// C stalls in the middle of a frame; B is not held up by it.
			c := s.open(t)
			whole := payloadOf(100)
			enc := encodeFrame(frame(opBinary, whole))
			c.write(enc[:2+4+3]) // header, mask key and 3 payload bytes
			b.echo(opText, []byte("while C stalls"))
			c.write(enc[2+4+3:])
			c.expectMessage(opBinary, whole)

			b.echo(opText, []byte("after"))
			c.echo(opText, []byte("C after"))
		})
	}
}
