package main

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// The epoll client of the closed loop: after the handshakes (blocking,
// before the measured window) each connection's socket is taken out of
// the runtime's poller (a non-blocking duplicate) and given to one of
// loopCount epoll loops (epoll_linux.go). A loop reads each ready socket
// once into its 64 KiB buffer and feeds what came to the connection's
// echoCheck, which takes frames and partial frames in any cut; each
// completed echo is counted and the connection's next pre-built frame
// written at once (one send system call; a frame the socket does not take
// whole is finished when epoll says it is writable). The clock is read
// once per epoll batch: a message's send time is the reading of the
// batch that sent it, its echo's receipt time that of the batch that
// completed it, so the latency is the round trip including the batches'
// processing on both ends (at most one batch of up to 256 ready sockets,
// a few hundred µs at 1000 connections).

// econn is an echoConn in an epoll loop.
type econn struct {
	*echoConn
	fd      int
	tag     int32  // its index in its loop
	out     []byte // the frame being sent
	wpos    int    // bytes of out written
	waitOut bool   // watched for writability
	t0      int64  // send time of the message in flight, ns since the loop's base
}

// eloop is one epoll loop over a share of the connections.
type eloop struct {
	run    *loopRun
	ep     *epoller
	conns  []*econn
	buf    []byte
	base   time.Time
	st     loopStats
	exited chan struct{}
}

// startEchoClient detaches the connections' sockets and starts the epoll
// loops on them.
func startEchoClient(run *loopRun, conns []*echoConn) (func() []*loopStats, error) {
	var (
		ecs   []*econn
		loops []*eloop
	)
	fail := func(rest []*echoConn, err error) (func() []*loopStats, error) {
		for _, l := range loops {
			l.ep.close()
		}
		for _, c := range rest {
			c.conn.Close()
		}
		for _, e := range ecs {
			syscall.Close(e.fd)
		}
		return nil, err
	}
	for i, c := range conns {
		if n := c.br.Buffered(); n > 0 {
			return fail(conns[i:], c.err(fmt.Errorf("%d unexpected bytes after the handshake answer", n)))
		}
		fd, err := detachConn(c.conn)
		if err != nil {
			return fail(conns[i+1:], c.err(err))
		}
		ecs = append(ecs, &econn{echoConn: c, fd: fd})
	}
	k := loopCount(len(ecs))
	base := time.Now()
	for range k {
		ep, err := newEpoller(256)
		if err != nil {
			return fail(nil, err)
		}
		loops = append(loops, &eloop{run: run, ep: ep, buf: make([]byte, 64<<10), base: base, exited: make(chan struct{})})
	}
	for i, e := range ecs {
		l := loops[i%k]
		e.tag = int32(len(l.conns))
		if err := l.ep.add(e.fd, e.tag); err != nil {
			return fail(nil, err)
		}
		l.conns = append(l.conns, e)
	}
	for _, l := range loops {
		go l.loop()
	}
	return func() []*loopStats {
		for _, l := range loops {
			l.ep.close()
		}
		stats := make([]*loopStats, len(loops))
		for i, l := range loops {
			<-l.exited
			stats[i] = &l.st
		}
		for _, e := range ecs {
			if e.wpos == len(e.out) {
				rawSend(e.fd, closeFrame)
			}
			syscall.Close(e.fd)
		}
		return stats
	}, nil
}

// now is the loop's clock: nanoseconds since its base, monotonic.
func (l *eloop) now() int64 { return int64(time.Since(l.base)) }

// loop sends every connection its first message, then serves ready
// sockets until its epoller is closed or a check fails.
func (l *eloop) loop() {
	defer close(l.exited)
	now := l.now()
	for _, e := range l.conns {
		if err := l.send(e, now); err != nil {
			l.run.fail(err)
			return
		}
	}
	for {
		events, err := l.ep.wait()
		if err == errEpollerClosed {
			return
		}
		if err != nil {
			l.run.fail(err)
			return
		}
		now := l.now()
		measure := l.run.phase.Load() == phaseMeasure
		for _, ev := range events {
			e := l.conns[ev.Fd]
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
				if err := l.readable(e, now, measure); err != nil {
					l.run.fail(err)
					return
				}
			}
			if ev.Events&syscall.EPOLLOUT != 0 && e.wpos < len(e.out) {
				if err := l.flush(e); err != nil {
					l.run.fail(err)
					return
				}
			}
		}
	}
}

// readable reads what e's socket holds, once, and checks it; each echo
// it completes is counted (in the measured window) and followed by the
// next message.
func (l *eloop) readable(e *econn, now int64, measure bool) error {
	n, errno := rawRead(e.fd, l.buf)
	switch {
	case errno == syscall.EAGAIN || errno == syscall.EINTR:
		return nil
	case errno != 0:
		return e.err(fmt.Errorf("read: %w", errno))
	case n == 0:
		return e.err(e.check.closedError())
	}
	data := l.buf[:n]
	for len(data) > 0 {
		used, done, err := e.check.feed(data)
		if err != nil {
			return e.err(err)
		}
		data = data[used:]
		if !done {
			break // all of data used
		}
		if e.wpos < len(e.out) {
			return e.err(errors.New("echo complete before the message was all sent"))
		}
		if measure {
			l.st.record(time.Duration(now-e.t0), &e.check)
		}
		if err := l.send(e, now); err != nil {
			return err
		}
	}
	return nil
}

// send starts e's next message.
func (l *eloop) send(e *econn, now int64) error {
	k := e.sent
	e.sent++
	e.check.want = e.wants[k&1]
	e.out, e.wpos, e.t0 = e.frames[k&1], 0, now
	return l.flush(e)
}

// flush writes what is left of e's frame; what the socket does not take
// waits for writability.
func (l *eloop) flush(e *econn) error {
	for e.wpos < len(e.out) {
		n, errno := rawSend(e.fd, e.out[e.wpos:])
		if errno == syscall.EINTR {
			continue
		}
		if errno == syscall.EAGAIN {
			break
		}
		if errno != 0 {
			return e.err(fmt.Errorf("write: %w", errno))
		}
		e.wpos += n
		if e.wpos < len(e.out) {
			break // the socket's buffer is full: no second try before it drains
		}
	}
	if pending := e.wpos < len(e.out); pending != e.waitOut {
		events := uint32(syscall.EPOLLIN)
		if pending {
			events |= syscall.EPOLLOUT
		}
		if err := l.ep.modify(e.fd, events, e.tag); err != nil {
			return e.err(err)
		}
		e.waitOut = pending
	}
	return nil
}
