package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// echoHeaderSize is how many bytes at the start of each echo message carry
// its send time and sequence number: 16 raw bytes, or 32 hex digits in a
// text message.
func echoHeaderSize(text bool) int {
	if text {
		return 32
	}
	return 16
}

// stampEcho writes the due time (nanoseconds since the run's start) and the
// sequence number at the start of p; the rest of p is left as it is.
func stampEcho(p []byte, text bool, due time.Duration, seq uint64) {
	var h [16]byte
	binary.BigEndian.PutUint64(h[:8], uint64(due))
	binary.BigEndian.PutUint64(h[8:], seq)
	if text {
		hex.Encode(p[:32], h[:])
		return
	}
	copy(p, h[:])
}

// readStamp reads back what stampEcho wrote; ok is false when p does not
// start with a stamp.
func readStamp(p []byte, text bool) (due time.Duration, seq uint64, ok bool) {
	var h [16]byte
	if text {
		if len(p) < 32 {
			return 0, 0, false
		}
		if _, err := hex.Decode(h[:], p[:32]); err != nil {
			return 0, 0, false
		}
	} else {
		if len(p) < 16 {
			return 0, 0, false
		}
		copy(h[:], p)
	}
	return time.Duration(binary.BigEndian.Uint64(h[:8])), binary.BigEndian.Uint64(h[8:]), true
}

// echoPayload returns a message of size bytes to be stamped: the filler is
// printable, so the same payload serves text and binary messages.
func echoPayload(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

// runEcho opens cfg.Conns connections and runs the echo load on each.
func runEcho(ctl *benchControl, cfg benchConfig, rec *recorder) (*benchRun, error) {
	conns, err := dialMany(ctl.stop, cfg)
	if err != nil {
		return nil, err
	}
	if err := ctl.stop.Err(); err != nil {
		for _, c := range conns {
			c.CloseNow()
		}
		return nil, err
	}
	run := &benchRun{}
	var (
		sent, received, errs atomic.Int64
		whileSending         atomic.Int64
		notesMu              sync.Mutex
	)
	note := func(format string, args ...any) {
		errs.Add(1)
		notesMu.Lock()
		run.addNote(format, args...)
		notesMu.Unlock()
	}
	start := time.Now()
	rec.begin(start)
	win := ctl.window(start, cfg.Duration, cfg.Drain)
	defer win.cancel()
	var wg sync.WaitGroup
	for i, c := range conns {
		w := &echoWorker{cfg: cfg, c: c, id: i, start: start, win: win, ctx: ctl.ctx, rec: rec.worker(), sent: &sent, received: &received, whileSending: &whileSending, note: note}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cfg.Rate > 0 {
				w.openLoop()
			} else {
				w.closedLoop()
			}
		}()
	}
	wg.Wait()
	run.Elapsed = win.elapsed(time.Since(start))
	closeAll(ctl.ctx, conns)
	run.Sent, run.Received, run.WhileSending, run.Errors = sent.Load(), received.Load(), whileSending.Load(), errs.Load()
	run.Expected = run.Sent
	return run, nil
}

// closeAll closes conns: at once when ctx (the run's) has ended, as a
// second interrupt asks not to wait; otherwise with their closing
// handshakes, all at the same time, so that a server that stopped reading
// holds the run one CloseTimeout in all, not one per connection.
func closeAll(ctx context.Context, conns []*websocket.Conn) {
	if ctx.Err() != nil {
		for _, c := range conns {
			c.CloseNow()
		}
		return
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Close(websocket.StatusNormalClosure, "")
		}()
	}
	wg.Wait()
}

// dialMany opens cfg.Conns connections to cfg.URL, a few at a time.
func dialMany(ctx context.Context, cfg benchConfig) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, cfg.Conns)
	errs := make(chan error, cfg.Conns)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(dctx, cfg.URL, &websocket.DialOptions{Options: websocket.Options{ReadLimit: int64(cfg.Size) + 1024}})
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", i+1, err)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
		return nil, err
	}
	return conns, nil
}

// echoWorker drives one echo connection.
type echoWorker struct {
	cfg                          benchConfig
	c                            *websocket.Conn
	id                           int
	start                        time.Time
	win                          *sendWindow
	ctx                          context.Context // the run's: ends on a second interrupt
	rec                          *workerRecorder
	sent, received, whileSending *atomic.Int64
	note                         func(format string, args ...any)
}

// got counts an echo that arrived at (since the run's start), and records
// its latency from due; it counts towards the throughput only when it
// came while sending (within cfg.Duration, or until an interrupt), as
// the drain is not in the time the throughput divides by.
func (w *echoWorker) got(at, due time.Duration) {
	w.received.Add(1)
	if w.win.while(at) {
		w.whileSending.Add(1)
	}
	w.rec.record(at - due)
}

// messageType is the type of the worker's messages.
func (w *echoWorker) messageType() websocket.MessageType {
	if w.cfg.Text {
		return websocket.MessageText
	}
	return websocket.MessageBinary
}

// check verifies an echo against what was sent with that sequence number:
// the whole message must come back unchanged, in order.
func (w *echoWorker) check(p, filler []byte, wantSeq uint64) (due time.Duration, ok bool) {
	due, seq, ok := readStamp(p, w.cfg.Text)
	hs := echoHeaderSize(w.cfg.Text)
	switch {
	case !ok || len(p) != len(filler):
		w.note("connection %d: echo of %d bytes does not match the %d sent", w.id+1, len(p), len(filler))
		return 0, false
	case seq != wantSeq:
		w.note("connection %d: echo of message %d arrived when %d was expected", w.id+1, seq, wantSeq)
		return 0, false
	case !bytes.Equal(p[hs:], filler[hs:]):
		w.note("connection %d: echo of message %d has different bytes", w.id+1, seq)
		return 0, false
	}
	return due, true
}

// closedLoop sends a message, waits for its echo, and again, until sending
// stops; the last echo is awaited within cfg.Drain, unless the run's
// context ends.
func (w *echoWorker) closedLoop() {
	typ := w.messageType()
	p := echoPayload(w.cfg.Size)
	for seq := uint64(1); w.win.ctx.Err() == nil; seq++ {
		sentAt := time.Since(w.start)
		stampEcho(p, w.cfg.Text, sentAt, seq)
		// The run's context, not sending's: a message is not cut in half
		// when sending stops, only on a second interrupt.
		if err := w.c.Write(w.ctx, typ, p); err != nil {
			if w.ctx.Err() == nil { // else a second interrupt: not a fault of the server
				w.note("connection %d: write: %v", w.id+1, err)
			}
			return
		}
		w.sent.Add(1)
		_, got, err := w.c.Read(w.win.drained)
		if err != nil {
			switch {
			case w.ctx.Err() != nil: // a second interrupt: not a fault of the server
			case w.win.drained.Err() != nil || errors.Is(err, context.DeadlineExceeded):
				// (The transport's deadline may end the read a moment
				// before the context's timer.)
				w.note("connection %d: echo of message %d not received within --drain %s", w.id+1, seq, w.cfg.Drain)
			default:
				w.note("connection %d: echo of message %d: %v", w.id+1, seq, err)
			}
			return
		}
		if _, ok := w.check(got, p, seq); !ok {
			return
		}
		w.got(time.Since(w.start), sentAt)
	}
}

// openLoop sends at the connection's share of cfg.Rate until sending
// stops, while another goroutine reads the echoes; it then waits for the
// echoes still due, within cfg.Drain, unless the run's context ends.
func (w *echoWorker) openLoop() {
	sendCtx, ctx := w.win.ctx, w.ctx
	interval := time.Duration(float64(w.cfg.Conns) / w.cfg.Rate * float64(time.Second))
	// Spread the connections' first messages over one interval.
	first := time.Duration(int64(interval) * int64(w.id) / int64(w.cfg.Conns))
	var (
		sent, got     atomic.Uint64 // last sequence numbers sent and received
		writeFinished atomic.Bool
	)
	caughtUp := make(chan struct{}, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		want := echoPayload(w.cfg.Size)
		for seq := uint64(1); ; seq++ {
			_, b, err := w.c.Read(readCtx)
			if err != nil {
				switch {
				case ctx.Err() != nil:
				case readCtx.Err() != nil:
					if n := sent.Load() - got.Load(); n > 0 {
						w.note("connection %d: %d echoes not received within --drain %s", w.id+1, n, w.cfg.Drain)
					}
				default:
					w.note("connection %d: read: %v", w.id+1, err)
				}
				return
			}
			due, ok := w.check(b, want, seq)
			if !ok {
				return
			}
			w.got(time.Since(w.start), due)
			got.Store(seq)
			if writeFinished.Load() && seq == sent.Load() {
				select {
				case caughtUp <- struct{}{}:
				default:
				}
			}
		}
	}()
	typ := w.messageType()
	p := echoPayload(w.cfg.Size)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for seq := uint64(1); ; seq++ {
		due := first + time.Duration(seq-1)*interval
		if wait := due - time.Since(w.start); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-sendCtx.Done():
			}
		}
		// The clock as well as the context: on a loaded machine the
		// context's deadline can fire late, and messages due after the
		// end would go out in a burst.
		if sendCtx.Err() != nil || due >= w.cfg.Duration {
			break
		}
		stampEcho(p, w.cfg.Text, due, seq)
		if err := w.c.Write(ctx, typ, p); err != nil { // the run's context, as in closedLoop
			if ctx.Err() == nil {
				w.note("connection %d: write: %v", w.id+1, err)
			}
			break
		}
		sent.Store(seq)
		w.sent.Add(1)
	}
	writeFinished.Store(true)
	if got.Load() != sent.Load() {
		select {
		case <-caughtUp:
		case <-w.win.drained.Done():
		case <-readDone:
		}
	}
	stopReading()
	<-readDone
}
