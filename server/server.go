// Package server wires Duplex's HTTP endpoints: the echo service and the
// landing page today, channels, the publish API and gateways as they come.
// It holds no protocol logic: that lives in package websocket.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

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
	// Version is shown on the landing page.
	Version string
	// Log receives the server's log lines; nil means slog.Default().
	Log *slog.Logger
}

// Server is a configured Duplex HTTP server.
type Server struct {
	cfg  Config
	http *http.Server
	mux  *http.ServeMux
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
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	accept := websocket.AcceptOptions{
		Options:          websocket.Options{ReadLimit: cfg.ReadLimit},
		OriginPatterns:   cfg.OriginPatterns,
		HandshakeTimeout: cfg.HandshakeTimeout,
	}
	s.mux.Handle("GET /echo", &EchoHandler{Accept: accept, Log: cfg.Log})
	s.mux.HandleFunc("GET /{$}", s.landing)
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

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
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

// Shutdown stops accepting connections and waits, until ctx ends, for
// requests in flight. Hijacked WebSocket connections are not tracked yet.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }
