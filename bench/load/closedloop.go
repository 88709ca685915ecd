package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The closed loop of the echo and compression scenarios: every connection
// sends a message, waits for its echo, checks it and sends the next, so
// one message is in flight per connection. On Linux the connections are
// driven by a few epoll loops (echo_linux.go), so that the load generator
// costs well under a server per message and the server, not the client,
// sets the pace; elsewhere, or with -goroutine-client, by one goroutine
// per connection through net.Conn (below).

// echoConn is one connection of a closed loop, handshake done.
type echoConn struct {
	idx  int
	conn net.Conn
	br   *bufio.Reader // holds what the server sent after its handshake answer

	// Messages alternate between two pre-built masked frames, whose
	// echoes must equal wants[k&1] for the k-th message (from 0).
	frames [2][]byte
	wants  [2][]byte
	check  echoCheck
	sent   uint64 // messages begun
}

// err names the connection and the message in a failure.
func (c *echoConn) err(err error) error {
	if c.sent == 0 {
		return fmt.Errorf("connection %d: %w", c.idx, err)
	}
	return fmt.Errorf("connection %d, message %d: %w", c.idx, c.sent-1, err)
}

// echoPayload is the payload of message k of connection i in the echo
// scenario: size bytes of a fixed pattern, the first four (or all, if
// fewer) replaced by 2i+k%2 little-endian, so that an echo of another
// connection's message, or of the connection's previous one, differs
// from the one awaited (as far as size allows: below 4 bytes, numbers
// wrap).
func echoPayload(size, i, k int) []byte {
	p := make([]byte, size)
	for j := range p {
		p[j] = byte(j*31 + 7)
	}
	var tag [4]byte
	binary.LittleEndian.PutUint32(tag[:], uint32(2*i+k%2))
	copy(p, tag[:])
	return p
}

func runEcho(cfg *config, s *server, e echoSpec) (EchoResult, error) {
	conns, brs, err := dialAll(s.addr, e.Conns)
	if err != nil {
		return EchoResult{}, fmt.Errorf("connecting: %w", err)
	}
	ecs := make([]*echoConn, len(conns))
	for i, c := range conns {
		ec := &echoConn{idx: i, conn: c, br: brs[i]}
		for k := range 2 {
			ec.wants[k] = echoPayload(e.Size, i, k)
			ec.frames[k] = clientFrame(0x2, ec.wants[k])
		}
		ecs[i] = ec
	}
	r, _, err := closedLoop(cfg, s, ecs)
	r.MBPerSec = r.MsgsPerSec * float64(e.Size) / 1e6
	return r, err
}

// loopTotals are the sums over the measured window of the frame bytes of
// the echoes and of the echoes that came compressed.
type loopTotals struct{ wire, flagged uint64 }

// loopStats is what one client goroutine counted in the measured window.
type loopStats struct {
	h        hist
	messages uint64
	t        loopTotals
}

// record counts an echo that c checked, d after its message was sent.
func (st *loopStats) record(d time.Duration, c *echoCheck) {
	st.h.add(d)
	st.messages++
	st.t.wire += uint64(c.wire)
	if c.compressed {
		st.t.flagged++
	}
}

// loopRun is what closedLoop shares with the client driving the
// connections: the phase and the first failure.
type loopRun struct {
	phase   atomic.Int32
	errOnce sync.Once
	err     error
	failed  chan struct{} // closed on the first failure
}

// fail records err, unless the loop is stopping (connections are being
// cut short then).
func (r *loopRun) fail(err error) {
	if r.phase.Load() == phaseStop {
		return
	}
	r.errOnce.Do(func() {
		r.err = err
		close(r.failed)
	})
}

// wait waits d, or less if the run fails; it reports whether it did not.
func (r *loopRun) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.failed:
		return false
	}
}

// An echoClient starts driving conns (owning them from then on) and
// returns the function that stops it, sends each connection a close frame
// and closes it, and returns the counts.
type echoClient func(run *loopRun, conns []*echoConn) (stop func() []*loopStats, err error)

// closedLoop runs the closed loop on conns through the warm-up and the
// measured window, then closes them. It fills the figures common to echo
// scenarios: messages, latency, server and client CPU, server RSS and
// allocations.
func closedLoop(cfg *config, s *server, conns []*echoConn) (EchoResult, loopTotals, error) {
	var (
		r   EchoResult
		t   loopTotals
		run = &loopRun{failed: make(chan struct{})}
	)
	start := startEchoClient
	if cfg.goroutineClient {
		start = startGoroutineClient
	}
	stop, err := start(run, conns)
	if err != nil {
		return r, t, err
	}
	r.LoadAvg = loadAvg()
	// The allocation counts are read just outside the measured window
	// (an in-process test server, without lines, has none).
	var (
		a, b   snapshot
		m0, m1 memStats
		memErr error
	)
	if run.wait(cfg.warmup) {
		if s.lines != nil {
			m0, memErr = serverMem(s)
		}
		a = snap(s.pid)
		run.phase.Store(phaseMeasure)
		if run.wait(cfg.duration) {
			run.phase.Store(phaseStop)
			b = snap(s.pid)
			if s.lines != nil && memErr == nil {
				m1, memErr = serverMem(s)
			}
			r.ServerRSSKiB = procStatus(s.pid, "VmRSS")
		}
	}
	run.phase.Store(phaseStop)
	stats := stop()
	if run.err != nil {
		return r, t, run.err
	}
	var all hist
	for _, st := range stats {
		all.merge(&st.h)
		r.Messages += st.messages
		t.wire += st.t.wire
		t.flagged += st.t.flagged
	}
	secs := b.t.Sub(a.t).Seconds()
	r.Seconds = secs
	r.MsgsPerSec = float64(r.Messages) / secs
	r.P50us, r.P99us, r.P999us = all.quantile(0.5), all.quantile(0.99), all.quantile(0.999)
	scpu, ccpu := b.server-a.server, b.client-a.client
	r.ServerCPUPct = 100 * scpu / secs
	r.ClientCPUPct = 100 * ccpu / secs
	r.OtherCPUSec = max(0, (b.machine-a.machine)-scpu-ccpu)
	if r.Messages > 0 {
		r.ServerUsMsg = 1e6 * scpu / float64(r.Messages)
	}
	if r.Messages == 0 {
		return r, t, errors.New("no message echoed")
	}
	if memErr != nil {
		return r, t, memErr
	}
	if s.lines != nil {
		setAllocs(&r, m0, m1)
	}
	return r, t, nil
}

// startGoroutineClient drives each connection from a goroutine of its
// own through net.Conn: write the frame, read the echo through the
// connection's bufio.Reader (its latency is one time.Now before the
// write, one after the check).
func startGoroutineClient(run *loopRun, conns []*echoConn) (func() []*loopStats, error) {
	var wg sync.WaitGroup
	stats := make([]*loopStats, len(conns))
	for i, c := range conns {
		st := new(loopStats)
		stats[i] = st
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run.phase.Load() != phaseStop {
				k := c.sent
				c.sent++
				c.check.want = c.wants[k&1]
				t0 := time.Now()
				if _, err := c.conn.Write(c.frames[k&1]); err != nil {
					run.fail(c.err(fmt.Errorf("write: %w", err)))
					return
				}
				if err := c.check.readFrom(c.br); err != nil {
					if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
						err = c.check.closedError()
					}
					run.fail(c.err(err))
					return
				}
				if run.phase.Load() == phaseMeasure {
					st.record(time.Since(t0), &c.check)
				}
			}
		}()
	}
	return func() []*loopStats {
		// Unblock goroutines waiting for an echo, then close.
		for _, c := range conns {
			c.conn.SetDeadline(time.Now())
		}
		wg.Wait()
		// A close frame each, within a second for all (a write cut
		// short by the deadline above may leave a frame unfinished; the
		// server then sees a protocol error instead, which is as good).
		deadline := time.Now().Add(time.Second)
		for _, c := range conns {
			c.conn.SetDeadline(deadline)
			c.conn.Write(closeFrame)
			c.conn.Close()
		}
		return stats
	}, nil
}
