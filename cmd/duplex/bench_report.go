package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"sync"
	"text/tabwriter"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are kept in HDR histograms of microseconds, from 1 µs to one
// minute with three significant digits.
const (
	histMin    = 1
	histMax    = int64(time.Minute / time.Microsecond)
	histDigits = 3
	// recorderShards spreads the workers' recordings over a few locked
	// histograms, so that workers rarely wait for each other and a
	// progress line merges a few histograms, not one per connection.
	recorderShards = 16
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// recorder gathers the latencies of a run, per progress interval and in all.
type recorder struct {
	shards [recorderShards]workerRecorder
	next   int

	began chan struct{} // closed by begin

	mu        sync.Mutex // guards what follows
	total     *hdrhistogram.Histogram
	intervals []BenchInterval
	started   time.Time // when sending started; set by begin
}

// workerRecorder is the shard a worker records into.
type workerRecorder struct {
	mu   sync.Mutex
	hist *hdrhistogram.Histogram // since the last progress interval
}

func newRecorder() *recorder {
	r := &recorder{total: newHist(), began: make(chan struct{})}
	for i := range r.shards {
		r.shards[i].hist = newHist()
	}
	return r
}

// hasBegun reports whether begin was called: whether sending started.
func (r *recorder) hasBegun() bool {
	select {
	case <-r.began:
		return true
	default:
		return false
	}
}

// begin starts the recorder's clock at start, when every connection is
// open and sending starts: progress intervals and their times count from
// there, so that the handshakes do not show as a slow first interval. A
// mode calls it once.
func (r *recorder) begin(start time.Time) {
	r.mu.Lock()
	r.started = start
	r.mu.Unlock()
	close(r.began)
}

// sendingSince returns when sending started, and whether it did.
func (r *recorder) sendingSince() (time.Time, bool) {
	if !r.hasBegun() {
		return time.Time{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started, true
}

// worker returns the shard for the next worker.
func (r *recorder) worker() *workerRecorder {
	w := &r.shards[r.next%recorderShards]
	r.next++
	return w
}

// record adds one latency.
func (w *workerRecorder) record(d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < histMin {
		us = histMin
	} else if us > histMax {
		us = histMax
	}
	w.mu.Lock()
	w.hist.RecordValue(us)
	w.mu.Unlock()
}

// collect moves what the shards recorded since the last call into the
// total and returns it as one histogram. r.mu is held.
func (r *recorder) collect() *hdrhistogram.Histogram {
	h := newHist()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		h.Merge(s.hist)
		s.hist.Reset()
		s.mu.Unlock()
	}
	r.total.Merge(h)
	return h
}

// report writes a progress line to w every interval, from when begin is
// called until the returned function is.
func (r *recorder) report(w io.Writer, mode string, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-r.began:
		case <-done:
			return
		}
		r.mu.Lock()
		last := r.started
		r.mu.Unlock()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				r.mu.Lock()
				h := r.collect()
				iv := BenchInterval{
					At:      now.Sub(r.started).Seconds(),
					PerSec:  float64(h.TotalCount()) / now.Sub(last).Seconds(),
					P50us:   h.ValueAtQuantile(50),
					P99us:   h.ValueAtQuantile(99),
					P999us:  h.ValueAtQuantile(99.9),
					Count:   h.TotalCount(),
					Elapsed: now.Sub(last).Seconds(),
				}
				r.intervals = append(r.intervals, iv)
				r.mu.Unlock()
				last = now
				fmt.Fprintf(w, "%6.1fs  %s  %s %s/s  p50 %s  p99 %s  p99.9 %s\n", iv.At, mode, group(int64(math.Round(iv.PerSec))), unitOf(mode), us(iv.P50us), us(iv.P99us), us(iv.P999us))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// unitOf names what a mode counts.
func unitOf(mode string) string {
	if mode == "subscribe" {
		return "deliveries"
	}
	return "echoes"
}

// BenchResult is what `duplex bench` measured; --out writes it as JSON.
type BenchResult struct {
	// URL, Mode (echo or subscribe), Conns, Size (payload bytes), Rate
	// (asked for, 0: as fast as possible; echo: messages a second in
	// all, spread over the connections; subscribe: publishes a second,
	// each delivered to every subscriber), Text (text messages, echo
	// mode), Channel (subscribe mode) and Duration (seconds of sending)
	// repeat the run's settings, so that a results file says what it
	// measured.
	URL      string  `json:"url"`
	Mode     string  `json:"mode"`
	Conns    int     `json:"conns"`
	Size     int     `json:"size"`
	Rate     float64 `json:"rate"`
	Text     bool    `json:"text,omitempty"`
	Channel  string  `json:"channel,omitempty"`
	Duration float64 `json:"duration_s"`
	// Sent counts messages sent (echo) or publishes acknowledged
	// (subscribe); Received the echoes or deliveries that came back
	// checked, ReceivedWhileSending those of them that came within
	// Duration (not during the drain); Expected what Received should be;
	// Lost the difference.
	Sent                 int64 `json:"sent"`
	Received             int64 `json:"received"`
	ReceivedWhileSending int64 `json:"received_while_sending"`
	Expected             int64 `json:"expected"`
	Lost                 int64 `json:"lost"`
	Errors               int64 `json:"errors"`
	// PerSec is ReceivedWhileSending per second of Duration: what came
	// during the drain is left out, as the drain's time is not in
	// Duration and counting it would inflate the rate. MBPerSec is the
	// same in payload bytes (10^6).
	PerSec   float64 `json:"per_sec"`
	MBPerSec float64 `json:"mb_per_sec"`
	// Latency is in microseconds: of each echo from when its message was
	// due, or of each delivery from when its publish was due.
	Latency LatencySummary `json:"latency_us"`
	// Intervals are the progress lines' figures, one per --progress;
	// Distribution is the latency at the percentiles of
	// distributionPoints (what --plot draws); Notes are the first faults
	// seen (a changed, late or lost message, a failed connection).
	Intervals    []BenchInterval `json:"intervals"`
	Distribution []Percentile    `json:"distribution"`
	Notes        []string        `json:"notes,omitempty"`
	// Interrupted says that a signal (SIGINT, SIGTERM) stopped sending
	// before Duration was up: the figures are what was measured until
	// then, Duration the time sending ran.
	Interrupted bool `json:"interrupted,omitempty"`
}

// LatencySummary is the latency distribution in a few numbers, the ones
// the final table shows: the minimum, the percentiles 50 to 99.99, the
// maximum and the mean, in microseconds.
type LatencySummary struct {
	Min   int64   `json:"min"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	P9999 int64   `json:"p9999"`
	Max   int64   `json:"max"`
	Mean  float64 `json:"mean"`
}

// BenchInterval is one progress interval: when it ended (At, seconds
// since sending started, after every connection was open) and how long
// it lasted, how many echoes or deliveries it had and their rate, and its
// latency percentiles in microseconds, so that a stall shows in time
// rather than averaged away.
type BenchInterval struct {
	At      float64 `json:"at_s"`
	Elapsed float64 `json:"elapsed_s"`
	Count   int64   `json:"count"`
	PerSec  float64 `json:"per_sec"`
	P50us   int64   `json:"p50_us"`
	P99us   int64   `json:"p99_us"`
	P999us  int64   `json:"p999_us"`
}

// Percentile is one point of the latency distribution: the latency in
// microseconds (Micros) below which that percentage of the messages came.
type Percentile struct {
	Percentile float64 `json:"percentile"`
	Micros     int64   `json:"latency_us"`
}

// distributionPoints are the percentiles the distribution reports: dense
// near the tail, where latency problems live.
var distributionPoints = []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 97.5, 98, 98.5, 99, 99.25, 99.5, 99.75, 99.9, 99.95, 99.99, 99.995, 99.999, 100}

// result closes the recording and summarises the run.
func (r *recorder) result(cfg benchConfig, run *benchRun) *BenchResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collect()
	h := r.total
	res := &BenchResult{
		URL: cfg.URL, Mode: cfg.Mode, Conns: cfg.Conns, Size: cfg.Size, Rate: cfg.Rate, Text: cfg.Text,
		Duration: run.Elapsed.Seconds(), Sent: run.Sent, Received: run.Received, ReceivedWhileSending: run.WhileSending,
		Expected: run.Expected, Errors: run.Errors, Intervals: r.intervals, Notes: run.Notes,
	}
	if cfg.Mode == "subscribe" {
		res.Channel = cfg.Channel
	}
	if res.Intervals == nil {
		res.Intervals = []BenchInterval{}
	}
	if run.Expected > run.Received {
		res.Lost = run.Expected - run.Received
	}
	if s := run.Elapsed.Seconds(); s > 0 {
		res.PerSec = float64(run.WhileSending) / s
		res.MBPerSec = res.PerSec * float64(cfg.Size) / 1e6
	}
	if h.TotalCount() > 0 {
		res.Latency = LatencySummary{
			Min: h.Min(), P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
			P999: h.ValueAtQuantile(99.9), P9999: h.ValueAtQuantile(99.99), Max: h.Max(), Mean: h.Mean(),
		}
		for _, p := range distributionPoints {
			res.Distribution = append(res.Distribution, Percentile{Percentile: p, Micros: h.ValueAtQuantile(p)})
		}
	}
	return res
}

// writeBenchTable writes the final table.
func writeBenchTable(w io.Writer, r *BenchResult) {
	// The rate row says what --rate counts, which differs by mode.
	rate := "as fast as possible"
	switch {
	case r.Rate > 0 && r.Mode == "subscribe":
		rate = fmt.Sprintf("%g publishes/s (%g deliveries/s to %d subscribers)", r.Rate, r.Rate*float64(r.Conns), r.Conns)
	case r.Rate > 0:
		rate = fmt.Sprintf("%g messages/s in all (spread over %d connections)", r.Rate, r.Conns)
	}
	kind := "binary"
	if r.Text || r.Mode == "subscribe" {
		kind = "text"
	}
	fmt.Fprintf(w, "duplex bench %s\n", r.URL)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "mode\t%s\n", r.Mode)
	if r.Mode == "subscribe" {
		fmt.Fprintf(tw, "channel\t%s\n", r.Channel)
		fmt.Fprintf(tw, "subscribers\t%d\n", r.Conns)
	} else {
		fmt.Fprintf(tw, "connections\t%d\n", r.Conns)
	}
	fmt.Fprintf(tw, "message\t%d B %s\n", r.Size, kind)
	fmt.Fprintf(tw, "rate\t%s\n", rate)
	if r.Interrupted {
		fmt.Fprintf(tw, "duration\t%.2f s (interrupted)\n", r.Duration)
	} else {
		fmt.Fprintf(tw, "duration\t%.2f s\n", r.Duration)
	}
	if r.Mode == "subscribe" {
		fmt.Fprintf(tw, "published\t%s\n", group(r.Sent))
		fmt.Fprintf(tw, "delivered\t%s of %s\n", group(r.Received), group(r.Expected))
	} else {
		fmt.Fprintf(tw, "sent\t%s\n", group(r.Sent))
		fmt.Fprintf(tw, "echoed\t%s of %s\n", group(r.Received), group(r.Expected))
	}
	verb := "echoed"
	if r.Mode == "subscribe" {
		verb = "delivered"
	}
	fmt.Fprintf(tw, "throughput\t%s %s/s, %.2f MB/s (counting the %s %s while sending)\n", group(int64(math.Round(r.PerSec))), unitOf(r.Mode), r.MBPerSec, group(r.ReceivedWhileSending), verb)
	l := r.Latency
	fmt.Fprintf(tw, "latency\tmin %s  p50 %s  p90 %s  p99 %s  p99.9 %s  p99.99 %s  max %s\n", us(l.Min), us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.P9999), us(l.Max))
	fmt.Fprintf(tw, "lost\t%s\n", group(r.Lost))
	fmt.Fprintf(tw, "errors\t%s\n", group(r.Errors))
	tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
}

// us formats a latency in microseconds.
func us(v int64) string {
	switch {
	case v >= 1_000_000:
		return fmt.Sprintf("%.2f s", float64(v)/1e6)
	case v >= 1_000:
		return fmt.Sprintf("%.2f ms", float64(v)/1e3)
	}
	return fmt.Sprintf("%d µs", v)
}

// group formats n with thin groups of three digits, as 1 234 567.
func group(n int64) string {
	s := fmt.Sprint(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var b bytes.Buffer
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// latencySVG plots the latency distribution the way HDR histograms are
// read: latency against percentile, the percentile axis stretched so that
// 90, 99, 99.9 and 99.99 are evenly spaced.
func latencySVG(r *BenchResult) []byte {
	const (
		w, h                   = 720, 420
		left, right, top, bott = 70, 20, 40, 50
	)
	pw, ph := float64(w-left-right), float64(h-top-bott)
	maxNines := 5.0 // up to 99.999 %
	x := func(p float64) float64 {
		n := 0.0
		if p < 100 {
			n = -math.Log10(1 - p/100)
		} else {
			n = maxNines
		}
		return float64(left) + pw*math.Min(n, maxNines)/maxNines
	}
	var maxUS int64 = 1
	for _, p := range r.Distribution {
		if p.Micros > maxUS {
			maxUS = p.Micros
		}
	}
	ymax := niceCeil(float64(maxUS))
	y := func(v float64) float64 { return float64(top) + ph*(1-v/ymax) }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	title := fmt.Sprintf("duplex bench %s: %d %s, %d B, %s %s/s", r.Mode, r.Conns, map[bool]string{true: "subscribers", false: "connections"}[r.Mode == "subscribe"], r.Size, group(int64(math.Round(r.PerSec))), unitOf(r.Mode))
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="14">%s</text>`+"\n", left, xmlEscape(title))
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, xmlEscape(us(int64(v))))
	}
	for i, label := range []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"} {
		px := float64(left) + pw*float64(i)/maxNines
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>`+"\n", px, px, top, h-bott)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px, h-bott+18, label)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">percentile</text>`+"\n", left+int(pw/2), h-8)
	fmt.Fprintf(&b, `<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">latency</text>`+"\n", top+int(ph/2), top+int(ph/2))
	b.WriteString(`<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="`)
	for i, p := range r.Distribution {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", x(p.Percentile), y(float64(p.Micros)))
	}
	b.WriteString("\"/>\n</svg>\n")
	return b.Bytes()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// xmlEscape escapes s for SVG text.
func xmlEscape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
