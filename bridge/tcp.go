package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// Defaults used when a handler's field is zero.
const (
	// DefaultBufferSize is the size of each of a connection's two copy
	// buffers: the most a bridge reads from one side before writing it to
	// the other, and so the largest message a TCPHandler sends.
	DefaultBufferSize = 32 << 10
	// DefaultDialTimeout bounds connecting to a TCP target, TLS handshake
	// included.
	DefaultDialTimeout = 10 * time.Second
)

// Target is the one address a TCPHandler connects to. It comes from the
// server's configuration, never from the client's request, which is what
// keeps a bridge from being an open proxy.
type Target struct {
	// Addr is the target's host:port.
	Addr string
	// TLS, when non-nil, makes the bridge speak TLS to the target with
	// this configuration; an empty ServerName means Addr's host.
	TLS *tls.Config
}

// String returns the target as a URL, tcp://host:port or tls://host:port.
func (t Target) String() string {
	if t.TLS != nil {
		return "tls://" + t.Addr
	}
	return "tcp://" + t.Addr
}

// ParseTarget parses a target URL: tcp://host:port, or tls://host:port for
// TLS to the target. A tls:// URL takes these query parameters:
//
//	ca=FILE          trust the PEM certificates in FILE instead of the system roots
//	insecure=true    do not verify the target's certificate (tests only)
//	servername=NAME  the name to verify and send in SNI (default: the host)
//
// The port is required: a bridge never guesses where to go.
func ParseTarget(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: %v", raw, err)
	}
	if u.Scheme != "tcp" && u.Scheme != "tls" {
		return Target{}, fmt.Errorf("target %q: scheme must be tcp:// or tls://", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return Target{}, fmt.Errorf("target %q: want only scheme://host:port", raw)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return Target{}, fmt.Errorf("target %q: want host:port", raw)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Target{}, fmt.Errorf("target %q: bad port %q", raw, port)
	}
	t := Target{Addr: net.JoinHostPort(host, port)}
	q := u.Query()
	if u.Scheme == "tcp" {
		if len(q) > 0 {
			return Target{}, fmt.Errorf("target %q: tcp:// takes no parameters (ca, insecure and servername are for tls://)", raw)
		}
		return t, nil
	}
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "ca":
			pem, err := os.ReadFile(v)
			if err != nil {
				return Target{}, fmt.Errorf("target %q: ca: %v", raw, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return Target{}, fmt.Errorf("target %q: ca: no PEM certificate in %s", raw, v)
			}
			cfg.RootCAs = pool
		case "insecure":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Target{}, fmt.Errorf("target %q: insecure=%q: want true or false", raw, v)
			}
			cfg.InsecureSkipVerify = b
		case "servername":
			cfg.ServerName = v
		default:
			return Target{}, fmt.Errorf("target %q: unknown parameter %q (want ca, insecure or servername)", raw, k)
		}
	}
	t.TLS = cfg
	return t, nil
}

// dial connects to the target, with the TLS handshake when configured.
func (t Target) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil || t.TLS == nil {
		return c, err
	}
	cfg := t.TLS
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(t.Addr)
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// TCPHandler bridges each WebSocket connection to a new TCP connection to
// Target: every binary message's bytes are written to the target, and
// every chunk read from the target (up to BufferSize bytes) is sent as one
// binary message. Message boundaries carry no meaning; the byte stream
// does. See the package documentation for backpressure and close codes.
type TCPHandler struct {
	// Target is where every connection goes.
	Target Target
	// Subprotocols lists the subprotocols this route speaks, most
	// preferred first (e.g. "mqtt"). The handler picks the first one the
	// client offered; when the client offered none of them, the
	// connection proceeds without a subprotocol (RFC 6455 §4.2.2).
	Subprotocols []string
	// Accept configures the upgrade (origins, compression, limits). Its
	// Subprotocols field is replaced by the one above. A zero ReadLimit
	// means no limit: messages are streamed, never held whole.
	Accept websocket.AcceptOptions
	// RefuseText, when set, closes the connection with 1003 (unsupported
	// data) when a text message arrives. By default a text message's
	// UTF-8 bytes are written to the target like a binary message's, so
	// a client of a text protocol (Redis, SMTP) can send text.
	RefuseText bool
	// DialTimeout bounds connecting to the target (0: DefaultDialTimeout).
	DialTimeout time.Duration
	// BufferSize is the size of each direction's copy buffer (0:
	// DefaultBufferSize).
	BufferSize int
	// ProbeInterval is how long a write to the target may stay blocked
	// before the client is pinged to learn whether it is still there, so
	// that a client that left is noticed even while the target reads
	// nothing (0: DefaultProbeInterval).
	ProbeInterval time.Duration
	// OnConn, when set, is called with each accepted connection, and the
	// function it returns when the connection ends; a server uses it to
	// close bridges with 1001 on shutdown.
	OnConn func(*websocket.Conn) (done func())
	// OnActivity, when set, is called with the connection whenever bytes
	// of a message pass, in either direction (read from the client, or
	// read from the target to be sent); a server uses it for its idle
	// timeout. It must be quick: it runs on the copying goroutines.
	OnActivity func(*websocket.Conn)
	// Log receives a line per connection that ends in an error, and why
	// a target could not be reached; nil means slog.Default().
	Log *slog.Logger
}

// logger returns l, or slog.Default() when l is nil.
func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.Default()
}

func bufferSize(n int) int {
	if n <= 0 {
		return DefaultBufferSize
	}
	return n
}

// upgrade completes the handshake with opts, a zero ReadLimit meaning no
// limit (a bridge streams messages, it never holds one whole), and hands
// the connection to onConn when set. It returns nil when the handshake
// failed, Accept having answered the request; otherwise the caller calls
// end when the connection is over, which runs what onConn returned and
// then closes the connection.
func upgrade(w http.ResponseWriter, r *http.Request, opts websocket.AcceptOptions, onConn func(*websocket.Conn) func()) (ws *websocket.Conn, end func()) {
	if opts.ReadLimit == 0 {
		opts.ReadLimit = -1
	}
	ws, err := websocket.Accept(w, r, &opts)
	if err != nil {
		return nil, nil
	}
	var done func()
	if onConn != nil {
		done = onConn(ws)
	}
	return ws, func() {
		if done != nil {
			done()
		}
		ws.CloseNow()
	}
}

// watchReads returns r, calling onActivity with ws after each read that
// returns bytes; r itself when onActivity is nil.
func watchReads(r io.Reader, ws *websocket.Conn, onActivity func(*websocket.Conn)) io.Reader {
	if onActivity == nil {
		return r
	}
	return &activityReader{r: r, ws: ws, f: onActivity}
}

type activityReader struct {
	r  io.Reader
	ws *websocket.Conn
	f  func(*websocket.Conn)
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.f(a.ws)
	}
	return n, err
}

// Errors of the TCP pumps, by side, so the handler can pick a close code.
var (
	errTextRefused = errors.New("text message refused")
)

// targetError is a failure of the TCP side.
type targetError struct{ err error }

func (e *targetError) Error() string { return "target: " + e.err.Error() }
func (e *targetError) Unwrap() error { return e.err }

func asTargetError(err error) error { return &targetError{err} }

// ServeHTTP upgrades the request, connects to the target and carries bytes
// both ways until one side ends.
func (h *TCPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	opts := h.Accept
	opts.Subprotocols = h.Subprotocols
	ws, end := upgrade(w, r, opts, h.OnConn)
	if ws == nil {
		return // Accept has answered the request
	}
	defer end()
	log := logger(h.Log).With("remote", r.RemoteAddr, "target", h.Target.String())

	timeout := h.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	tc, err := h.Target.dial(dctx)
	cancel()
	if err != nil {
		log.Warn("bridge: cannot reach the target", "err", err)
		ws.Close(websocket.StatusBadGateway, "cannot reach the target")
		return
	}
	h.pump(context.Background(), ws, tc, log)
}

// pump carries bytes between ws and tc until one side ends, then ends the
// other with the code that says why.
func (h *TCPHandler) pump(ctx context.Context, ws *websocket.Conn, tc net.Conn, log *slog.Logger) {
	type result struct {
		fromClient bool
		err        error
	}
	done := make(chan result, 2)
	size := bufferSize(h.BufferSize)
	var clientGone atomic.Bool
	guard := newStallGuard(ws, h.ProbeInterval, func() {
		clientGone.Store(true)
		closeTarget(tc)
	})
	defer guard.stop()
	go func() { done <- result{true, h.clientToTarget(ctx, ws, tc, guard, size)} }()
	// A failed read of the target, io.EOF when it closed its side, is a
	// *targetError.
	go func() {
		done <- result{false, chunksToClient(ctx, watchReads(tc, ws, h.OnActivity), ws, size, asTargetError)}
	}()

	first := <-done
	var te *targetError
	switch {
	case clientGone.Load():
		// The guard found the client gone while the target was not
		// reading, and closed the target.
		ws.CloseNow()
	case !first.fromClient && errors.As(first.err, &te) && errors.Is(te.err, io.EOF):
		// The target closed its side: all it sent has been delivered.
		// Bytes the client sends until it answers the close frame still
		// go to the target, which may read after its half-close.
		ws.Close(websocket.StatusNormalClosure, "target closed the connection")
		closeTarget(tc)
	case errors.As(first.err, &te):
		log.Info("bridge: target connection failed", "err", te.err)
		closeTarget(tc)
		ws.Close(websocket.StatusBadGateway, "target connection failed")
	case errors.Is(first.err, errTextRefused):
		closeTarget(tc)
		ws.Close(websocket.StatusUnsupportedData, "text messages are not accepted on this route")
	default:
		// The client side ended: a close frame, a dropped transport, or
		// our own Close (server shutdown).
		closeTarget(tc)
		ws.CloseNow()
	}
	<-done
}

// closeTarget sends FIN to the target (so it reads EOF) and closes.
func closeTarget(tc net.Conn) {
	if cw, ok := tc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	tc.Close()
}

// clientToTarget writes every message's bytes to tc, streaming each
// message through one fixed buffer. It returns a *targetError when the
// target fails, errTextRefused, or the WebSocket's error.
func (h *TCPHandler) clientToTarget(ctx context.Context, ws *websocket.Conn, tc net.Conn, g *stallGuard, size int) error {
	buf := make([]byte, size)
	for {
		typ, rd, err := ws.Reader(ctx)
		if err != nil {
			return err
		}
		if typ == websocket.MessageText && h.RefuseText {
			return errTextRefused
		}
		rd = watchReads(rd, ws, h.OnActivity)
		for {
			n, rerr := rd.Read(buf)
			if n > 0 {
				if _, err := g.write(tc, buf[:n]); err != nil {
					return &targetError{err}
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return rerr
			}
		}
	}
}
