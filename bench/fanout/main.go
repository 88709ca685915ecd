// Command fanout measures how `duplex serve` fans one publish out to many
// subscribers of one channel: deliveries per second, and the latency from
// publish to receipt. The servers run as child processes and the
// subscribers in this process, so that neither counts against the other's
// open-file limit.
//
// It starts `duplex serve` on 127.0.0.1 (or uses -addr), connects -n
// duplex.v1 subscribers to one channel, then runs two phases over one
// persistent publisher connection:
//
//   - throughput: -m publishes sent as fast as the server answers them, with
//     up to -window of them in flight; deliveries/s is n*m over the time
//     from the first publish to the last receipt. Every subscriber must see
//     every message once, in offset order; anything else is a failure.
//   - latency: publishes at -rate per second for -latency-for; the table
//     shows p50, p99 and p99.9 of publish-to-receipt over every delivery.
//
// With -brokers it measures each broker in turn in one run: memory is one
// node with the publisher and every subscriber on it; nats and redis start
// a nats-server (JetStream) or a redis-server on a free port, then -nodes
// `duplex serve --broker …` nodes, put the publisher on the first node and
// spread the subscribers over the others, so that every delivery crosses
// the broker. Before subscribing, each broker's run also measures publishes
// through the broker alone: -solo publishes to a channel nobody subscribes
// to, one at a time and then with -window in flight.
//
// Publisher and subscribers share this process, so the publish time carried
// in each payload and the receipt time come from one monotonic clock. The
// servers' CPU time (utime+stime from /proc) is reported per delivery, and
// the broker's per publish.
//
// Run it from the bench module:
//
//	cd bench && go run ./fanout -n 10000
//	cd bench && go run ./fanout -n 1000 -brokers memory,nats,redis -nodes 3 -rate 50
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// config is what the flags set.
type config struct {
	duplexBin   string
	addr        string
	serverPID   int
	n           int
	m           int
	window      int
	payload     int
	rate        float64
	latencyFor  time.Duration
	sendQueue   int
	presence    bool
	pin         bool
	dialConc    int
	timeout     time.Duration
	jsonOut     string
	serverFlags stringList
	brokers     []string
	nodes       int
	solo        int
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// epoch is the zero of every timestamp in this process: publish times in
// payloads and receipt times are both time.Since(epoch), one monotonic
// clock.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

func main() {
	var cfg config
	flag.StringVar(&cfg.duplexBin, "duplex", "", "duplex binary to run (empty: build ./cmd/duplex of the duplex module into a temporary directory)")
	flag.StringVar(&cfg.addr, "addr", "", "host:port of a running duplex serve to measure instead of starting one (its CPU is measured only with -server-pid)")
	flag.IntVar(&cfg.serverPID, "server-pid", 0, "with -addr: the server's process id, to read its CPU time")
	flag.IntVar(&cfg.n, "n", 10000, "subscribers")
	flag.IntVar(&cfg.m, "m", 200, "messages published in the throughput phase")
	flag.IntVar(&cfg.window, "window", 32, "publishes in flight at most (sent, not yet answered)")
	flag.IntVar(&cfg.payload, "payload", 64, "bytes of each message's data (a JSON object carrying a sequence number and the publish time)")
	flag.Float64Var(&cfg.rate, "rate", 20, "publishes per second in the latency phase")
	flag.DurationVar(&cfg.latencyFor, "latency-for", 5*time.Second, "length of the latency phase")
	flag.IntVar(&cfg.sendQueue, "send-queue", 1024, "the server's --send-queue, if it has that flag")
	flag.BoolVar(&cfg.presence, "presence", false, "keep presence on in the benchmark's namespace (every subscribe then pushes a join to every subscriber)")
	flag.BoolVar(&cfg.pin, "pin", false, "pin the server to CPU 0 and this process to the other CPUs (taskset)")
	flag.IntVar(&cfg.dialConc, "dial-concurrency", 64, "connections being opened at once")
	flag.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "give up on a phase after this long")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.Var(&cfg.serverFlags, "server-flag", "extra flag for duplex serve; repeatable")
	brokers := flag.String("brokers", "memory", "comma-separated brokers to measure in turn: memory (one node), nats (a nats-server with JetStream and -nodes nodes), redis (a redis-server and -nodes nodes)")
	flag.IntVar(&cfg.nodes, "nodes", 3, "duplex serve nodes for nats and redis (at least 2): the publisher on the first, the subscribers spread over the others")
	flag.IntVar(&cfg.solo, "solo", 1000, "publishes to a channel without subscribers, to measure publishes/s through the broker alone (0: skip)")
	flag.Parse()
	var err error
	if cfg.brokers, err = parseBrokers(*brokers); err != nil {
		fmt.Fprintln(os.Stderr, "fanout: -brokers:", err)
		os.Exit(2)
	}
	if err := run(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

// results is what one run measured; it is also the JSON output.
type results struct {
	Broker           string  `json:"broker"`
	Nodes            int     `json:"nodes"`
	Machine          string  `json:"machine"`
	CPUs             int     `json:"cpus"`
	Pinned           bool    `json:"pinned"`
	Presence         bool    `json:"presence"`
	Subscribers      int     `json:"subscribers"`
	Messages         int     `json:"messages"`
	Window           int     `json:"window"`
	PayloadBytes     int     `json:"payload_bytes"`
	PushBytes        int     `json:"push_bytes"`
	SendQueue        int     `json:"send_queue,omitempty"`
	SubscribeSeconds float64 `json:"subscribe_seconds"`
	JoinsReceived    int64   `json:"joins_received"`
	ServerRSSMiB     float64 `json:"server_rss_mib_subscribed,omitempty"`

	// Publishes to a channel without subscribers: through the broker alone.
	SoloPublishes         int     `json:"solo_publishes,omitempty"`
	SoloSequentialPerSec  float64 `json:"solo_sequential_publishes_per_second,omitempty"`
	SoloRoundTripMs       float64 `json:"solo_round_trip_ms,omitempty"`
	SoloPipelinedPerSec   float64 `json:"solo_pipelined_publishes_per_second,omitempty"`
	SoloNodeCPUUsPerPub   float64 `json:"solo_node_cpu_us_per_publish,omitempty"`
	SoloBrokerCPUUsPerPub float64 `json:"solo_broker_cpu_us_per_publish,omitempty"`

	ThroughputSeconds  float64 `json:"throughput_seconds"`
	PublishesPerSecond float64 `json:"publishes_per_second"`
	DeliveriesPerSec   float64 `json:"deliveries_per_second"`
	ThroughputP50Ms    float64 `json:"throughput_latency_p50_ms"`
	ThroughputP99Ms    float64 `json:"throughput_latency_p99_ms"`
	ServerCPUUsPerDel  float64 `json:"server_cpu_us_per_delivery"`
	LoadCPUUsPerDel    float64 `json:"load_cpu_us_per_delivery"`
	BrokerCPUUsPerPub  float64 `json:"broker_cpu_us_per_publish,omitempty"`
	OtherCPUSeconds    float64 `json:"other_processes_cpu_seconds"`

	LatencyRate      float64 `json:"latency_rate"`
	LatencyMessages  int     `json:"latency_messages"`
	LatencyP50Ms     float64 `json:"latency_p50_ms"`
	LatencyP99Ms     float64 `json:"latency_p99_ms"`
	LatencyP999Ms    float64 `json:"latency_p999_ms"`
	LatencyMaxMs     float64 `json:"latency_max_ms"`
	LatencyServerCPU float64 `json:"latency_server_cpu_us_per_delivery"`
	LatencyBrokerCPU float64 `json:"latency_broker_cpu_us_per_publish,omitempty"`

	Failures []string `json:"failures"`
}

func run(cfg *config) error {
	if cfg.n < 1 || cfg.m < 1 || cfg.window < 1 || cfg.rate <= 0 || cfg.solo < 0 {
		return errors.New("-n, -m, -window and -rate must be positive, -solo not negative")
	}
	if cfg.payload < 40 {
		return errors.New("-payload must be at least 40 bytes (sequence number and time)")
	}
	if cfg.addr != "" && (len(cfg.brokers) != 1 || cfg.brokers[0] != "memory") {
		return errors.New("-addr measures one running server: it goes only with -brokers memory")
	}
	if cfg.nodes < 2 && slices.ContainsFunc(cfg.brokers, func(b string) bool { return b != "memory" }) {
		return errors.New("-nodes must be at least 2 with nats or redis (the publisher's node and a subscribers' node)")
	}
	if err := raiseFileLimit(cfg); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		children.stopAll()
		os.Exit(130)
	}()
	defer children.stopAll()

	bin := cfg.duplexBin
	if bin == "" && cfg.addr == "" {
		dir, err := os.MkdirTemp("", "fanout")
		if err != nil {
			return err
		}
		children.onStop(func() { os.RemoveAll(dir) })
		if bin, err = buildDuplex(dir); err != nil {
			return err
		}
	}
	var all []*results
	for _, kind := range cfg.brokers {
		res, err := runOne(cfg, bin, kind)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		all = append(all, res)
	}
	if len(all) > 1 {
		summary(os.Stdout, all)
	}
	if cfg.jsonOut != "" {
		var v any = all
		if len(all) == 1 {
			v = all[0] // the shape of a single-broker run stays one object
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(cfg.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	var failures int
	for _, r := range all {
		failures += len(r.Failures)
	}
	if failures > 0 {
		return fmt.Errorf("%d failures", failures)
	}
	return nil
}

// parseBrokers parses -brokers: memory, nats and redis, comma-separated,
// each at most once, in the order given.
func parseBrokers(s string) ([]string, error) {
	var out []string
	for _, b := range strings.Split(s, ",") {
		b = strings.TrimSpace(b)
		switch b {
		case "memory", "nats", "redis":
		default:
			return nil, fmt.Errorf("%q is not a broker (memory, nats or redis)", b)
		}
		if slices.Contains(out, b) {
			return nil, fmt.Errorf("%s appears twice", b)
		}
		out = append(out, b)
	}
	return out, nil
}

// runOne measures one broker: it starts the broker and the nodes (or uses
// -addr), then runs the phases.
func runOne(cfg *config, bin, kind string) (*results, error) {
	fmt.Printf("\n=== broker %s\n", kind)
	res := &results{
		Broker: kind, Nodes: 1,
		Machine: machine(), CPUs: runtime.NumCPU(), Presence: cfg.presence,
		Subscribers: cfg.n, Messages: cfg.m, Window: cfg.window, PayloadBytes: cfg.payload,
		LatencyRate: cfg.rate, Failures: []string{},
	}

	var cpus []int
	if cfg.pin {
		cpus = pinPlan()
		if cpus == nil {
			fmt.Println("note: -pin needs taskset and 2 CPUs or more; running unpinned")
		}
	}
	res.Pinned = cpus != nil

	// The publisher's node is addrs[0]; subscribers go to subAddrs.
	addrs, pids := []string{cfg.addr}, []int{cfg.serverPID}
	brokerPID := 0
	channel := fmt.Sprintf("fanout:%d", time.Now().UnixNano())
	if cfg.addr == "" {
		brokerURL := "memory"
		if kind != "memory" {
			b, err := startBroker(kind)
			if err != nil {
				return nil, err
			}
			defer b.stop()
			brokerURL, brokerPID = b.url, b.cmd.Process.Pid
			res.Nodes = cfg.nodes
		}
		addrs, pids = nil, nil
		for range res.Nodes {
			srv, err := startServer(cfg, bin, brokerURL, cpus, res)
			if err != nil {
				return nil, err
			}
			defer srv.stop()
			addrs, pids = append(addrs, srv.addr), append(pids, srv.cmd.Process.Pid)
			if !srv.hasNamespace {
				channel = fmt.Sprintf("fanout-%d", time.Now().UnixNano())
				res.Presence = true
			}
		}
		if res.Presence && !cfg.presence {
			fmt.Println("note: this duplex serve has no --namespace flag: using the default namespace (presence on)")
		}
	}
	subAddrs := addrs
	if len(addrs) > 1 {
		subAddrs = addrs[1:]
	}
	if cpus != nil {
		if err := pinSelf(cpus[1:]); err != nil {
			fmt.Println("note: pinning this process failed, running unpinned:", err)
			res.Pinned = false
		}
	}
	fmt.Printf("nodes %v (pids %v), publisher on %s, channel %s, %d subscribers\n", addrs, pids, addrs[0], channel, cfg.n)

	if cfg.solo > 0 {
		if err := soloPhase(cfg, res, addrs[0], channel+"-solo", pids, brokerPID); err != nil {
			return nil, err
		}
	}

	// Subscribe everyone.
	cpu0 := serversCPU(pids)
	t0 := time.Now()
	subs, err := subscribeAll(cfg, subAddrs, channel)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range subs {
			s.conn.CloseNow()
		}
	}()
	res.SubscribeSeconds = time.Since(t0).Seconds()
	for _, s := range subs {
		if s.base != subs[0].base {
			return nil, fmt.Errorf("subscribers disagree on the channel's offset when subscribing (%d, %d)", subs[0].base, s.base)
		}
	}
	for _, pid := range pids {
		res.ServerRSSMiB += serverRSS(pid)
	}
	cpu1 := serversCPU(pids)
	fmt.Printf("subscribed %d in %.2fs (servers' CPU %.2fs, RSS %.0f MiB)\n", cfg.n, res.SubscribeSeconds, cpu1-cpu0, res.ServerRSSMiB)
	if cfg.presence || res.Presence {
		// Let the join storm drain before measuring.
		waitQuiet(subs, 5*time.Second, cfg.timeout)
	}
	for _, s := range subs {
		res.JoinsReceived += s.joins.Load()
	}

	pub, err := newPublisher(addrs[0], channel, cfg.window)
	if err != nil {
		return nil, err
	}
	defer pub.conn.CloseNow()
	base := subs[0].base

	// Throughput.
	for _, s := range subs {
		s.phaseEnd.Store(base + uint64(cfg.m))
	}
	var bcpu0, bcpu1 float64
	load0, busy0 := loadCPU(), machineBusy()
	cpu0, bcpu0 = serversCPU(pids), serverCPU(brokerPID)
	start := now()
	for i := 1; i <= cfg.m; i++ {
		if err := pub.publish(uint64(i), cfg.payload); err != nil {
			return nil, err
		}
	}
	pubDone := pub.wait(cfg.timeout)
	ok := waitPhase(subs, base+uint64(cfg.m), cfg.timeout)
	cpu1, bcpu1 = serversCPU(pids), serverCPU(brokerPID)
	load1, busy1 := loadCPU(), machineBusy()
	var last int64
	var thrLat []int64
	for _, s := range subs {
		last = max(last, s.doneAt.Load())
		thrLat = append(thrLat, s.lat...)
		s.lat = s.lat[:0]
	}
	dels := float64(len(thrLat))
	res.PushBytes = pub.pushBytes(channel, cfg.payload)
	res.ThroughputSeconds = float64(last-start) / 1e9
	res.PublishesPerSecond = float64(cfg.m) / (float64(pubDone-start) / 1e9)
	res.DeliveriesPerSec = dels / res.ThroughputSeconds
	if pids[0] > 0 {
		res.ServerCPUUsPerDel = (cpu1 - cpu0) * 1e6 / dels
	}
	res.LoadCPUUsPerDel = (load1 - load0) * 1e6 / dels
	if brokerPID > 0 {
		res.BrokerCPUUsPerPub = (bcpu1 - bcpu0) * 1e6 / float64(cfg.m)
	}
	if pids[0] > 0 && busy0 > 0 {
		// What the other processes of the machine took while we measured.
		res.OtherCPUSeconds = max(0, (busy1-busy0)-(cpu1-cpu0)-(bcpu1-bcpu0)-(load1-load0))
	}
	slices.Sort(thrLat)
	res.ThroughputP50Ms, res.ThroughputP99Ms = pct(thrLat, 0.50), pct(thrLat, 0.99)
	if !ok {
		res.Failures = append(res.Failures, "throughput phase: not every subscriber received every message within -timeout")
	}

	// Latency.
	l := int(cfg.rate * cfg.latencyFor.Seconds())
	res.LatencyMessages = l
	end := base + uint64(cfg.m+l)
	for _, s := range subs {
		s.phaseEnd.Store(end)
	}
	cpu0, bcpu0 = serversCPU(pids), serverCPU(brokerPID)
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
	for i := cfg.m + 1; i <= cfg.m+l; i++ {
		<-tick.C
		if err := pub.publish(uint64(i), cfg.payload); err != nil {
			return nil, err
		}
	}
	tick.Stop()
	pub.wait(cfg.timeout)
	ok = waitPhase(subs, end, cfg.timeout)
	cpu1, bcpu1 = serversCPU(pids), serverCPU(brokerPID)
	var lat []int64
	for _, s := range subs {
		lat = append(lat, s.lat...)
	}
	slices.Sort(lat)
	res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyP999Ms = pct(lat, 0.50), pct(lat, 0.99), pct(lat, 0.999)
	if len(lat) > 0 {
		res.LatencyMaxMs = float64(lat[len(lat)-1]) / 1e6
	}
	if pids[0] > 0 && len(lat) > 0 {
		res.LatencyServerCPU = (cpu1 - cpu0) * 1e6 / float64(len(lat))
	}
	if brokerPID > 0 && l > 0 {
		res.LatencyBrokerCPU = (bcpu1 - bcpu0) * 1e6 / float64(l)
	}
	if !ok {
		res.Failures = append(res.Failures, "latency phase: not every subscriber received every message within -timeout")
	}

	// Check every subscriber: each offset once, in order, nothing missing.
	res.Failures = append(res.Failures, pub.problems()...)
	res.Failures = append(res.Failures, audit(subs, end)...)
	report(res)
	return res, nil
}

// soloPhase measures publishes through the broker alone: cfg.solo
// publishes from the publisher's node to a channel nobody subscribes to,
// a fifth of them one at a time (each waits for the answer to the one
// before: the round trip of a publish), then all of them with cfg.window in
// flight over one connection. Ten publishes first warm the channel up.
func soloPhase(cfg *config, res *results, addr, channel string, pids []int, brokerPID int) error {
	one, err := newPublisher(addr, channel, 1)
	if err != nil {
		return err
	}
	defer one.conn.CloseNow()
	seq := uint64(0)
	timed := func(p *publisher, count int) (float64, error) {
		start := now()
		for range count {
			seq++
			if err := p.publish(seq, cfg.payload); err != nil {
				return 0, err
			}
		}
		return float64(p.wait(cfg.timeout)-start) / 1e9, nil
	}
	if _, err := timed(one, 10); err != nil {
		return err
	}
	n1 := max(1, cfg.solo/5)
	secs, err := timed(one, n1)
	if err != nil {
		return err
	}
	res.SoloPublishes = cfg.solo
	res.SoloSequentialPerSec = float64(n1) / secs
	res.SoloRoundTripMs = secs * 1e3 / float64(n1)
	res.Failures = append(res.Failures, one.problems()...)

	many, err := newPublisher(addr, channel, cfg.window)
	if err != nil {
		return err
	}
	defer many.conn.CloseNow()
	cpu0, bcpu0 := serversCPU(pids), serverCPU(brokerPID)
	secs, err = timed(many, cfg.solo)
	if err != nil {
		return err
	}
	cpu1, bcpu1 := serversCPU(pids), serverCPU(brokerPID)
	res.SoloPipelinedPerSec = float64(cfg.solo) / secs
	if pids[0] > 0 {
		res.SoloNodeCPUUsPerPub = (cpu1 - cpu0) * 1e6 / float64(cfg.solo)
	}
	if brokerPID > 0 {
		res.SoloBrokerCPUUsPerPub = (bcpu1 - bcpu0) * 1e6 / float64(cfg.solo)
	}
	res.Failures = append(res.Failures, many.problems()...)
	fmt.Printf("broker alone: %.0f publishes/s one at a time (%.2f ms each), %.0f/s with %d in flight\n",
		res.SoloSequentialPerSec, res.SoloRoundTripMs, res.SoloPipelinedPerSec, cfg.window)
	return nil
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard one and scales
// -n down when even that is too low for n subscribers plus some spare.
func raiseFileLimit(cfg *config) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return fmt.Errorf("raising the open-file limit to %d: %w", rl.Max, err)
		}
	}
	const spare = 64 // publisher, stdio, pipes, the runtime's own
	if need := uint64(cfg.n + spare); rl.Cur < need {
		fit := int(rl.Cur) - spare
		if fit < 1 {
			return fmt.Errorf("the open-file limit (%d) leaves no room for subscribers", rl.Cur)
		}
		fmt.Printf("note: the hard open-file limit is %d; %d subscribers need %d: running %d subscribers\n", rl.Max, cfg.n, need, fit)
		cfg.n = fit
	}
	fmt.Printf("open-file limit: %d\n", rl.Cur)
	return nil
}

// server is a child process: a duplex serve node or a broker.
type server struct {
	cmd          *exec.Cmd
	addr         string
	url          string // a broker's URL for --broker
	hasNamespace bool
	log          *tail
	dir          string // removed when the process is stopped
	stopOnce     sync.Once
}

// children stops every child process still running when the run ends or
// is interrupted.
var children registry

// registry is a list of things to stop, in reverse order of registration.
type registry struct {
	mu  sync.Mutex
	fns []func()
}

func (r *registry) onStop(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fns = append(r.fns, f)
}

func (r *registry) stopAll() {
	r.mu.Lock()
	fns := r.fns
	r.fns = nil
	r.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// buildDuplex builds ./cmd/duplex of the duplex module into dir.
func buildDuplex(dir string) (string, error) {
	bin := filepath.Join(dir, "duplex")
	// Build in the main module (found through the replace directive), so
	// that its own go.sum applies.
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/duplex-ws/duplex").Output()
	if err != nil {
		return "", fmt.Errorf("finding the duplex module (run from the bench module, or pass -duplex): %w", err)
	}
	build := exec.Command("go", "build", "-o", bin, "./cmd/duplex")
	build.Dir = strings.TrimSpace(string(root))
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building duplex (or pass -duplex): %w", err)
	}
	return bin, nil
}

// start starts the child process and registers it with children.
func (s *server) start(name string, args ...string) error {
	s.cmd = exec.Command(name, args...)
	// The child goes when this process does, even if killed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	fmt.Println("starting:", strings.Join(s.cmd.Args, " "))
	if err := s.cmd.Start(); err != nil {
		return err
	}
	children.onStop(s.stop)
	return nil
}

// startServer starts a duplex serve node on brokerURL and returns once it
// is ready (GET /readyz answers 200, or 404 on builds without it).
func startServer(cfg *config, bin, brokerURL string, cpus []int, res *results) (*server, error) {
	s := &server{log: &tail{}}
	help, _ := exec.Command(bin, "serve", "-h").CombinedOutput()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	args := []string{"serve", "--listen", s.addr}
	if brokerURL != "memory" {
		args = append(args, "--broker", brokerURL)
	}
	if bytes.Contains(help, []byte("-send-queue")) {
		args = append(args, "--send-queue", strconv.Itoa(cfg.sendQueue))
		res.SendQueue = cfg.sendQueue
	} else {
		fmt.Println("note: this duplex serve has no --send-queue flag: its default applies")
	}
	if bytes.Contains(help, []byte("-namespace")) {
		s.hasNamespace = true
		presence := "off"
		if cfg.presence {
			presence = "on"
		}
		args = append(args, "--namespace", "fanout:history=100,presence="+presence+",publish=clients")
	}
	if bytes.Contains(help, []byte("-message-rate")) {
		// The benchmark publishes as fast as the server answers and opens
		// its subscribers all at once: beyond the default limits, on
		// purpose.
		args = append(args, "--message-rate", "-1", "--accept-rate", "-1")
	}
	args = append(args, cfg.serverFlags...)
	if cpus != nil {
		args = append([]string{"-c", strconv.Itoa(cpus[0]), bin}, args...)
		bin = "taskset"
	}
	if err := s.start(bin, args...); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound {
				return s, nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("duplex serve not ready on %s: %v\n%s", s.addr, err, s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startBroker starts a nats-server with JetStream or a redis-server
// without persistence, each with its files in a temporary directory, on a
// free port of 127.0.0.1, and returns once it accepts connections.
func startBroker(kind string) (*server, error) {
	bin, err := brokerBinary(kind)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fanout-"+kind)
	if err != nil {
		return nil, err
	}
	s := &server{log: &tail{}, dir: dir, addr: "127.0.0.1:" + strconv.Itoa(port)}
	var args []string
	switch kind {
	case "nats":
		s.url = "nats://" + s.addr
		args = []string{"--addr", "127.0.0.1", "--port", strconv.Itoa(port), "--jetstream", "--store_dir", dir}
	case "redis":
		s.url = "redis://" + s.addr
		args = []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no", "--loglevel", "warning"}
	}
	if err := s.start(bin, args...); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := brokerAnswers(kind, s.addr)
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s on %s not ready: %v\n%s", bin, s.addr, err, s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// brokerBinary finds Debian's nats-server or redis-server.
func brokerBinary(kind string) (string, error) {
	name := kind + "-server"
	for _, p := range []string{"/usr/sbin/" + name, "/usr/bin/" + name} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s is not installed (Debian package %s)", name, name)
}

// brokerAnswers checks that the broker at addr speaks: nats-server greets
// with INFO, redis-server answers PING with +PONG.
func brokerAnswers(kind, addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	want := "INFO "
	if kind == "redis" {
		want = "+PONG"
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
	}
	b := make([]byte, len(want))
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != want {
		return fmt.Errorf("answered %q", b)
	}
	return nil
}

// stop ends the process with SIGTERM (SIGKILL after 15 s) and removes its
// directory.
func (s *server) stop() { s.stopOnce.Do(s.doStop) }

func (s *server) doStop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// tail keeps the last lines a child process wrote, for error messages.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = t.b[len(t.b)-4<<10:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pinPlan returns the CPUs to use, the server's first, or nil when pinning
// is not possible.
func pinPlan() []int {
	if _, err := exec.LookPath("taskset"); err != nil || runtime.NumCPU() < 2 {
		return nil
	}
	cpus := make([]int, runtime.NumCPU())
	for i := range cpus {
		cpus[i] = i
	}
	return cpus
}

// pinSelf moves every thread of this process to cpus (new threads inherit
// it) and sizes GOMAXPROCS to match.
func pinSelf(cpus []int) error {
	list := make([]string, len(cpus))
	for i, c := range cpus {
		list[i] = strconv.Itoa(c)
	}
	out, err := exec.Command("taskset", "-a", "-p", "-c", strings.Join(list, ","), strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

// serverCPU returns the user+system CPU seconds of process pid, 0 when
// unknown.
func serverCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// serversCPU returns the CPU seconds of every process of pids.
func serversCPU(pids []int) float64 {
	var sum float64
	for _, pid := range pids {
		sum += serverCPU(pid)
	}
	return sum
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// serverRSS returns the resident memory of process pid in MiB.
func serverRSS(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// machineBusy returns the CPU seconds all processes of the machine have
// spent (every state of /proc/stat's cpu line but idle and iowait), 0 when
// unknown.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		if i == 3 || i == 4 {
			continue
		}
		x, _ := strconv.ParseFloat(v, 64)
		busy += x
	}
	return busy / clockTicks
}

// loadCPU returns this process's user+system CPU seconds.
func loadCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func machine() string {
	name := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				name = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs, %s/%s, %s", name, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// subscriber is one duplex.v1 connection subscribed to the channel.
type subscriber struct {
	conn *websocket.Conn
	base uint64 // the channel's offset in the subscribe answer

	subscribed chan error
	phaseEnd   atomic.Uint64 // the offset that ends the current phase
	doneAt     atomic.Int64  // receipt time of the phase's last offset
	next       atomic.Uint64 // the offset expected next
	joins      atomic.Int64
	pushes     atomic.Int64 // every push received, for waitQuiet

	// Written by the reader only; read once a phase is over.
	lat      []int64
	problem  string
	problems int
	endErr   atomic.Pointer[error]
}

// subscribeAll connects cfg.n subscribers to channel, spread over addrs in
// turn.
func subscribeAll(cfg *config, addrs []string, channel string) ([]*subscriber, error) {
	subs := make([]*subscriber, cfg.n)
	errc := make(chan error, cfg.n)
	sem := make(chan struct{}, cfg.dialConc)
	var wg sync.WaitGroup
	var done atomic.Int64
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				fmt.Printf("  %d subscribed\n", done.Load())
			}
		}
	}()
	defer close(stopProgress)
	for i := range subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := subscribe(addrs[i%len(addrs)], channel, cfg.m)
			if err != nil {
				errc <- fmt.Errorf("subscriber %d: %w", i, err)
				return
			}
			subs[i] = s
			done.Add(1)
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		for _, s := range subs {
			if s != nil {
				s.conn.CloseNow()
			}
		}
		return nil, err
	}
	return subs, nil
}

// dial opens a duplex.v1 connection, retrying transient failures (a full
// accept queue, a reset) with a growing pause.
func dial(addr string) (*websocket.Conn, error) {
	var err error
	pause := 20 * time.Millisecond
	for attempt := 0; attempt < 12; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		var c *websocket.Conn
		c, _, err = websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{
			Subprotocols: []string{"duplex.v1"},
			Proxy:        func(*http.Request) (*url.URL, error) { return nil, nil },
		})
		cancel()
		if err == nil {
			return c, nil
		}
		var he *websocket.HandshakeError
		if errors.As(err, &he) && he.Check != websocket.CheckTransport {
			return nil, err // the server answered: retrying will not help
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Second)
	}
	return nil, err
}

func subscribe(addr, channel string, m int) (*subscriber, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, err
	}
	s := &subscriber{conn: c, subscribed: make(chan error, 1), lat: make([]int64, 0, m)}
	go s.read()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := `{"id":1,"op":"subscribe","channel":"` + channel + `"}`
	if err := c.Write(ctx, websocket.MessageText, []byte(cmd)); err != nil {
		c.CloseNow()
		return nil, err
	}
	select {
	case err := <-s.subscribed:
		if err != nil {
			c.CloseNow()
			return nil, err
		}
	case <-ctx.Done():
		c.CloseNow()
		return nil, errors.New("no answer to subscribe")
	}
	return s, nil
}

var (
	prefixMessage = []byte(`{"op":"message",`)
	prefixJoin    = []byte(`{"op":"join",`)
	keyOffset     = []byte(`"offset":`)
	keyData       = []byte(`"data":{"s":`)
	keyT          = []byte(`,"t":`)
)

// read receives until the connection ends. It parses only what it checks:
// a message's offset, and the sequence number and publish time in its
// data.
func (s *subscriber) read() {
	for {
		typ, msg, err := s.conn.Read(context.Background())
		if err != nil {
			s.endErr.Store(&err)
			select {
			case s.subscribed <- err:
			default:
			}
			return
		}
		at := now()
		s.pushes.Add(1)
		switch {
		case typ != websocket.MessageText:
			s.fail("binary message")
		case bytes.HasPrefix(msg, prefixMessage):
			s.message(msg, at)
		case bytes.HasPrefix(msg, prefixJoin):
			s.joins.Add(1)
		case bytes.HasPrefix(msg, []byte(`{"id":1,"result":`)):
			off, ok := number(msg, keyOffset)
			if !ok {
				s.subscribed <- fmt.Errorf("subscribe answer without an offset: %s", msg)
				continue
			}
			s.base = off
			s.next.Store(off + 1)
			s.subscribed <- nil
		case bytes.HasPrefix(msg, []byte(`{"id":`)):
			s.subscribed <- fmt.Errorf("subscribe: %s", msg)
		}
	}
}

func (s *subscriber) message(msg []byte, at int64) {
	off, ok1 := number(msg, keyOffset)
	seq, ok2 := number(msg, keyData)
	t, ok3 := number(msg, keyT)
	if !ok1 || !ok2 || !ok3 {
		s.fail(fmt.Sprintf("unparsable message %.200s", msg))
		return
	}
	want := s.next.Load()
	switch {
	case off != want:
		s.fail(fmt.Sprintf("offset %d, expected %d", off, want))
		if off < want {
			return // a duplicate or a step back: not delivered again
		}
	case seq != off-s.base:
		s.fail(fmt.Sprintf("offset %d carries sequence %d", off, seq))
	}
	s.lat = append(s.lat, at-int64(t))
	if off == s.phaseEnd.Load() {
		s.doneAt.Store(at)
	}
	s.next.Store(off + 1) // last: waitPhase reads lat and doneAt after it
}

func (s *subscriber) fail(p string) {
	if s.problems == 0 {
		s.problem = p
	}
	s.problems++
}

// number parses the unsigned integer that follows key in msg.
func number(msg, key []byte) (uint64, bool) {
	i := bytes.Index(msg, key)
	if i < 0 {
		return 0, false
	}
	i += len(key)
	j := i
	for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(string(msg[i:j]), 10, 64)
	return v, err == nil
}

// waitPhase waits until every live subscriber has received offset end, or
// until nothing progresses for 10 s, or until timeout; it reports whether
// all of them got there.
func waitPhase(subs []*subscriber, end uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	lastProgress, lastCount := time.Now(), uint64(0)
	for {
		var behind int
		var sum uint64
		for _, s := range subs {
			n := s.next.Load()
			sum += n
			if n <= end && s.endErr.Load() == nil {
				behind++
			}
		}
		if behind == 0 {
			for _, s := range subs {
				if s.next.Load() <= end {
					return false // some ended early
				}
			}
			return true
		}
		if sum != lastCount {
			lastProgress, lastCount = time.Now(), sum
		}
		if time.Now().After(deadline) || time.Since(lastProgress) > 10*time.Second {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitQuiet waits until no subscriber has received anything for quiet (the
// joins of a presence channel have all arrived), or until timeout.
func waitQuiet(subs []*subscriber, quiet, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	var last int64 = -1
	lastChange := time.Now()
	for time.Now().Before(deadline) {
		var sum int64
		for _, s := range subs {
			sum += s.pushes.Load()
		}
		if sum != last {
			last, lastChange = sum, time.Now()
		} else if time.Since(lastChange) >= quiet {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// audit lists what went wrong on the subscribers: connections that ended,
// offsets out of order, missing or repeated.
func audit(subs []*subscriber, end uint64) []string {
	var out []string
	closed := map[string]int{}
	var short, disordered int
	var example string
	for _, s := range subs {
		if p := s.endErr.Load(); p != nil {
			closed[(*p).Error()]++
		}
		if s.next.Load() != end+1 {
			short++
		}
		if s.problems > 0 {
			disordered++
			if example == "" {
				example = s.problem
			}
		}
	}
	for reason, n := range closed {
		out = append(out, fmt.Sprintf("%d subscribers' connections ended: %s", n, reason))
	}
	if short > 0 {
		out = append(out, fmt.Sprintf("%d subscribers did not receive every message up to offset %d", short, end))
	}
	if disordered > 0 {
		out = append(out, fmt.Sprintf("%d subscribers saw messages out of order, repeated or malformed (first: %s)", disordered, example))
	}
	return out
}

// pct returns the q quantile of sorted nanosecond samples, in ms.
func pct(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)))
	i = min(i, len(sorted)-1)
	return float64(sorted[i]) / 1e6
}

// publisher is one duplex.v1 connection publishing to the channel, with a
// window of publishes in flight.
type publisher struct {
	conn    *websocket.Conn
	channel string
	slots   chan struct{}
	mu      sync.Mutex
	sent    uint64
	answers uint64
	lastAt  int64
	errs    []string
	ended   chan struct{}
	endErr  error
	changed chan struct{}
}

func newPublisher(addr, channel string, window int) (*publisher, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, err
	}
	p := &publisher{conn: c, channel: channel, slots: make(chan struct{}, window), ended: make(chan struct{}), changed: make(chan struct{}, 1)}
	go p.read()
	return p, nil
}

// publish sends message seq (its id too) once a slot is free.
func (p *publisher) publish(seq uint64, size int) error {
	select {
	case p.slots <- struct{}{}:
	case <-p.ended:
		return fmt.Errorf("publisher connection ended: %v", p.endErr)
	}
	b := make([]byte, 0, 128+size)
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"op":"publish","channel":"`...)
	b = append(b, p.channel...)
	b = append(b, `","data":`...)
	b = appendData(b, seq, size)
	b = append(b, '}')
	p.mu.Lock()
	p.sent++
	p.mu.Unlock()
	return p.conn.Write(context.Background(), websocket.MessageText, b)
}

// appendData appends the message's data: {"s":seq,"t":now,"p":"xx…"}, padded
// to size bytes. The publish time is taken last, just before sending.
func appendData(b []byte, seq uint64, size int) []byte {
	start := len(b)
	b = append(b, `{"s":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, now(), 10)
	b = append(b, `,"p":"`...)
	for len(b)-start < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// pushBytes is the size of a message push for this channel and payload.
func (p *publisher) pushBytes(channel string, size int) int {
	return len(`{"op":"message","channel":"`+channel+`","offset":100,"epoch":"xxxxxxxxxxxx","data":}`) + size
}

func (p *publisher) read() {
	defer close(p.ended)
	for {
		_, msg, err := p.conn.Read(context.Background())
		if err != nil {
			p.endErr = err
			return
		}
		at := now()
		p.mu.Lock()
		p.answers++
		p.lastAt = at
		id, _ := number(msg, []byte(`{"id":`))
		off, ok := number(msg, keyOffset)
		if !bytes.Contains(msg, []byte(`"result":`)) || !ok || off == 0 {
			p.errs = append(p.errs, fmt.Sprintf("publish %d answered %.200s", id, msg))
		}
		p.mu.Unlock()
		<-p.slots
		select {
		case p.changed <- struct{}{}:
		default:
		}
	}
}

// wait waits until every publish sent is answered and returns when the
// last answer arrived.
func (p *publisher) wait(timeout time.Duration) int64 {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		done, at := p.answers == p.sent, p.lastAt
		p.mu.Unlock()
		if done {
			return at
		}
		select {
		case <-p.changed:
		case <-p.ended:
			return at
		case <-deadline:
			return at
		}
	}
}

func (p *publisher) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.errs)
	if p.answers != p.sent {
		out = append(out, fmt.Sprintf("publisher: %d publishes sent, %d answered", p.sent, p.answers))
	}
	return out
}

func report(r *results) {
	w := os.Stdout
	fmt.Fprintf(w, "\nmachine: %s; pinned: %v; presence: %v; send queue: %d\n", r.Machine, r.Pinned, r.Presence, r.SendQueue)
	fmt.Fprintf(w, "%-44s %s, %d node(s)\n", "broker", r.Broker, r.Nodes)
	if r.SoloPublishes > 0 {
		fmt.Fprintf(w, "%-44s %.0f/s (%.2f ms round trip)\n", "broker alone: publishes one at a time", r.SoloSequentialPerSec, r.SoloRoundTripMs)
		fmt.Fprintf(w, "%-44s %.0f/s (node CPU %.1f µs, broker CPU %.1f µs per publish)\n", fmt.Sprintf("  %d publishes, %d in flight", r.SoloPublishes, r.Window), r.SoloPipelinedPerSec, r.SoloNodeCPUUsPerPub, r.SoloBrokerCPUUsPerPub)
	}
	fmt.Fprintf(w, "%-44s %s\n", "subscribers", strconv.Itoa(r.Subscribers))
	fmt.Fprintf(w, "%-44s %.2f s (server RSS %.0f MiB after)\n", "subscribe all", r.SubscribeSeconds, r.ServerRSSMiB)
	if r.JoinsReceived > 0 {
		fmt.Fprintf(w, "%-44s %d\n", "join pushes received", r.JoinsReceived)
	}
	fmt.Fprintf(w, "%-44s %d × %d B data (push %d B), window %d\n", "throughput: messages", r.Messages, r.PayloadBytes, r.PushBytes, r.Window)
	fmt.Fprintf(w, "%-44s %.3f s\n", "  first publish to last receipt", r.ThroughputSeconds)
	fmt.Fprintf(w, "%-44s %.0f\n", "  publishes/s (answered)", r.PublishesPerSecond)
	fmt.Fprintf(w, "%-44s %.0f\n", "  deliveries/s", r.DeliveriesPerSec)
	fmt.Fprintf(w, "%-44s %.1f / %.1f ms\n", "  latency p50 / p99 (saturated)", r.ThroughputP50Ms, r.ThroughputP99Ms)
	fmt.Fprintf(w, "%-44s %.2f µs (load process %.2f µs)\n", "  server CPU per delivery", r.ServerCPUUsPerDel, r.LoadCPUUsPerDel)
	if r.BrokerCPUUsPerPub > 0 {
		fmt.Fprintf(w, "%-44s %.1f µs\n", "  broker CPU per publish", r.BrokerCPUUsPerPub)
	}
	fmt.Fprintf(w, "%-44s %.2f s\n", "  CPU taken by other processes meanwhile", r.OtherCPUSeconds)
	fmt.Fprintf(w, "%-44s %d at %.0f/s\n", "latency: messages", r.LatencyMessages, r.LatencyRate)
	fmt.Fprintf(w, "%-44s %.2f / %.2f / %.2f / %.2f ms\n", "  p50 / p99 / p99.9 / max", r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyP999Ms, r.LatencyMaxMs)
	fmt.Fprintf(w, "%-44s %.2f µs\n", "  server CPU per delivery", r.LatencyServerCPU)
	if r.LatencyBrokerCPU > 0 {
		fmt.Fprintf(w, "%-44s %.1f µs\n", "  broker CPU per publish", r.LatencyBrokerCPU)
	}
	if len(r.Failures) == 0 {
		fmt.Fprintln(w, "every subscriber received every message once, in order")
	}
	for _, f := range r.Failures {
		fmt.Fprintln(w, "FAIL:", f)
	}
}

// summary prints the runs of several brokers side by side as Markdown
// tables.
func summary(w io.Writer, rs []*results) {
	fmt.Fprintf(w, "\n%d subscribers, %d × %d B data, window %d\n\n", rs[0].Subscribers, rs[0].Messages, rs[0].PayloadBytes, rs[0].Window)
	fmt.Fprintln(w, "| broker | nodes | publishes/s alone, one at a time | round trip | publishes/s alone, pipelined | deliveries/s | publishes/s with fan-out | p50 / p99 saturated | node CPU per delivery | broker CPU per publish | other CPU |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %d | %.0f | %.2f ms | %.0f | %.0f | %.0f | %.0f / %.0f ms | %.2f µs | %s | %.2f s of %.2f s |\n",
			r.Broker, r.Nodes, r.SoloSequentialPerSec, r.SoloRoundTripMs, r.SoloPipelinedPerSec, r.DeliveriesPerSec, r.PublishesPerSecond,
			r.ThroughputP50Ms, r.ThroughputP99Ms, r.ServerCPUUsPerDel, brokerCPU(r.BrokerCPUUsPerPub), r.OtherCPUSeconds, r.ThroughputSeconds)
	}
	fmt.Fprintf(w, "\n| broker | rate | p50 | p99 | p99.9 | max | node CPU per delivery | broker CPU per publish |\n")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %.0f/s × %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f µs | %s |\n",
			r.Broker, r.LatencyRate, r.LatencyMessages, r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyP999Ms, r.LatencyMaxMs, r.LatencyServerCPU, brokerCPU(r.LatencyBrokerCPU))
	}
	for _, r := range rs {
		if len(r.Failures) > 0 {
			fmt.Fprintf(w, "%s: %d failures\n", r.Broker, len(r.Failures))
		}
	}
}

func brokerCPU(us float64) string {
	if us == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f µs", us)
}
