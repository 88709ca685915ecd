package server

import (
	"context"
	"sync"

	"github.com/duplex-ws/duplex/websocket"
)

// ConnTracker keeps a server's live WebSocket connections so that its
// shutdown can close them with 1001 (going away), which tells clients to
// reconnect elsewhere. Server uses one, and so do `duplex bridge` and
// `duplex exec`, so that every Duplex command shuts down its connections
// the same way. The zero value is ready to use; a ConnTracker must not be
// copied after first use.
type ConnTracker struct {
	mu      sync.Mutex
	conns   map[*websocket.Conn]func() // each one's goingAway callback, or nil
	closing bool                       // CloseAll has taken its list of conns
}

// shutdownReason is the reason of the 1001 close sent at shutdown.
const shutdownReason = "server shutting down"

// Track registers c until the returned function is called. A connection
// whose handler tracks it after CloseAll took its list (an upgrade that
// was in flight when shutdown began) is closed with 1001 at once rather
// than left open.
func (t *ConnTracker) Track(c *websocket.Conn) (untrack func()) {
	return t.trackWith(c, nil)
}

// trackWith is Track with a function called, when not nil, right before
// the connection is closed with 1001, so that the server's metrics and
// log see the code it sent.
func (t *ConnTracker) trackWith(c *websocket.Conn, goingAway func()) (untrack func()) {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		if goingAway != nil {
			goingAway()
		}
		go c.Close(websocket.StatusGoingAway, shutdownReason)
		return func() {}
	}
	if t.conns == nil {
		t.conns = make(map[*websocket.Conn]func())
	}
	t.conns[c] = goingAway
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	}
}

// CloseAll closes every tracked connection with 1001 "server shutting
// down", all at once, and waits until their closing handshakes end or ctx
// ends, returning ctx's error in that case. Connections tracked later are
// closed as Track registers them.
func (t *ConnTracker) CloseAll(ctx context.Context) error {
	t.mu.Lock()
	t.closing = true
	type tracked struct {
		c         *websocket.Conn
		goingAway func()
	}
	conns := make([]tracked, 0, len(t.conns))
	for c, f := range t.conns {
		conns = append(conns, tracked{c, f})
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, tc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tc.goingAway != nil {
				tc.goingAway()
			}
			tc.c.Close(websocket.StatusGoingAway, shutdownReason)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
