package eventloop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/duplex-ws/duplex/websocket"
	"golang.org/x/sys/unix"
)

const waitFor = 10 * time.Second // bounds every wait in these tests

// startServer runs s on a loopback listener until the test ends, and
// checks that Serve then returns ErrServerClosed.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	if s.OnMessage == nil {
		s.OnMessage = func(c *Conn, typ websocket.MessageType, p []byte) { c.Write(typ, p) }
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-served:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(waitFor):
			t.Errorf("Serve did not return after Close")
		}
	})
	return ln.Addr().String()
}

// peer is a raw WebSocket client: exact bytes out, exact frames in.
type peer struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialPeer(t *testing.T, addr string, d *net.Dialer) *peer {
	t.Helper()
	if d == nil {
		d = &net.Dialer{}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, c: c, br: bufio.NewReader(c)}
}

// open dials and completes the handshake.
func open(t *testing.T, addr string) *peer {
	t.Helper()
	p := dialPeer(t, addr, nil)
	p.write([]byte(requestFor(addr)))
	p.expectSwitch()
	return p
}

func requestFor(addr string) string {
	return strings.Replace(testRequest, "example.com", addr, 1)
}

func (p *peer) write(b []byte) {
	p.t.Helper()
	p.c.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := p.c.Write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *peer) expectSwitch() {
	p.t.Helper()
	p.switched()
}

// switched reads the 101 and returns its Sec-WebSocket-Extensions lines.
func (p *peer) switched() []string {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(waitFor))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		p.t.Fatalf("reading the handshake response: %v", err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		p.t.Fatalf("handshake answered %s %v, want 101 with the RFC's accept key", resp.Status, resp.Header)
	}
	return resp.Header.Values("Sec-WebSocket-Extensions")
}

// frame encodes a masked client frame.
func frame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// readFrame reads one server frame and checks it is final, unmasked and
// without RSV bits.
func (p *peer) readFrame() (op byte, payload []byte) {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(waitFor))
	var h [2]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		p.t.Fatalf("reading a frame: %v", err)
	}
	if h[0]&0xF0 != 0x80 || h[1]&0x80 != 0 {
		p.t.Fatalf("frame header % x: want FIN, no RSV, unmasked", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var x [2]byte
		io.ReadFull(p.br, x[:])
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		io.ReadFull(p.br, x[:])
		n = binary.BigEndian.Uint64(x[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(p.br, payload); err != nil {
		p.t.Fatalf("reading a %d-byte payload: %v", n, err)
	}
	return h[0] & 0x0F, payload
}

func (p *peer) expectMessage(op byte, want []byte) {
	p.t.Helper()
	gotOp, got := p.readFrame()
	if gotOp != op || !bytes.Equal(got, want) {
		p.t.Fatalf("got opcode %#x payload %q, want %#x %q", gotOp, trunc(got), op, trunc(want))
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// expectClose reads a close frame with code and reason.
func (p *peer) expectClose(code int, reason string) {
	p.t.Helper()
	op, payload := p.readFrame()
	want := binary.BigEndian.AppendUint16(nil, uint16(code))
	want = append(want, reason...)
	if op != 0x8 || !bytes.Equal(payload, want) {
		p.t.Fatalf("got opcode %#x payload %q, want a close frame %q", op, payload, want)
	}
}

// expectEOF checks that the server closes TCP without sending more.
func (p *peer) expectEOF() {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(waitFor))
	b, err := p.br.ReadByte()
	if err != io.EOF {
		p.t.Fatalf("got byte %#x, error %v; want EOF", b, err)
	}
}

// ends records OnClose calls.
type ends struct {
	mu   sync.Mutex
	errs map[*Conn]error
	ch   chan *Conn
}

func newEnds() *ends { return &ends{errs: map[*Conn]error{}, ch: make(chan *Conn, 100)} }

func (e *ends) onClose(c *Conn, err error) {
	e.mu.Lock()
	if _, dup := e.errs[c]; dup {
		panic("OnClose called twice")
	}
	e.errs[c] = err
	e.mu.Unlock()
	e.ch <- c
}

// next waits for the next OnClose and returns its error.
func (e *ends) next(t *testing.T) error {
	t.Helper()
	select {
	case c := <-e.ch:
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.errs[c]
	case <-time.After(waitFor):
		t.Fatal("OnClose was not called")
		return nil
	}
}

// TestConnSize guards the idle-memory budget: an idle connection holds its
// Conn and nothing else.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 208 {
		t.Fatalf("Conn is %d bytes, more than the 208 the idle-memory budget allows", n)
	}
}

func TestHandshakeAndFramesByteByByte(t *testing.T) {
	opened := make(chan string, 1)
	addr := startServer(t, &Server{
		Options: &websocket.AcceptOptions{Subprotocols: []string{"chat"}},
		OnOpen:  func(c *Conn) { opened <- c.Subprotocol() },
	})
	p := dialPeer(t, addr, nil)
	p.c.(*net.TCPConn).SetNoDelay(true)
	req := strings.Replace(requestFor(addr), "\r\n\r\n", "\r\nSec-WebSocket-Protocol: other, chat\r\n\r\n", 1)
	stream := append([]byte(req), frame(true, 0x1, []byte("héllo 𝄞"))...)
	stream = append(stream, frame(true, 0x9, []byte("ping"))...)
	stream = append(stream, frame(false, 0x2, []byte{1, 2})...)
	stream = append(stream, frame(true, 0x0, []byte{3})...)
	for i := range stream {
		p.write(stream[i : i+1])
	}
	p.c.SetReadDeadline(time.Now().Add(waitFor))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Protocol") != "chat" {
		t.Fatalf("response %v, %v; want 101 with subprotocol chat", resp, err)
	}
	select {
	case sub := <-opened:
		if sub != "chat" {
			t.Fatalf("Subprotocol() = %q, want chat", sub)
		}
	case <-time.After(waitFor):
		t.Fatal("OnOpen was not called")
	}
	p.expectMessage(0x1, []byte("héllo 𝄞"))
	p.expectMessage(0xA, []byte("ping"))
	p.expectMessage(0x2, []byte{1, 2, 3})
}

// TestInvalidUTF8ByteByByte sends text frames one byte per write: the
// server fails the connection with 1007 as soon as the invalid byte came,
// wherever the reads split the message.
func TestInvalidUTF8ByteByByte(t *testing.T) {
	e := newEnds()
	addr := startServer(t, &Server{OnClose: e.onClose})
	for _, bad := range [][]byte{[]byte("ab\xF4\x90cd"), []byte("a\xE2\x28\xA1"), []byte("\xED\xA0\x80"), []byte("ok\xC0\xAF")} {
		t.Run(fmt.Sprintf("% x", bad), func(t *testing.T) {
			p := open(t, addr)
			p.c.(*net.TCPConn).SetNoDelay(true)
			f := frame(true, 0x1, bad)
			for i := range f {
				p.write(f[i : i+1])
			}
			op, payload := p.readFrame()
			if op != 0x8 || binary.BigEndian.Uint16(payload) != 1007 {
				t.Fatalf("got %#x %q, want close 1007", op, payload)
			}
			p.expectEOF()
			var pe *websocket.ProtocolError
			if err := e.next(t); !errors.As(err, &pe) || pe.Code != 1007 {
				t.Fatalf("OnClose got %v, want a *ProtocolError with 1007", err)
			}
		})
	}
}

// TestHandshakeStatusesMatchAccept sends the same requests to a net/http
// server running websocket.Accept and to the event loop: the statuses must
// be the same.
func TestHandshakeStatusesMatchAccept(t *testing.T) {
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := websocket.Accept(w, r, nil); err == nil {
			c.CloseNow()
		}
	})}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(hln)
	t.Cleanup(func() { hs.Close() })
	var refused []error
	var mu sync.Mutex
	addr := startServer(t, &Server{OnHandshakeError: func(_ net.Addr, err error) {
		mu.Lock()
		refused = append(refused, err)
		mu.Unlock()
	}})

	base := requestFor("{host}")
	cases := []string{
		base,
		strings.Replace(base, "GET", "POST", 1),
		strings.Replace(base, "HTTP/1.1", "HTTP/1.0", 1),
		strings.Replace(base, "Upgrade: websocket\r\n", "", 1),
		strings.Replace(base, "Upgrade: websocket", "Upgrade: h2c", 1),
		strings.Replace(base, "Connection: Upgrade", "Connection: keep-alive", 1),
		strings.Replace(base, "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 1),
		strings.Replace(base, "dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", 1),
		strings.Replace(base, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 1),
		strings.Replace(base, "\r\n\r\n", "\r\nOrigin: http://evil.example\r\n\r\n", 1),
		strings.Replace(base, "\r\n\r\n", "\r\nOrigin: http://{host}\r\n\r\n", 1),
		"GET /\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		strings.Replace(base, "Upgrade: websocket", "Upgrade websocket", 1),
	}
	status := func(addr, req string) int {
		p := dialPeer(t, addr, nil)
		p.write([]byte(strings.ReplaceAll(req, "{host}", addr)))
		p.c.SetReadDeadline(time.Now().Add(waitFor))
		resp, err := http.ReadResponse(p.br, nil)
		if err != nil {
			t.Fatalf("reading the answer to %q: %v", req, err)
		}
		return resp.StatusCode
	}
	wantRefused := 0
	for _, req := range cases {
		a, b := status(hln.Addr().String(), req), status(addr, req)
		if a != b {
			t.Errorf("request %q: Accept answered %d, the event loop %d", req, a, b)
		}
		if b != 101 {
			wantRefused++
		}
	}
	deadline := time.Now().Add(waitFor)
	for {
		mu.Lock()
		n := len(refused)
		mu.Unlock()
		if n == wantRefused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OnHandshakeError called %d times, want %d", n, wantRefused)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHandshakeTimeoutAndLimit(t *testing.T) {
	addr := startServer(t, &Server{
		Options:        &websocket.AcceptOptions{HandshakeTimeout: 200 * time.Millisecond},
		MaxHeaderBytes: 300,
	})
	p := dialPeer(t, addr, nil)
	p.write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	start := time.Now()
	p.expectEOF()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed after %v, want about the 200 ms handshake timeout", d)
	}

	p = dialPeer(t, addr, nil)
	p.write([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + strings.Repeat("a", 300) + "\r\n\r\n"))
	p.c.SetReadDeadline(time.Now().Add(waitFor))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("long headers: %v, %v; want 431", resp, err)
	}
}

// TestSlowPeer: a peer that stops reading fills its write queue; the other
// connections keep their echo meanwhile; the Write that passes the bound
// returns ErrWriteQueueFull, OnClose reports it, and the peer, once it
// reads again, finds every message queued before the failure, whole, then
// a close frame with 1008.
func TestSlowPeer(t *testing.T) {
	e := newEnds()
	writeErrs := make(chan error, 100)
	addr := startServer(t, &Server{
		Loops:           2,
		WriteQueueLimit: 64 << 10,
		Options:         &websocket.AcceptOptions{Options: websocket.Options{CloseTimeout: waitFor}},
		OnOpen: func(c *Conn) {
			// A small kernel buffer, so that the queue fills at once.
			unix.SetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
		},
		OnMessage: func(c *Conn, typ websocket.MessageType, p []byte) {
			if err := c.Write(typ, p); err != nil {
				writeErrs <- err
			}
		},
		OnClose: e.onClose,
	})
	fast := make([]*peer, 20)
	for i := range fast {
		fast[i] = open(t, addr)
	}
	small := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
	}}
	slow := dialPeer(t, addr, small)
	slow.write([]byte(requestFor(addr)))
	slow.expectSwitch()

	msg := bytes.Repeat([]byte("0123456789abcdef"), 2048) // 32 KiB
	for range 16 {
		slow.write(frame(true, 0x2, msg)) // never reading
		for i, p := range fast {
			p.write(frame(true, 0x1, []byte(fmt.Sprint("fast ", i))))
			p.expectMessage(0x1, []byte(fmt.Sprint("fast ", i)))
		}
	}
	select {
	case err := <-writeErrs:
		if !errors.Is(err, ErrWriteQueueFull) {
			t.Fatalf("Write returned %v, want ErrWriteQueueFull", err)
		}
	case <-time.After(waitFor):
		t.Fatal("no Write failed with 512 KiB unread and a 64 KiB queue")
	}
	if err := e.next(t); !errors.Is(err, ErrWriteQueueFull) {
		t.Fatalf("OnClose got %v, want ErrWriteQueueFull", err)
	}
	for i, p := range fast { // still unaffected
		p.write(frame(true, 0x1, []byte("after")))
		p.expectMessage(0x1, []byte("after"))
		_ = i
	}
	echoed := 0
	for {
		op, payload := slow.readFrame()
		if op == 0x8 {
			if want := append([]byte{0x03, 0xF0}, "write queue full"...); !bytes.Equal(payload, want) {
				t.Fatalf("close payload %q, want 1008 \"write queue full\"", payload)
			}
			break
		}
		if op != 0x2 || !bytes.Equal(payload, msg) {
			t.Fatalf("echo %d: opcode %#x, %d bytes; want the 32 KiB message", echoed, op, len(payload))
		}
		echoed++
	}
	if echoed == 0 || echoed >= 16 {
		t.Fatalf("%d messages echoed before the failure, want some but not all 16", echoed)
	}
	slow.expectEOF()
}

func TestCloseFromServerAndWritesFromManyGoroutines(t *testing.T) {
	e := newEnds()
	conns := make(chan *Conn, 1)
	addr := startServer(t, &Server{
		OnOpen:    func(c *Conn) { conns <- c },
		OnMessage: func(c *Conn, typ websocket.MessageType, p []byte) {},
		OnClose:   e.onClose,
	})
	p := open(t, addr)
	c := <-conns
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := bytes.Repeat([]byte{byte('a' + w)}, 1000+i)
				if err := c.Write(websocket.MessageBinary, msg); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		}()
	}
	next := make([]int, writers)
	for range writers * each {
		op, payload := p.readFrame()
		w := int(payload[0] - 'a')
		if op != 0x2 || w < 0 || w >= writers || !bytes.Equal(payload, bytes.Repeat(payload[:1], 1000+next[w])) {
			t.Fatalf("frame %#x of %d bytes starting %q: not a whole message of a writer, in order", op, len(payload), payload[:1])
		}
		next[w]++
	}
	wg.Wait()

	if err := c.Close(4000, "bye"); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(websocket.MessageText, []byte("late")); !errors.Is(err, websocket.ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(4000, "again"); !errors.Is(err, websocket.ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	p.expectClose(4000, "bye")
	p.write(frame(true, 0x8, append([]byte{0x0F, 0xA0}, "ok"...)))
	p.expectEOF()
	// This side closed (ErrClosed), and the peer's answer is in the
	// *ClosedError; it is not a close the peer started.
	var closed *ClosedError
	err := e.next(t)
	if !errors.Is(err, websocket.ErrClosed) || !errors.As(err, &closed) || closed.Sent != 4000 ||
		closed.Answer == nil || closed.Answer.Code != 4000 || closed.Answer.Reason != "ok" {
		t.Fatalf("OnClose got %#v, want a *ClosedError (ErrClosed) with Sent 4000 and the peer's answer 4000 \"ok\"", err)
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) || websocket.CloseStatus(err) != -1 {
		t.Fatalf("OnClose's %v after this side's Close looks like a close the peer started (CloseStatus %d)", err, websocket.CloseStatus(err))
	}
	if got, want := err.Error(), "websocket: connection closed (sent close 4000; the peer answered)"; got != want {
		t.Fatalf("OnClose error text %q, want %q", got, want)
	}
	if err := c.Close(1000, strings.Repeat("r", 124)); err == nil {
		t.Fatal("Close with a 124-byte reason succeeded")
	}
	if err := c.Close(1005, ""); err == nil {
		t.Fatal("Close with 1005 succeeded")
	}
}

func TestShutdown(t *testing.T) {
	e := newEnds()
	s := &Server{OnClose: e.onClose}
	addr := startServer(t, s)
	peers := []*peer{open(t, addr), open(t, addr), open(t, addr)}
	silent := open(t, addr)         // never answers the close
	early := dialPeer(t, addr, nil) // no handshake yet
	early.write([]byte("GET / HTTP/1.1\r\n"))
	// Make sure every connection is open before shutting down.
	for _, p := range append(peers, silent) {
		p.write(frame(true, 0x1, []byte("hi")))
		p.expectMessage(0x1, []byte("hi"))
	}
	peers[1].write(frame(true, 0x2, make([]byte, 100))[:20]) // in the middle of a frame

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	for i, p := range peers {
		p.expectClose(1001, "server shutting down")
		if i == 1 { // finish the frame: its message is dropped after the close
			p.write(frame(true, 0x2, make([]byte, 100))[20:])
		}
		p.write(frame(true, 0x8, []byte{0x03, 0xE9}))
		p.expectEOF()
	}
	early.expectEOF()
	silent.expectClose(1001, "server shutting down")
	for range 3 { // the peers that answered are reported at once, with their answer
		var closed *ClosedError
		if err := e.next(t); !errors.Is(err, websocket.ErrClosed) || !errors.As(err, &closed) ||
			closed.Sent != 1001 || closed.Answer == nil || closed.Answer.Code != 1001 {
			t.Fatalf("OnClose got %v, want a *ClosedError with Sent 1001 and the peer's answer 1001", err)
		}
	}
	silent.expectEOF() // when ctx ends
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown returned %v, want DeadlineExceeded (one peer never answered)", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Shutdown did not return")
	}
	// The silent peer never answered: no close frame in its error.
	var closed *ClosedError
	if err := e.next(t); !errors.Is(err, websocket.ErrClosed) || !errors.As(err, &closed) || closed.Sent != 1001 || closed.Answer != nil {
		t.Fatalf("OnClose got %v, want a *ClosedError with Sent 1001 and no answer", err)
	}
}
