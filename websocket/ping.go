package websocket

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// ErrKeepaliveTimeout is the sticky error of a connection that keepalive
// closed because no pong came back within Options.PingTimeout.
var ErrKeepaliveTimeout = errors.New("websocket: no pong received within the keepalive timeout")

// Ping sends a ping and waits for the matching pong (RFC 6455 §5.5.2), to
// measure a round trip or check that the peer is alive. Pongs are seen by
// the reading goroutine, so Ping returns only while another goroutine is in
// Read or Reader. ctx bounds the wait.
func (c *Conn) Ping(ctx context.Context) error {
	c.pingMu.Lock()
	if c.pings == nil {
		c.pings = make(map[uint64]chan struct{})
	}
	c.pingSeq++
	seq := c.pingSeq
	ch := make(chan struct{})
	c.pings[seq] = ch
	c.pingMu.Unlock()
	defer func() {
		c.pingMu.Lock()
		delete(c.pings, seq)
		c.pingMu.Unlock()
	}()

	var payload [8]byte
	binary.BigEndian.PutUint64(payload[:], seq)
	if err := c.writeControl(ctx, opPing, payload[:]); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closed:
		return c.stickyErr()
	}
}

// gotPong wakes the Ping waiting for this payload and feeds keepalive.
func (c *Conn) gotPong(p []byte) {
	if k := c.keepalive; k != nil {
		k.pong()
	}
	if len(p) != 8 {
		return
	}
	seq := binary.BigEndian.Uint64(p)
	c.pingMu.Lock()
	if ch, ok := c.pings[seq]; ok {
		close(ch)
		delete(c.pings, seq)
	}
	c.pingMu.Unlock()
}

// keepalive pings the peer every interval and fails the connection when a
// pong does not come back in time. It runs on a timer, not a goroutine, so
// it costs nothing between ticks.
type keepalive struct {
	c        *Conn
	interval time.Duration
	timeout  time.Duration
	mu       sync.Mutex
	t        *time.Timer
	waiting  bool // a ping is out and its pong has not come
	stopped  bool
}

func (c *Conn) startKeepalive() {
	k := &keepalive{c: c, interval: c.opts.PingInterval, timeout: c.opts.pingTimeout()}
	c.keepalive = k
	k.mu.Lock()
	k.t = time.AfterFunc(k.interval, k.tick)
	k.mu.Unlock()
}

func (c *Conn) stopKeepalive() {
	if k := c.keepalive; k != nil {
		k.mu.Lock()
		k.stopped = true
		if k.t != nil {
			k.t.Stop()
		}
		k.mu.Unlock()
	}
}

func (k *keepalive) tick() {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	if k.waiting {
		k.mu.Unlock()
		k.c.setErr(ErrKeepaliveTimeout)
		k.c.closeTransport()
		return
	}
	k.waiting = true
	k.t.Reset(k.timeout)
	k.mu.Unlock()
	// No deadline of its own: if the ping cannot go out, the timer fires
	// again after the timeout and fails the connection, which ends the write.
	k.c.writeControl(context.Background(), opPing, nil)
}

func (k *keepalive) pong() {
	k.mu.Lock()
	if k.waiting && !k.stopped {
		k.waiting = false
		k.t.Reset(k.interval)
	}
	k.mu.Unlock()
}
