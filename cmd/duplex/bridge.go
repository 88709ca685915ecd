package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/duplex-ws/duplex/bridge"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// bridgeMain runs `duplex bridge`: a WebSocket server whose every
// connection is bridged to one TCP (or TLS) target.
func bridgeMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":8081", "TCP `address` to listen on, host:port")
	to := fs.String("to", "", "the target `URL`, tcp://host:port or tls://host:port (required); clients cannot choose another")
	var subprotocols stringList
	fs.Var(&subprotocols, "subprotocol", "a subprotocol `name` the target speaks (e.g. mqtt), chosen when the client offers it; repeatable, most preferred first")
	ca := fs.String("ca", "", "PEM `file` of the certificates that sign a tls:// target's certificate (default: the system's roots)")
	insecure := fs.Bool("insecure", false, "do not verify a tls:// target's certificate (for tests only)")
	refuseText := fs.Bool("refuse-text", false, "close with 1003 when a client sends a text message (by default its bytes go to the target)")
	path := fs.String("path", "/", "URL `path` of the bridge; a path ending in / also serves the paths below it")
	var origins stringList
	fs.Var(&origins, "origin", "host `pattern` whose pages may connect across origins; repeatable. By default only same-origin pages may")
	if status, ok := parseFlags(fs, args, "Usage: duplex bridge --listen ADDR --to tcp://HOST:PORT [flags]\n\nBridges each WebSocket connection to a new TCP connection to the target: binary messages carry the byte stream both ways. Close codes: 1000 when the target closes, 1014 when it cannot be reached or fails (docs/gateways.md).\n\nFlags:\n"); !ok {
		return status
	}
	if !noArgs(fs, "duplex bridge") {
		return 2
	}
	if *to == "" {
		fmt.Fprintln(stderr, "duplex bridge: --to is required, e.g. --to tcp://127.0.0.1:5900")
		return 2
	}
	raw := *to
	if *ca != "" || *insecure {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "tls" {
			fmt.Fprintln(stderr, "duplex bridge: --ca and --insecure need a tls:// target")
			return 2
		}
		q := u.Query()
		if *ca != "" {
			q.Set("ca", *ca)
		}
		if *insecure {
			q.Set("insecure", "true")
		}
		u.RawQuery = q.Encode()
		raw = u.String()
	}
	target, err := bridge.ParseTarget(raw)
	if err != nil {
		fmt.Fprintln(stderr, "duplex bridge:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	g := newGatewayServer(log)
	h := &bridge.TCPHandler{
		Target:       target,
		Subprotocols: subprotocols,
		RefuseText:   *refuseText,
		Accept:       websocket.AcceptOptions{OriginPatterns: origins},
		OnConn:       g.track,
		Log:          log,
	}
	return g.run("duplex bridge", *listen, *path, h, "target", target.String(), stderr)
}

// gatewayServer runs one gateway handler for `duplex bridge` and `duplex
// exec`, and on SIGINT or SIGTERM closes its connections with 1001 and
// waits for its handlers to finish (targets closed, processes reaped).
type gatewayServer struct {
	log   *slog.Logger
	conns server.ConnTracker

	mu      sync.Mutex
	active  int           // handlers running (ServeHTTP calls in flight)
	closing chan struct{} // closed when shutdown has closed the conns it tracked
	idle    chan struct{} // closed when closing and no handler runs
}

func newGatewayServer(log *slog.Logger) *gatewayServer {
	return &gatewayServer{
		log:     log,
		closing: make(chan struct{}),
		idle:    make(chan struct{}),
	}
}

// isClosing reports whether shutdown has begun; g.mu must be held.
func (g *gatewayServer) isClosing() bool {
	select {
	case <-g.closing:
		return true
	default:
		return false
	}
}

// track registers a live connection for shutdown, until the returned
// function is called. A connection registered after shutdown took its
// list (an upgrade that was in flight when the signal came) is closed with
// 1001 at once, so that its handler ends (and, for exec, its process is
// killed and reaped) instead of outliving the command.
func (g *gatewayServer) track(c *websocket.Conn) func() { return g.conns.Track(c) }

// counted wraps h so that shutdown can wait for every handler call,
// including one between its upgrade and its call to track.
func (g *gatewayServer) counted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.active++
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			g.active--
			g.signalIdle()
			g.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

// signalIdle closes g.idle once shutdown has begun and no handler runs;
// g.mu must be held.
func (g *gatewayServer) signalIdle() {
	if g.active == 0 && g.isClosing() {
		select {
		case <-g.idle:
		default:
			close(g.idle)
		}
	}
}

// run serves h at path on listen until SIGINT or SIGTERM, and returns the
// exit status.
func (g *gatewayServer) run(name, listen, path string, h http.Handler, what, value string, stderr io.Writer) int {
	mux, err := gatewayMux(path, h)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g.log.Info(name+" listening", "addr", l.Addr().String(), "path", path, what, value)
	if err := g.serve(ctx, l, g.counted(mux)); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// gatewayMux serves h at path; a path ending in / also serves the paths
// below it.
func gatewayMux(path string, h http.Handler) (mux *http.ServeMux, err error) {
	mux = http.NewServeMux()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bad --path %q: %v", path, r)
		}
	}()
	if len(path) == 0 || path[0] != '/' {
		return nil, fmt.Errorf("bad --path %q: want /...", path)
	}
	if path == "/" {
		mux.Handle("/", h)
	} else {
		mux.Handle("GET "+path, h)
	}
	return mux, nil
}

// serve serves h (already wrapped by counted) on l until ctx ends, then
// shuts down: no new connections, every tracked connection closed with
// 1001, and a wait of at most 10 s for every handler to return. It returns
// an error only when serving fails before ctx ends.
func (g *gatewayServer) serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: websocket.DefaultHandshakeTimeout,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	g.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Shutdown returns once every request has hijacked its connection or
	// finished; a handler that upgraded but has not called track yet is
	// counted in g.active, and track closes its connection at once.
	srv.Shutdown(sctx)
	g.conns.CloseAll(context.Background())
	g.mu.Lock()
	close(g.closing)
	g.signalIdle()
	g.mu.Unlock()
	// Let the handlers finish: processes reaped, targets closed.
	select {
	case <-g.idle:
	case <-sctx.Done():
		g.log.Warn("handlers still running after the shutdown timeout")
	}
	return nil
}
