package server

import (
	"context"
	"sync"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// ConnTracker keeps a server's live WebSocket connections so that its
// shutdown can close them and tell their clients to reconnect elsewhere:
// all at once with 1001 (going away, CloseAll), or a few at a time with
// 1012 (service restart, Drain), so that the clients of a node that
// restarts do not all arrive at the others in the same instant. Server
// uses one, and so do `duplex bridge` and `duplex exec`, so that every
// Duplex command shuts down its connections the same way. The zero value
// is ready to use; a ConnTracker must not be copied after first use.
type ConnTracker struct {
	mu      sync.Mutex
	conns   map[*websocket.Conn]*trackedConn
	closing bool                 // CloseAll or Drain has taken its list of conns
	code    websocket.StatusCode // what connections tracked while closing get
	reason  string
	empty   chan struct{} // while closing: closed once no connection is left
}

// trackedConn is one tracked connection.
type trackedConn struct {
	c *websocket.Conn
	// close runs the closing handshake with the code and reason given;
	// it also tells the server's metrics and log the code it sends.
	close func(code websocket.StatusCode, reason string)
	begun bool          // a close was started
	done  chan struct{} // closed when close has returned
}

// The close reasons sent at shutdown.
const (
	shutdownReason = "server shutting down" // with 1001, by CloseAll
	restartReason  = "server restarting"    // with 1012, by Drain
)

// Track registers c until the returned function is called. A connection
// whose handler tracks it after CloseAll or Drain took its list (an upgrade
// that was in flight when shutdown began) is closed at once, with the same
// code, rather than left open. When a close has begun, the returned
// function waits for its closing handshake to end, so that the handler,
// which calls it on its way out, does not cut the handshake short (its
// read loop ends as soon as the close begins, before the close frame may
// have gone out).
func (t *ConnTracker) Track(c *websocket.Conn) (untrack func()) {
	return t.trackWith(c, func(code websocket.StatusCode, reason string) { c.Close(code, reason) })
}

// trackWith is Track with the function that closes the connection, so
// that a handler can finish what it is doing first (a duplex.v1 session
// answers the command in flight) and the server's metrics and log see the
// code it sent.
func (t *ConnTracker) trackWith(c *websocket.Conn, close func(code websocket.StatusCode, reason string)) (untrack func()) {
	tc := &trackedConn{c: c, close: close, done: make(chan struct{})}
	t.mu.Lock()
	if t.conns == nil {
		t.conns = make(map[*websocket.Conn]*trackedConn)
	}
	t.conns[c] = tc
	if t.closing {
		tc.start(t.code, t.reason)
	}
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		if tc.begun {
			t.mu.Unlock()
			<-tc.done
			t.mu.Lock()
		}
		delete(t.conns, c)
		if t.closing && len(t.conns) == 0 {
			t.signalEmpty()
		}
		t.mu.Unlock()
	}
}

// start begins closing tc with code and reason, in its own goroutine,
// unless a close has begun already; the tracker's lock is held.
func (tc *trackedConn) start(code websocket.StatusCode, reason string) {
	if tc.begun {
		return
	}
	tc.begun = true
	go func() {
		defer close(tc.done)
		tc.close(code, reason)
	}()
}

// signalEmpty closes t.empty once; t.mu is held.
func (t *ConnTracker) signalEmpty() {
	select {
	case <-t.empty:
	default:
		close(t.empty)
	}
}

// begin marks the start of a shutdown that closes with code and reason and
// returns the connections that are not closing yet.
func (t *ConnTracker) begin(code websocket.StatusCode, reason string) []*trackedConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closing {
		t.closing = true
		t.code, t.reason = code, reason
		t.empty = make(chan struct{})
	}
	list := make([]*trackedConn, 0, len(t.conns))
	for _, tc := range t.conns {
		if !tc.begun {
			list = append(list, tc)
		}
	}
	if len(t.conns) == 0 {
		t.signalEmpty()
	}
	return list
}

// CloseAll closes every tracked connection with 1001 "server shutting
// down", all at once, and waits until their closing handshakes end or ctx
// ends; then the connections still open are closed without a handshake
// and CloseAll returns ctx's error. Connections tracked later are closed
// as Track registers them.
func (t *ConnTracker) CloseAll(ctx context.Context) error {
	conns := t.begin(websocket.StatusGoingAway, shutdownReason)
	t.mu.Lock()
	for _, tc := range conns {
		tc.start(websocket.StatusGoingAway, shutdownReason)
	}
	t.mu.Unlock()
	for _, tc := range conns {
		select {
		case <-tc.done:
		case <-ctx.Done():
			return t.closeNow(ctx.Err())
		}
	}
	return nil
}

// Drain closes the tracked connections with 1012 (service restart)
// "server restarting", batch of them at a time, one batch every interval,
// and returns once every connection has ended (its handler returned).
// Clients take 1012 as "reconnect, elsewhere if you can"; spreading the
// closes spreads their reconnections. Should the last batch start later
// than halfway between now and ctx's deadline, batches are enlarged so
// that it does not, leaving the second half for closing handshakes. When
// ctx ends first, the connections left are closed at once without a
// closing handshake and Drain returns ctx's error. Connections tracked
// after Drain began (upgrades in flight) are closed with 1012 at once.
// batch < 1 means 1; interval <= 0 closes everything at once.
func (t *ConnTracker) Drain(ctx context.Context, batch int, interval time.Duration) error {
	conns := t.begin(websocket.StatusServiceRestart, restartReason)
	batch = drainBatchSize(ctx, len(conns), batch, interval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; i < len(conns); i += batch {
		if i > 0 {
			timer.Reset(interval)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return t.closeNow(ctx.Err())
			}
		}
		t.mu.Lock()
		for _, tc := range conns[i:min(i+batch, len(conns))] {
			tc.start(websocket.StatusServiceRestart, restartReason) // unless CloseAll did meanwhile
		}
		t.mu.Unlock()
	}
	t.mu.Lock()
	empty := t.empty
	t.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return t.closeNow(ctx.Err())
	}
}

// drainBatchSize is the batch size Drain uses for n connections: batch,
// enlarged when the batches would otherwise start later than halfway to
// ctx's deadline.
func drainBatchSize(ctx context.Context, n, batch int, interval time.Duration) int {
	batch = max(batch, 1)
	if interval <= 0 {
		return max(n, 1)
	}
	deadline, ok := ctx.Deadline()
	if !ok || n <= batch {
		return batch
	}
	// The last of k batches starts after (k-1)·interval.
	maxBatches := int(time.Until(deadline)/2/interval) + 1
	if maxBatches < 1 {
		maxBatches = 1
	}
	return max(batch, (n+maxBatches-1)/maxBatches)
}

// closeNow closes the connections still tracked without a closing
// handshake (their handlers then end) and returns err.
func (t *ConnTracker) closeNow(err error) error {
	t.mu.Lock()
	for c := range t.conns {
		c.CloseNow()
	}
	t.mu.Unlock()
	return err
}
