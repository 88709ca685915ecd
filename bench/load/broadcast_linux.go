package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// bcastRun is the state one broadcast scenario shares between its
// publisher, its reader loops and the goroutine that times it.
type bcastRun struct {
	subs   []*bsub
	size   int
	window uint64
	stall  time.Duration
	filler []byte    // the payload after the sequence number and send time
	base   time.Time // send and receipt times are nanoseconds since base

	phase  atomic.Int32
	sendNs []atomic.Int64 // send time of message seq, at seq % window
	left   []atomic.Int32 // subscribers yet to receive message seq, at seq % window
	sent   atomic.Uint64  // messages published (numbered from 0)
	done   atomic.Uint64  // every message below it reached every subscriber
	wake   chan struct{}  // a message completed (capacity 1)

	errOnce sync.Once
	err     error
	failed  chan struct{} // closed on the first error
}

// bsub is one subscriber, read by one reader loop.
type bsub struct {
	idx  int
	fd   int
	next atomic.Uint64 // the sequence number it expects next
	pend []byte        // the start of a frame that has not fully arrived
}

func (r *bcastRun) fail(err error) {
	r.errOnce.Do(func() {
		r.err = err
		close(r.failed)
	})
}

// complete records that message seq (and so every one before it, since
// each subscriber receives in order) reached every subscriber.
func (r *bcastRun) complete(seq uint64) {
	for {
		d := r.done.Load()
		if seq+1 <= d || r.done.CompareAndSwap(d, seq+1) {
			break
		}
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// now returns the time since r.base on the monotonic clock.
func (r *bcastRun) now() int64 { return int64(time.Since(r.base)) }

func runBroadcast(cfg *config, s *server, b bcastSpec) (BCResult, error) {
	res := BCResult{Window: cfg.bcastWindow}
	if cfg.bcastWindow < 1 {
		return res, errors.New("-bcast-window must be at least 1")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && uint64(b.Subs)+64 > lim.Cur {
		return res, fmt.Errorf("%d subscribers need more files than this process may open (%d)", b.Subs, lim.Cur)
	}
	run := &bcastRun{
		size:   b.Size,
		window: uint64(cfg.bcastWindow),
		stall:  cfg.bcastStall,
		filler: make([]byte, b.Size-bcastHeader),
		base:   time.Now(),
		sendNs: make([]atomic.Int64, cfg.bcastWindow),
		left:   make([]atomic.Int32, cfg.bcastWindow),
		wake:   make(chan struct{}, 1),
		failed: make(chan struct{}),
	}
	if run.stall <= 0 {
		run.stall = bcastStallDefault
	}
	for i := range run.filler {
		run.filler[i] = byte(i*31 + 7)
	}

	subs, err := dialSubscribers(s.addr, b.Subs)
	if err != nil {
		return res, fmt.Errorf("connecting subscribers: %w", err)
	}
	run.subs = subs
	defer func() {
		for _, sb := range subs {
			syscall.Write(sb.fd, closeFrame)
			syscall.Close(sb.fd)
		}
	}()
	readers, err := startReaders(run)
	if err != nil {
		return res, err
	}
	stopReaders := func() {
		for _, rd := range readers {
			rd.ep.close()
		}
		for _, rd := range readers {
			<-rd.exited
		}
	}
	defer stopReaders()

	pub, _, err := dialBcast(s.addr, bcastPubPath, bcastPubProto, 10*time.Second)
	if err != nil {
		return res, fmt.Errorf("connecting the publisher: %w", err)
	}
	defer func() {
		pub.Write(closeFrame)
		pub.Close()
	}()

	var (
		stopPub   atomic.Bool
		published = make(chan struct{})
		measured  atomic.Uint64 // messages published in the measured window
	)
	go func() {
		defer close(published)
		publish(run, pub, &stopPub, &measured)
	}()

	res.LoadAvg = loadAvg()
	wait := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-run.failed:
			return false
		}
	}
	var a, z snapshot
	if wait(cfg.warmup) {
		a = snap(s.pid)
		run.phase.Store(phaseMeasure)
		if wait(cfg.duration) {
			run.phase.Store(phaseStop)
			z = snap(s.pid)
			res.ServerRSSKiB = procStatus(s.pid, "VmRSS")
		}
	}
	stopPub.Store(true)
	<-published // the publisher waits until what it sent arrived everywhere, or fails
	stopReaders()
	if run.err != nil {
		return res, run.err
	}
	if n := run.sent.Load(); run.done.Load() != n {
		return res, fmt.Errorf("internal: %d messages sent, %d delivered everywhere", n, run.done.Load())
	}

	var all hist
	for _, rd := range readers {
		all.merge(&rd.h)
		res.Deliveries += rd.count
	}
	secs := z.t.Sub(a.t).Seconds()
	res.Seconds = secs
	res.Messages = measured.Load()
	res.MsgsPerSec = float64(res.Messages) / secs
	res.DeliveriesPerSec = float64(res.Deliveries) / secs
	res.P50us, res.P99us, res.P999us = all.quantile(0.5), all.quantile(0.99), all.quantile(0.999)
	scpu, ccpu := z.server-a.server, z.client-a.client
	res.ServerCPUPct = 100 * scpu / secs
	res.ClientCPUPct = 100 * ccpu / secs
	res.OtherCPUSec = max(0, (z.machine-a.machine)-scpu-ccpu)
	if res.Deliveries == 0 {
		return res, errors.New("no message delivered in the measured window")
	}
	res.ServerUsDelivery = 1e6 * scpu / float64(res.Deliveries)
	if scpu > 0 {
		res.PerCore = float64(res.Deliveries) / scpu
	}
	return res, nil
}

// publish sends messages while fewer than the window are undelivered,
// until stop; then it waits until every message it sent reached every
// subscriber. It fails the run when a write fails or no message completes
// for run.stall.
func publish(run *bcastRun, pub net.Conn, stop *atomic.Bool, measured *atomic.Uint64) {
	payload := make([]byte, run.size)
	copy(payload[bcastHeader:], run.filler)
	frame := clientFrame(0x2, payload) // header and mask key; the payload is masked per message
	hdr := len(frame) - run.size
	key := frame[hdr-4 : hdr]
	timer := time.NewTimer(run.stall)
	defer timer.Stop()
	n := int32(len(run.subs))
	for {
		seq, done := run.sent.Load(), run.done.Load()
		stopping := stop.Load()
		if stopping && done == seq {
			return
		}
		if stopping || seq-done >= run.window {
			timer.Reset(run.stall)
			select {
			case <-run.wake:
				continue
			case <-run.failed:
				return
			case <-timer.C:
				if run.done.Load() == done {
					run.fail(stallError(run, seq, done))
					return
				}
				continue
			}
		}
		slot := seq % run.window
		run.left[slot].Store(n)
		t := run.now()
		run.sendNs[slot].Store(t)
		binary.LittleEndian.PutUint64(payload[0:8], seq)
		binary.LittleEndian.PutUint64(payload[8:16], uint64(t))
		for i, c := range payload[:bcastHeader] {
			frame[hdr+i] = c ^ key[i&3]
		}
		run.sent.Store(seq + 1)
		// A server that stops reading the publisher fails the run
		// rather than hanging it.
		pub.SetWriteDeadline(time.Now().Add(run.stall))
		if _, err := pub.Write(frame); err != nil {
			run.fail(fmt.Errorf("publisher: write of message %d: %w", seq, err))
			return
		}
		if run.phase.Load() == phaseMeasure {
			measured.Add(1)
		}
	}
}

// stallError describes the subscribers that have not received message
// done within run.stall.
func stallError(run *bcastRun, sent, done uint64) error {
	var late []string
	behind := 0
	for _, s := range run.subs {
		if next := s.next.Load(); next <= done {
			behind++
			if len(late) < 3 {
				late = append(late, fmt.Sprintf("subscriber %d has messages 0 to %d", s.idx, int64(next)-1))
			}
		}
	}
	return fmt.Errorf("message %d (of %d sent) did not reach %d of %d subscribers within %v: %s",
		done, sent, behind, len(run.subs), run.stall, strings.Join(late, "; "))
}

// dialBcast opens a connection to path offering subprotocol proto and
// runs the opening handshake.
func dialBcast(addr, path, proto string, timeout time.Duration) (net.Conn, *bufio.Reader, error) {
	c, br, _, err := dialWSRequest(addr, timeout, upgradeRequest(addr, path, "Sec-WebSocket-Protocol: "+proto+"\r\n"))
	return c, br, err
}

// greetingFrame is the server's text frame "subscribed".
var greetingFrame = append([]byte{0x81, byte(len(bcastGreeting))}, bcastGreeting...)

// dialSubscribers opens n subscriber connections, 64 at a time, waits for
// each one's greeting and takes its socket out of the runtime's poller (a
// non-blocking duplicate; the net.Conn is closed), for the reader loops.
func dialSubscribers(addr string, n int) ([]*bsub, error) {
	subs := make([]*bsub, n)
	err := dialEach(n, func(i int) error {
		fd, err := dialSubscriber(addr)
		if err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		subs[i] = &bsub{idx: i, fd: fd}
		return nil
	})
	if err != nil {
		for _, s := range subs {
			if s != nil {
				syscall.Close(s.fd)
			}
		}
		return nil, err
	}
	return subs, nil
}

func dialSubscriber(addr string) (int, error) {
	c, br, err := dialBcast(addr, bcastSubPath, bcastSubProto, 10*time.Second)
	if err != nil {
		return -1, err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(greetingFrame))
	if _, err := io.ReadFull(br, got); err != nil {
		c.Close()
		return -1, fmt.Errorf("waiting for the greeting: %w", err)
	}
	if !bytes.Equal(got, greetingFrame) {
		c.Close()
		return -1, fmt.Errorf("first frame % x, want the text %q", got, bcastGreeting)
	}
	if br.Buffered() > 0 {
		c.Close()
		return -1, fmt.Errorf("%d unexpected bytes after the greeting", br.Buffered())
	}
	return detachConn(c)
}

// breader is one epoll loop over a share of the subscribers.
type breader struct {
	run    *bcastRun
	ep     *epoller
	subs   []*bsub
	buf    []byte
	h      hist
	count  uint64 // deliveries in the measured window
	exited chan struct{}
}

// startReaders spreads the subscribers over loopCount epoll loops and
// starts them.
func startReaders(run *bcastRun) ([]*breader, error) {
	k := loopCount(len(run.subs))
	var out []*breader
	fail := func(err error) ([]*breader, error) {
		for _, rd := range out {
			rd.ep.close()
		}
		return nil, err
	}
	for range k {
		ep, err := newEpoller(256)
		if err != nil {
			return fail(err)
		}
		out = append(out, &breader{run: run, ep: ep, buf: make([]byte, 64<<10), exited: make(chan struct{})})
	}
	for i, s := range run.subs {
		rd := out[i%k]
		if err := rd.ep.add(s.fd, int32(len(rd.subs))); err != nil {
			return fail(err)
		}
		rd.subs = append(rd.subs, s)
	}
	for _, rd := range out {
		go rd.loop()
	}
	return out, nil
}

// loop waits for ready subscribers and reads each once; it ends when its
// epoller is closed or on the first error.
func (rd *breader) loop() {
	defer close(rd.exited)
	for {
		events, err := rd.ep.wait()
		if err == errEpollerClosed {
			return
		}
		if err != nil {
			rd.run.fail(err)
			return
		}
		done := rd.run.done.Load()
		for _, ev := range events {
			if err := rd.readable(rd.subs[ev.Fd]); err != nil {
				rd.run.fail(err)
				return
			}
		}
		if rd.run.done.Load() != done {
			runtime.Gosched() // let the publisher refill the window
		}
	}
}

// readable reads what subscriber s has been sent and checks its frames.
func (rd *breader) readable(s *bsub) error {
	n, errno := rawRead(s.fd, rd.buf)
	switch {
	case errno == syscall.EAGAIN || errno == syscall.EINTR:
		return nil
	case errno != 0:
		return fmt.Errorf("subscriber %d: read after message %d: %w", s.idx, int64(s.next.Load())-1, errno)
	case n == 0:
		return fmt.Errorf("subscriber %d: the server closed the connection after message %d", s.idx, int64(s.next.Load())-1)
	}
	now := rd.run.now()
	data := rd.buf[:n]
	if len(s.pend) > 0 {
		s.pend = append(s.pend, data...)
		data = s.pend
	}
	used, err := rd.frames(s, data, now)
	if err != nil {
		return err
	}
	rest := data[used:]
	switch {
	case len(rest) == 0:
		s.pend = s.pend[:0]
		if cap(s.pend) > 64<<10 {
			s.pend = nil
		}
	case len(s.pend) > 0: // rest is in s.pend
		s.pend = s.pend[:copy(s.pend, rest)]
	default:
		s.pend = append(s.pend[:0], rest...)
	}
	return nil
}

// frames checks the whole frames at the start of b and returns how many
// bytes they took.
func (rd *breader) frames(s *bsub, b []byte, now int64) (int, error) {
	run := rd.run
	used := 0
	for {
		f := b[used:]
		if len(f) < 2 {
			return used, nil
		}
		hl := headerLen(f[1])
		if len(f) < hl {
			return used, nil
		}
		n := payloadLen(f[:hl])
		after := int64(s.next.Load()) - 1
		switch {
		case f[1]&0x80 != 0:
			return used, fmt.Errorf("subscriber %d: masked frame after message %d", s.idx, after)
		case f[0]&0x0f == 0x8:
			code := "no code"
			if n >= 2 && uint64(len(f)) >= uint64(hl)+2 {
				code = fmt.Sprintf("code %d", binary.BigEndian.Uint16(f[hl:]))
			}
			return used, fmt.Errorf("subscriber %d: the server sent a close frame (%s) after message %d", s.idx, code, after)
		case f[0] != 0x82:
			return used, fmt.Errorf("subscriber %d: frame with first byte %#x after message %d, want a final binary frame", s.idx, f[0], after)
		case n != uint64(run.size):
			return used, fmt.Errorf("subscriber %d: message of %d bytes after message %d, want %d", s.idx, n, after, run.size)
		}
		if uint64(len(f)) < uint64(hl)+n {
			return used, nil
		}
		p := f[hl : hl+int(n)]
		if err := rd.message(s, p, now); err != nil {
			return used, err
		}
		used += hl + int(n)
	}
}

// message checks one payload: the next sequence number, its own send time
// and the filler, byte for byte.
func (rd *breader) message(s *bsub, p []byte, now int64) error {
	run := rd.run
	next := s.next.Load()
	seq := binary.LittleEndian.Uint64(p[0:8])
	switch {
	case seq < next:
		return fmt.Errorf("subscriber %d: message %d again after message %d", s.idx, seq, next-1)
	case seq >= run.sent.Load():
		return fmt.Errorf("subscriber %d: message numbered %d, never published (expected %d)", s.idx, seq, next)
	case seq > next:
		return fmt.Errorf("subscriber %d: message %d arrived when %d was expected (missing or out of order)", s.idx, seq, next)
	}
	slot := seq % run.window
	ts := int64(binary.LittleEndian.Uint64(p[8:16]))
	if ts != run.sendNs[slot].Load() {
		return fmt.Errorf("subscriber %d: message %d carries a send time it was not sent with", s.idx, seq)
	}
	if !bytes.Equal(p[bcastHeader:], run.filler) {
		i := 0
		for p[bcastHeader+i] == run.filler[i] {
			i++
		}
		return fmt.Errorf("subscriber %d: message %d differs from what was published at byte %d", s.idx, seq, bcastHeader+i)
	}
	s.next.Store(seq + 1)
	if run.phase.Load() == phaseMeasure {
		rd.h.add(time.Duration(now - ts))
		rd.count++
	}
	if run.left[slot].Add(-1) == 0 {
		run.complete(seq)
	}
	return nil
}
