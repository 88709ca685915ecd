//go:build linux

package eventloop

import (
	"math"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Batched system calls. On a busy server most of a small message's cost is
// the kernel's: a profile of 10 000 connections echoing 32 bytes had 92 %
// of the server in read, writev and epoll_wait, one read and one writev per
// message. With io_uring (uring_linux.go), a loop reads every connection
// that epoll reported readable with one io_uring_enter, runs the
// callbacks, and writes what they wrote with one more: the same kernel
// work for the sockets, without the entry, file lookup and checks of two
// system calls per message.
//
// Writes are batched by deferring them: while a loop runs the callbacks of
// one connection in a batched read (l.deferFor), a Write to that
// connection with nothing queued queues a copy of its frame instead and
// puts the connection in the loop's deferred list, which runPosted writes
// as soon as the round's callbacks are done, before Broadcast's dirty
// list. A connection's deferred frames hold at most deferLimit bytes
// (8 KiB, or WriteQueueLimit if smaller): a Write that would pass that
// first writes them directly, and then goes on as without the batch, so
// deferring never makes a Write fail on the queue's bound nor copies large
// frames. Writes to other connections, and from other goroutines to
// connections whose callbacks are not running, are not deferred. Order is
// kept: a frame behind a queue always joins the queue.

const (
	// batchMin is the fewest connections a round reads or writes with
	// io_uring; one alone is read or written directly.
	batchMin = 2
	// minSlot is the least of the read buffer a connection gets in a
	// batched read; a connection that fills its slot is read again at
	// once with the whole buffer.
	minSlot = 4 << 10
	// uringReadBufSize is a loop's read buffer with io_uring: a full
	// batch of events gets minSlot each.
	uringReadBufSize = maxEvents * minSlot
	// deferMax bounds the frames deferred for one connection (headers
	// included).
	deferMax = 8 << 10
	// notSubmitted marks a batch entry without an operation.
	notSubmitted = math.MinInt32
)

// batchState is a loop's scratch for batched calls, owned by its goroutine.
type batchState struct {
	ring  *uring
	rd    []*Conn       // the round's readable connections
	rdSt  []uint8       // their states when read
	res   []int32       // results by batch index
	total []int         // bytes each batched write offered
	msgs  []unix.Msghdr // sendmsg headers by batch index
	again []*Conn       // connections to read or flush again at once
	calls atomic.Uint64 // io_uring_enter batches, for tests
	bufs  [][]byte      // where each batched read went: a slot of the loop's buffer, or a message's room
}

func newBatchState(r *uring) batchState {
	n := max(maxEvents, flushRound)
	return batchState{ring: r, res: make([]int32, n), total: make([]int, n), msgs: make([]unix.Msghdr, n), rdSt: make([]uint8, maxEvents), bufs: make([][]byte, maxEvents)}
}

// readBatch reads the round's readable connections (l.rd) with one
// io_uring_enter, each into a slot of the read buffer, and acts on what
// each got; small frames that the callbacks write to their own connection
// are deferred to runPosted.
func (l *loop) readBatch() {
	rd := l.rd
	defer func() { clear(rd); clear(l.bufs[:len(rd)]); l.rd = rd[:0] }()
	if len(rd) < batchMin {
		for _, c := range rd {
			l.readable(c)
		}
		return
	}
	slot := max(len(l.buf)/len(rd), minSlot)
	st := l.rdSt[:len(rd)]
	for i, c := range rd {
		c.mu.Lock()
		st[i], l.res[i] = c.state, notSubmitted
		fd := int(c.fd)
		c.mu.Unlock()
		if st[i] != connClosed {
			b := l.buf[i*slot : (i+1)*slot]
			if t := c.gatherRoom(st[i]); t != nil {
				b = t
			}
			l.bufs[i] = b
			l.ring.recv(fd, b, uint64(i))
		}
	}
	l.submit()
	for i, c := range rd {
		r := l.res[i]
		if r == notSubmitted {
			continue
		}
		n, err := int(r), error(nil)
		if r < 0 {
			n, err = -1, syscall.Errno(-r)
		}
		l.deferFor.Store(c)
		l.consume(c, st[i], l.bufs[i], n, err)
		if n == len(l.bufs[i]) {
			l.again = append(l.again, c) // more is likely waiting
		}
	}
	for i, c := range l.again {
		l.deferFor.Store(c)
		l.readable(c) // the whole buffer, now that the slots are done with
		l.again[i] = nil
	}
	l.again = l.again[:0]
	l.deferFor.Store(nil)
}

// flushBatch writes the queues of round with one io_uring_enter, each up
// to its share of the loop's iovecs; what a connection's socket did not
// take waits for EPOLLOUT, as with flush.
func (l *loop) flushBatch(round []*Conn) {
	used := 0
	for i, c := range round {
		l.res[i] = notSubmitted
		c.mu.Lock()
		c.flags &^= flagDirty
		q := c.out
		switch {
		case c.flags&flagPollOut != 0:
			// EPOLLOUT flushes it when the socket takes more.
		case q == nil || c.fd < 0 || c.flags&flagFlushing != 0:
			c.flush(nil, true) // nothing to write: a lingering close may shut down
		default:
			k, total := q.iovecs(l.iov[used:])
			if k == 0 { // out of iovecs: after the batch
				l.again = append(l.again, c)
				break
			}
			iov := l.iov[used : used+k]
			used += k
			c.flags |= flagFlushing // others append to the queue meanwhile, and never write the socket
			l.ring.send(int(c.fd), iov, &l.msgs[i], uint64(i))
			l.total[i] = total
		}
		c.mu.Unlock()
	}
	l.submit()
	clear(l.iov[:used]) // keep no frame alive from the scratch
	for i, c := range round {
		r := l.res[i]
		if r == notSubmitted {
			continue
		}
		l.msgs[i] = unix.Msghdr{}
		n, err := int(r), error(nil)
		if r < 0 {
			n, err = -1, syscall.Errno(-r)
		}
		c.mu.Lock()
		c.flags &^= flagFlushing
		if c.wrote(c.out, n, err, l.total[i]) {
			l.again = append(l.again, c) // the rest of a long queue
		}
		c.mu.Unlock()
	}
	for i, c := range l.again {
		c.mu.Lock()
		c.flush(l.iov, true)
		c.mu.Unlock()
		l.again[i] = nil
	}
	l.again = l.again[:0]
}

// submit runs the batch's operations, if any.
func (l *loop) submit() {
	if l.ring.pending == 0 {
		return
	}
	if err := l.ring.submit(l.res); err != nil {
		panic(err.Error()) // only on a bad ring descriptor or address: a bug
	}
	l.calls.Add(1)
}

// deferLimit is the most bytes a connection's deferred frames may hold.
func (l *loop) deferLimit() int { return min(deferMax, l.srv.maxQueue) }

// deferWrite queues frame h+p for the loop's batched flush, and reports
// that it did, when the loop is running c's callbacks in a batched read
// and nothing is queued for c; c.mu is held.
func (c *Conn) deferWrite(h, p []byte) bool {
	l := c.loop
	if l.ring == nil || len(h)+len(p) > l.deferLimit() || l.deferFor.Load() != c {
		return false
	}
	q := getQueue()
	q.appendPriv(h, p)
	c.out = q
	c.flags |= flagDeferred
	if c.flags&flagDirty == 0 {
		c.flags |= flagDirty
		l.mu.Lock()
		l.deferred = append(l.deferred, c)
		l.mu.Unlock()
		l.wake() // no system call from the loop itself: it is awake
	}
	return true
}
