//go:build linux

package eventloop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/duplex-ws/duplex/websocket"
	"golang.org/x/sys/unix"
)

// Connection states.
const (
	connHandshake uint8 = iota // reading the request
	connOpen                   // messages flow
	connClosing                // this side sent a close frame and waits for the peer's
	connLinger                 // ending: flush the queue, shut down writing, drain input, close
	connClosed                 // the socket is closed
)

// Connection flags, in Conn.flags: its eight bits are all taken, so a
// ninth flag needs a wider field (TestConnSize guards the Conn's size).
const (
	flagReported uint8 = 1 << iota // OnClose was called (or is not due: never opened)
	flagOverflow                   // the write queue overflowed; OnClose is due with ErrWriteQueueFull
	flagPollOut                    // EPOLLOUT is armed
	flagShutWr                     // the write side is shut down (linger)
	flagDirty                      // the queue waits in its loop's dirty list for a flush
	flagFlushing                   // the loop writes the queue without c.mu: nobody else writes the socket
	flagDeferred                   // the queue holds only frames deferred to the loop's batched flush
	flagPingOut                    // keepalive: a ping is out and its pong has not come (keepalive_linux.go)
)

const (
	readBufSize = 256 << 10
	// maxEvents is how many epoll events a round takes at most.
	maxEvents = 256
	// maxIovecs is how many segments of a queue one writev takes at most
	// (the kernel's IOV_MAX).
	maxIovecs = 1024
	// flushRound is how many dirty connections a round of the loop writes
	// at most before it polls its events again: a publisher's next
	// messages are read while a long list is written, and go out with the
	// queues not yet written instead of waiting for the whole list.
	flushRound = 256
	// tick is how often a loop checks deadlines while it has any.
	tick = 50 * time.Millisecond
	// lingerDrain bounds how long and how much a failed connection's input
	// is drained after the server shut down its side, so that its close
	// frame is not lost to a TCP reset (RFC 6455 §7.1.1).
	lingerDrain      = time.Second
	lingerDrainBytes = 1 << 20
	// fail reasons longer than a close frame allows are cut.
	maxCloseReason = 123
)

// serverImpl is the running server.
type serverImpl struct {
	s        *Server
	ln       net.Listener
	opts     websocket.AcceptOptions
	maxHead  int
	maxQueue int
	hsTime   time.Duration
	keep     keepalive // Options.PingInterval and PingTimeout; zero: off
	deflate  deflateSettings
	closeTO  time.Duration
	loops    []*loop
	table    fdTable
	open     atomic.Int64 // connections in the table
	loopsWG  sync.WaitGroup
	accepted chan struct{} // closed when acceptLoop returned
	batches  sync.Pool     // *[][]*Conn: Broadcast's newly dirty connections, per loop
}

// loop is one epoll loop and the connections it owns.
type loop struct {
	srv    *serverImpl
	idx    int // in srv.loops
	epfd   int
	epFile *os.File           // epfd, registered in the runtime's poller
	epConn syscall.RawConn    // epFile's, to wait on it
	waitDL time.Time          // the deadline set on epFile
	pollFn func(uintptr) bool // l.pollEvents
	// waitEvents's state, for pollEvents
	waitBlock bool
	polls     int  // pollEvents calls in this waitEvents
	parked    bool // the last waitEvents waited in the poller
	waitN     int
	waitErr   error
	evfd      int // eventfd that wakes the loop
	buf       []byte
	events    []unix.EpollEvent
	iov       []unix.Iovec // writev scratch of the loop goroutine
	round     []*Conn      // the dirty connections a round writes, owned by the loop goroutine
	// deferredRound holds the deferred connections while runPosted
	// writes them, owned by the loop goroutine.
	deferredRound []*Conn
	// alive are the open connections keepalive watches, owned by the loop
	// goroutine (keepalive_linux.go); empty with keepalive off.
	alive []*Conn

	batchState // io_uring batches (batch_linux.go); ring is nil without io_uring
	// deferFor is the connection whose callbacks the loop runs in a
	// batched read: its small writes wait for the batched flush.
	deferFor atomic.Pointer[Conn]
	// inPlace counts the payload pieces that frames found already in their
	// message buffer (read there through gatherRoom), for tests.
	inPlace atomic.Uint64
	quit    atomic.Bool
	// woken is true while the loop is awake (it checks its posted work
	// before it sleeps again) or the eventfd was written: work posted then
	// needs no write to the eventfd.
	woken atomic.Bool

	mu     sync.Mutex
	timed  []*Conn // connections with a deadline
	posted []*Conn // connections with an OnClose due from another goroutine
	dirty  []*Conn // connections whose queue Broadcast filled, to flush, from dirtyHead on
	// deferred are the connections with frames deferred to the batched
	// flush; the loop writes them all after the round's callbacks, before
	// the dirty list.
	deferred []*Conn
	// dirtyHead is where the rounds are in dirty.
	dirtyHead int
}

// Serve accepts connections on ln and serves them until Shutdown or Close,
// then returns ErrServerClosed; on another accept error it returns that
// error (connections already open go on being served until Shutdown or
// Close). The listener must give connections with a file descriptor
// (*net.TCPConn, *net.UnixConn). Serve closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	if s.OnMessage == nil {
		ln.Close()
		return errors.New("eventloop: Server.OnMessage is not set")
	}
	srv := &serverImpl{s: s, ln: ln}
	if s.Options != nil {
		srv.opts = *s.Options
	}
	var err error
	if srv.deflate, err = newDeflateSettings(&srv.opts.Compression); err != nil {
		ln.Close()
		return fmt.Errorf("eventloop: %w", err)
	}
	srv.keep = newKeepalive(&srv.opts)
	srv.maxHead = s.MaxHeaderBytes
	if srv.maxHead <= 0 {
		srv.maxHead = DefaultMaxHeaderBytes
	}
	srv.maxQueue = s.WriteQueueLimit
	if srv.maxQueue <= 0 {
		srv.maxQueue = DefaultWriteQueueLimit
	}
	srv.hsTime = srv.opts.HandshakeTimeout
	if srv.hsTime <= 0 {
		srv.hsTime = websocket.DefaultHandshakeTimeout
	}
	srv.closeTO = srv.opts.CloseTimeout
	if srv.closeTO <= 0 {
		srv.closeTO = websocket.DefaultCloseTimeout
	}
	n := s.Loops
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}

	s.mu.Lock()
	if s.serving || s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return errors.New("eventloop: Serve called twice, or after Shutdown")
	}
	s.serving = true
	s.mu.Unlock()

	for i := range n {
		l, err := newLoop(srv, i)
		if err != nil {
			for _, l := range srv.loops {
				l.closeFDs()
			}
			ln.Close()
			return err
		}
		srv.loops = append(srv.loops, l)
	}
	srv.batches.New = func() any { b := make([][]*Conn, len(srv.loops)); return &b }
	for _, l := range srv.loops {
		srv.loopsWG.Add(1)
		go l.run()
	}
	srv.accepted = make(chan struct{})
	s.mu.Lock()
	s.impl = srv
	closing := s.closing.Load()
	s.mu.Unlock()
	if closing { // Shutdown or Close came while we started: nobody else stops us
		close(srv.accepted)
		ln.Close()
		srv.stop()
		return ErrServerClosed
	}
	err = srv.acceptLoop()
	close(srv.accepted)
	return err
}

// Shutdown stops accepting, sends every open connection a close frame with
// 1001 (going away), and waits until the peers answered and every
// connection is closed, or until ctx ends; then it closes what remains
// (reported to OnClose as closed by this side) and stops the loops. It
// returns ctx's error if ctx ended first.
func (s *Server) Shutdown(ctx context.Context) error {
	srv := s.begin()
	if srv == nil {
		return nil
	}
	srv.ln.Close()
	now := time.Now().UnixNano()
	srv.table.each(func(c *Conn) {
		c.mu.Lock()
		switch c.state {
		case connHandshake:
			c.deadline = now // the loop closes it at its next tick
		case connOpen:
			c.startClose(websocket.StatusGoingAway, "server shutting down")
		}
		c.mu.Unlock()
		c.loop.addTimed(c)
	})
	var err error
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for srv.open.Load() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
		}
	}
	srv.stop()
	return err
}

// Close stops accepting and closes every connection at once, without close
// frames (OnClose reports them as closed by this side), and stops the
// loops.
func (s *Server) Close() error {
	srv := s.begin()
	if srv == nil {
		return nil
	}
	srv.ln.Close()
	srv.stop()
	return nil
}

// begin marks the server as closing and returns the running server, or
// nil when Serve has not started it (a later Serve then fails) or it was
// already stopped.
func (s *Server) begin() *serverImpl {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Swap(true) {
		return nil
	}
	return s.impl
}

// stop makes every loop close its connections and return, and waits.
func (srv *serverImpl) stop() {
	<-srv.accepted // no connection is added after this
	for _, l := range srv.loops {
		l.quit.Store(true)
		l.wake()
	}
	srv.loopsWG.Wait()
}

// acceptLoop accepts connections and hands each to a loop.
func (srv *serverImpl) acceptLoop() error {
	defer srv.ln.Close()
	var backoff time.Duration
	next := 0
	for {
		nc, err := srv.ln.Accept()
		if err != nil {
			if srv.s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors, or a transient error: wait as
				// net/http does rather than spin.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		fd, err := detachFD(nc)
		if err != nil {
			continue // the connection is dropped; nothing to answer it with
		}
		l := srv.loops[next%len(srv.loops)]
		next++
		c := &Conn{fd: int32(fd), loop: l, state: connHandshake, deadline: time.Now().Add(srv.hsTime).UnixNano()}
		c.p.Init(&srv.opts.Options)
		srv.table.put(fd, c)
		srv.open.Add(1)
		l.addTimed(c)
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
			c.mu.Lock()
			c.flags |= flagReported
			c.closeFD()
			c.mu.Unlock()
		}
	}
}

// detachFD takes the socket out of nc: a non-blocking duplicate of its
// descriptor, which the loops own, while nc itself is closed (leaving the
// runtime's poller).
func detachFD(nc net.Conn) (int, error) {
	defer nc.Close()
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("eventloop: a %T has no file descriptor (TLS is not supported)", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func newLoop(srv *serverImpl, idx int) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventloop: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventloop: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("eventloop: epoll_ctl: %w", err)
	}
	// The loop waits for its epoll descriptor to become readable in the
	// runtime's poller (waitEvents), which needs it non-blocking.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("eventloop: epoll descriptor: %w", err)
	}
	epFile := os.NewFile(uintptr(epfd), "epoll")
	epConn, err := epFile.SyscallConn()
	if err == nil {
		err = epFile.SetReadDeadline(time.Time{}) // fails if the poller did not take it
	}
	if err != nil {
		epFile.Close()
		unix.Close(evfd)
		return nil, fmt.Errorf("eventloop: epoll descriptor: %w", err)
	}
	l := &loop{srv: srv, idx: idx, epfd: epfd, epFile: epFile, epConn: epConn, evfd: evfd, events: make([]unix.EpollEvent, maxEvents), iov: make([]unix.Iovec, maxIovecs)}
	bufSize := readBufSize
	if !srv.s.DisableIOURing {
		// Without io_uring (an old kernel, or turned off) the loop makes
		// one system call per read and write, as before.
		if r, err := newURing(uint32(max(maxEvents, flushRound))); err == nil {
			l.batchState = newBatchState(r)
			bufSize = uringReadBufSize
		}
	}
	l.buf = make([]byte, bufSize)
	l.pollFn = l.pollEvents
	return l, nil
}

func (l *loop) closeFDs() {
	if l.ring != nil {
		l.ring.close()
	}
	l.epFile.Close()
	unix.Close(l.evfd)
}

// wake makes the loop look at its posted work: it interrupts epoll_wait,
// unless the loop is awake and looks anyway before it sleeps.
func (l *loop) wake() {
	if l.woken.Swap(true) {
		return
	}
	var one = [8]byte{1}
	unix.Write(l.evfd, one[:])
}

// addTimed makes the loop watch c's deadline.
func (l *loop) addTimed(c *Conn) {
	l.mu.Lock()
	first := len(l.timed) == 0
	l.timed = append(l.timed, c)
	l.mu.Unlock()
	if first {
		l.wake() // it may sleep without a timeout
	}
}

// post asks the loop to report c's end to OnClose.
func (l *loop) post(c *Conn) {
	l.mu.Lock()
	l.posted = append(l.posted, c)
	l.mu.Unlock()
	l.wake()
}

// run is the loop goroutine.
func (l *loop) run() {
	defer l.srv.loopsWG.Done()
	defer l.closeFDs()
	nextSweep := time.Now().Add(tick)
	nextPing := time.Now().Add(l.srv.keep.check)
	for {
		// From here on, work posted by others must interrupt epoll_wait;
		// what was posted before is seen below.
		l.woken.Store(false)
		if l.quit.Load() {
			l.closeAll()
			return
		}
		l.mu.Lock()
		var deadline time.Time
		if len(l.timed) > 0 {
			deadline = nextSweep
		}
		if len(l.alive) > 0 && (deadline.IsZero() || nextPing.Before(deadline)) {
			deadline = nextPing
		}
		block := len(l.posted) == 0 && len(l.dirty) == l.dirtyHead && len(l.deferred) == 0
		l.mu.Unlock()
		n := l.waitEvents(block, deadline)
		if !l.parked {
			// A loop that always finds work never enters the scheduler:
			// its system calls are raw and it waits only when idle, and a
			// preemption signal mostly lands inside a system call, where
			// the runtime cannot preempt. Yield once a round so that other
			// goroutines (timers, signal handlers, the application's own)
			// run even with one processor (TestBusyLoopYields).
			runtime.Gosched()
		}
		// Awake: work posted from now on (by a callback of this loop, or
		// another goroutine) is run by runPosted below, or seen at the top.
		l.woken.Store(true)
		for i := range max(n, 0) {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.evfd {
				var b [8]byte
				unix.Read(l.evfd, b[:])
				continue
			}
			c := l.srv.table.get(fd)
			if c == nil || c.loop != l {
				continue // closed since the event was queued
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				l.writable(c)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				if l.ring != nil {
					l.rd = append(l.rd, c) // read with the others below
				} else {
					l.readable(c)
				}
			}
		}
		if len(l.rd) > 0 {
			l.readBatch()
		}
		l.runPosted()
		now := time.Now()
		if !now.Before(nextSweep) {
			l.sweep(now)
			nextSweep = now.Add(tick)
		}
		if len(l.alive) > 0 && !now.Before(nextPing) {
			l.ping(now)
			nextPing = now.Add(l.srv.keep.check)
		}
	}
}

// waitEvents fills l.events with the ready events and returns how many.
// Unless block is set it does not wait. Otherwise, while nothing is ready,
// it parks the goroutine in the runtime's poller (where the epoll
// descriptor is registered) until an event arrives or deadline passes (a
// zero deadline: none); it then returns 0.
func (l *loop) waitEvents(block bool, deadline time.Time) int {
	l.waitBlock = block
	l.polls = 0
	defer func() { l.parked = l.polls > 1 }()
	if !block {
		l.pollEvents(0)
	} else {
		if !deadline.Equal(l.waitDL) {
			l.epFile.SetReadDeadline(deadline)
			l.waitDL = deadline
		}
		if err := l.epConn.Read(l.pollFn); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return 0
			}
			panic("eventloop: waiting on epoll: " + err.Error()) // the descriptor closed under the loop: a bug
		}
	}
	if err := l.waitErr; err != nil {
		if err == unix.EINTR {
			return 0
		}
		panic("eventloop: epoll_wait: " + err.Error()) // only on a bad epoll descriptor: a bug
	}
	return l.waitN
}

// pollEvents is waitEvents's callback for epConn.Read (kept in l.pollFn,
// so that waiting allocates nothing): it takes the events ready now and
// says whether to return rather than wait.
func (l *loop) pollEvents(uintptr) bool {
	l.polls++
	l.waitN, l.waitErr = epollNow(l.epfd, l.events)
	return l.waitN > 0 || !l.waitBlock || l.waitErr != nil
}

// runPosted writes the frames that callbacks deferred to the batched
// flush, then up to flushRound of the queues that Broadcast filled, in the
// order they became dirty (one write per connection for everything
// queued since its last write), and reports the ends that other
// goroutines decided.
func (l *loop) runPosted() {
	l.mu.Lock()
	posted := l.posted
	l.posted = nil
	deferred := append(l.deferredRound[:0], l.deferred...)
	clear(l.deferred)
	l.deferred = l.deferred[:0]
	n := min(len(l.dirty)-l.dirtyHead, flushRound)
	round := append(l.round[:0], l.dirty[l.dirtyHead:l.dirtyHead+n]...)
	clear(l.dirty[l.dirtyHead : l.dirtyHead+n])
	l.dirtyHead += n
	switch {
	case l.dirtyHead == len(l.dirty):
		l.dirty, l.dirtyHead = l.dirty[:0], 0
		if cap(l.dirty) > 1<<16 {
			l.dirty = nil // give back the room a burst took
		}
	case l.dirtyHead >= len(l.dirty)/2:
		m := copy(l.dirty, l.dirty[l.dirtyHead:])
		clear(l.dirty[m:])
		l.dirty, l.dirtyHead = l.dirty[:m], 0
	}
	l.mu.Unlock()
	l.deferredRound = l.flushAll(deferred)
	l.round = l.flushAll(round)
	for _, c := range posted {
		c.mu.Lock()
		due := c.flags&flagOverflow != 0
		c.mu.Unlock()
		if due {
			l.report(c, ErrWriteQueueFull)
		}
	}
}

// flushAll writes the queues of cs, which were in a list of the loop
// (flagDirty): with io_uring, up to flushRound per io_uring_enter;
// otherwise one writev each. It returns cs emptied, for reuse.
func (l *loop) flushAll(cs []*Conn) []*Conn {
	for rest := cs; len(rest) > 0; {
		chunk := rest[:min(len(rest), flushRound)]
		rest = rest[len(chunk):]
		if l.ring != nil && len(chunk) >= batchMin {
			l.flushBatch(chunk)
			continue
		}
		for _, c := range chunk {
			c.mu.Lock()
			c.flags &^= flagDirty
			if c.flags&flagPollOut == 0 { // else EPOLLOUT flushes it when the socket takes more
				c.flush(l.iov, true)
			}
			c.mu.Unlock()
		}
	}
	clear(cs)
	return cs[:0]
}

// sweep acts on the deadlines that passed, and forgets the connections
// that no longer have one.
func (l *loop) sweep(now time.Time) {
	l.mu.Lock()
	timed := l.timed
	l.timed = nil
	l.mu.Unlock()
	keep := timed[:0]
	t := now.UnixNano()
	for _, c := range timed {
		c.mu.Lock()
		switch {
		case c.state == connClosed || c.deadline == 0 || c.state == connOpen:
			// done with
		case t < c.deadline:
			keep = append(keep, c)
		default:
			l.expire(c)
		}
		c.mu.Unlock()
	}
	clear(timed[len(keep):])
	if cap(keep) > 64 && len(keep) < cap(keep)/4 {
		keep = append([]*Conn(nil), keep...) // give back the room a burst took
	}
	l.mu.Lock()
	l.timed = append(keep, l.timed...)
	l.mu.Unlock()
}

// expire handles a passed deadline; c.mu is held.
func (l *loop) expire(c *Conn) {
	switch c.state {
	case connHandshake, connLinger:
		c.closeFD()
	case connClosing:
		c.closeFD()
		l.reportLocked(c, closedErr(c.sentCode, "the peer did not answer the close frame"))
	}
}

// closeAll closes every connection of the loop, when the server stops.
func (l *loop) closeAll() {
	l.srv.table.each(func(c *Conn) {
		if c.loop != l {
			return
		}
		c.mu.Lock()
		if c.state == connOpen || c.state == connClosing {
			code := c.sentCode
			if code == 0 {
				code = uint16(websocket.StatusGoingAway)
			}
			c.closeFD()
			l.reportLocked(c, closedErr(code, "server stopped"))
		} else {
			c.closeFD()
		}
		c.mu.Unlock()
	})
	l.runPosted()
}

// report calls OnClose once for an opened connection.
func (l *loop) report(c *Conn, err error) {
	c.mu.Lock()
	l.reportLocked(c, err)
	c.mu.Unlock()
}

// reportLocked is report with c.mu held; it releases the lock around the
// callback.
func (l *loop) reportLocked(c *Conn, err error) {
	if c.flags&flagReported != 0 {
		return
	}
	c.flags |= flagReported
	if f := l.srv.s.OnClose; f != nil {
		c.mu.Unlock()
		f(c, err)
		c.mu.Lock()
	}
}

// closedErr is the error of a connection this side closed, as
// websocket.Conn reports it.
func closedErr(code uint16, why string) error {
	return &ClosedError{Sent: websocket.StatusCode(code), why: why}
}

// readable reads what the socket has and acts on it.
func (l *loop) readable(c *Conn) {
	c.mu.Lock()
	st, fd := c.state, int(c.fd)
	c.mu.Unlock()
	if st == connClosed {
		return
	}
	buf := l.buf
	if t := c.gatherRoom(st); t != nil {
		buf = t
	}
	n, err := rawRead(fd, buf)
	l.consume(c, st, buf, n, err)
}

// directMin is the least of a split frame's remaining payload that is read
// straight into its message buffer (gatherRoom): below it, copying from
// the read buffer costs less than the read of its own that a direct read
// may cost (it stops at the frame's end, so what follows waits for the
// next read).
const directMin = 16 << 10

// gatherRoom returns the free room of c's message buffer that the current
// frame's remaining payload fills, when c (in state st) is gathering a
// split message, at least directMin bytes of the frame are to come and the
// buffer has room for at least directMin of them; nil otherwise. The room
// is at most maxBufHint, so that one read stays well within what a read
// request can ask for. Reading into it, rather than into the loop's
// buffer, spares copying the bytes into the message (frames sees that
// they are already in place). It never reaches past the frame, so no byte of what follows
// lands in the message buffer. Loop goroutine only.
func (c *Conn) gatherRoom(st uint8) []byte {
	if c.msg == nil || (st != connOpen && st != connClosing) {
		return nil
	}
	m := *c.msg
	n := min(c.p.PayloadLeft(), int64(cap(m)-len(m)), maxBufHint)
	if n < directMin {
		return nil
	}
	return m[len(m) : len(m)+int(n)]
}

// inPlace reports whether p is the bytes right after m's end, in m's
// array: bytes read into m's free room (gatherRoom).
func inPlace(m, p []byte) bool {
	return len(p) > 0 && len(m) < cap(m) && &m[:len(m)+1][len(m)] == &p[0]
}

// consume acts on a read of the socket into buf that returned n, err; st
// is c's state before the read.
func (l *loop) consume(c *Conn, st uint8, buf []byte, n int, err error) {
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if n <= 0 {
		l.eof(c, err)
		return
	}
	b := buf[:n]
	switch st {
	case connHandshake:
		l.handshake(c, b)
	case connOpen, connClosing:
		l.frames(c, b)
	case connLinger:
		c.mu.Lock()
		c.deadline -= int64(n) * int64(lingerDrain) / lingerDrainBytes // a flood ends the drain sooner
		c.mu.Unlock()
	}
}

// eof handles the end of the peer's input (or a socket error).
func (l *loop) eof(c *Conn, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case connOpen:
		reason := "transport closed without a close frame"
		if err != nil {
			reason += ": " + err.Error()
		}
		c.closeFD()
		l.reportLocked(c, &websocket.CloseError{Code: websocket.StatusAbnormalClosure, Reason: reason})
	case connClosing:
		c.closeFD()
		l.reportLocked(c, closedErr(c.sentCode, "the peer closed TCP without answering"))
	default:
		c.closeFD()
	}
}

// handshake gathers the request head and answers it.
func (l *loop) handshake(c *Conn, b []byte) {
	srv := l.srv
	next, head, rest, he := gatherHead(c.hs, b, srv.maxHead)
	c.hs = next
	if he != nil {
		l.refuse(c, he)
		return
	}
	if head == nil {
		return // more to come
	}
	resp, agreed, err := answerHead(head, &srv.opts)
	c.mu.Lock()
	if c.state != connHandshake {
		c.mu.Unlock()
		return
	}
	if err != nil {
		c.flags |= flagReported
		c.queueAll(resp)
		c.linger(srv.closeTO)
		c.mu.Unlock()
		l.addTimed(c)
		l.handshakeError(c, err)
		return
	}
	c.subprotocol = agreed.Subprotocol
	c.p.SetAgreement(agreed)
	c.state = connOpen
	c.deadline = 0
	c.queueAll(resp)
	c.mu.Unlock()
	l.watchAlive(c)
	if f := srv.s.OnOpen; f != nil {
		f(c)
	}
	if len(rest) > 0 {
		l.frames(c, rest)
	}
}

// refuse answers a handshake that failed before Accept's checks.
func (l *loop) refuse(c *Conn, he *websocket.HandshakeError) {
	c.hs = nil
	c.mu.Lock()
	if c.state != connHandshake {
		c.mu.Unlock()
		return
	}
	c.flags |= flagReported
	c.queueAll(websocket.RefusalResponse(he))
	c.linger(l.srv.closeTO)
	c.mu.Unlock()
	l.addTimed(c)
	l.handshakeError(c, he)
}

// handshakeError reports a refused handshake to OnHandshakeError.
func (l *loop) handshakeError(c *Conn, err error) {
	if f := l.srv.s.OnHandshakeError; f != nil {
		f(c.RemoteAddr(), err)
	}
}

// frames parses frames and acts on them.
func (l *loop) frames(c *Conn, b []byte) {
	srv := l.srv
	for len(b) > 0 {
		n, ev, err := c.p.Parse(b)
		b = b[n:]
		if err != nil {
			var pe *websocket.ProtocolError
			if !errors.As(err, &pe) {
				pe = &websocket.ProtocolError{Code: websocket.StatusInternalError, Reason: err.Error()}
			}
			l.fail(c, pe)
			return
		}
		switch ev.Kind {
		case websocket.ParsedData:
			c.mu.Lock()
			st := c.state
			c.mu.Unlock()
			if st != connOpen { // after our close frame, data is dropped
				l.dropMessage(c)
				if st != connClosing {
					return
				}
				continue
			}
			// This piece and room for the rest of its frame, so that the
			// rest can be read into place (gatherRoom).
			need := len(ev.Payload) + int(min(ev.Left, maxBufHint))
			if c.msg == nil {
				if ev.Final {
					if !l.deliver(c, ev.Type, ev.Payload, ev.Compressed) {
						return
					}
					continue
				}
				c.msg = getBuf(need)
			}
			if m := *c.msg; inPlace(m, ev.Payload) {
				*c.msg = m[:len(m)+len(ev.Payload)] // read into place, unmasked there
				l.inPlace.Add(1)
			} else {
				*c.msg = append(slices.Grow(m, need), ev.Payload...)
			}
			if ev.Final {
				m := c.msg
				c.msg = nil
				ok := l.deliver(c, ev.Type, *m, ev.Compressed)
				putBuf(m)
				if !ok {
					return
				}
			}
		case websocket.ParsedPing:
			if f := srv.opts.OnPing; f != nil {
				f(ev.Payload)
			}
			c.mu.Lock()
			if c.state == connOpen {
				c.writeFrame(opPong, ev.Payload, false)
			}
			c.mu.Unlock()
		case websocket.ParsedPong:
			if f := srv.opts.OnPong; f != nil {
				f(ev.Payload)
			}
			l.pong(c)
		case websocket.ParsedClose:
			l.peerClosed(c, ev.Close)
			return
		}
	}
}

// dropMessage forgets a partly gathered message.
func (l *loop) dropMessage(c *Conn) {
	if c.msg != nil {
		putBuf(c.msg)
		c.msg = nil
	}
}

// fail ends the connection because the peer broke the protocol: a close
// frame with pe's code, then the lingering close.
func (l *loop) fail(c *Conn, pe *websocket.ProtocolError) {
	l.dropMessage(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case connOpen:
		reason := pe.Reason
		if len(reason) > maxCloseReason {
			reason = truncateUTF8(reason, maxCloseReason)
		}
		c.sendClose(uint16(pe.Code), reason)
		c.linger(l.srv.closeTO)
		l.addTimed(c)
		l.reportLocked(c, pe)
	case connClosing:
		c.linger(l.srv.closeTO)
		l.addTimed(c)
		l.reportLocked(c, closedErr(c.sentCode, "the peer broke the protocol before answering"))
	}
}

// peerClosed answers the peer's close frame: the server echoes its code
// (unless it sent its own close first) and closes TCP first (§7.1.1).
func (l *loop) peerClosed(c *Conn, ce *websocket.CloseError) {
	l.dropMessage(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	switch c.state {
	case connOpen:
		code := uint16(ce.Code)
		if ce.Code == websocket.StatusNoStatusRcvd {
			code = 0
		}
		c.sendClose(code, "")
		err = ce
	case connClosing:
		// The closing handshake completed: the answer goes with the error.
		err = &ClosedError{Sent: websocket.StatusCode(c.sentCode), Answer: ce, why: "the peer answered"}
	default:
		return
	}
	c.linger(l.srv.closeTO)
	if c.state != connClosed {
		l.addTimed(c)
	}
	l.reportLocked(c, err)
}

// writable flushes the queue when the socket takes more.
func (l *loop) writable(c *Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flush(l.iov, true)
}

// Opcodes of the frames a server sends.
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// Write sends one message of type typ. When nothing is queued for the
// connection it writes at once what the socket takes; it queues the rest,
// or the whole message behind what is queued (a Broadcast's messages
// included), for the loop (p is copied, not kept), so it never blocks on
// the peer. While the loop runs c's callbacks in a batched read, Write
// queues up to 8 KiB of frames rather than writing them, and the loop
// writes them with the round's other writes in one system call as soon as
// the round's callbacks are done (see the package documentation, "System
// calls"). On a connection that agreed permessage-deflate
// (Conn.Compression), a message of at least CompressionOptions.Threshold
// bytes is compressed first, on the calling goroutine, and sent as one
// frame with RSV1 set. It returns ErrWriteQueueFull
// when the queue would pass Server.WriteQueueLimit (the connection is then
// failed with 1008), and websocket.ErrClosed (wrapped) once the connection
// is closing or closed. It may be called from any goroutine.
func (c *Conn) Write(typ websocket.MessageType, p []byte) error {
	op, err := dataOpcode(typ)
	if err != nil {
		return err
	}
	if bits := c.p.DeflateWindowBits(); bits != 0 && len(p) >= c.loop.srv.deflate.min {
		return c.writeCompressed(op, p, bits)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeFrameOpen(op, p)
}

// writeFrameOpen writes or queues a data frame while the connection is
// open; c.mu is held.
func (c *Conn) writeFrameOpen(op byte, p []byte) error {
	if c.state != connOpen {
		return fmt.Errorf("eventloop: write: %w", websocket.ErrClosed)
	}
	return c.writeFrame(op, p, false)
}

// Close starts the closing handshake: it sends a close frame with code and
// reason and returns; the loop closes the connection when the peer answers,
// or after Options.CloseTimeout, and then calls OnClose. code must be one
// that may be sent (websocket.StatusCode.Sendable) and reason valid UTF-8
// of at most 123 bytes. Close returns websocket.ErrClosed (wrapped) when
// the connection is already closing or closed. It may be called from any
// goroutine.
func (c *Conn) Close(code websocket.StatusCode, reason string) error {
	if !code.Sendable() {
		return fmt.Errorf("eventloop: status code %d may not be sent in a close frame", int(code))
	}
	if len(reason) > maxCloseReason {
		return fmt.Errorf("eventloop: close reason of %d bytes is longer than %d", len(reason), maxCloseReason)
	}
	if !utf8.ValidString(reason) {
		return errors.New("eventloop: close reason is not valid UTF-8")
	}
	c.mu.Lock()
	if c.state != connOpen {
		c.mu.Unlock()
		return fmt.Errorf("eventloop: close: %w", websocket.ErrClosed)
	}
	c.startClose(code, reason)
	c.mu.Unlock()
	c.loop.addTimed(c)
	return nil
}

// RemoteAddr returns the peer's address, or nil once the connection is
// closed.
func (c *Conn) RemoteAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return nil
	}
	sa, err := unix.Getpeername(int(c.fd))
	if err != nil {
		return nil
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}

// startClose sends this side's close frame; c.mu is held.
func (c *Conn) startClose(code websocket.StatusCode, reason string) {
	c.sendClose(uint16(code), reason)
	c.sentCode = uint16(code)
	if c.state == connOpen {
		c.state = connClosing
		c.deadline = time.Now().Add(c.loop.srv.closeTO).UnixNano()
	}
}

// sendClose queues a close frame past the queue's bound (it is small and
// the last); code 0 sends an empty payload. c.mu is held.
func (c *Conn) sendClose(code uint16, reason string) {
	var p []byte
	if code != 0 {
		p = make([]byte, 2, 2+len(reason))
		p[0], p[1] = byte(code>>8), byte(code)
		p = append(p, reason...)
	}
	c.writeFrame(opClose, p, true)
}

// linger moves c to its lingering close: once the queue is flushed, the
// write side is shut down and input is drained until EOF or lingerDrain;
// the whole within closeTO. c.mu is held.
func (c *Conn) linger(closeTO time.Duration) {
	if c.state == connClosed || c.state == connLinger {
		return
	}
	c.state = connLinger
	c.deadline = time.Now().Add(closeTO).UnixNano()
	var iov [8]unix.Iovec // linger may run on any goroutine: not the loop's scratch
	c.flush(iov[:], false)
}

// writeFrame writes or queues one frame; c.mu is held. An unbounded frame
// (a close) may pass the queue's bound.
func (c *Conn) writeFrame(op byte, p []byte, unbounded bool) error {
	if c.fd < 0 {
		return fmt.Errorf("eventloop: write: %w", websocket.ErrClosed)
	}
	var hb [maxHeaderLen]byte
	h := appendHeader(hb[:0], op, len(p))
	if c.out != nil && c.flags&(flagDeferred|flagFlushing) == flagDeferred && c.out.size+len(h)+len(p) > c.loop.deferLimit() {
		// A batch holds at most deferLimit bytes for a connection: write
		// the deferred frames now, as they would have been without the
		// batch, so that this frame is written at once too when the
		// socket takes it, and counts against the queue's bound only
		// then.
		var iov [4]unix.Iovec // any goroutine may be here: not the loop's scratch
		c.flush(iov[:], false)
	}
	if q := c.out; q != nil {
		if !unbounded && q.size+len(h)+len(p) > c.loop.srv.maxQueue {
			c.overflow()
			return ErrWriteQueueFull
		}
		q.appendPriv(h, p)
		return nil
	}
	if c.deferWrite(h, p) {
		return nil
	}
	// Set here, not by setIovec: a pointer stored through a parameter
	// would move the header's array to the heap.
	var iov [2]unix.Iovec
	iov[0].Base = &h[0]
	iov[0].SetLen(len(h))
	k := 1
	if len(p) > 0 {
		iov[1].Base = &p[0]
		iov[1].SetLen(len(p))
		k = 2
	}
	n, err := writev(int(c.fd), iov[:k])
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		// The peer is gone; the loop sees it on the read side.
		return fmt.Errorf("eventloop: write: %w", err)
	}
	n = max(n, 0)
	if n == len(h)+len(p) {
		return nil
	}
	// The rest is queued even when it passes the bound, so that the
	// frame is whole before the close frame that overflow sends.
	q := getQueue()
	if n < len(h) {
		q.appendPriv(h[n:], p)
	} else {
		q.appendPriv(nil, p[n-len(h):])
	}
	c.out = q
	c.pollOut(true)
	if !unbounded && q.size > c.loop.srv.maxQueue {
		c.overflow()
		return ErrWriteQueueFull
	}
	return nil
}

// overflow fails a connection whose queue is full: 1008 and a lingering
// close, and OnClose from the loop. c.mu is held.
func (c *Conn) overflow() {
	if c.state != connOpen {
		return
	}
	c.flags |= flagOverflow
	c.sendClose(uint16(websocket.StatusPolicyViolation), "write queue full")
	c.linger(c.loop.srv.closeTO)
	c.loop.addTimed(c) // a connection's lock comes before its loop's
	c.loop.post(c)
}

// flush writes queued bytes, up to len(iov) segments per writev (iov is
// scratch); when the queue is empty it releases it and, in a lingering
// close, shuts down the write side. c.mu is held. The loop goroutine
// passes unlock: it releases c.mu during each writev, so that a Write or
// Broadcast meanwhile only waits for the queue's bookkeeping, not for the
// system call; flagFlushing then keeps others from writing the socket or
// releasing the queue (they only append to it), and a flush called
// meanwhile leaves the work to this one. Only the loop closes the socket,
// so it stays open.
func (c *Conn) flush(iov []unix.Iovec, unlock bool) {
	if c.fd < 0 || c.flags&flagFlushing != 0 {
		return
	}
	q := c.out
	if q == nil {
		c.lingerShut()
		return
	}
	for {
		k, total := q.iovecs(iov)
		fd := int(c.fd)
		if unlock {
			c.flags |= flagFlushing
			c.mu.Unlock()
		}
		n, err := writev(fd, iov[:k])
		clear(iov[:k]) // keep no frame alive from the scratch
		if unlock {
			c.mu.Lock()
			c.flags &^= flagFlushing
		}
		if !c.wrote(q, n, err, total) {
			return
		}
	}
}

// wrote acts on a write of the first total bytes of queue q that returned
// n, err: it forgets what was written, arms EPOLLOUT for what the socket
// did not take, and releases the queue once it is empty (then, in a
// lingering close, shuts down the write side). It returns true when more
// waits in the queue that the caller should write now. c.mu is held.
func (c *Conn) wrote(q *outQueue, n int, err error, total int) (again bool) {
	c.flags &^= flagDeferred // written or backlogged, it is an ordinary queue now
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		// The peer is gone: the loop sees it on the read side (only
		// the loop closes descriptors, since it reads them unlocked).
		c.out = nil
		putQueue(q)
		c.pollOut(false)
		return false
	}
	n = max(n, 0)
	q.advance(n)
	if n < total {
		c.pollOut(true)
		return false
	}
	if !q.empty() {
		// A Broadcast that queued more meanwhile put c in the dirty
		// list: the next round writes it, with what else comes by then.
		return c.flags&flagDirty == 0
	}
	c.out = nil
	putQueue(q)
	c.pollOut(false)
	c.lingerShut()
	return false
}

// lingerShut shuts down the write side of a lingering close once its
// queue is written; c.mu is held.
func (c *Conn) lingerShut() {
	if c.state == connLinger && c.flags&flagShutWr == 0 {
		c.flags |= flagShutWr
		unix.Shutdown(int(c.fd), unix.SHUT_WR)
		c.deadline = min(c.deadline, time.Now().Add(lingerDrain).UnixNano())
	}
}

// pollOut arms or disarms EPOLLOUT; c.mu is held.
func (c *Conn) pollOut(on bool) {
	if on == (c.flags&flagPollOut != 0) {
		return
	}
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if on {
		events |= unix.EPOLLOUT
		c.flags |= flagPollOut
	} else {
		c.flags &^= flagPollOut
	}
	unix.EpollCtl(c.loop.epfd, unix.EPOLL_CTL_MOD, int(c.fd), &unix.EpollEvent{Events: events, Fd: c.fd})
}

// queueAll writes a handshake response, queueing what the socket does not
// take; c.mu is held.
func (c *Conn) queueAll(b []byte) {
	n, err := rawWrite(int(c.fd), b)
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		return
	}
	n = max(n, 0)
	if n < len(b) {
		q := getQueue()
		q.appendPriv(b[n:], nil)
		c.out = q
		c.pollOut(true)
	}
}

// closeFD closes the socket and frees what c holds; c.mu is held, and
// only the loop goroutine calls it (it reads the socket without c.mu).
func (c *Conn) closeFD() {
	if c.fd < 0 {
		return
	}
	srv := c.loop.srv
	fd := int(c.fd)
	srv.table.del(fd) // before close: the number may be reused at once
	unix.Close(fd)
	srv.open.Add(-1)
	c.fd = -1
	c.state = connClosed
	c.deadline = 0
	c.out = nil
	c.flags &^= flagDeferred
}

// maxHeaderLen is the longest header of a server frame.
const maxHeaderLen = 10

// dataOpcode is the opcode of a message of type typ.
func dataOpcode(typ websocket.MessageType) (byte, error) {
	switch typ {
	case websocket.MessageText:
		return opText, nil
	case websocket.MessageBinary:
		return opBinary, nil
	}
	return 0, fmt.Errorf("eventloop: cannot write a message of type %v", typ)
}

// appendHeader appends the header of an unmasked, final server frame.
func appendHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	}
	return append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// fdTable finds a connection from its descriptor: lookups from the loops
// take no lock; insertions and deletions (one per connection) take one.
type fdTable struct {
	mu    sync.Mutex
	slots atomic.Pointer[[]atomic.Pointer[Conn]]
}

func (t *fdTable) get(fd int) *Conn {
	s := t.slots.Load()
	if s == nil || fd < 0 || fd >= len(*s) {
		return nil
	}
	return (*s)[fd].Load()
}

func (t *fdTable) put(fd int, c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.slots.Load()
	if s == nil || fd >= len(*s) {
		n := 1024
		if s != nil {
			n = len(*s)
		}
		for n <= fd {
			n *= 2
		}
		grown := make([]atomic.Pointer[Conn], n)
		if s != nil {
			for i := range *s {
				grown[i].Store((*s)[i].Load())
			}
		}
		t.slots.Store(&grown)
		s = &grown
	}
	(*s)[fd].Store(c)
}

func (t *fdTable) del(fd int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.slots.Load(); s != nil && fd < len(*s) {
		(*s)[fd].Store(nil)
	}
}

// each calls fn with every connection in the table.
func (t *fdTable) each(fn func(c *Conn)) {
	s := t.slots.Load()
	if s == nil {
		return
	}
	for i := range *s {
		if c := (*s)[i].Load(); c != nil {
			fn(c)
		}
	}
}

// Message buffers for messages that span reads, pooled by size class so
// that a steady stream of large messages allocates nothing: class k holds
// buffers of at least minBuf<<k bytes. A buffer goes back to the largest
// class its capacity fills; beyond the largest class it is left to the
// garbage collector.
const (
	minBuf     = 4 << 10
	bufClasses = 13 // 4 KiB to 16 MiB
)

var bufPools [bufClasses]sync.Pool

// maxBufHint bounds how much of a frame's announced length is reserved
// before its bytes arrive: a peer could announce far more than it sends
// (up to the read limit, or any length with no limit), so a larger message
// grows its buffer as its bytes come in.
const maxBufHint = 1 << 20

// getBuf returns an empty buffer of at least hint bytes of capacity: from
// the pool of hint's class or, failing that, of a larger class (where a
// buffer grown by a large message went back).
func getBuf(hint int) *[]byte {
	k := 0
	for k < bufClasses && minBuf<<k < hint {
		k++
	}
	for j := k; j < bufClasses; j++ {
		if b, ok := bufPools[j].Get().(*[]byte); ok {
			return b
		}
	}
	if k == bufClasses {
		b := make([]byte, 0, hint)
		return &b
	}
	b := make([]byte, 0, minBuf<<k)
	return &b
}

func putBuf(b *[]byte) {
	c := cap(*b)
	if c < minBuf {
		return
	}
	k := 0
	for k+1 < bufClasses && minBuf<<(k+1) <= c {
		k++
	}
	if c >= minBuf<<bufClasses {
		return // larger than the largest class: left to the collector
	}
	*b = (*b)[:0]
	bufPools[k].Put(b)
}
