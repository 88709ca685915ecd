// Package server wires Duplex's HTTP endpoints: the echo service, the
// channel endpoint (/ws, protocol duplex.v1), the HTTP API, plain chat
// rooms, the browser SDK and the landing page. It holds no protocol logic:
// WebSocket lives in package websocket, channels in package pubsub.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/web"
	"github.com/duplex-ws/duplex/websocket"
)

// Config is what `duplex serve` is told. The zero value listens on :8080.
type Config struct {
	// Listen is the TCP address to listen on, ":8080" when empty.
	Listen string
	// ReadLimit is the largest message accepted, in bytes (0: 32 MiB).
	ReadLimit int64
	// HandshakeTimeout bounds reading the upgrade request's headers, so a
	// handshake that trickles in is cut off (0: 10 s).
	HandshakeTimeout time.Duration
	// OriginPatterns lets pages from other origins connect (see
	// websocket.AcceptOptions.OriginPatterns).
	OriginPatterns []string
	// Version is shown on the landing page and in connect answers.
	Version string
	// Namespaces configures channel namespaces (see pubsub.Config); nil
	// means DefaultNamespaces().
	Namespaces map[string]pubsub.NamespaceOptions
	// Broker holds the channels; nil means an in-memory broker.
	Broker pubsub.Broker
	// APIKey, when set, protects the HTTP API; when empty, the API answers
	// loopback clients only.
	APIKey string
	// SendQueue bounds each connection's waiting outgoing messages (0:
	// DefaultSendQueue); a connection that overflows it is closed with 1013.
	SendQueue int
	// Compression configures permessage-deflate for every WebSocket
	// endpoint; the zero value leaves it off. See CompressionMode for the
	// settings `duplex serve --compression` names.
	Compression websocket.CompressionOptions
	// Bridges are WebSocket-to-TCP routes, each to a target fixed here
	// (see BridgeRoute and docs/gateways.md).
	Bridges []BridgeRoute
	// Execs are WebSocket-to-process routes (see ExecRoute).
	Execs []ExecRoute
	// Log receives the server's log lines; nil means slog.Default().
	Log *slog.Logger
	// Pprof serves the runtime profiles of net/http/pprof under
	// /debug/pprof/ on the server's own address; off by default, as
	// profiles show the program's internals and cost CPU while taken.
	Pprof bool
	// Demo runs, while the server serves, a publisher of stock quotes on
	// the channels ticker:{symbol} (see TickerSymbols) for the ticker page
	// at /ticker/, and adds the ticker namespace (TickerNamespaceOptions)
	// unless Namespaces has one.
	Demo bool
}

// Server is a configured Duplex HTTP server.
type Server struct {
	cfg  Config
	http *http.Server
	mux  *http.ServeMux
	hub  *pubsub.Hub

	conns ConnTracker // channel, chat and gateway connections, for shutdown

	obs          *observer   // metrics and the connection log
	shuttingDown atomic.Bool // Shutdown has begun: /readyz answers 503

	gatewayErr error // a bad bridge or exec route; Serve returns it

	demo demo // the ticker publisher of Config.Demo
}

// CompressionMode returns the compression settings `duplex serve
// --compression` names: "off"; "on", permessage-deflate without context
// takeover in either direction, so each push is compressed once for all
// subscribers (prepared frames) and a connection holds no compression state
// between messages; "takeover", context takeover both ways, which
// compresses small similar messages best but costs each connection about
// 147 KiB (docs/benchmarks.md) and compresses fan-out per connection.
func CompressionMode(mode string) (websocket.CompressionOptions, error) {
	switch mode {
	case "off", "":
		return websocket.CompressionOptions{}, nil
	case "on":
		return websocket.CompressionOptions{Enabled: true, ServerNoContextTakeover: true, ClientNoContextTakeover: true}, nil
	case "takeover":
		return websocket.CompressionOptions{Enabled: true}, nil
	}
	return websocket.CompressionOptions{}, fmt.Errorf("compression %q: want off, on or takeover", mode)
}

// DefaultNamespaces returns the namespaces duplex serve has unless told
// otherwise: the default one (pubsub.DefaultNamespace) and "chat" (50
// messages of history for 10 minutes, presence on, clients publish), which
// the plain chat rooms and the chat app use.
func DefaultNamespaces() map[string]pubsub.NamespaceOptions {
	return map[string]pubsub.NamespaceOptions{
		"":            pubsub.DefaultNamespace,
		ChatNamespace: {HistorySize: 50, HistoryTTL: 10 * time.Minute, Presence: true, ClientPublish: true},
	}
}

// New builds the server and its routes from cfg.
func New(cfg Config) *Server {
	if cfg.Listen == "" {
		cfg.Listen = ":8080"
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Namespaces == nil {
		cfg.Namespaces = DefaultNamespaces()
	}
	if cfg.Demo {
		cfg.Namespaces = withTicker(cfg.Namespaces)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), obs: newObserver(cfg.Log, cfg.Namespaces)}
	s.hub = pubsub.NewHub(pubsub.Config{Broker: cfg.Broker, Namespaces: cfg.Namespaces})
	accept := websocket.AcceptOptions{
		Options:          websocket.Options{ReadLimit: cfg.ReadLimit, Compression: cfg.Compression},
		OriginPatterns:   cfg.OriginPatterns,
		HandshakeTimeout: cfg.HandshakeTimeout,
	}
	s.mux.Handle("GET /echo", s.obs.endpoint(endpointEcho, nil).instrument(&EchoHandler{Accept: accept, Log: cfg.Log}))
	wsEP := s.obs.endpoint(endpointWS, []string{Subprotocol})
	s.mux.Handle("GET /ws", wsEP.instrument(&ChannelHandler{Hub: s.hub, Accept: accept, SendQueue: cfg.SendQueue, Version: cfg.Version, Log: cfg.Log, track: s.trackFor(wsEP), obs: s.obs}))
	chatEP := s.obs.endpoint(endpointChat, nil)
	s.mux.Handle("GET /chat/{room}", chatEP.instrument(&ChatHandler{Hub: s.hub, Accept: accept, SendQueue: cfg.SendQueue, Log: cfg.Log, track: s.trackFor(chatEP), obs: s.obs, Fallback: appPage("chat")}))
	api := &API{Hub: s.hub, Key: cfg.APIKey, MaxBody: cfg.ReadLimit, obs: s.obs}
	api.register(s.mux)
	s.mux.HandleFunc("GET /duplex.js", serveWebFile("duplex.js", "text/javascript; charset=utf-8"))
	s.mux.HandleFunc("GET /duplex.d.ts", serveWebFile("duplex.d.ts", "application/typescript; charset=utf-8"))
	s.mountApps()
	s.mountObservability()
	s.mountGateways(accept)
	s.http = &http.Server{
		Addr:              cfg.Listen,
		Handler:           s.mux,
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler returns the server's routes, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.mux }

// Hub returns the server's channel engine, so that code in the same
// process can publish without going through HTTP.
func (s *Server) Hub() *pubsub.Hub { return s.hub }

// trackFor returns the function with which ep's handlers register a live
// WebSocket connection until the returned function is called, so that
// Shutdown can close it (see ConnTracker.Track) and the 1001 it sends is
// counted and logged with the connection.
func (s *Server) trackFor(ep *endpointStats) func(c *websocket.Conn, rec *connRecord) (untrack func()) {
	return func(c *websocket.Conn, rec *connRecord) func() {
		return s.conns.trackWith(c, ep.goingAway(rec))
	}
}

// serveWebFile serves one embedded file of package web.
func serveWebFile(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeWebFile(w, name, contentType)
	}
}

// writeWebFile answers with the embedded file name of package web, as
// contentType and never cached without revalidation, or 404 when there is
// no such file.
func writeWebFile(w http.ResponseWriter, name, contentType string) {
	b, err := web.FS.ReadFile(name)
	if err != nil {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if s.gatewayErr != nil {
		return s.gatewayErr
	}
	s.startDemo()
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on cfg.Listen and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	l, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return err
	}
	s.cfg.Log.Info("duplex serving", "addr", l.Addr().String())
	return s.Serve(l)
}

// Shutdown stops accepting connections, closes the channel, chat and gateway
// connections with 1001 (going away) so that clients reconnect elsewhere,
// and waits, until ctx ends, for requests in flight and closing handshakes.
// Echo connections are not tracked yet.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shuttingDown.Store(true)
	s.stopDemo()
	err := s.http.Shutdown(ctx)
	if cerr := s.conns.CloseAll(ctx); err == nil {
		err = cerr
	}
	s.hub.Close()
	return err
}
