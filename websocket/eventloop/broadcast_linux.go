//go:build linux

package eventloop

import (
	"errors"
	"fmt"
	"sync"

	"github.com/duplex-ws/duplex/websocket"
	"golang.org/x/sys/unix"
)

// Broadcast sends one message of type typ to every connection of conns.
// The frame is built once, from a copy of p (p is not kept), and shared by
// the connections: each gets a reference to it in its write queue, not a
// copy. The system calls are made by the loops that own the connections,
// after Broadcast returned: each loop writes all that was queued for a
// connection since its last write at once (one writev, or one sendmsg of
// an io_uring batch), so that when messages
// are broadcast faster than the loops write, a connection gets several of
// them per system call. Called from a callback (OnMessage of a publisher,
// say), the writes are made when the loop finished the events at hand, and
// need no wake-up.
//
// Order: Broadcast queues the message on each connection before it
// returns, exactly where a Write to that connection would have queued it,
// so the messages of one connection go out in the order of the Write and
// Broadcast calls that made them (calls made one after the other, from one
// goroutine or ordered by synchronization); a Write after Broadcast never
// overtakes it.
//
// A connection that is closing or closed is skipped: it is not an error.
// A connection whose queue would pass Server.WriteQueueLimit is failed
// as a Write would fail it (close code 1008, OnClose with
// ErrWriteQueueFull), and the others still get the message: a subscriber
// that does not read never stalls the others. The bound counts the
// message's bytes for each connection, shared or not.
//
// Broadcast returns an error, and sends nothing, when typ is neither text
// nor binary, when conns holds nil or a connection of another Server, or
// when the server is not serving. It may be called from any goroutine,
// callbacks included, and does not block on any peer. conns is not kept.
func (s *Server) Broadcast(typ websocket.MessageType, p []byte, conns []*Conn) error {
	op, err := dataOpcode(typ)
	if err != nil {
		return err
	}
	s.mu.Lock()
	srv := s.impl
	s.mu.Unlock()
	if srv == nil {
		return errors.New("eventloop: Broadcast: the server is not serving")
	}
	for i, c := range conns {
		if c == nil {
			return fmt.Errorf("eventloop: Broadcast: conns[%d] is nil", i)
		}
		if c.loop == nil || c.loop.srv != srv {
			return fmt.Errorf("eventloop: Broadcast: conns[%d] is a connection of another Server", i)
		}
	}
	if len(conns) == 0 {
		return nil
	}
	f := make([]byte, 0, maxHeaderLen+len(p))
	f = appendHeader(f, op, len(p))
	f = append(f, p...)

	bp := srv.batches.Get().(*[][]*Conn)
	batch := *bp
	for _, c := range conns {
		c.mu.Lock()
		if c.queueShared(f) {
			batch[c.loop.idx] = append(batch[c.loop.idx], c)
		}
		c.mu.Unlock()
	}
	for i, b := range batch {
		if len(b) == 0 {
			continue
		}
		srv.loops[i].postDirty(b)
		clear(b)
		if cap(b) > 4096 {
			b = nil // a burst's room goes back to the garbage collector
		}
		batch[i] = b[:0]
	}
	srv.batches.Put(bp)
	return nil
}

// queueShared queues the shared frame f; c.mu is held. It returns true
// when c's queue became dirty: its loop must be told to flush it.
func (c *Conn) queueShared(f []byte) bool {
	if c.state != connOpen || c.fd < 0 {
		return false
	}
	q := c.out
	size := 0
	if q != nil {
		size = q.size
	}
	if size+len(f) > c.loop.srv.maxQueue {
		c.overflow()
		return false
	}
	if q == nil {
		q = getQueue()
		c.out = q
	}
	q.appendShared(f)
	c.flags &^= flagDeferred
	// A queue waiting for EPOLLOUT, or already in a dirty list, is flushed
	// without another entry.
	if c.flags&(flagDirty|flagPollOut) != 0 {
		return false
	}
	c.flags |= flagDirty
	return true
}

// postDirty hands the loop connections whose queues it must flush.
func (l *loop) postDirty(cs []*Conn) {
	l.mu.Lock()
	l.dirty = append(l.dirty, cs...)
	l.mu.Unlock()
	l.wake()
}

// Write queues.

// privChunk is the least room a queue's copy buffer grows by.
const (
	privChunk    = 4 << 10
	maxPrivChunk = 64 << 10
)

var queuePool = sync.Pool{New: func() any { return &outQueue{segs: make([][]byte, 0, 16)} }}

func getQueue() *outQueue { return queuePool.Get().(*outQueue) }

// putQueue gives back a queue whose segments are all written (or dropped).
func putQueue(q *outQueue) {
	clear(q.segs)
	q.segs = q.segs[:0]
	if cap(q.segs) > maxIovecs {
		q.segs = nil
	}
	q.head = 0
	q.priv = q.priv[:0]
	if cap(q.priv) > maxPrivChunk {
		q.priv = nil
	}
	q.tailPriv = false
	q.size = 0
	queuePool.Put(q)
}

// empty reports whether everything queued was written.
func (q *outQueue) empty() bool { return q.head == len(q.segs) }

// appendShared queues f, which is shared and never modified.
func (q *outQueue) appendShared(f []byte) {
	q.compact()
	q.segs = append(q.segs, f)
	q.tailPriv = false
	q.size += len(f)
}

// appendPriv queues a copy of a followed by b. The copy goes into priv;
// when priv is full a new buffer is started rather than grown, since the
// segments already queued point into the old one (which the garbage
// collector frees once they are written).
func (q *outQueue) appendPriv(a, b []byte) {
	n := len(a) + len(b)
	if n == 0 {
		return
	}
	if cap(q.priv)-len(q.priv) < n {
		q.priv = make([]byte, 0, max(n, min(2*cap(q.priv), maxPrivChunk), privChunk))
		q.tailPriv = false
	}
	start := len(q.priv)
	q.priv = append(q.priv, a...)
	q.priv = append(q.priv, b...)
	if q.tailPriv {
		// The last segment ends where these bytes start: extend it.
		last := &q.segs[len(q.segs)-1]
		*last = (*last)[:len(*last)+n]
	} else {
		q.compact()
		q.segs = append(q.segs, q.priv[start:len(q.priv)])
		q.tailPriv = true
	}
	q.size += n
}

// compact moves the waiting segments to the front when the list is full,
// so that a queue that never empties does not grow its list.
func (q *outQueue) compact() {
	if q.head == 0 || len(q.segs) < cap(q.segs) {
		return
	}
	n := copy(q.segs, q.segs[q.head:])
	clear(q.segs[n:])
	q.segs = q.segs[:n]
	q.head = 0
}

// iovecs fills iov with the waiting segments, as many as fit, and returns
// how many and their bytes.
func (q *outQueue) iovecs(iov []unix.Iovec) (k, total int) {
	for _, b := range q.segs[q.head:] {
		if k == len(iov) {
			break
		}
		k = setIovec(iov, k, b)
		total += len(b)
	}
	return k, total
}

// advance forgets the first n bytes waiting, which were written.
func (q *outQueue) advance(n int) {
	q.size -= n
	for n > 0 {
		b := q.segs[q.head]
		if n < len(b) {
			q.segs[q.head] = b[n:]
			return
		}
		n -= len(b)
		q.segs[q.head] = nil
		q.head++
	}
	if q.empty() {
		q.segs = q.segs[:0]
		q.head = 0
		q.tailPriv = false
	}
}

// setIovec sets iov[k] to b when b is not empty and returns the next index.
func setIovec(iov []unix.Iovec, k int, b []byte) int {
	if len(b) == 0 {
		return k
	}
	iov[k].Base = &b[0]
	iov[k].SetLen(len(b))
	return k + 1
}
