package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The broadcast scenario (-broadcast NxS): N subscriber connections to
// the server's /sub, then one publisher connection to /pub that sends
// S-byte binary messages, each of which the server delivers to every
// subscriber. The publisher keeps at most -bcast-window messages that not
// every subscriber has received yet, for -warmup and then -duration.
//
// Each payload carries its sequence number and its send time (nanoseconds
// on this process's monotonic clock, so publish-to-receipt is one clock's
// difference), then fixed filler bytes. Every subscriber must receive
// every message exactly once, in order, byte for byte: a missing,
// repeated, reordered or changed message, a frame of another kind, a
// close, or no progress for bcastStall fails the scenario with an error
// naming the subscriber and the message.
//
// The subscribers are read by a few epoll loops of this process (one per
// GOMAXPROCS, at most 4), not a goroutine each: each loop reads every
// ready socket once into one 64 KiB buffer, so a read takes everything a
// subscriber has been sent since the last one. The subscribers' sockets
// count against this process's open-file limit (20000 here, so up to
// 15000 subscribers); the load generator's CPU is reported next to the
// server's, which, per delivery, is the figure that compares servers.

// bcastSpec is one broadcast scenario: Subs subscribers, Size-byte
// messages.
type bcastSpec struct{ Subs, Size int }

// String is the scenario as the -broadcast flag spells it,
// SUBSCRIBERSxSIZE, so that logs name it the way it is asked for.
func (b bcastSpec) String() string { return fmt.Sprintf("%dx%d", b.Subs, b.Size) }

// Paths, subprotocols and greeting of bench/echoserver's broadcast
// endpoint (see its broadcast.go).
const (
	bcastSubPath  = "/sub"
	bcastPubPath  = "/pub"
	bcastSubProto = "bench.sub"
	bcastPubProto = "bench.pub"
	bcastGreeting = "subscribed"

	// bcastHeader is the payload's sequence number and send time.
	bcastHeader = 16
	// bcastMaxSubs bounds -broadcast's N: one process here may open about
	// 20000 files.
	bcastMaxSubs = 15000
	// bcastStallDefault is how long the scenario waits for a message to
	// reach every subscriber before it fails.
	bcastStallDefault = 10 * time.Second
)

// parseBroadcast parses -broadcast: NxS scenarios, comma-separated.
func parseBroadcast(s string) ([]bcastSpec, error) {
	var out []bcastSpec
	for _, f := range splitList(s) {
		n, sz, ok := strings.Cut(f, "x")
		ni, err1 := strconv.Atoi(n)
		si, err2 := strconv.Atoi(sz)
		switch {
		case !ok || err1 != nil || err2 != nil:
			return nil, fmt.Errorf("bad -broadcast scenario %q (want SUBSCRIBERSxSIZE)", f)
		case ni < 1 || ni > bcastMaxSubs:
			return nil, fmt.Errorf("bad -broadcast scenario %q: 1 to %d subscribers (one process may open about 20000 files)", f, bcastMaxSubs)
		case si < bcastHeader || si > 1<<20:
			return nil, fmt.Errorf("bad -broadcast scenario %q: messages of %d bytes (sequence number and send time) to 1 MiB", f, bcastHeader)
		}
		out = append(out, bcastSpec{ni, si})
	}
	return out, nil
}

// BCResult is one library in one broadcast scenario.
type BCResult struct {
	Lib              string  `json:"lib"`
	Round            int     `json:"round"`
	Subs             int     `json:"subscribers"`
	Size             int     `json:"size"`
	Window           int     `json:"window"`
	Seconds          float64 `json:"seconds"`
	Messages         uint64  `json:"messages"`
	MsgsPerSec       float64 `json:"msgs_per_s"`
	Deliveries       uint64  `json:"deliveries"`
	DeliveriesPerSec float64 `json:"deliveries_per_s"`
	P50us            float64 `json:"p50_us"`
	P99us            float64 `json:"p99_us"`
	P999us           float64 `json:"p999_us"`
	ServerCPUPct     float64 `json:"server_cpu_pct"`
	ServerUsDelivery float64 `json:"server_us_per_delivery"`
	PerCore          float64 `json:"deliveries_per_server_core_s"`
	ClientCPUPct     float64 `json:"client_cpu_pct"`
	OtherCPUSec      float64 `json:"other_cpu_s"`
	ServerRSSKiB     float64 `json:"server_rss_kib"`
	LoadAvg          float64 `json:"loadavg"`
	Error            string  `json:"error,omitempty"`

	// Filled by summarize: rounds merged and the range of deliveries/s.
	Runs           int     `json:"-"`
	DelMin, DelMax float64 `json:"-"`
}

// runBroadcasts runs every broadcast scenario of cfg against every library
// in order, one fresh server each, appending to res.
func runBroadcasts(cfg *config, res *Results, round int, order []string, note func(lib, what string, err error) string) {
	for _, b := range cfg.broadcast {
		for _, lib := range order {
			logf("round %d: %s broadcast %s (window %d)", round, lib, b, cfg.bcastWindow)
			r, err := withServer(cfg, lib, func(s *server) (BCResult, error) { return runBroadcast(cfg, s, b) })
			r.Lib, r.Subs, r.Size, r.Window, r.Round = lib, b.Subs, b.Size, cfg.bcastWindow, round
			if err != nil {
				r.Error = note(lib, "broadcast "+b.String(), err)
			}
			logf("  %.0f deliveries/s, p50 %.0f µs, p99 %.0f µs, server %.3f µs/delivery (%.0f /s per core, %.0f %% CPU), client %.0f %% CPU, other %.1f s",
				r.DeliveriesPerSec, r.P50us, r.P99us, r.ServerUsDelivery, r.PerCore, r.ServerCPUPct, r.ClientCPUPct, r.OtherCPUSec)
			res.Broadcast = append(res.Broadcast, r)
		}
	}
}

// bcastTitle names a broadcast scenario in the report.
func bcastTitle(subs, size int) string {
	return fmt.Sprintf("%s subscribers × %s", count(subs), sizeName(size))
}

// bcastKey is the scenario of a broadcast result.
func bcastKey(r BCResult) bcastSpec { return bcastSpec{r.Subs, r.Size} }

// bcastScenarios returns the broadcast scenarios of res in their order.
func bcastScenarios(res *Results) []bcastSpec { return distinctKeys(res.Broadcast, bcastKey) }

// bcastRows returns the results of broadcast scenario s, in order.
func bcastRows(res *Results, s bcastSpec) []BCResult { return rowsWithKey(res.Broadcast, bcastKey, s) }

// bcastMarkdown returns the report's broadcast tables (res summarized,
// raw its rounds for the ratios' intervals)
// and the rows of the Duplex-against-best-peer table: what, Duplex,
// best peer, peer, ratio.
func bcastMarkdown(res, raw *Results) (string, [][5]string) {
	var b strings.Builder
	var sum [][5]string
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	for _, s := range bcastScenarios(res) {
		rows := bcastRows(res, s)
		w("#### Broadcast, %s\n\n", bcastTitle(s.Subs, s.Size))
		w("One publisher; each of its binary messages goes to every subscriber; at most %d messages not yet received by every subscriber. ", rows[0].Window)
		w("Latency is from the publisher's write to a subscriber's read; \"server µs/delivery\" is the server's CPU time over the deliveries, and per core its inverse.\n\n")
		rng, rngSep := "", ""
		if res.Rounds > 1 {
			rng, rngSep = " range |", " ---: |"
		}
		w("| library | deliveries/s |%s messages/s | p50 µs | p99 µs | p99.9 µs | server µs/delivery | deliveries/s per server core | server CPU | client CPU | server RSS | other CPU |\n", rng)
		w("| --- | ---: |%s ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n", rngSep)
		for _, r := range rows {
			if r.Error != "" {
				w("| %s | failed: %s | | | | | | | | | | |\n", r.Lib, strings.ReplaceAll(r.Error, "|", "/"))
				continue
			}
			if res.Rounds > 1 {
				rng = fmt.Sprintf(" %s–%s |", num(r.DelMin), num(r.DelMax))
			}
			w("| %s | %s |%s %s | %s | %s | %s | %s | %s | %.0f %% | %.0f %% | %.1f MiB | %.1f s |\n", r.Lib,
				num(r.DeliveriesPerSec), rng, num(r.MsgsPerSec), num(r.P50us), num(r.P99us), num(r.P999us),
				num(r.ServerUsDelivery), num(r.PerCore), r.ServerCPUPct, r.ClientCPUPct, r.ServerRSSKiB/1024, r.OtherCPUSec)
		}
		title := "broadcast, " + bcastTitle(s.Subs, s.Size)
		rawRows := bcastRows(raw, s)
		if us, peer, iv, ok := bcKind.compare(rows, rawRows, func(r BCResult) float64 { return r.DeliveriesPerSec }, true); ok {
			w("\nDuplex (%s) ÷ best peer: deliveries/s %s%s (best: %s)", us.Lib, ratio(us.DeliveriesPerSec, peer.DeliveriesPerSec), iv, peer.Lib)
			sum = append(sum, [5]string{title + ": deliveries/s", ourValue(num(us.DeliveriesPerSec), us.Lib), num(peer.DeliveriesPerSec), peer.Lib, ratio(us.DeliveriesPerSec, peer.DeliveriesPerSec) + iv})
		}
		if us, peer, iv, ok := bcKind.compare(rows, rawRows, func(r BCResult) float64 { return r.PerCore }, true); ok {
			w("; deliveries per second per server core %s%s (%s against %s, higher is better).\n\n", ratio(us.PerCore, peer.PerCore), iv, us.Lib, peer.Lib)
			sum = append(sum, [5]string{title + ": deliveries/s per server core", ourValue(num(us.PerCore), us.Lib), num(peer.PerCore), peer.Lib, ratio(us.PerCore, peer.PerCore) + iv})
		} else {
			w("\n")
		}
	}
	return b.String(), sum
}

// bcastPlotFile is the broadcast chart, relative to the plots directory.
const bcastPlotFile = "sbs-broadcast.svg"

// bcastDocLinks returns the Markdown that shows the broadcast chart, or ""
// when res has no broadcast results.
func bcastDocLinks(res *Results) string {
	if len(res.Broadcast) == 0 {
		return ""
	}
	return fmt.Sprintf("![Broadcast: deliveries per second, per server core, and p99 latency](plots/%s)\n\n", bcastPlotFile)
}

// bcastPlot draws, per scenario, deliveries/s, deliveries/s per server
// core and p99 latency (res summarized).
func bcastPlot(res *Results) []byte {
	var ps []panel
	for _, s := range bcastScenarios(res) {
		rows := bcastRows(res, s)
		for _, m := range []struct {
			what string
			f    func(BCResult) float64
		}{
			{"deliveries/s, higher is better", func(r BCResult) float64 { return r.DeliveriesPerSec }},
			{"deliveries/s per server core, higher is better", func(r BCResult) float64 { return r.PerCore }},
			{"p99 publish-to-receipt µs, lower is better", func(r BCResult) float64 { return r.P99us }},
		} {
			p := panel{title: bcastTitle(s.Subs, s.Size) + ": " + m.what}
			for _, r := range rows {
				p.labels = append(p.labels, r.Lib)
				p.values = append(p.values, m.f(r))
				p.failed = append(p.failed, r.Error != "")
			}
			ps = append(ps, p)
		}
	}
	return barChart("Broadcast to subscribers", "", ps)
}

// mergeBroadcast merges the rounds of broadcast results into medians,
// with the range of deliveries/s.
func mergeBroadcast(rows []BCResult) []BCResult {
	return mergeRounds(rows,
		func(r BCResult) string { return fmt.Sprintf("%s %d %d", r.Lib, r.Subs, r.Size) },
		func(r BCResult) bool { return r.Error != "" },
		func(r *BCResult) []*float64 {
			return []*float64{&r.DeliveriesPerSec, &r.MsgsPerSec, &r.P50us, &r.P99us, &r.P999us, &r.ServerCPUPct,
				&r.ServerUsDelivery, &r.PerCore, &r.ClientCPUPct, &r.OtherCPUSec, &r.ServerRSSKiB, &r.LoadAvg}
		},
		func(m *BCResult, ok []BCResult) {
			m.Runs = len(ok)
			m.DelMin, m.DelMax = ok[0].DeliveriesPerSec, ok[0].DeliveriesPerSec
			for _, r := range ok {
				m.DelMin, m.DelMax = min(m.DelMin, r.DeliveriesPerSec), max(m.DelMax, r.DeliveriesPerSec)
			}
		})
}
