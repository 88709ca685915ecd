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
	"sync"
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
	// ReadLimit is the largest message accepted on /echo and the bridge
	// and exec routes, in bytes (0: 32 MiB; negative: no limit); these
	// stream messages through a fixed buffer, so a large one costs no
	// more memory than a small one. A larger message closes the
	// connection with 1009. /ws, /chat/{room} and the HTTP API, which
	// hold messages whole, have Limits.MaxMessageSize (64 KiB) instead.
	ReadLimit int64
	// HandshakeTimeout bounds reading the upgrade request's headers, so a
	// handshake that trickles in is cut off (0: 10 s).
	HandshakeTimeout time.Duration
	// OriginPatterns lets pages from other origins connect (see
	// websocket.AcceptOptions.OriginPatterns): host patterns in path.Match
	// syntax, such as "app.example.com" or "*.example.com", matched
	// against the host (and port) of a handshake's Origin header. By
	// default only same-origin pages may: a handshake whose Origin names
	// another host than its Host header is refused with 403, on /ws,
	// /echo, /chat/ and the gateway routes alike. Handshakes without an
	// Origin (programs, not browsers) are not concerned.
	OriginPatterns []string
	// Version is shown on the landing page and in connect answers.
	Version string
	// Namespaces configures channel namespaces (see pubsub.Config); nil
	// means DefaultNamespaces().
	Namespaces map[string]pubsub.NamespaceOptions
	// Broker holds the channels; nil means an in-memory broker.
	Broker pubsub.Broker
	// APIKey, when set, protects the HTTP API, as a key allowed everything;
	// when there is neither APIKey nor APIKeys, the API answers loopback
	// clients only.
	APIKey string
	// APIKeys are keys of the HTTP API, each with a name and possibly
	// limited to some operations and channels (see APIKey), so that every
	// backend can have its own. New checks them: Serve returns what is
	// wrong.
	APIKeys []APIKey
	// Auth configures the authentication of the channel endpoints' clients
	// with JSON Web Tokens (docs/operations.md, "Authentication"); the zero
	// value turns it off. New loads the keys: Serve returns what is wrong.
	Auth AuthConfig
	// SendQueue bounds each connection's waiting outgoing messages (0:
	// DefaultSendQueue); when it is full, the slow-consumer policy of the
	// messages' namespace applies (pubsub.NamespaceOptions.SlowConsumer):
	// by default the connection is closed with 1013.
	SendQueue int
	// Limits bound connections, accept rate, message rate, channels and
	// idle time (see Limits; the zero value has every limit on, at its
	// default).
	Limits Limits
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

	// TLSCert and TLSKey are the PEM files of the server's certificate
	// chain and its private key; with them the server speaks wss:// and
	// https:// on Listen (HTTP/1.1). They are read when the server is
	// built (a bad file makes Serve fail with an error naming it) and
	// again by ReloadTLS, so that a renewed certificate is picked up
	// without dropping connections.
	TLSCert, TLSKey string
	// AutocertHosts, instead of TLSCert and TLSKey, lists the public host
	// names for which the server obtains and renews its certificates
	// itself with ACME (golang.org/x/crypto/acme/autocert), from Let's
	// Encrypt unless AutocertDirectoryURL says otherwise. The CA checks
	// each name with the TLS-ALPN-01 challenge, answered on the TLS
	// listener itself, which must therefore be reachable on port 443
	// under every listed name (or HTTP-01, see AutocertHTTPListen). TLS
	// handshakes for any other name are refused.
	AutocertHosts []string
	// AutocertCacheDir is the directory (created 0700 if missing) where
	// autocert keeps its account key and certificates; required with
	// AutocertHosts, as a server that asks for new certificates at every
	// start soon meets the CA's rate limits.
	AutocertCacheDir string
	// AutocertEmail, optional, is the contact address of the ACME
	// account, to which the CA may write about certificate problems.
	AutocertEmail string
	// AutocertHTTPListen, optional, is a second address (usually ":80")
	// that answers ACME HTTP-01 challenges and redirects every other GET
	// and HEAD to https://, for when port 443 is not reachable directly.
	AutocertHTTPListen string
	// AutocertDirectoryURL is the ACME directory (empty: Let's Encrypt's
	// production one); e.g. Let's Encrypt's staging directory while
	// testing, or a private ACME CA.
	AutocertDirectoryURL string
	// AutocertDirectoryCA, optional, is a PEM file of the root
	// certificates trusted for the ACME directory's own HTTPS, for a
	// private ACME CA; empty means the system's roots.
	AutocertDirectoryCA string

	// DrainBatch is how many WebSocket connections Drain closes at a time
	// (0: DefaultDrainBatch), one batch every DrainInterval (0:
	// DefaultDrainInterval), so that the clients of a restarting node
	// reconnect elsewhere a few at a time. If at that pace the last batch
	// would start later than halfway to the deadline, batches are made
	// larger.
	DrainBatch    int
	DrainInterval time.Duration
	// DrainTimeout is Drain's deadline (0: DefaultDrainTimeout): the
	// connections and requests still open then are closed at once,
	// without a closing handshake.
	DrainTimeout time.Duration
}

// Server is a configured Duplex HTTP server.
type Server struct {
	cfg  Config
	http *http.Server
	mux  *http.ServeMux
	hub  *pubsub.Hub

	conns ConnTracker // WebSocket connections, for shutdown and drain

	obs          *observer   // metrics and the connection log
	shuttingDown atomic.Bool // Shutdown or Drain has begun: /readyz answers 503
	finishOnce   sync.Once   // the end of Shutdown and Drain, run once

	gatewayErr error          // a bad bridge or exec route; Serve returns it
	tls        *tlsState      // nil without TLS
	tlsErr     error          // bad TLS settings or files; Serve returns it
	configErr  error          // bad API keys or auth settings; Serve returns it
	limitsErr  error          // a bad Config.Limits; Serve returns it
	auth       *Authenticator // nil when Config.Auth is off

	admission *admission // connection and accept-rate limits of every WebSocket endpoint

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
	if cfg.DrainBatch <= 0 {
		cfg.DrainBatch = DefaultDrainBatch
	}
	if cfg.DrainInterval <= 0 {
		cfg.DrainInterval = DefaultDrainInterval
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), obs: newObserver(cfg.Log, cfg.Namespaces)}
	s.tls, s.tlsErr = setupTLS(&cfg)
	s.hub = pubsub.NewHub(pubsub.Config{Broker: cfg.Broker, Namespaces: cfg.Namespaces})
	if cfg.Auth.Enabled() {
		s.auth, s.configErr = NewAuthenticator(cfg.Auth, cfg.Log)
	}
	s.admission, s.limitsErr = newAdmission(cfg.Limits, s.obs)
	accept := websocket.AcceptOptions{
		Options:          websocket.Options{ReadLimit: cfg.ReadLimit, Compression: cfg.Compression},
		OriginPatterns:   cfg.OriginPatterns,
		HandshakeTimeout: cfg.HandshakeTimeout,
	}
	held := accept // endpoints that hold messages whole: Limits.MaxMessageSize
	held.ReadLimit = 0
	echoEP := s.obs.endpoint(endpointEcho, nil)
	s.mux.Handle("GET /echo", echoEP.instrument(s.admission.guard(&EchoHandler{Accept: accept, Limits: cfg.Limits, Log: cfg.Log, track: s.trackFor(echoEP), obs: s.obs})))
	wsEP := s.obs.endpoint(endpointWS, []string{Subprotocol})
	s.mux.Handle("GET /ws", wsEP.instrument(s.admission.guard(&ChannelHandler{Hub: s.hub, Accept: held, SendQueue: cfg.SendQueue, Limits: cfg.Limits, Version: cfg.Version, Log: cfg.Log, Auth: s.auth, track: s.trackSessionFor(wsEP), obs: s.obs})))
	chatEP := s.obs.endpoint(endpointChat, nil)
	s.mux.Handle("GET /chat/{room}", chatEP.instrument(s.admission.guard(&ChatHandler{Hub: s.hub, Accept: held, SendQueue: cfg.SendQueue, Limits: cfg.Limits, Log: cfg.Log, Auth: s.auth, track: s.trackFor(chatEP), obs: s.obs, Fallback: appPage("chat")})))
	api := &API{Hub: s.hub, Key: cfg.APIKey, Keys: cfg.APIKeys, MaxBody: cfg.Limits.Effective().MaxMessageSize, obs: s.obs}
	if err := api.register(s.mux); err != nil && s.configErr == nil {
		s.configErr = err
	}
	s.mux.HandleFunc("GET /duplex.js", serveWebFile("duplex.js", "text/javascript; charset=utf-8"))
	s.mux.HandleFunc("GET /duplex.d.ts", serveWebFile("duplex.d.ts", "application/typescript; charset=utf-8"))
	s.mountApps()
	s.mountObservability()
	s.mountGateways(accept)
	hw := &handshakeWatch{timeout: cfg.HandshakeTimeout, obs: s.obs}
	s.http = &http.Server{
		Addr:              cfg.Listen,
		Handler:           hw.wrap(s.mux),
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
		ConnContext:       hw.connContext,
		ConnState:         hw.connState,
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
// Shutdown and Drain can close it (see ConnTracker.Track) and the code
// they send is counted and logged with the connection.
func (s *Server) trackFor(ep *endpointStats) func(c *websocket.Conn, rec *connRecord) (untrack func()) {
	return func(c *websocket.Conn, rec *connRecord) func() {
		sent := ep.closing(rec)
		return s.conns.trackWith(c, func(code websocket.StatusCode, reason string) {
			sent(code, reason)
			c.Close(code, reason)
		})
	}
}

// trackSessionFor is trackFor for duplex.v1 sessions, which close
// themselves (session.restart) so that the command in flight is answered
// first.
func (s *Server) trackSessionFor(ep *endpointStats) func(*websocket.Conn, *connRecord, func(websocket.StatusCode, string)) func() {
	return func(c *websocket.Conn, rec *connRecord, close func(websocket.StatusCode, string)) func() {
		return s.conns.trackWith(c, close)
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

// Serve accepts connections on l until Shutdown or Drain; with TLS
// configured (Config.TLSCert, Config.AutocertHosts) they are TLS
// connections. It returns at once the error of a bad setting (a gateway
// route, a certificate file), and logs "duplex serving" once it serves.
func (s *Server) Serve(l net.Listener) error {
	if err := s.settingsErr(); err != nil {
		return err
	}
	l, err := s.serveTLS(l)
	if err != nil {
		return err
	}
	s.cfg.Log.Info("duplex serving", "addr", l.Addr().String(), "tls", s.tls.mode())
	s.startDemo()
	err = s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// settingsErr is the error of a bad setting found by New, which Serve
// returns at once.
func (s *Server) settingsErr() error {
	for _, err := range []error{s.gatewayErr, s.limitsErr, s.tlsErr, s.configErr} {
		if err != nil {
			return err
		}
	}
	return nil
}

// ListenAndServe listens on cfg.Listen and serves until Shutdown. A bad
// setting is returned before the address is taken; the line "duplex
// serving" is logged once serving starts.
func (s *Server) ListenAndServe() error {
	if err := s.settingsErr(); err != nil {
		return err
	}
	l, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Shutdown stops accepting connections, closes every WebSocket connection
// at once with 1001 (going away) so that clients reconnect elsewhere, and
// waits, until ctx ends, for requests in flight and closing handshakes.
// Drain is the gentler way, for restarts.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shuttingDown.Store(true)
	s.stopDemo()
	err := s.shutdownHTTP(ctx)
	if cerr := s.conns.CloseAll(ctx); err == nil {
		err = cerr
	}
	s.finish()
	return err
}

// shutdownHTTP closes the listeners (the HTTP-01 one too) and waits, until
// ctx ends, for the HTTP requests in flight.
func (s *Server) shutdownHTTP(ctx context.Context) error {
	var err error
	if s.tls != nil && s.tls.httpServer != nil {
		err = s.tls.httpServer.Shutdown(ctx)
	}
	if herr := s.http.Shutdown(ctx); herr != nil {
		err = herr
	}
	return err
}

// closeHTTP closes the HTTP connections still open.
func (s *Server) closeHTTP() {
	if s.tls != nil && s.tls.httpServer != nil {
		s.tls.httpServer.Close()
	}
	s.http.Close()
}

// finish stops what runs beside the connections, once, after Shutdown or
// Drain.
func (s *Server) finish() {
	s.finishOnce.Do(func() {
		s.stopDemo()
		s.hub.Close()
		s.auth.Close()
	})
}
