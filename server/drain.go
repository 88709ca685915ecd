package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// Defaults of the drain (Config.DrainBatch, DrainInterval, DrainTimeout):
// 1 000 connections a second (12 000 in the first half of the deadline,
// more in larger batches), and a deadline that fits in the 30 s a
// Kubernetes pod is given by default after its SIGTERM.
const (
	DefaultDrainBatch    = 100
	DefaultDrainInterval = 100 * time.Millisecond
	DefaultDrainTimeout  = 25 * time.Second
)

// Drain shuts the server down gracefully, for a restart or a rolling
// update: /readyz answers 503 and the listeners close at once (no new
// connection); HTTP requests in flight (an API publish) get their answer;
// WebSocket connections are closed with 1012 (service restart) "server
// restarting", Config.DrainBatch at a time every Config.DrainInterval,
// so that their clients reconnect to the other nodes a few at a time
// rather than all at once. A duplex.v1 command being handled when its
// connection's turn comes is answered before the close frame (a publish
// that was accepted is acknowledged and delivered); commands read after
// it are dropped, and their callers see the connection end without an
// answer. Drain returns when every connection has ended, or at the
// deadline (Config.DrainTimeout after the call, or ctx's deadline if
// earlier): the connections and requests still open are then closed
// without a handshake, and the error says how many.
func (s *Server) Drain(ctx context.Context) error {
	s.shuttingDown.Store(true)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
	defer cancel()
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.shutdownHTTP(ctx) }()
	err := s.conns.Drain(ctx, s.cfg.DrainBatch, s.cfg.DrainInterval)
	if err != nil {
		err = fmt.Errorf("drain: %s with WebSocket connections still open, closed without a closing handshake: %w", cutBy(err), err)
	}
	if herr := <-httpDone; herr != nil {
		s.closeHTTP()
		err = errors.Join(err, fmt.Errorf("drain: %s with HTTP requests in flight, their connections closed: %w", cutBy(herr), herr))
	}
	s.finish()
	return err
}

// cutBy says what ended a drain early: its deadline, or its caller.
func cutBy(err error) string {
	if errors.Is(err, context.Canceled) {
		return "stopped by its caller"
	}
	return "deadline reached"
}

// closeRequest asks a session's writer to close the connection with code
// and reason after n more queued messages.
type closeRequest struct {
	n      int
	code   websocket.StatusCode
	reason string
}

// restart closes a duplex.v1 connection for a drain: it waits for the
// command being handled, if any, so that its answer is queued; from then
// on commands are dropped; the writer sends what was queued up to now,
// then runs the closing handshake. restart returns when the writer is
// done.
func (s *session) restart(code websocket.StatusCode, reason string) {
	s.handling.Lock()
	s.draining = true
	s.handling.Unlock()
	select {
	case s.restartReq <- closeRequest{n: s.queue.len(), code: code, reason: reason}:
	case <-s.written: // the connection is ending already
	}
	<-s.written
}

// handleUnlessDraining handles a command, or drops it once a drain has
// reached the connection.
func (s *session) handleUnlessDraining(ctx context.Context, data []byte) bool {
	s.handling.Lock()
	defer s.handling.Unlock()
	if s.draining {
		return true
	}
	return s.handle(ctx, data)
}

// closeAfter runs on the writer: it writes up to req.n queued messages
// (those queued before the request, fewer if the writer had taken some
// already), then runs the closing handshake.
func (s *session) closeAfter(req closeRequest) {
	if err := s.queue.flushN(s.conn, s.rec, req.n); err != nil {
		return
	}
	s.closeOnce.Do(func() {
		s.rec.sent(req.code, req.reason)
		s.conn.Close(req.code, req.reason)
	})
}
