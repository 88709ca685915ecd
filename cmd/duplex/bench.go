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
or connections failed, 2 for bad flags.

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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runBench(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "duplex bench:", err)
		return 1
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
		return 1
	}
	return 0
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

// runBench runs the load cfg describes and gathers its results.
func runBench(ctx context.Context, cfg benchConfig, progress io.Writer) (*BenchResult, error) {
	rec := newRecorder()
	var stopProgress func()
	if cfg.Progress > 0 {
		stopProgress = rec.report(progress, cfg.Mode, cfg.Progress)
	}
	var (
		run *benchRun
		err error
	)
	if cfg.Mode == "echo" {
		run, err = runEcho(ctx, cfg, rec)
	} else {
		run, err = runSubscribe(ctx, cfg, rec)
	}
	if stopProgress != nil {
		stopProgress()
	}
	if err != nil {
		return nil, err
	}
	return rec.result(cfg, run), nil
}

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
