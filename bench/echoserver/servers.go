package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	coder "github.com/coder/websocket"
	"github.com/duplex-ws/duplex/websocket"
	"github.com/duplex-ws/duplex/websocket/eventloop"
	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/lxzan/gws"
)

// serveFunc starts an echo server on ln and returns a function that stops
// it. The server owns ln from then on.
type serveFunc func(ln net.Listener) (stop func(), err error)

// servers maps each -lib name to its echo server.
var servers = map[string]serveFunc{
	"duplex":  serveDuplex,
	"gorilla": serveGorilla,
	"coder":   serveCoder,
	"gobwas":  serveGobwas,
	"gws":     serveGWS,
	"nbio":    serveNbio,

	"duplex-eventloop": serveDuplexEventLoop,
}

// Libs lists the library names in the order the reports use.
var Libs = []string{"duplex", "gorilla", "coder", "gobwas", "gws", "nbio", "duplex-eventloop"}

func libList() string {
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range servers {
			if !yield(k) {
				return
			}
		}
	})
	return strings.Join(names, "|")
}

// serveHTTP runs h on a net/http server over ln.
func serveHTTP(ln net.Listener, h http.HandlerFunc) (func(), error) {
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}

// serveDuplex: websocket.Accept, then whole-message Read and Write, which
// allocate nothing in steady state. The context is context.Background():
// with no deadline and no Done channel the Conn sets no transport deadline
// per call (a request context would arm and disarm one on every Read and
// Write).
func serveDuplex(ln net.Listener) (func(), error) {
	b := newDuplexBcast()
	return serveHTTP(ln, func(w http.ResponseWriter, r *http.Request) {
		if b.serve(w, r) {
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		duplexEcho(c)
	})
}

// duplexEcho echoes every message of c with whole-message Read and Write
// until either fails, then closes c. It serves both the plain and the
// -compress duplex server, which differ only in their AcceptOptions.
func duplexEcho(c *websocket.Conn) {
	defer c.CloseNow()
	ctx := context.Background()
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return
		}
	}
}

// readInto reads a whole message from r into buf, reusing its storage; a
// buffer grown past 1 MiB by a large message is not kept.
func readInto(buf *bytes.Buffer, r io.Reader) ([]byte, error) {
	if buf.Cap() > 1<<20 {
		*buf = bytes.Buffer{}
	}
	buf.Reset()
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// serveGorilla: Upgrader with its default 4 KiB buffers; NextReader read
// into a per-connection buffer (ReadMessage would allocate every message),
// then WriteMessage, gorilla's allocation-free fast path for servers that
// sends the message as one frame in one vectored write (NextWriter with
// io.Copy would send a 64 KiB message as sixteen 4 KiB frames).
func serveGorilla(ln net.Listener) (func(), error) {
	up := gorilla.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	b := newGorillaBcast(up)
	return serveHTTP(ln, func(w http.ResponseWriter, r *http.Request) {
		if b.serve(w, r) {
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		gorillaEcho(c)
	})
}

// gorillaEcho echoes every message of c (NextReader into a per-connection
// buffer, then WriteMessage) until either fails, then closes c. It serves
// both the plain and the -compress gorilla server, which differ only in
// their Upgrader.
func gorillaEcho(c *gorilla.Conn) {
	defer c.Close()
	var buf bytes.Buffer
	for {
		typ, rd, err := c.NextReader()
		if err != nil {
			return
		}
		p, err := readInto(&buf, rd)
		if err != nil {
			return
		}
		if err := c.WriteMessage(typ, p); err != nil {
			return
		}
	}
}

// serveCoder: Accept, then Reader read into a per-connection buffer (Read
// would allocate every message) and Write, which sends the message as one
// frame.
func serveCoder(ln net.Listener) (func(), error) {
	b := new(coderBcast)
	return serveHTTP(ln, func(w http.ResponseWriter, r *http.Request) {
		if b.serve(w, r) {
			return
		}
		c, err := coder.Accept(w, r, nil)
		if err != nil {
			return
		}
		coderEcho(c)
	})
}

// coderEcho lifts c's read limit and echoes every message of c (Reader
// into a per-connection buffer, then Write) until either fails, then
// closes c. It serves both the plain and the -compress coder server, which
// differ only in their AcceptOptions.
func coderEcho(c *coder.Conn) {
	defer c.CloseNow()
	c.SetReadLimit(-1)
	ctx := context.Background()
	var buf bytes.Buffer
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return
		}
		p, err := readInto(&buf, rd)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, p); err != nil {
			return
		}
	}
}

// serveGobwas: gobwas/ws's low-level, zero-copy path: ws.Upgrade parses
// the handshake on the raw connection (no net/http), then each frame is
// read with ws.ReadHeader from a 4 KiB bufio.Reader, unmasked with
// ws.Cipher into a reused buffer, and echoed frame by frame: header and
// payload in one write, through a 4 KiB bufio.Writer for small frames and
// one vectored write (net.Buffers) for large ones. Pings are answered, a close
// frame is echoed and ends the connection. Echoing frames keeps fragmented
// messages fragmented, which the protocol allows.
func serveGobwas(ln net.Listener) (func(), error) {
	b := newGobwasBcast()
	return acceptEach(ln, b.conn) // upgrades, then gobwasConn for echo
}

// acceptEach accepts connections on ln, each served by serve on its own
// goroutine, until ln is closed, which the returned function does. The
// gobwas servers use it, since gobwas/ws works on raw connections.
func acceptEach(ln net.Listener, serve func(net.Conn)) (func(), error) {
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			go serve(conn)
		}
	}()
	return func() { ln.Close() }, nil
}

// gobwasWriter writes frames to conn, each header and payload in one
// write: through a 4 KiB bufio.Writer when they fit in its free space, as
// one vectored write (net.Buffers) otherwise. The echo servers with and
// without permessage-deflate share it.
type gobwasWriter struct {
	conn net.Conn
	bw   *bufio.Writer
	hb   bytes.Buffer // the header being written, reused
}

func newGobwasWriter(conn net.Conn) *gobwasWriter {
	return &gobwasWriter{conn: conn, bw: bufio.NewWriterSize(conn, 4096)}
}

// writeFrame writes the frame of header h and payload p.
func (w *gobwasWriter) writeFrame(h ws.Header, p []byte) error {
	w.hb.Reset()
	if err := ws.WriteHeader(&w.hb, h); err != nil {
		return err
	}
	if w.hb.Len()+len(p) <= w.bw.Available() {
		w.bw.Write(w.hb.Bytes())
		w.bw.Write(p)
		return w.bw.Flush()
	}
	// A large frame: header and payload in one vectored write.
	bufs := net.Buffers{w.hb.Bytes(), p}
	_, err := bufs.WriteTo(w.conn)
	return err
}

func gobwasConn(conn net.Conn) {
	br := bufio.NewReaderSize(conn, 4096)
	fw := newGobwasWriter(conn)
	var buf []byte
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return
		}
		if h.Length > 64<<20 {
			return
		}
		n := int(h.Length)
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		p := buf[:n]
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
			h.Masked = false
		}
		switch h.OpCode {
		case ws.OpPing:
			h.OpCode = ws.OpPong
		case ws.OpPong:
			continue
		}
		if err := fw.writeFrame(h, p); err != nil {
			return
		}
		if h.OpCode == ws.OpClose {
			return
		}
		if cap(buf) > 64<<10 { // do not keep a large message's buffer
			buf = nil
		}
	}
}

// gwsEcho is lxzan/gws's event handler: OnMessage writes the message back
// and returns its buffer to gws's pool.
type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	_ = c.WriteMessage(m.Opcode, m.Bytes())
}

// serveGWS: gws.NewServer, whose accept loop parses the handshake without
// net/http and runs each connection's ReadLoop on the accepting goroutine;
// options at their defaults (4 KiB buffers, messages handled in order, no
// UTF-8 check).
func serveGWS(ln net.Listener) (func(), error) {
	b := &gwsBcast{Event: gwsEcho{}}
	return runGWS(ln, b, b.option())
}

// runGWS runs a gws server with handler ev and options opt on ln, with
// accept errors ignored; the returned function stops it.
func runGWS(ln net.Listener, ev gws.Event, opt *gws.ServerOption) (func(), error) {
	srv := gws.NewServer(ev, opt)
	srv.OnError = func(net.Conn, error) {}
	sl := &stoppableListener{Listener: ln, done: make(chan struct{})}
	go srv.RunListener(sl)
	return sl.stop, nil
}

// stoppableListener makes Accept block once the listener is closed, since
// gws's RunListener retries a failed Accept forever.
type stoppableListener struct {
	net.Listener
	once sync.Once
	done chan struct{}
}

// Accept is the listener's; once the server was stopped, a failed Accept
// parks the caller instead of returning, which gws would retry forever.
func (l *stoppableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		select {
		case <-l.done:
			select {} // stopped: park the accept loop for good
		default:
		}
	}
	return c, err
}

func (l *stoppableListener) stop() {
	l.once.Do(func() { close(l.done); l.Listener.Close() })
}

// serveNbio: lesismal/nbio's nbhttp engine in its default non-blocking
// (epoll event loop) mode, with its websocket.Upgrader and OnMessage;
// payload buffers go back to the engine's pool after the handler
// (ReleaseWebsocketPayload), as nbio's own echo examples set. The
// upgrader's keepalive read deadline (120 s by default) is off, as every
// other server here has none.
func serveNbio(ln net.Listener) (func(), error) {
	up := newNbioEchoUpgrader()
	b := newNbioBcast()
	return runNbio(ln, func(w http.ResponseWriter, r *http.Request) {
		b.upgrade(up, w, r)
	})
}

// newNbioEchoUpgrader silences nbio's logging and returns an Upgrader
// that echoes every message from OnMessage with WriteMessage, with no
// keepalive read deadline and any origin accepted.
func newNbioEchoUpgrader() *nbws.Upgrader {
	logging.SetLevel(logging.LevelNone)
	up := nbws.NewUpgrader()
	up.KeepaliveTime = 0
	up.CheckOrigin = func(*http.Request) bool { return true }
	up.OnMessage(func(c *nbws.Conn, typ nbws.MessageType, p []byte) {
		_ = c.WriteMessage(typ, p)
	})
	return up
}

// runNbio starts an nbhttp engine on ln whose requests h upgrades, with
// payload buffers going back to the engine's pool after OnMessage; the
// returned function stops it.
func runNbio(ln net.Listener, h http.HandlerFunc) (func(), error) {
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{ln.Addr().String()},
		Listen:                  func(string, string) (net.Listener, error) { return ln, nil },
		MaxLoad:                 1 << 20,
		ReleaseWebsocketPayload: true,
		Handler:                 h,
	})
	if err := engine.Start(); err != nil {
		return nil, err
	}
	return engine.Stop, nil
}

// serveDuplexEventLoop: duplex's event-loop mode (websocket/eventloop), one
// epoll loop per CPU, echoing from OnMessage with Conn.Write, which writes
// at once from the loop goroutine. An idle connection holds only its Conn.
func serveDuplexEventLoop(ln net.Listener) (func(), error) {
	return serveEventLoopWith(ln, websocket.Options{})
}

// serveEventLoopWith is serveDuplexEventLoop with opts (compress.go sets
// Compression).
func serveEventLoopWith(ln net.Listener, opts websocket.Options) (func(), error) {
	s := &eventloop.Server{
		Options: &websocket.AcceptOptions{Options: opts},
		OnMessage: func(c *eventloop.Conn, typ websocket.MessageType, p []byte) {
			_ = c.Write(typ, p)
		},
	}
	if v := os.Getenv("ECHOSERVER_PING_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("ECHOSERVER_PING_INTERVAL=%q: want a positive duration", v)
		}
		s.Options.PingInterval = d
	}
	new(elBcast).wrap(s)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	return func() {
		s.Close()
		<-served
	}, nil
}
