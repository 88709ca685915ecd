//go:build linux

package interop

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
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
	"github.com/duplex-ws/duplex/websocket/eventloop"
)

// The event-loop server (websocket/eventloop) as the Go side of the
// scenarios, against the three clients: the same messages, checks and
// closing handshake as goServerRun runs with Accept, driven through the
// server's callbacks.
//
// The event-loop server takes the socket's file descriptor out of each
// accepted connection, so its connections cannot be wrapped in a tapConn.
// The peer connects instead to a front listener of the test, which relays
// the bytes of /interop, unchanged and recorded, to the event-loop server
// (half-closes passed on, a reset answered by a reset), and serves the
// browser page to any other request. The recorded bytes give the
// handshake's answer and the close frames each way, which the event-loop
// API does not show, and the compressed messages for checkCompressedWire.

func TestEventLoopServerPythonClient(t *testing.T) {
	for _, closer := range closers {
		t.Run("closer="+closer, func(t *testing.T) {
			requirePeer(t, "python")
			info := eventLoopServerRun(t, closer, "python client", func(base string) []string {
				return []string{systemPython, pythonPeer, "client", wsURL(base, closer)}
			}, plainRun())
			checkPlainWire(t, info, closer)
		})
	}
}

func TestEventLoopServerNodeClient(t *testing.T) {
	for _, closer := range closers {
		t.Run("closer="+closer, func(t *testing.T) {
			requirePeer(t, "node")
			info := eventLoopServerRun(t, closer, "node client", func(base string) []string {
				return []string{"node", nodePeer, "client", wsURL(base, closer)}
			}, plainRun())
			checkPlainWire(t, info, closer)
		})
	}
}

// TestEventLoopServerChromium runs the page against the event-loop server.
// The page sends the fragmented entries whole, and the event-loop server
// sends every message as one frame: here no message is fragmented.
func TestEventLoopServerChromium(t *testing.T) {
	for _, closer := range closers {
		t.Run("closer="+closer, func(t *testing.T) {
			requirePeer(t, "chromium")
			info := eventLoopServerRun(t, closer, "chromium page", func(base string) []string {
				return []string{"node", browserPeer, base + "/?closer=" + closer}
			}, plainRun())
			checkPlainWire(t, info, closer)
		})
	}
}

// The event-loop server always answers with server_no_context_takeover
// and client_no_context_takeover, whatever its options and the offer: the
// wire check then holds both senders to no context takeover.
const noTakeover = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

func TestCompressEventLoopServerPythonClient(t *testing.T) {
	cases := []compressCase{
		// websockets' offer: permessage-deflate; client_max_window_bits.
		{name: "default", closer: closerGo, peerCompress: "--compress",
			answer: noTakeover},
		{name: "server_max_window_bits=10", closer: closerPeer, peerCompress: "--compress",
			comp:   websocket.CompressionOptions{ServerMaxWindowBits: 10},
			answer: noTakeover + "; server_max_window_bits=10"},
		{name: "server_max_window_bits=12", closer: closerGo, peerCompress: "--compress",
			comp:   websocket.CompressionOptions{ServerMaxWindowBits: 12},
			answer: noTakeover + "; server_max_window_bits=12"},
		{name: "python_offers_window_bits=10", closer: closerPeer,
			peerCompress: "--compress=server_max_window_bits=10,client_max_window_bits=10",
			answer:       noTakeover + "; server_max_window_bits=10; client_max_window_bits=10"},
		{name: "python_offers_no_context_takeover", closer: closerGo,
			peerCompress: "--compress=server_no_context_takeover,client_no_context_takeover",
			answer:       noTakeover},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requirePeer(t, "python")
			info := eventLoopServerRun(t, tc.closer, "python client", func(base string) []string {
				return []string{systemPython, pythonPeer, tc.peerCompress, "client", wsURL(base, tc.closer)}
			}, compressRun(tc.comp))
			checkCompressedWire(t, info, "server", tc)
			checkPlainCloses(t, info, tc.closer)
		})
	}
}

func TestCompressEventLoopServerNodeClient(t *testing.T) {
	cases := []compressCase{
		// ws's offer: permessage-deflate; client_max_window_bits.
		{name: "default", closer: closerGo, peerCompress: "--compress",
			answer: noTakeover},
		{name: "go_limits", closer: closerPeer, peerCompress: "--compress",
			comp:   websocket.CompressionOptions{ServerMaxWindowBits: 10, ClientMaxWindowBits: 11},
			answer: noTakeover + "; server_max_window_bits=10; client_max_window_bits=11"},
		{name: "node_offers_window_bits", closer: closerGo,
			peerCompress: "--compress=server_max_window_bits=12,client_max_window_bits=9",
			answer:       noTakeover + "; server_max_window_bits=12; client_max_window_bits=9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requirePeer(t, "node")
			info := eventLoopServerRun(t, tc.closer, "node client", func(base string) []string {
				return []string{"node", nodePeer, tc.peerCompress, "client", wsURL(base, tc.closer)}
			}, compressRun(tc.comp))
			checkCompressedWire(t, info, "server", tc)
			checkPlainCloses(t, info, tc.closer)
		})
	}
}

// TestCompressEventLoopServerChromium runs the compression scenario with
// the page. Chromium offers "permessage-deflate; client_max_window_bits".
func TestCompressEventLoopServerChromium(t *testing.T) {
	cases := []compressCase{
		{name: "default", closer: closerGo, answer: noTakeover},
		// 12 bits for the server's window: Chromium inflates about ten
		// times slower with 10 (see TestCompressGoServerChromium).
		{name: "go_limits", closer: closerPeer,
			comp:   websocket.CompressionOptions{ServerMaxWindowBits: 12, ClientMaxWindowBits: 10},
			answer: noTakeover + "; server_max_window_bits=12; client_max_window_bits=10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requirePeer(t, "chromium")
			info := eventLoopServerRun(t, tc.closer, "chromium page", func(base string) []string {
				return []string{"node", browserPeer, base + "/?closer=" + tc.closer + "&mode=compress"}
			}, compressRun(tc.comp))
			checkCompressedWire(t, info, "server", tc)
			checkPlainCloses(t, info, tc.closer)
		})
	}
}

// eventLoopWriteQueue is the event-loop server's Server.WriteQueueLimit
// here. Write never blocks: it queues what the socket does not take, and
// the sender writes the whole sequence before the peer has read much of
// it, so the queue may hold all of it at once (64.3 MiB of frames in the
// plain scenario), far past the default DefaultWriteQueueLimit (4 MiB).
const eventLoopWriteQueue = 128 << 20

// elMessage is a copy of a message OnMessage received.
type elMessage struct {
	typ  websocket.MessageType
	data []byte
}

// elSide is what the event-loop server's callbacks report to the scenario.
type elSide struct {
	opened chan *eventloop.Conn
	msgs   chan elMessage
	closed chan error
	// end is what closed carried, once ended; for next only.
	end   error
	ended bool
	// extra is an error of a callback that the channels could not carry
	// (a second connection, more messages than the sequence).
	extra firstErr
}

// firstErr keeps the first error reported to it, from any goroutine, for
// a check made once the run is over.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (e *firstErr) set(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = err
	}
}

func (e *firstErr) get() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// next returns the next message, or the error OnClose reported once every
// message before it was returned. (A select on both channels would pick at
// random when both are ready.) OnMessage and OnClose run on the
// connection's loop goroutine one after the other, so every message that
// came before the end is in msgs by the time closed holds the error.
func (s *elSide) next(ctx context.Context) (elMessage, error) {
	if s.ended {
		select {
		case m := <-s.msgs:
			return m, nil
		default:
			return elMessage{}, s.end
		}
	}
	select {
	case m := <-s.msgs:
		return m, nil
	case s.end = <-s.closed:
		s.ended = true
		return s.next(ctx)
	case <-ctx.Done():
		return elMessage{}, ctx.Err()
	}
}

// eventLoopServerRun is goServerRun with the event-loop server as the Go
// side: it serves the scenario of run through the front listener (see the
// top of this file), starts the peer client argv(frontURL) and checks
// both sides. The returned runInfo holds the relayed bytes of /interop
// and the extension answer read from them.
func eventLoopServerRun(t *testing.T, closer, name string, argv func(base string) []string, run goRun) *runInfo {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	side := &elSide{
		opened: make(chan *eventloop.Conn, 1),
		msgs:   make(chan elMessage, len(run.seq)),
		closed: make(chan error, 1),
	}
	var opens atomic.Int32
	opts := &websocket.AcceptOptions{Options: run.opts}
	srv := &eventloop.Server{
		Options:         opts,
		WriteQueueLimit: eventLoopWriteQueue,
		OnOpen: func(c *eventloop.Conn) {
			if opens.Add(1) != 1 {
				side.extra.set(errors.New("a second WebSocket connection was opened"))
				c.Close(websocket.StatusTryAgainLater, "one connection per test")
				return
			}
			side.opened <- c
		},
		OnMessage: func(c *eventloop.Conn, typ websocket.MessageType, p []byte) {
			// p is only valid during the call: the scenario gets a copy.
			select {
			case side.msgs <- elMessage{typ: typ, data: bytes.Clone(p)}:
			default:
				side.extra.set(fmt.Errorf("a message past the %d of the sequence (type %d, %d bytes)", len(run.seq), typ, len(p)))
			}
		},
		OnClose: func(c *eventloop.Conn, err error) {
			select {
			case side.closed <- err:
			default:
			}
		},
		OnHandshakeError: func(remote net.Addr, err error) {
			side.extra.set(fmt.Errorf("handshake refused: %w", err))
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if err := <-served; !errors.Is(err, eventloop.ErrServerClosed) {
			t.Errorf("eventloop Serve: %v", err)
		}
	}()

	front, err := newFrontListener(ln.Addr().String(), closer)
	if err != nil {
		t.Fatal(err)
	}
	defer front.close()

	goResult := make(chan error, 1)
	go func() {
		err := runEventLoopSide(ctx, side, closer, run.seq)
		if err == nil {
			err = side.extra.get()
		}
		if err == nil {
			err = front.err.get()
		}
		goResult <- err
	}()

	p := startPeer(ctx, t, name, argv(front.url())...)
	goErr, peerErr := awaitSides(ctx, p, goResult, func() bool { return opens.Load() > 0 })
	report(t, name, goErr, peerErr)

	info := &runInfo{whole: true}
	info.ok = goErr == nil && peerErr == nil
	if tc := front.tapped(); tc != nil {
		info.wire = tc
		_, written := tc.streams()
		info.extensions = responseHeader(written, "Sec-WebSocket-Extensions")
	}
	return info
}

// runEventLoopSide is runGoSide for the event-loop server: it sends seq
// once the connection is open, checks that the peer sends it back, then
// runs the close phase (closePhase's checks, as far as the event-loop API
// shows them).
func runEventLoopSide(ctx context.Context, s *elSide, closer string, seq []message) error {
	if closer != closerGo && closer != closerPeer {
		return fmt.Errorf("bad closer %q", closer)
	}
	var c *eventloop.Conn
	select {
	case c = <-s.opened:
	case <-ctx.Done():
		return fmt.Errorf("no connection opened: %w", ctx.Err())
	}
	// Write cannot fragment: every entry goes out whole, in one frame.
	for _, m := range seq {
		if err := c.Write(m.typ, m.data); err != nil {
			return fmt.Errorf("send %v: %w", m, err)
		}
	}
	for _, m := range seq {
		got, err := s.next(ctx)
		if err != nil {
			return fmt.Errorf("receive %v: the connection ended: %w", m, err)
		}
		if got.typ != m.typ {
			return fmt.Errorf("receive %v: got message type %d (%d bytes), want %d", m, got.typ, len(got.data), m.typ)
		}
		if !bytes.Equal(got.data, m.data) {
			return fmt.Errorf("receive %v: payload differs: %s", m, firstDiff(got.data, m.data))
		}
	}
	switch closer {
	case closerGo:
		if err := c.Close(goCloseCode, goCloseReason); err != nil {
			return fmt.Errorf("Close(%d, %q): %w", goCloseCode, goCloseReason, err)
		}
		m, err := s.next(ctx)
		if err == nil {
			return fmt.Errorf("after Close: got a message (type %d, %d bytes)", m.typ, len(m.data))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("after Close: OnClose was not called: %w", err)
		}
		// The event-loop server reports a close it started as a
		// *ClosedError (ErrClosed) that carries the peer's close frame
		// when it answered (rather than closing TCP, breaking the protocol
		// or timing out): the peer must echo the code (RFC 6455 §5.5.1).
		var closed *eventloop.ClosedError
		if !errors.Is(err, websocket.ErrClosed) || !errors.As(err, &closed) || closed.Answer == nil || closed.Answer.Code != goCloseCode {
			return fmt.Errorf("OnClose after Close: got %v, want a *eventloop.ClosedError whose answer has code %d", err, goCloseCode)
		}
		if err := c.Write(websocket.MessageText, []byte("late")); !errors.Is(err, websocket.ErrClosed) {
			return fmt.Errorf("Write after the close: got %v, want an error wrapping ErrClosed", err)
		}
		return nil
	default: // closerPeer
		m, err := s.next(ctx)
		if err == nil {
			return fmt.Errorf("waiting for the peer's close frame: got a message (type %d, %d bytes)", m.typ, len(m.data))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the peer's close frame: %w", err)
		}
		code := websocket.CloseStatus(err)
		reason, ok := closeReason(err)
		if !ok || code != peerCloseCode || reason != peerCloseReason {
			return fmt.Errorf("waiting for the peer's close frame: got code %d reason %q (CloseError found: %v; err: %v), want code %d reason %q",
				code, reason, ok, err, peerCloseCode, peerCloseReason)
		}
		return nil
	}
}

// frontListener is the front of the event-loop server in these tests (see
// the top of this file): it relays the connection to /interop, recorded,
// and serves the browser page to any other request.
type frontListener struct {
	ln      net.Listener
	backend string
	closer  string
	pages   *chanListener
	page    *http.Server
	wg      sync.WaitGroup
	mu      sync.Mutex
	ws      *tapConn
	conns   []net.Conn
	// err is the first thing the front found wrong: a second connection
	// to /interop, or a closer in its query other than the test's.
	err      firstErr
	relaying int
}

func newFrontListener(backend, closer string) (*frontListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &frontListener{ln: ln, backend: backend, closer: closer,
		pages: &chanListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()}}
	mux := http.NewServeMux()
	handlePage(mux)
	f.page = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	f.page.SetKeepAlivesEnabled(false)
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		f.page.Serve(f.pages)
	}()
	go func() {
		defer f.wg.Done()
		f.accept()
	}()
	return f, nil
}

func (f *frontListener) url() string { return "http://" + f.ln.Addr().String() }

// tapped returns the recorded connection to /interop (nil if none came).
func (f *frontListener) tapped() *tapConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ws
}

func (f *frontListener) track(c net.Conn) {
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
}

func (f *frontListener) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.track(c)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.serve(c)
		}()
	}
}

// serve reads the request line of c and relays c to the event-loop server
// when it asks for /interop, else hands it to the page server.
func (f *frontListener) serve(c net.Conn) {
	tc := newTapConn(c)
	br := bufio.NewReader(tc)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := br.ReadString('\n')
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	in := io.MultiReader(strings.NewReader(line), br)
	fields := strings.Fields(line)
	if len(fields) != 3 || !strings.HasPrefix(fields[1], "/interop") {
		select {
		case f.pages.ch <- &readerConn{Conn: c, r: in}:
		case <-f.pages.done:
			c.Close()
		}
		return
	}
	u, err := url.ParseRequestURI(fields[1])
	f.mu.Lock()
	f.relaying++
	first := f.relaying == 1
	if first {
		f.ws = tc
	}
	f.mu.Unlock()
	switch {
	case !first:
		f.err.set(errors.New("a second connection to /interop"))
		io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		c.Close()
		return
	case err != nil:
		f.err.set(fmt.Errorf("bad request target %q: %v", fields[1], err))
	case u.Query().Get("closer") != f.closer:
		f.err.set(fmt.Errorf("the peer connected with closer=%q, want %q", u.Query().Get("closer"), f.closer))
	}
	up, err := net.Dial("tcp", f.backend)
	if err != nil {
		f.err.set(fmt.Errorf("front: dial the event-loop server: %w", err))
		c.Close()
		return
	}
	f.track(up)
	relay(up.(*net.TCPConn), c.(*net.TCPConn), tc, in)
}

// relay copies in (the peer's bytes, read through the tapConn tc of
// down) to up, and up's bytes to tc, until both directions ended. An EOF is
// passed on as a half-close (CloseWrite), an error as a reset of the other
// side.
func relay(up, down *net.TCPConn, tc *tapConn, in io.Reader) {
	var wg sync.WaitGroup
	pipe := func(dst io.Writer, dstConn *net.TCPConn, src io.Reader, srcConn *net.TCPConn) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			// A reset, or the test ending: reset both sides.
			dstConn.SetLinger(0)
			srcConn.SetLinger(0)
			dstConn.Close()
			srcConn.Close()
			return
		}
		dstConn.CloseWrite()
	}
	wg.Add(2)
	go pipe(up, up, in, down)
	go pipe(tc, down, up, up)
	wg.Wait()
	up.Close()
	down.Close()
}

// close stops the front and every connection it holds.
func (f *frontListener) close() {
	f.ln.Close()
	f.page.Close()
	f.pages.close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// chanListener is a net.Listener whose connections come from a channel.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) close() { l.once.Do(func() { close(l.done) }) }

func (l *chanListener) Close() error { l.close(); return nil }

func (l *chanListener) Addr() net.Addr { return l.addr }

// readerConn is a net.Conn read through r (which holds the bytes already
// read from it).
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// responseHeader returns the header name of the HTTP response at the start
// of stream ("" when absent or unreadable).
func responseHeader(stream []byte, name string) string {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(stream)), nil)
	if err != nil {
		return ""
	}
	return resp.Header.Get(textproto.CanonicalMIMEHeaderKey(name))
}

// checkPlainWire checks the recorded bytes of a plain test that passed:
// no extension answered, the event-loop server's messages each in one
// frame without RSV1 carrying the sequence, the peer's the sequence too,
// and the close frames (checkPlainCloses).
func checkPlainWire(t *testing.T, info *runInfo, closer string) {
	t.Helper()
	if !info.ok {
		return
	}
	if info.wire == nil {
		t.Fatal("no recorded connection")
	}
	if info.extensions != "" {
		t.Errorf("Sec-WebSocket-Extensions answer %q, want none", info.extensions)
	}
	read, written := info.wire.streams()
	seq := sequence()
	for _, d := range []struct {
		what   string
		stream []byte
		goSide bool
	}{{"Go → peer", written, true}, {"peer → Go", read, false}} {
		frames, err := afterHandshake(d.stream)
		if err != nil {
			t.Fatalf("%s: %v", d.what, err)
		}
		msgs, err := parseFrames(frames)
		if err != nil {
			t.Fatalf("%s: %v", d.what, err)
		}
		if len(msgs) != len(seq) {
			t.Fatalf("%s: %d data messages on the wire, want %d", d.what, len(msgs), len(seq))
		}
		for i, m := range seq {
			wm := msgs[i]
			if wm.op != byte(m.typ) || wm.rsv1 || !bytes.Equal(wm.payload, m.data) {
				t.Fatalf("%s: %v: opcode %d, RSV1 %v, %d bytes on the wire: %s", d.what, m, wm.op, wm.rsv1, len(wm.payload), firstDiff(wm.payload, m.data))
			}
			if d.goSide && wm.frames != 1 {
				t.Errorf("%s: %v: %d frames, want 1", d.what, m, wm.frames)
			}
		}
	}
	checkPlainCloses(t, info, closer)
}

// checkPlainCloses checks the first close frame of each direction in the
// recorded bytes of a test that passed: the closer's code and reason, and
// the other side's echo of the code (with its reason or none; the
// event-loop server echoes none).
func checkPlainCloses(t *testing.T, info *runInfo, closer string) {
	t.Helper()
	if !info.ok || info.wire == nil {
		return
	}
	read, written := info.wire.streams()
	goCode, goReason := closeOnWire(t, "Go → peer", written)
	peerCode, peerReason := closeOnWire(t, "peer → Go", read)
	t.Logf("close frames: Go sent %d %q, the peer %d %q", goCode, goReason, peerCode, peerReason)
	first, firstReason, echo, echoReason := goCloseCode, goCloseReason, peerCode, peerReason
	gotFirst, gotFirstReason := goCode, goReason
	if closer == closerPeer {
		first, firstReason, echo, echoReason = peerCloseCode, peerCloseReason, goCode, goReason
		gotFirst, gotFirstReason = peerCode, peerReason
	}
	if gotFirst != first || gotFirstReason != firstReason {
		t.Errorf("closer=%s: the closer's close frame is %d %q, want %d %q", closer, gotFirst, gotFirstReason, first, firstReason)
	}
	if echo != first || echoReason != "" && echoReason != firstReason {
		t.Errorf("closer=%s: the answer to the close frame is %d %q, want %d with %q or no reason", closer, echo, echoReason, first, firstReason)
	}
}

// closeOnWire returns the code and reason of the first close frame in
// stream (the bytes one side wrote, handshake included).
func closeOnWire(t *testing.T, what string, stream []byte) (websocket.StatusCode, string) {
	t.Helper()
	frames, err := afterHandshake(stream)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	_, p, err := parseFramesClose(frames)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(p) < 2 {
		t.Fatalf("%s: close frame with a %d-byte payload, want a code", what, len(p))
	}
	return websocket.StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
}
