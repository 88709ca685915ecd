package bridge

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// DefaultProbeInterval is how long a write to a TCP target or a process's
// stdin may stay blocked before the bridge checks that the client is still
// there, and how often it checks again while the write stays blocked.
const DefaultProbeInterval = 5 * time.Second

// stallGuard watches the writes to a side that may stop reading (a TCP
// target, a process's stdin). While such a write is blocked, the bridge
// does not read the WebSocket (that is the backpressure), so it cannot see
// the client leave there. Instead, every interval the guard pings the
// client: on a connection the client has left, the ping's write fails
// (the client's system answers the first one with a reset), and the guard
// calls abort, which ends the blocked write. A live client that is
// itself not reading only delays the ping; the guard never waits for a
// pong, since nobody reads it.
type stallGuard struct {
	ws       *websocket.Conn
	interval time.Duration
	abort    func()
	writing  atomic.Bool
	aborted  atomic.Bool
	timer    *time.Timer
}

func newStallGuard(ws *websocket.Conn, interval time.Duration, abort func()) *stallGuard {
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	g := &stallGuard{ws: ws, interval: interval, abort: abort}
	g.timer = time.AfterFunc(time.Hour, g.fire)
	g.timer.Stop()
	return g
}

// write writes p to w, probing the client while the write is blocked.
func (g *stallGuard) write(w io.Writer, p []byte) (int, error) {
	g.writing.Store(true)
	g.timer.Reset(g.interval)
	n, err := w.Write(p)
	g.writing.Store(false)
	g.timer.Stop()
	return n, err
}

// stop disarms the guard for good.
func (g *stallGuard) stop() {
	g.writing.Store(false)
	g.timer.Stop()
}

func (g *stallGuard) fire() {
	if !g.writing.Load() {
		return
	}
	if g.ws.State() == websocket.StateOpen {
		ctx, cancel := context.WithTimeout(context.Background(), g.interval/2)
		err := g.ws.Ping(ctx)
		cancel()
		if (err == nil || errors.Is(err, context.DeadlineExceeded)) && g.ws.State() == websocket.StateOpen {
			if g.writing.Load() {
				g.timer.Reset(g.interval)
			}
			return
		}
	}
	// The connection has ended (the client left, or the server closed it).
	if g.aborted.CompareAndSwap(false, true) {
		g.abort()
	}
}
