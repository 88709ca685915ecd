package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplex-ws/duplex/client"
)

// minSubscribeSize is the smallest data a subscribe-mode message can have:
// {"seq":…,"t":…,"pad":""} with the widest numbers.
const minSubscribeSize = 64

// publishWindow is how many publishes may await their answers at once in
// subscribe mode, so that the publisher is not bound by one round trip
// per message (the server runs one connection's commands in turn).
const publishWindow = 16

// benchData is the JSON data of a subscribe-mode message.
type benchData struct {
	Seq uint64 `json:"seq"`
	T   int64  `json:"t"` // nanoseconds since the run's start when it was due
}

// subscribeData returns the data of message seq due at t, padded to size
// bytes of JSON.
func subscribeData(seq uint64, t time.Duration, size int) json.RawMessage {
	head := `{"seq":` + strconv.FormatUint(seq, 10) + `,"t":` + strconv.FormatInt(int64(t), 10) + `,"pad":"`
	pad := size - len(head) - 2
	if pad < 0 {
		pad = 0
	}
	return json.RawMessage(head + strings.Repeat("x", pad) + `"}`)
}

// subscriber is one subscribe-mode connection and what it received.
type subscriber struct {
	id   int
	c    *client.Client
	rec  *workerRecorder
	mu   sync.Mutex
	seen map[uint64]bool
	last uint64 // the highest channel offset delivered so far
	got  atomic.Int64
	// gotWhileSending counts the deliveries that came while sending,
	// which the throughput counts.
	gotWhileSending atomic.Int64
}

// runSubscribe subscribes cfg.Conns clients to cfg.Channel, publishes on
// another connection for cfg.Duration, and checks that every subscriber
// got every acknowledged message once, unchanged, in the channel's offset
// order.
func runSubscribe(ctl *benchControl, cfg benchConfig, rec *recorder) (*benchRun, error) {
	ctx := ctl.ctx
	run := &benchRun{}
	var (
		errs    atomic.Int64
		notesMu sync.Mutex
		running atomic.Bool
		window  atomic.Pointer[sendWindow] // set when sending starts
	)
	note := func(format string, args ...any) {
		errs.Add(1)
		notesMu.Lock()
		run.addNote(format, args...)
		notesMu.Unlock()
	}
	setup, cancelSetup := context.WithCancel(ctl.stop)
	defer cancelSetup()
	setup, cancel := context.WithTimeout(setup, 30*time.Second)
	defer cancel()
	var (
		settingUp atomic.Bool // until the publisher is connected
		setupErr  atomic.Pointer[error]
	)
	settingUp.Store(true)
	opts := func(who string) *client.Options {
		return &client.Options{
			DialTimeout: 10 * time.Second,
			OnState: func(st client.State, err error) {
				switch {
				case err == nil || (st != client.StateDisconnected && st != client.StateClosed):
				case settingUp.Load():
					// A connection that fails before sending starts
					// fails the run, at once and with its cause, as in
					// echo mode: the client would try again until the
					// setup's time is up, and then tell only that.
					err = fmt.Errorf("%s: %w", who, err)
					if setupErr.CompareAndSwap(nil, &err) {
						cancelSetup()
					}
				case st == client.StateDisconnected && running.Load():
					note("%s disconnected: %v", who, err)
				}
			},
		}
	}
	subs := make([]*subscriber, cfg.Conns)
	var pub *client.Client
	defer func() {
		cs := []*client.Client{pub}
		for _, s := range subs {
			if s != nil {
				cs = append(cs, s.c)
			}
		}
		closeClients(ctx, cs)
	}()
	var (
		wg      sync.WaitGroup
		firstMu sync.Mutex
		first   error
		sem     = make(chan struct{}, 64)
	)
	for i := range subs {
		s := &subscriber{id: i, rec: rec.worker(), seen: make(map[uint64]bool)}
		s.c = client.New(cfg.URL, opts(fmt.Sprintf("subscriber %d", i+1)))
		subs[i] = s
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := s.c.Subscribe(setup, cfg.Channel, func(m client.Message) {
				var d benchData
				if err := json.Unmarshal(m.Data, &d); err != nil {
					note("subscriber %d: message at offset %d is not bench data: %v", s.id+1, m.Offset, err)
					return
				}
				s.mu.Lock()
				dup := s.seen[d.Seq]
				s.seen[d.Seq] = true
				last := s.last
				s.last = max(s.last, m.Offset)
				s.mu.Unlock()
				if dup {
					note("subscriber %d: message %d delivered twice", s.id+1, d.Seq)
					return
				}
				win := window.Load()
				if win == nil {
					note("subscriber %d: message %d at offset %d arrived before publishing started", s.id+1, d.Seq, m.Offset)
					return
				}
				at := time.Since(win.start)
				s.rec.record(at - time.Duration(d.T))
				s.got.Add(1) // it arrived; a fault below is noted, not counted as lost
				if win.while(at) {
					s.gotWhileSending.Add(1)
				}
				switch {
				case last != 0 && m.Offset != last+1:
					// The channel's order is its offsets' (publishes
					// overlap, so not the sequence numbers'). The client
					// drops a message older than one it delivered, so a
					// late message shows here as the gap it left (and
					// then as lost).
					note("subscriber %d: message %d at offset %d came after offset %d", s.id+1, d.Seq, m.Offset, last)
				case !bytes.Equal(m.Data, subscribeData(d.Seq, time.Duration(d.T), cfg.Size)):
					note("subscriber %d: message %d at offset %d has different bytes than were published", s.id+1, d.Seq, m.Offset)
				}
			}, nil)
			if err != nil {
				firstMu.Lock()
				if first == nil {
					first = fmt.Errorf("subscriber %d: subscribe to %q: %w", s.id+1, cfg.Channel, err)
				}
				firstMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if p := setupErr.Load(); p != nil {
		return nil, *p
	}
	if first != nil {
		return nil, first
	}
	// The publisher connects before the clock starts, so that its
	// handshake counts neither in the first publishes' latency nor in
	// the first progress interval.
	pub = client.New(cfg.URL, opts("publisher"))
	if err := pub.Ping(setup); err != nil {
		if p := setupErr.Load(); p != nil {
			return nil, *p
		}
		return nil, fmt.Errorf("publisher: %w", err)
	}
	settingUp.Store(false)
	if err := ctl.stop.Err(); err != nil {
		return nil, err
	}

	start := time.Now()
	rec.begin(start)
	win := ctl.window(start, cfg.Duration, cfg.Drain)
	defer win.cancel()
	window.Store(win)
	running.Store(true)
	sendCtx := win.ctx
	var (
		published atomic.Int64
		slots     = make(chan struct{}, publishWindow)
		inflight  sync.WaitGroup
		interval  time.Duration
		refused   atomic.Pointer[error]
		unacked   atomic.Int64 // publishes not acknowledged within the drain
	)
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	timer := time.NewTimer(time.Hour)
	for seq := uint64(1); ; seq++ {
		due := time.Since(start)
		if interval > 0 {
			due = time.Duration(seq-1) * interval
			if wait := due - time.Since(start); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-sendCtx.Done():
				}
			}
		}
		// The clock as well as the context: on a loaded machine the
		// context's deadline can fire late, and messages due after the
		// end would go out in a burst.
		if sendCtx.Err() != nil || due >= cfg.Duration || refused.Load() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-sendCtx.Done():
		}
		if sendCtx.Err() != nil {
			break
		}
		data := subscribeData(seq, due, cfg.Size)
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-slots }()
			// Within the drain, as the deliveries (which ends on a
			// second interrupt too).
			pctx, cancel := context.WithTimeout(win.drained, 10*time.Second)
			defer cancel()
			if _, err := pub.Publish(pctx, cfg.Channel, data); err != nil {
				if ctx.Err() != nil {
					return // a second interrupt: not a fault of the server
				}
				if win.drained.Err() != nil {
					unacked.Add(1) // one note for them all, below
					return
				}
				var e *client.Error
				if errors.As(err, &e) {
					refused.CompareAndSwap(nil, &err)
				}
				note("publish %d: %v", seq, err)
				return
			}
			published.Add(1)
		}()
	}
	timer.Stop()
	inflight.Wait()
	run.Elapsed = win.elapsed(time.Since(start))
	if p := refused.Load(); p != nil {
		return nil, fmt.Errorf("the server refused to publish on %q: %w", cfg.Channel, *p)
	}

	if n := unacked.Load(); n > 0 {
		note("%d publishes not acknowledged within --drain %s", n, cfg.Drain)
	}

	// Wait, within the drain time (from when sending stopped, as the
	// publishes above; it ends on a second interrupt too), for the
	// deliveries still on their way.
	want := published.Load()
	for win.drained.Err() == nil && !allGot(subs, want) {
		time.Sleep(10 * time.Millisecond)
	}
	running.Store(false)
	var received int64
	for _, s := range subs {
		n := s.got.Load()
		received += n
		run.WhileSending += s.gotWhileSending.Load()
		if n < want {
			notesMu.Lock()
			run.addNote("subscriber %d got %d of %d messages", s.id+1, n, want)
			notesMu.Unlock()
		}
	}
	run.Sent, run.Received, run.Errors = want, received, errs.Load()
	run.Expected = want * int64(len(subs))
	return run, nil
}

// allGot reports whether every subscriber received want messages.
func allGot(subs []*subscriber, want int64) bool {
	for _, s := range subs {
		if s.got.Load() < want {
			return false
		}
	}
	return true
}

// closeClients closes cs (nil ones skipped) all at the same time, so that
// a server that stopped reading holds the run one closing handshake's
// timeout in all, not one per connection. When ctx (the run's) has ended,
// as a second interrupt asks not to wait, it does not wait for them: the
// process is about to exit.
func closeClients(ctx context.Context, cs []*client.Client) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Close()
		}()
	}
	if ctx.Err() == nil {
		wg.Wait()
	}
}
