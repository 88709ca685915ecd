//go:build linux

package eventloop

import (
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// Keepalive, as websocket.Conn does it: with Options.PingInterval set, each
// open connection gets a ping PingInterval after it opened or after its
// last ping was answered, and a connection whose pong has not come
// PingTimeout after its ping is closed without a close frame (the peer is
// not answering) and reported to OnClose with websocket.ErrKeepaliveTimeout.
// Any pong answers the ping that is out.
//
// No timer per connection: Conn.deadline holds the time of the next ping,
// or while one is out (flagPingOut) the time its pong is due, and each loop
// walks its open connections every keepalive.check, a quarter of the
// shorter of the two durations, between 50 ms and 1 s. So a ping goes out
// and a silent peer is dropped up to one check late, and each walk costs
// one lock and one comparison per open connection: once a second for
// durations of 4 s and more, up to 20 times a second for the shortest.
// The list holds one pointer per open connection (8 bytes; up to 32 with
// the room it keeps after a crowd left, given back below a quarter used),
// only with keepalive on.

// keepalive is a server's keepalive setting.
type keepalive struct {
	interval time.Duration // between a pong (or the open) and the next ping; 0: off
	timeout  time.Duration // from a ping to its pong
	check    time.Duration // how often a loop walks its open connections
}

// newKeepalive reads keepalive from opts: off unless PingInterval > 0.
func newKeepalive(opts *websocket.AcceptOptions) keepalive {
	if opts.PingInterval <= 0 {
		return keepalive{check: time.Second}
	}
	k := keepalive{interval: opts.PingInterval, timeout: opts.PingTimeout}
	if k.timeout <= 0 {
		k.timeout = websocket.DefaultPingTimeout
	}
	k.check = min(max(min(k.interval, k.timeout)/4, tick), time.Second)
	return k
}

// watchAlive starts keepalive on c, which has just opened; loop goroutine
// only.
func (l *loop) watchAlive(c *Conn) {
	k := &l.srv.keep
	if k.interval <= 0 {
		return
	}
	c.mu.Lock()
	if c.state == connOpen {
		c.deadline = time.Now().Add(k.interval).UnixNano()
		l.alive = append(l.alive, c)
	}
	c.mu.Unlock()
}

// pong notes a pong from c: the ping that is out is answered, and the
// next one is due an interval from now; loop goroutine only.
func (l *loop) pong(c *Conn) {
	k := &l.srv.keep
	if k.interval <= 0 {
		return
	}
	c.mu.Lock()
	if c.state == connOpen && c.flags&flagPingOut != 0 {
		c.flags &^= flagPingOut
		c.deadline = time.Now().Add(k.interval).UnixNano()
	}
	c.mu.Unlock()
}

// ping walks the loop's open connections: a ping to each whose next ping
// is due, the end of each whose pong is overdue, and the list forgets the
// connections no longer open (closing ones have their own deadline, in
// l.timed); loop goroutine only.
func (l *loop) ping(now time.Time) {
	k := &l.srv.keep
	t := now.UnixNano()
	keep := l.alive[:0]
	for _, c := range l.alive {
		c.mu.Lock()
		if c.state != connOpen {
			c.mu.Unlock()
			continue
		}
		if t >= c.deadline {
			if c.flags&flagPingOut != 0 {
				l.dropMessage(c)
				c.closeFD()
				l.reportLocked(c, websocket.ErrKeepaliveTimeout)
				c.mu.Unlock()
				continue
			}
			c.flags |= flagPingOut
			c.deadline = t + int64(k.timeout)
			// Unbounded, like a close frame: two bytes never fail a
			// connection for its queue's sake. A peer that reads nothing
			// does not answer, and ends with ErrKeepaliveTimeout.
			c.writeFrame(opPing, nil, true)
		}
		c.mu.Unlock()
		keep = append(keep, c)
	}
	clear(l.alive[len(keep):])
	l.alive = keep
	if cap(l.alive) > 64 && len(l.alive) < cap(l.alive)/4 {
		l.alive = append([]*Conn(nil), l.alive...) // give back the room a crowd took
	}
}
