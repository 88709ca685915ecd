package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// benchConfig is what `duplex bench` is told.
type benchConfig struct {
	URL      string
	Mode     string // "echo" or "subscribe"
	Conns    int
	Size     int
	Rate     float64 // messages (echo) or publishes (subscribe) per second in all; 0: as fast as possible
	Duration time.Duration
	Text     bool
	Channel  string
	Drain    time.Duration
	Progress time.Duration
	Out      string
	Plot     string
}

const benchUsage = `Usage: duplex bench [flags] URL

Measures a WebSocket server: opens --conns connections to URL and sends
messages of --size bytes for --duration, as fast as each connection's
answers come back (closed loop) or at --rate messages per second in all,
spread over the connections (open loop: latency is counted from when
each message was due, so a server that stalls cannot hide its stall).

  --mode echo       every connection sends and expects each message back
                    unchanged (duplex serve's /echo, or any echo server)
  --mode subscribe  duplex.v1 (duplex serve's /ws): --conns subscribers on
                    one channel and a publisher on its own connection;
                    latency runs from publish to delivery; --rate counts
                    publishes, each delivered to every subscriber

A line of progress goes to standard error every --progress (rate and
latency percentiles of that interval); the final table goes to standard
output. Exit status: 0 when every message came back (echo) or reached
every subscriber (subscribe) unchanged and in order, 1 when some did not
or connections failed, 2 for bad flags, 130 or 143 when interrupted
(below).

An interrupt (Ctrl-C, SIGINT) or SIGTERM stops sending. The answers
already on their way are still awaited, within --drain (interrupt again
to stop waiting: they then count as lost); then the table, --out and
--plot give what was measured until the interrupt: the duration is the
time sending ran, and the throughput counts what arrived within it. The
exit status is then 128 + the signal's number, as for a command the
signal killed (130 for SIGINT, 143 for SIGTERM), whatever the run found,
so that a script can tell a run cut short; a run interrupted before
sending started writes nothing. A signal during the drain after
--duration does not cut the run short: the run sent for all its time and
reports, and exits, as a complete one (what a second signal leaves on its
way counts as lost).

Flags:
`

// bench runs `duplex bench`.
func bench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := benchConfig{}
	fs.StringVar(&cfg.Mode, "mode", "echo", "`echo` or subscribe (duplex.v1)")
	fs.IntVar(&cfg.Conns, "conns", 10, "`connections` (subscribers in subscribe mode)")
	fs.IntVar(&cfg.Size, "size", 32, "message size in `bytes` (at least 16 for binary, 32 for --text; in subscribe mode the JSON data's size, 64 by default and at least)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "`messages` per second in all, over all connections; subscribe mode: publishes (0: as fast as possible)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send")
	fs.BoolVar(&cfg.Text, "text", false, "send text messages instead of binary (echo mode)")
	fs.StringVar(&cfg.Channel, "channel", "", "channel for subscribe mode (default: bench-RANDOM, so runs do not mix)")
	fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "after sending stops, how long to wait for the answers still on their way")
	fs.DurationVar(&cfg.Progress, "progress", time.Second, "progress line interval (0: none)")
	fs.StringVar(&cfg.Out, "out", "", "write the results as JSON to `file`")
	fs.StringVar(&cfg.Plot, "plot", "", "write the latency distribution as an SVG plot to `file`")
	if status, ok := parseFlags(fs, args, benchUsage); !ok {
		return status
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "duplex bench: want one URL (ws:// or wss://)")
		return 2
	}
	cfg.URL = fs.Arg(0)
	sizeSet := false
	fs.Visit(func(f *flag.Flag) { sizeSet = sizeSet || f.Name == "size" })
	if !sizeSet && cfg.Mode == "subscribe" {
		cfg.Size = minSubscribeSize
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintln(stderr, "duplex bench:", err)
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	stderr = &lockedWriter{w: stderr} // progress lines and notices of signals
	res, sig, err := runBench(cfg, sigs, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "duplex bench:", err)
		return signalStatus(sig, 1)
	}
	writeBenchTable(stdout, res)
	if cfg.Out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(cfg.Out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "duplex bench: --out:", err)
			return 1
		}
	}
	if cfg.Plot != "" {
		if err := os.WriteFile(cfg.Plot, latencySVG(res), 0o644); err != nil {
			fmt.Fprintln(stderr, "duplex bench: --plot:", err)
			return 1
		}
	}
	if res.Errors > 0 || res.Lost > 0 {
		return signalStatus(sig, 1)
	}
	return signalStatus(sig, 0)
}

// signalStatus is the exit status of a run that sig interrupted: 128 + its
// number, as a shell reports a command the signal killed, so that a
// script can tell a cut-short run from a complete one; status when sig is
// nil.
func signalStatus(sig os.Signal, status int) int {
	if sig == nil {
		return status
	}
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 128 + int(syscall.SIGINT)
}

// lockedWriter serialises writes to w, which the progress lines and the
// notices of signals share.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// check validates cfg and fills in defaults.
func (cfg *benchConfig) check() error {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("URL %q: want ws://host/path or wss://host/path", cfg.URL)
	}
	switch cfg.Mode {
	case "echo", "subscribe":
	default:
		return fmt.Errorf("--mode %q: want echo or subscribe", cfg.Mode)
	}
	if cfg.Conns < 1 {
		return fmt.Errorf("--conns %d: want 1 or more", cfg.Conns)
	}
	if cfg.Rate < 0 {
		return fmt.Errorf("--rate %g: want 0 (as fast as possible) or more", cfg.Rate)
	}
	if cfg.Duration <= 0 {
		return fmt.Errorf("--duration %s: want more than 0", cfg.Duration)
	}
	if cfg.Drain < 0 || cfg.Progress < 0 {
		return errors.New("--drain and --progress: want 0 or more")
	}
	if cfg.Mode == "echo" {
		if min := echoHeaderSize(cfg.Text); cfg.Size < min {
			return fmt.Errorf("--size %d: at least %d for %s messages (the bytes that carry the send time and sequence number)", cfg.Size, min, map[bool]string{false: "binary", true: "text"}[cfg.Text])
		}
	} else {
		if cfg.Text {
			return errors.New("--text: only for --mode echo (duplex.v1 messages are JSON text)")
		}
		if cfg.Size < minSubscribeSize {
			return fmt.Errorf("--size %d: at least %d in subscribe mode (the JSON data that carries the send time and sequence number)", cfg.Size, minSubscribeSize)
		}
		if cfg.Channel == "" {
			cfg.Channel = fmt.Sprintf("bench-%d", time.Now().UnixNano()%1_000_000_007)
		}
	}
	return nil
}

// errInterruptedSetup is the error of a run interrupted before sending
// started: nothing was measured.
var errInterruptedSetup = errors.New("interrupted before sending started")

// runBench runs the load cfg describes and gathers its results. The
// first signal on sigs stops sending; the answers already on their way
// are still awaited (within cfg.Drain), and the results count what was
// measured until then. A second stops that wait (what has not arrived
// counts as lost) and gives the signals back to their default action, so
// that a third kills the process. sig is the first signal when it cut the
// run short (before sending started, or before cfg.Duration was over);
// nil if none came, or only in the drain after cfg.Duration.
func runBench(cfg benchConfig, sigs chan os.Signal, progress io.Writer) (res *BenchResult, sig os.Signal, err error) {
	ctl := newBenchControl()
	defer ctl.cancel()
	rec := newRecorder()
	var again bool
	done, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case sig = <-sigs:
		case <-done:
			return
		}
		if start, ok := rec.sendingSince(); ok && time.Since(start) >= cfg.Duration {
			fmt.Fprintf(progress, "duplex bench: %v: sending had already ended (--duration); waiting for the rest of --drain; interrupt again not to wait\n", sig)
		} else if ok {
			if cfg.Drain > 0 {
				fmt.Fprintf(progress, "duplex bench: %v: sending stopped; waiting up to %v (--drain) for the answers on their way; interrupt again not to wait\n", sig, cfg.Drain)
			} else {
				fmt.Fprintf(progress, "duplex bench: %v: sending stopped\n", sig)
			}
		}
		ctl.interrupt()
		select {
		case s := <-sigs:
			again = true
			signal.Stop(sigs)
			fmt.Fprintf(progress, "duplex bench: %v: stopped waiting; what is still on its way counts as lost\n", s)
			ctl.abort()
		case <-done:
		}
	}()
	var stopProgress func()
	if cfg.Progress > 0 {
		stopProgress = rec.report(progress, cfg.Mode, cfg.Progress)
	}
	var run *benchRun
	if cfg.Mode == "echo" {
		run, err = runEcho(ctl, cfg, rec)
	} else {
		run, err = runSubscribe(ctl, cfg, rec)
	}
	if stopProgress != nil {
		stopProgress()
	}
	close(done)
	<-watched
	if err != nil {
		// The cancellation the signal caused is not the run's error; a
		// real one (a handshake refused meanwhile) is.
		if sig != nil && !rec.hasBegun() && errors.Is(err, context.Canceled) {
			err = errInterruptedSetup
		}
		return nil, sig, err
	}
	res = rec.result(cfg, run)
	if again {
		res.Notes = append(res.Notes, "interrupted again while waiting for the answers: what was still on its way counts as lost")
	}
	// A signal during the drain after --duration did not cut the run
	// short: it sent for all its time and is reported, and exits, as a
	// complete one (a second signal's lost answers still count as lost).
	if start, ok := rec.sendingSince(); ok && sig != nil {
		if t := ctl.stoppedAt.Load(); t != nil && t.Sub(start) < cfg.Duration {
			res.Interrupted = true
			return res, sig, nil
		}
	}
	return res, nil, nil
}

// benchControl is how signals stop a run: the first stops sending, the
// second the wait for the answers still on their way.
type benchControl struct {
	// ctx is the run's: it ends on the second signal. stop ends on the
	// first (or with ctx), after stoppedAt is set; a mode's setup and
	// sending stop with it.
	ctx, stop context.Context
	abort     context.CancelFunc // the second signal
	interrupt func()             // the first: sets stoppedAt, ends stop
	cancel    func()             // ends both, when the run is over
	stoppedAt atomic.Pointer[time.Time]
}

// newBenchControl returns the control of a run that no signal stopped yet.
func newBenchControl() *benchControl {
	c := &benchControl{}
	c.ctx, c.abort = context.WithCancel(context.Background())
	stop, cancelStop := context.WithCancel(c.ctx)
	c.stop = stop
	c.interrupt = func() {
		now := time.Now()
		c.stoppedAt.CompareAndSwap(nil, &now)
		cancelStop()
	}
	c.cancel = func() { cancelStop(); c.abort() }
	return c
}

// sendWindow is when a mode sends: from start for d, or until the first
// signal if that comes sooner.
type sendWindow struct {
	// ctx ends when sending stops; drained, drain after that (or with
	// the run's context): the time left for the answers on their way.
	ctx, drained context.Context
	start        time.Time
	d            time.Duration
	ctl          *benchControl
	cancel       func()
}

// window starts the sending time at start, for d, then drain.
func (c *benchControl) window(start time.Time, d, drain time.Duration) *sendWindow {
	w := &sendWindow{start: start, d: d, ctl: c}
	ctx, cancelSend := context.WithDeadline(c.stop, start.Add(d))
	drained, cancelDrain := context.WithDeadline(c.ctx, start.Add(d+drain))
	var timer *time.Timer
	var mu sync.Mutex
	unhook := context.AfterFunc(c.stop, func() {
		mu.Lock()
		defer mu.Unlock()
		if drained.Err() == nil {
			timer = time.AfterFunc(time.Until(start.Add(w.end()+drain)), cancelDrain)
		}
	})
	w.ctx, w.drained = ctx, drained
	w.cancel = func() {
		unhook()
		// drained ends before the lock is taken, so that a hook running
		// meanwhile sees it ended and starts no timer after this one
		// stopped the last.
		cancelDrain()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancelSend()
	}
	return w
}

// end is when sending stopped, or is to stop, since start.
func (w *sendWindow) end() time.Duration {
	if t := w.ctl.stoppedAt.Load(); t != nil {
		return max(0, min(w.d, t.Sub(w.start)))
	}
	return w.d
}

// while reports whether an answer that arrived at (since start) came while
// sending: the throughput counts only those.
func (w *sendWindow) while(at time.Duration) bool { return at <= w.end() }

// elapsed is how long sending ran, for a mode whose load finished at
// (since start): sooner than planned when all its connections failed.
func (w *sendWindow) elapsed(at time.Duration) time.Duration { return min(at, w.end()) }

// benchRun is what a mode's load reports besides latencies.
type benchRun struct {
	Sent     int64 // messages sent (echo) or published (subscribe)
	Received int64 // echoes or deliveries received, each checked
	// WhileSending counts those of Received that arrived within Elapsed,
	// before the drain: the throughput is WhileSending / Elapsed.
	WhileSending int64
	Expected     int64 // what Received should be: Sent, or Sent × subscribers
	Errors       int64 // connections failed, bad answers, out-of-order deliveries
	Elapsed      time.Duration
	Notes        []string // the first errors, for the report
}

// addNote keeps the first few error descriptions of a run.
func (r *benchRun) addNote(format string, args ...any) {
	if len(r.Notes) < 5 {
		r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
	}
}

// trimNotes joins notes for one line.
func trimNotes(notes []string) string { return strings.Join(notes, "; ") }
