// Command load drives the side-by-side benchmark of Go WebSocket libraries:
// for each library it starts bench/echoserver as a child process (a fresh
// one per scenario, pinned to one CPU with taskset when asked), runs the
// scenarios against it from this process, and reads the server's CPU time
// and RSS from /proc.
//
// Scenarios:
//
//   - echo CxS: C connections each send an S-byte binary message and wait
//     for its echo before sending the next (closed loop), for -duration
//     after -warmup. Reported: messages/s, MB/s of payload (one way),
//     p50/p99/p99.9 round-trip latency, server CPU per message, server and
//     client CPU use, server RSS at the end, and the server's heap
//     allocations per message (objects and bytes; allocs.go).
//   - compression CxS: the echo scenario with permessage-deflate, no
//     context takeover either way (compress.go): C connections send a
//     deflated S-byte JSON-like text message; every echo is inflated and
//     checked. Then the same against a fresh server with the same
//     settings, the client offering no extension: the same text, plain,
//     and no echo may carry RSV1. Reported: as echo for each run, plus the
//     frame bytes per message each way, and per library the two runs side
//     by side with the ratios of on to off and their intervals.
//   - broadcast NxS: N subscribers and one publisher of S-byte messages,
//     each delivered by the server to every subscriber, at most
//     -bcast-window undelivered, for -duration after -warmup; every
//     subscriber must get every message once, in order, byte for byte
//     (broadcast.go). Reported: deliveries/s, p50/p99/p99.9 publish-to-
//     receipt latency, server CPU per delivery and deliveries per server
//     core, server and client CPU use, server RSS.
//   - handshakes: -hs-workers goroutines each open a TCP connection, run
//     the opening handshake, send a close frame and wait for the server to
//     close, in a loop for -hs-duration. Reported: connections/s and p50/p99
//     of the whole cycle.
//   - idle: connections that send nothing, opened by child processes of
//     this program (-idle-per-proc each, so that no process passes the
//     open-file limit), at each count of -idle; after each count the
//     server is asked (SIGUSR1) to collect garbage and return it to the OS,
//     then its RSS is read. Reported: RSS at each count and the slope per
//     connection between the first and last count.
//
// The client side is raw frames (client.go), not a WebSocket library, and
// on Linux a few epoll loops drive all the connections of a scenario
// (echo_linux.go, broadcast_linux.go), so that it costs as little as
// possible; its CPU use is reported next to every result.
//
//	go build -o echoserver.bin ./echoserver
//	go run ./load -server ./echoserver.bin -pin -json results.json
//	go run ./load -from results.json -doc ../docs/benchmarks.md -plots ../docs/plots
//
// bench/run.sh does all of it.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

type config struct {
	server     string
	libs       []string
	rounds     int
	pin        bool
	serverCPU  int
	loadCPU    int
	echo       []echoSpec
	compress   []echoSpec
	duration   time.Duration
	warmup     time.Duration
	hsDuration time.Duration
	hsWorkers  int
	idle       []int
	perProc    int
	jsonOut    string
	from       string
	doc        string
	plots      string

	// The broadcast scenarios; bcastWindow bounds the messages not yet
	// received by every subscriber, bcastStall how long one may take
	// (0: 10 s).
	broadcast   []bcastSpec
	bcastWindow int
	bcastStall  time.Duration

	// goroutineClient drives the echo connections with a goroutine each
	// through net.Conn, the client where epoll is missing (to compare).
	goroutineClient bool
}

type echoSpec struct{ Conns, Size int }

// String is the scenario as the -echo flag spells it, CONNSxSIZE, so that
// logs and errors name it the way a user would ask for it again.
func (e echoSpec) String() string { return fmt.Sprintf("%dx%d", e.Conns, e.Size) }

// Results is everything one run measured; -json writes it and -from reads
// it back to write the report.
type Results struct {
	Machine   string       `json:"machine"`
	Date      string       `json:"date"`
	Pinned    bool         `json:"pinned"`
	ServerCPU int          `json:"server_cpu"` // with Pinned
	LoadCPU   int          `json:"load_cpu"`   // with Pinned
	Warmup    float64      `json:"warmup_s"`
	Duration  float64      `json:"duration_s"`
	Rounds    int          `json:"rounds"`
	Libs      []string     `json:"libs"`
	Echo      []EchoResult `json:"echo"`
	Broadcast []BCResult   `json:"broadcast,omitempty"`
	Handshake []HSResult   `json:"handshake"`
	Idle      []IdleResult `json:"idle"`
	Errors    []string     `json:"errors,omitempty"`

	// Compress holds the compression scenarios. CompressLeftOut named
	// the libraries without permessage-deflate, and why: only runs saved
	// before duplex-eventloop had it hold one; the report still shows it.
	Compress        []EchoResult `json:"compress,omitempty"`
	CompressLeftOut []string     `json:"compress_left_out,omitempty"`
}

// EchoResult is one library in one echo scenario.
type EchoResult struct {
	Lib          string  `json:"lib"`
	Round        int     `json:"round"`
	Conns        int     `json:"conns"`
	Size         int     `json:"size"`
	Seconds      float64 `json:"seconds"`
	Messages     uint64  `json:"messages"`
	MsgsPerSec   float64 `json:"msgs_per_s"`
	MBPerSec     float64 `json:"mb_per_s"`
	P50us        float64 `json:"p50_us"`
	P99us        float64 `json:"p99_us"`
	P999us       float64 `json:"p999_us"`
	ServerCPUPct float64 `json:"server_cpu_pct"`
	ServerUsMsg  float64 `json:"server_us_per_msg"`
	ClientCPUPct float64 `json:"client_cpu_pct"`
	OtherCPUSec  float64 `json:"other_cpu_s"`
	ServerRSSKiB float64 `json:"server_rss_kib"`
	LoadAvg      float64 `json:"loadavg"`
	Error        string  `json:"error,omitempty"`

	// The server's heap allocations in the measured window per message
	// (objects and bytes; allocs.go); MemStats says they were measured.
	MemStats         bool    `json:"mem_stats"`
	AllocsPerMsg     float64 `json:"allocs_per_msg"`
	AllocBytesPerMsg float64 `json:"alloc_bytes_per_msg"`

	// Compression scenarios only: whether the client offered
	// permessage-deflate ("on") or not ("off", the same server and text
	// on a plain connection); empty in runs saved before the off run
	// existed, whose rows are all on (compressionOf). Then the WebSocket
	// frame bytes (headers included) per message sent and echoed, and the
	// share of echoes compressed.
	Compression       string  `json:"compression,omitempty"`
	WireSentPerMsg    float64 `json:"frame_bytes_sent_per_msg,omitempty"`
	WireEchoPerMsg    float64 `json:"frame_bytes_echoed_per_msg,omitempty"`
	CompressedEchoPct float64 `json:"compressed_echo_pct,omitempty"`

	// Filled by summarize: rounds merged and the range of MsgsPerSec.
	Runs             int     `json:"-"`
	MsgsMin, MsgsMax float64 `json:"-"`
}

// HSResult is one library in the handshake scenario.
type HSResult struct {
	Lib          string  `json:"lib"`
	Round        int     `json:"round"`
	Workers      int     `json:"workers"`
	Seconds      float64 `json:"seconds"`
	Count        uint64  `json:"count"`
	PerSec       float64 `json:"per_s"`
	P50us        float64 `json:"p50_us"`
	P99us        float64 `json:"p99_us"`
	ServerCPUPct float64 `json:"server_cpu_pct"`
	ServerUsConn float64 `json:"server_us_per_conn"`
	ClientCPUPct float64 `json:"client_cpu_pct"`
	Failures     uint64  `json:"failures"`
	LoadAvg      float64 `json:"loadavg"`
	Error        string  `json:"error,omitempty"`
}

// IdleResult is one library in the idle scenario.
type IdleResult struct {
	Lib        string    `json:"lib"`
	Round      int       `json:"round"`
	Counts     []int     `json:"counts"`
	RSSKiB     []float64 `json:"rss_kib"`
	BaseRSSKiB float64   `json:"base_rss_kib"`
	SlopeBytes float64   `json:"slope_bytes_per_conn"`
	Procs      int       `json:"client_procs"`
	Error      string    `json:"error,omitempty"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "idle-child" {
		idleChild(os.Args[2:])
		return
	}
	var cfg config
	var libs, echo, idle, bcast, compress string
	flag.StringVar(&cfg.server, "server", "", "path of the echoserver binary (go build ./echoserver)")
	flag.StringVar(&libs, "libs", "duplex,duplex-eventloop,gorilla,coder,gobwas,gws,nbio", "libraries to run, in order")
	flag.IntVar(&cfg.rounds, "rounds", 1, "repeat everything this many times (the report shows medians)")
	flag.BoolVar(&cfg.pin, "pin", false, "pin each server to -server-cpu and this process to -load-cpu (taskset)")
	flag.IntVar(&cfg.serverCPU, "server-cpu", 0, "CPU for the servers with -pin")
	flag.IntVar(&cfg.loadCPU, "load-cpu", 1, "CPU for this process (and its idle children) with -pin")
	flag.StringVar(&echo, "echo", "100x32,1000x32,10000x32,100x1024,1000x1024,10000x1024,10x65536", "echo scenarios, CONNSxSIZE, comma-separated (empty: none)")
	flag.StringVar(&bcast, "broadcast", "10000x32", "broadcast scenarios, SUBSCRIBERSxSIZE, comma-separated (empty: none); at most 15000 subscribers, SIZE at least 16")
	flag.IntVar(&cfg.bcastWindow, "bcast-window", 16, "broadcast: most messages not yet received by every subscriber")
	flag.StringVar(&compress, "compress", "100x1024", "echo scenarios of text against servers with permessage-deflate, each run with the extension offered and not, CONNSxSIZE, comma-separated (empty: none)")
	flag.BoolVar(&cfg.goroutineClient, "goroutine-client", false, "drive the echo connections with a goroutine each through net.Conn (the client where epoll is missing) instead of epoll loops")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time of each echo scenario")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured time before each echo scenario")
	flag.DurationVar(&cfg.hsDuration, "hs-duration", 5*time.Second, "time of the handshake scenario (0: skip)")
	flag.IntVar(&cfg.hsWorkers, "hs-workers", 32, "concurrent connections in the handshake scenario")
	flag.StringVar(&idle, "idle", "1000,19000", "idle scenario: connection counts, ascending (empty: skip)")
	flag.IntVar(&cfg.perProc, "idle-per-proc", 15000, "idle connections per client process")
	flag.StringVar(&cfg.jsonOut, "json", "", "write the results to this JSON file")
	flag.StringVar(&cfg.from, "from", "", "do not measure: read results from this JSON file")
	flag.StringVar(&cfg.doc, "doc", "", "write the results section into this Markdown file (docs/benchmarks.md)")
	flag.StringVar(&cfg.plots, "plots", "", "write SVG plots into this directory")
	flag.Parse()
	cfg.libs = splitList(libs)
	if cfg.rounds < 1 || len(cfg.libs) == 0 {
		fatalf("-rounds must be at least 1 and -libs not empty")
	}
	for _, s := range splitList(echo) {
		c, sz, ok := strings.Cut(s, "x")
		ci, err1 := strconv.Atoi(c)
		si, err2 := strconv.Atoi(sz)
		if !ok || err1 != nil || err2 != nil || ci <= 0 || si < 0 {
			fatalf("bad -echo scenario %q (want CONNSxSIZE)", s)
		}
		cfg.echo = append(cfg.echo, echoSpec{ci, si})
	}
	var err error
	if cfg.broadcast, err = parseBroadcast(bcast); err != nil {
		fatalf("%v", err)
	}
	if cfg.bcastWindow < 1 {
		fatalf("-bcast-window must be at least 1")
	}
	if cfg.compress, err = parseSpecs("-compress", compress); err != nil {
		fatalf("%v", err)
	}
	for _, s := range splitList(idle) {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			fatalf("bad -idle count %q", s)
		}
		cfg.idle = append(cfg.idle, n)
	}

	var res *Results
	if cfg.from != "" {
		b, err := os.ReadFile(cfg.from)
		if err != nil {
			fatalf("%v", err)
		}
		res = new(Results)
		if err := json.Unmarshal(b, res); err != nil {
			fatalf("%s: %v", cfg.from, err)
		}
	} else {
		if cfg.server == "" {
			fatalf("-server is required (or -from)")
		}
		res = run(&cfg)
		if cfg.jsonOut != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			if err := os.WriteFile(cfg.jsonOut, append(b, '\n'), 0o644); err != nil {
				fatalf("%v", err)
			}
		}
	}
	fmt.Print(markdown(res))
	if cfg.plots != "" {
		if err := writePlots(res, cfg.plots); err != nil {
			fatalf("plots: %v", err)
		}
	}
	if cfg.doc != "" {
		if err := writeDoc(res, cfg.doc); err != nil {
			fatalf("doc: %v", err)
		}
	}
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "load: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func run(cfg *config) *Results {
	res := &Results{
		Machine:  machine(),
		Date:     time.Now().UTC().Format("2006-01-02"),
		Warmup:   cfg.warmup.Seconds(),
		Duration: cfg.duration.Seconds(),
		Rounds:   cfg.rounds,
		Libs:     cfg.libs,
	}
	if cfg.pin {
		if err := pinSelf(cfg.loadCPU); err != nil {
			logf("pinning this process failed, running unpinned: %v", err)
		} else {
			res.Pinned, res.ServerCPU, res.LoadCPU = true, cfg.serverCPU, cfg.loadCPU
		}
	}
	note := func(lib, what string, err error) string {
		msg := fmt.Sprintf("%s %s: %v", lib, what, err)
		logf("%s", msg)
		res.Errors = append(res.Errors, msg)
		return err.Error()
	}
	// Scenario by scenario, every library one after the other, so that the
	// libraries of one scenario are measured close together in time; each
	// round starts with the next library, so none always goes first.
	n := len(cfg.libs)
	for round := range cfg.rounds {
		order := append(cfg.libs[round%n:len(cfg.libs):len(cfg.libs)], cfg.libs[:round%n]...)
		for _, e := range cfg.echo {
			for _, lib := range order {
				logf("round %d: %s echo %s", round+1, lib, e)
				r, err := withServer(cfg, lib, func(s *server) (EchoResult, error) { return runEcho(cfg, s, e) })
				r.Lib, r.Conns, r.Size, r.Round = lib, e.Conns, e.Size, round+1
				if err != nil {
					r.Error = note(lib, "echo "+e.String(), err)
				}
				logf("  %.0f msg/s, p50 %.0f µs, p99 %.0f µs, server %.1f µs/msg (%.0f %% CPU), client %.0f %% CPU, other %.1f s",
					r.MsgsPerSec, r.P50us, r.P99us, r.ServerUsMsg, r.ServerCPUPct, r.ClientCPUPct, r.OtherCPUSec)
				res.Echo = append(res.Echo, r)
			}
		}
		runCompressScenarios(cfg, res, round+1, order, note)
		runBroadcasts(cfg, res, round+1, order, note)
		for _, lib := range order {
			if cfg.hsDuration <= 0 {
				break
			}
			logf("round %d: %s handshakes", round+1, lib)
			r, err := withServer(cfg, lib, func(s *server) (HSResult, error) { return runHandshakes(cfg, s) })
			r.Lib, r.Round = lib, round+1
			if err != nil {
				r.Error = note(lib, "handshakes", err)
			}
			logf("  %.0f conn/s, p50 %.0f µs, p99 %.0f µs, %d failures", r.PerSec, r.P50us, r.P99us, r.Failures)
			res.Handshake = append(res.Handshake, r)
		}
		for _, lib := range order {
			if len(cfg.idle) == 0 {
				break
			}
			logf("round %d: %s idle %v", round+1, lib, cfg.idle)
			r, err := withServer(cfg, lib, func(s *server) (IdleResult, error) { return runIdle(cfg, s) })
			r.Lib, r.Round = lib, round+1
			if err != nil {
				r.Error = note(lib, "idle", err)
			}
			logf("  RSS %v KiB, slope %.0f B/conn", r.RSSKiB, r.SlopeBytes)
			res.Idle = append(res.Idle, r)
		}
	}
	return res
}

// server is a running echoserver child.
type server struct {
	cmd   *exec.Cmd
	pid   int
	addr  string
	lines chan string // its standard output after the address line
}

func withServer[T any](cfg *config, lib string, f func(*server) (T, error)) (T, error) {
	var zero T
	s, err := startServer(cfg, lib)
	if err != nil {
		return zero, err
	}
	defer s.stop()
	return f(s)
}

func startServer(cfg *config, lib string, extra ...string) (*server, error) {
	args := append([]string{"-lib", lib, "-addr", "127.0.0.1:0"}, extra...)
	var cmd *exec.Cmd
	if cfg.pin {
		cmd = exec.Command("taskset", append([]string{"-c", strconv.Itoa(cfg.serverCPU), cfg.server}, args...)...)
	} else {
		cmd = exec.Command(cfg.server, args...)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, pid: cmd.Process.Pid, lines: make(chan string, 16)}
	sc := bufio.NewScanner(out)
	first := make(chan string, 1)
	go func() {
		ok := false
		for sc.Scan() {
			if !ok {
				first <- sc.Text()
				ok = true
				continue
			}
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
		close(first)
	}()
	select {
	case line, ok := <-first:
		addr, found := strings.CutPrefix(line, "listening on ")
		if !ok || !found {
			s.stop()
			return nil, fmt.Errorf("server did not start (said %q)", line)
		}
		s.addr = addr
	case <-time.After(10 * time.Second):
		s.stop()
		return nil, errors.New("server did not print its address within 10 s")
	}
	// taskset execs the server, so the child's pid is the server's.
	return s, nil
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// dialAll opens n connections to addr, 64 at a time.
func dialAll(addr string, n int) ([]net.Conn, []*bufio.Reader, error) {
	return dialAllWith(addr, n, dialWS)
}

// dialAllWith opens n connections to addr with dial, 64 at a time.
func dialAllWith(addr string, n int, dial func(string, time.Duration) (net.Conn, *bufio.Reader, error)) ([]net.Conn, []*bufio.Reader, error) {
	conns := make([]net.Conn, n)
	brs := make([]*bufio.Reader, n)
	err := dialEach(n, func(i int) error {
		c, br, err := dial(addr, 10*time.Second)
		if err != nil {
			return err
		}
		conns[i], brs[i] = c, br
		return nil
	})
	if err != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, nil, err
	}
	return conns, brs, nil
}

// dialEach calls dial for 0 to n-1, at most 64 at a time (so that the
// server's accept backlog does not overflow), and returns the first
// error, after every call has returned.
func dialEach(n int, dial func(i int) error) error {
	var g errgroup.Group
	g.SetLimit(64)
	for i := range n {
		g.Go(func() error { return dial(i) })
	}
	return g.Wait()
}

// Phases of a measured scenario.
const (
	phaseWarmup = iota
	phaseMeasure
	phaseStop
)

// snapshot is the CPU and clock at a phase boundary.
type snapshot struct {
	t                       time.Time
	server, client, machine float64
}

func snap(pid int) snapshot {
	return snapshot{time.Now(), procCPU(pid), selfCPU(), machineBusy()}
}

func runHandshakes(cfg *config, s *server) (HSResult, error) {
	r := HSResult{Workers: cfg.hsWorkers, LoadAvg: loadAvg()}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		hists    = make([]*hist, cfg.hsWorkers)
		failures atomic.Uint64
		errOnce  sync.Once
		firstErr error
	)
	a := snap(s.pid)
	for i := range hists {
		hists[i] = new(hist)
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := hists[i]
			for !stop.Load() {
				t0 := time.Now()
				if err := handshakeCycle(s.addr); err != nil {
					failures.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				h.add(time.Since(t0))
			}
		}()
	}
	time.Sleep(cfg.hsDuration)
	stop.Store(true)
	wg.Wait()
	b := snap(s.pid)
	var all hist
	for _, h := range hists {
		all.merge(h)
	}
	secs := b.t.Sub(a.t).Seconds()
	r.Seconds = secs
	r.Count = all.n
	r.PerSec = float64(all.n) / secs
	r.P50us, r.P99us = all.quantile(0.5), all.quantile(0.99)
	r.Failures = failures.Load()
	r.ServerCPUPct = 100 * (b.server - a.server) / secs
	r.ClientCPUPct = 100 * (b.client - a.client) / secs
	if all.n > 0 {
		r.ServerUsConn = 1e6 * (b.server - a.server) / float64(all.n)
	}
	if r.Failures > 0 {
		return r, fmt.Errorf("%d of %d cycles failed, first: %w", r.Failures, r.Failures+all.n, firstErr)
	}
	return r, nil
}

// handshakeCycle opens a connection, runs the opening handshake, sends a
// close frame and waits for the server to close the TCP connection (so that
// the TIME_WAIT state stays on the server's side and the client's ports are
// free again at once).
func handshakeCycle(addr string) error {
	c, br, err := dialWS(addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(closeFrame); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("waiting for the server to close: %w", err)
	}
	return nil
}

// runIdle opens idle connections in child processes up to each count and
// reads the server's RSS after a forced garbage collection.
func runIdle(cfg *config, s *server) (IdleResult, error) {
	r := IdleResult{Counts: cfg.idle}
	gcRSS := func() (float64, error) {
		// Drain stale lines, ask for a collection, wait for its "gc".
		for len(s.lines) > 0 {
			<-s.lines
		}
		if err := syscall.Kill(s.pid, syscall.SIGUSR1); err != nil {
			return 0, err
		}
		select {
		case <-s.lines:
		case <-time.After(10 * time.Second):
			return 0, errors.New("server did not answer SIGUSR1 within 10 s")
		}
		return procStatus(s.pid, "VmRSS"), nil
	}
	base, err := gcRSS()
	if err != nil {
		return r, err
	}
	r.BaseRSSKiB = base
	var children []*idleProc
	defer func() {
		for _, c := range children {
			c.stop()
		}
	}()
	open := 0
	for _, target := range cfg.idle {
		for open < target {
			n := min(cfg.perProc, target-open)
			c, err := startIdleChild(s.addr, n)
			if err != nil {
				return r, fmt.Errorf("opening %d idle connections (%d open): %w", n, open, err)
			}
			children = append(children, c)
			open += n
		}
		time.Sleep(time.Second) // let the server finish the handshakes
		rss, err := gcRSS()
		if err != nil {
			return r, err
		}
		r.RSSKiB = append(r.RSSKiB, rss)
	}
	r.Procs = len(children)
	if k := len(cfg.idle); k >= 2 {
		r.SlopeBytes = 1024 * (r.RSSKiB[k-1] - r.RSSKiB[0]) / float64(cfg.idle[k-1]-cfg.idle[0])
	}
	return r, nil
}

// idleProc is a child process holding idle connections.
type idleProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startIdleChild(addr string, n int) (*idleProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "idle-child", addr, strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &idleProc{cmd: cmd, stdin: in}
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		p.stop()
		return nil, fmt.Errorf("idle child said %q (%v)", line, err)
	}
	return p, nil
}

func (p *idleProc) stop() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// idleChild opens n connections to addr, prints "ready", and holds them
// until its standard input closes.
func idleChild(args []string) {
	if len(args) != 2 {
		fatalf("usage: load idle-child ADDR N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		fatalf("bad count %q", args[1])
	}
	conns, _, err := dialAll(args[0], n)
	if err != nil {
		fatalf("idle child: %v", err)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}
