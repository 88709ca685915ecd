package main

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The report: Markdown tables (printed, and written between the markers
// below in docs/benchmarks.md) and SVG bar charts drawn by hand.

const (
	beginMarker = "<!-- bench/load results: begin (written by `go run ./load -doc`, do not edit by hand) -->"
	endMarker   = "<!-- bench/load results: end -->"
)

// ours is the library the ratios are about.
const ours = "duplex"

// plotFiles are the charts writePlots makes, relative to the plots
// directory.
var plotFiles = struct{ rate, cpu, p99, conn string }{
	"sbs-echo-rate.svg", "sbs-echo-cpu.svg", "sbs-echo-p99.svg", "sbs-connections.svg",
}

func sizeName(n int) string {
	switch {
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func echoTitle(conns, size int) string {
	return fmt.Sprintf("%d connections × %s", conns, sizeName(size))
}

// num formats v with thousands separators and about 3 significant digits.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		s := fmt.Sprintf("%.0f", v)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteString(" ")
			}
			b.WriteRune(c)
		}
		return b.String()
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// count formats a whole number like num but never with decimals: num
// gives 50 connections as "50.0".
func count(n int) string {
	if n > -100 && n < 100 {
		return strconv.Itoa(n)
	}
	return num(float64(n))
}

// distinctKeys returns the distinct keys of rows in the order they first
// appear: the scenarios of a table of results, in the order they ran.
func distinctKeys[R any, K comparable](rows []R, key func(R) K) []K {
	var out []K
	seen := map[K]bool{}
	for _, r := range rows {
		k := key(r)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// rowsWithKey returns, in order, the rows whose key is k: the results of
// one scenario.
func rowsWithKey[R any, K comparable](rows []R, key func(R) K, k K) []R {
	var out []R
	for _, r := range rows {
		if key(r) == k {
			out = append(out, r)
		}
	}
	return out
}

// echoKey is the scenario of an echo result.
func echoKey(e EchoResult) echoSpec { return echoSpec{e.Conns, e.Size} }

// scenarios returns the echo scenarios of res in their order.
func scenarios(res *Results) []echoSpec { return distinctKeys(res.Echo, echoKey) }

// echoRows returns the results of echo scenario s, in order.
func echoRows(res *Results, s echoSpec) []EchoResult { return rowsWithKey(res.Echo, echoKey, s) }

// isOurs reports whether lib is one of Duplex's servers: "duplex" (the
// net/http Conn API) or a mode named "duplex-…" (duplex-eventloop). The
// ratios compare the best of them with the best peer, so that a mode of
// ours is never counted as a peer.
func isOurs(lib string) bool { return lib == ours || strings.HasPrefix(lib, ours+"-") }

// best returns the best of ours and the best peer by f (higher is better
// when high), ignoring failed rows.
func best[T any](rows []T, lib func(T) string, failed func(T) bool, f func(T) float64, high bool) (us T, peer T, okUs, okPeer bool) {
	better := func(a, b T) bool { return (high && f(a) > f(b)) || (!high && f(a) < f(b)) }
	for _, r := range rows {
		if failed(r) {
			continue
		}
		if isOurs(lib(r)) {
			if !okUs || better(r, us) {
				us, okUs = r, true
			}
			continue
		}
		if !okPeer || better(r, peer) {
			peer, okPeer = r, true
		}
	}
	return
}

// ourValue is a figure of ours for the summary, naming the mode when it is
// not the default one.
func ourValue(v, lib string) string {
	if lib == ours {
		return v
	}
	return v + " (" + lib + ")"
}

// seconds formats a setting in seconds: 1, 0.5.
func seconds(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) }

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func markdown(res *Results) string {
	raw := res
	res = summarize(res)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	pin := "unpinned: servers and load generator share every core"
	if res.Pinned {
		pin = fmt.Sprintf("each server pinned to CPU %d and the load generator to CPU %d (`taskset`), GOMAXPROCS 1 on both sides", res.ServerCPU, res.LoadCPU)
	}
	w("Run of %s on %s; %s. Every echo scenario had %s s of warm-up, then %s s measured; ", res.Date, res.Machine, pin, seconds(res.Warmup), seconds(res.Duration))
	w("a fresh server process for every scenario. Binary messages (so no library validates UTF-8). ")
	w("\"client CPU\" is the load generator's share of its core: near 100 %% it, not the server, sets the pace. ")
	w("\"other CPU\" is what the rest of the machine took during the measured window (CPU seconds).")
	if res.Rounds > 1 {
		w(" Everything ran %d times, scenario by scenario with the libraries one after the other, each round starting with the next library; every figure is the median of the rounds, and \"range\" gives the lowest and highest messages/s. "+
			"A ratio of ours to the best peer is followed by its 95 %% interval: the rounds drawn again with replacement %d times, "+
			"each library keeping its figure of each drawn round, and the ratio of the medians taken again each time; "+
			"the interval holds the middle 95 %% of those ratios (with fewer than %d rounds there is none).", res.Rounds, bootstrapDraws, minIntervalRounds)
	}
	w("\n\n")

	type summary struct{ what, us, peer, peerLib, ratio string }
	var sum []summary

	for _, s := range scenarios(res) {
		rows := echoRows(res, s)
		w("#### Echo, %s\n\n", echoTitle(s.Conns, s.Size))
		rng, rngSep := "", ""
		if res.Rounds > 1 {
			rng, rngSep = " range |", " ---: |"
		}
		w("| library | messages/s |%s MB/s | p50 µs | p99 µs | p99.9 µs | server µs/msg | server CPU | client CPU | server RSS | allocs/msg | alloc B/msg | other CPU |\n", rng)
		w("| --- | ---: |%s ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n", rngSep)
		for _, r := range rows {
			if r.Error != "" {
				w("| %s | failed: %s | | | | | | | | | | | |\n", r.Lib, strings.ReplaceAll(r.Error, "|", "/"))
				continue
			}
			if res.Rounds > 1 {
				rng = fmt.Sprintf(" %s–%s |", num(r.MsgsMin), num(r.MsgsMax))
			}
			w("| %s | %s |%s %s | %s | %s | %s | %s | %.0f %% | %.0f %% | %.1f MiB |%s %.1f s |\n", r.Lib,
				num(r.MsgsPerSec), rng, num(r.MBPerSec), num(r.P50us), num(r.P99us), num(r.P999us),
				num(r.ServerUsMsg), r.ServerCPUPct, r.ClientCPUPct, r.ServerRSSKiB/1024, allocCells(r), r.OtherCPUSec)
		}
		rawRows := echoRows(raw, s)
		if us, peer, iv, ok := echoKind.compare(rows, rawRows, func(r EchoResult) float64 { return r.MsgsPerSec }, true); ok {
			w("\nDuplex (%s) ÷ best peer: messages/s %s%s (best: %s)", us.Lib, ratio(us.MsgsPerSec, peer.MsgsPerSec), iv, peer.Lib)
			sum = append(sum, summary{echoTitle(s.Conns, s.Size) + ": messages/s", ourValue(num(us.MsgsPerSec), us.Lib), num(peer.MsgsPerSec), peer.Lib, ratio(us.MsgsPerSec, peer.MsgsPerSec) + iv})
		}
		if us, peer, iv, ok := echoKind.compare(rows, rawRows, func(r EchoResult) float64 { return r.ServerUsMsg }, false); ok {
			w("; server CPU per message %s%s (%s against %s, lower is better)", ratio(us.ServerUsMsg, peer.ServerUsMsg), iv, us.Lib, peer.Lib)
			sum = append(sum, summary{echoTitle(s.Conns, s.Size) + ": server µs per message", ourValue(num(us.ServerUsMsg), us.Lib), num(peer.ServerUsMsg), peer.Lib, ratio(us.ServerUsMsg, peer.ServerUsMsg) + iv})
		}
		if s.Conns >= 10000 {
			perConn := func(r EchoResult) float64 { return r.ServerRSSKiB * 1024 / float64(s.Conns) }
			if us, peer, iv, ok := echoKind.compare(rows, rawRows, perConn, false); ok {
				w("; server RSS per active connection %s%s (%s: %s bytes, %s: %s bytes)", ratio(perConn(us), perConn(peer)), iv, us.Lib, num(perConn(us)), peer.Lib, num(perConn(peer)))
				sum = append(sum, summary{echoTitle(s.Conns, s.Size) + ": server RSS bytes per active connection", ourValue(num(perConn(us)), us.Lib), num(perConn(peer)), peer.Lib, ratio(perConn(us), perConn(peer)) + iv})
			}
		}
		w(".\n\n")
	}

	for _, r := range compressMarkdown(w, res, raw) {
		sum = append(sum, summary(r))
	}

	bmd, brows := bcastMarkdown(res, raw)
	w("%s", bmd)
	for _, r := range brows {
		sum = append(sum, summary{r[0], r[1], r[2], r[3], r[4]})
	}

	if len(res.Handshake) > 0 {
		w("#### Connections per second (open, upgrade, close)\n\n")
		w("Each of %d workers in a loop: TCP connect, opening handshake, a close frame, wait for the server to close.", hsWorkers(res.Handshake))
		if res.Rounds > 1 {
			w(" \"failures\" counts the failed cycles of every round; a round with a failure is left out of the medians, unless every round of the library had one.")
		}
		w("\n\n")
		w("| library | connections/s | p50 µs | p99 µs | server µs/connection | server CPU | client CPU | failures |\n")
		w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, r := range res.Handshake {
			if r.Error != "" && r.Count == 0 {
				w("| %s | failed: %s | | | | | | |\n", r.Lib, strings.ReplaceAll(r.Error, "|", "/"))
				continue
			}
			w("| %s | %s | %s | %s | %s | %.0f %% | %.0f %% | %d |\n", r.Lib, num(r.PerSec), num(r.P50us), num(r.P99us),
				num(r.ServerUsConn), r.ServerCPUPct, r.ClientCPUPct, r.Failures)
		}
		if us, peer, iv, ok := hsKind.compare(res.Handshake, raw.Handshake, func(r HSResult) float64 { return r.PerSec }, true); ok {
			w("\nDuplex (%s) ÷ best peer: connections/s %s%s (best: %s).\n", us.Lib, ratio(us.PerSec, peer.PerSec), iv, peer.Lib)
			sum = append(sum, summary{"connections/s", ourValue(num(us.PerSec), us.Lib), num(peer.PerSec), peer.Lib, ratio(us.PerSec, peer.PerSec) + iv})
		}
		w("\n")
	}

	if len(res.Idle) > 0 {
		counts := res.Idle[0].Counts
		w("#### Idle connections\n\n")
		w("Server RSS after a forced garbage collection (`runtime.GC` and `debug.FreeOSMemory` on SIGUSR1), with no connection and at each count; ")
		w("the slope is the RSS difference between the first and last count per connection, and the projection multiplies it by 10⁶.\n\n")
		w("| library | RSS, 0 conns |")
		for _, c := range counts {
			w(" RSS, %s conns |", count(c))
		}
		w(" slope, bytes/conn | projected for 1M conns |\n| --- | ---: |")
		for range counts {
			w(" ---: |")
		}
		w(" ---: | ---: |\n")
		for _, r := range res.Idle {
			if r.Error != "" {
				w("| %s | failed: %s |\n", r.Lib, strings.ReplaceAll(r.Error, "|", "/"))
				continue
			}
			w("| %s | %.1f MiB |", r.Lib, r.BaseRSSKiB/1024)
			for _, v := range r.RSSKiB {
				w(" %.1f MiB |", v/1024)
			}
			w(" %s | %.1f GiB |\n", num(r.SlopeBytes), r.SlopeBytes*1e6/(1<<30))
		}
		if us, peer, iv, ok := idleKind.compare(res.Idle, raw.Idle, func(r IdleResult) float64 { return r.SlopeBytes }, false); ok {
			w("\nDuplex (%s) ÷ best peer: bytes per idle connection %s%s (best: %s, lower is better).\n", us.Lib, ratio(us.SlopeBytes, peer.SlopeBytes), iv, peer.Lib)
			sum = append(sum, summary{"idle: bytes per connection", ourValue(num(us.SlopeBytes), us.Lib), num(peer.SlopeBytes), peer.Lib, ratio(us.SlopeBytes, peer.SlopeBytes) + iv})
		}
		w("\n")
	}

	if len(sum) > 0 {
		w("#### Duplex against the best peer, per scenario\n\n")
		w("| scenario | Duplex | best peer | peer | Duplex ÷ peer |\n| --- | ---: | ---: | --- | ---: |\n")
		for _, s := range sum {
			w("| %s | %s | %s | %s | %s |\n", s.what, s.us, s.peer, s.peerLib, s.ratio)
		}
		w("\n")
	}
	if len(res.Errors) > 0 {
		w("Errors during the run:\n\n")
		for _, e := range res.Errors {
			w("- %s\n", e)
		}
		w("\n")
	}
	return b.String()
}

// writeDoc replaces the text between the markers in the Markdown file at
// path with the report and links to the plots.
func writeDoc(res *Results, path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i := bytes.Index(doc, []byte(beginMarker))
	j := bytes.Index(doc, []byte(endMarker))
	if i < 0 || j < i {
		return errors.New("the results markers are missing; put them where the results belong:\n" + beginMarker + "\n" + endMarker)
	}
	var b bytes.Buffer
	b.Write(doc[:i+len(beginMarker)])
	b.WriteString("\n\n")
	b.WriteString(markdown(res))
	fmt.Fprintf(&b, "![Echo messages per second, per scenario and library](plots/%s)\n\n", plotFiles.rate)
	fmt.Fprintf(&b, "![Server CPU per echoed message](plots/%s)\n\n", plotFiles.cpu)
	fmt.Fprintf(&b, "![p99 round-trip latency](plots/%s)\n\n", plotFiles.p99)
	fmt.Fprintf(&b, "![Connections per second and bytes per idle connection](plots/%s)\n\n", plotFiles.conn)
	if allocPlot(summarize(res)) != nil {
		fmt.Fprintf(&b, "![Server heap allocations per echoed message](plots/%s)\n\n", allocPlotFile)
	}
	b.WriteString(bcastDocLinks(res))
	b.Write(doc[j:])
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// panel is one group of bars.
type panel struct {
	title  string
	labels []string
	values []float64
	failed []bool
}

// barChart draws panels of horizontal bars, one bar per library, each
// panel scaled to its own largest value (of the rows that did not fail;
// a failed row says "failed" instead of a bar). Our bar has its own
// colour.
func barChart(title, unit string, panels []panel) []byte {
	if unit != "" {
		unit = " (" + unit + ")"
	}
	const (
		width   = 760
		labelW  = 130
		barMaxW = 470
		barH    = 16
		gap     = 4
		titleH  = 22
	)
	h := 36
	for _, p := range panels {
		h += titleH + len(p.labels)*(barH+gap) + 10
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, h, width, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="8" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(title+unit))
	y := 36
	for _, p := range panels {
		fmt.Fprintf(&b, `<text x="8" y="%d" font-weight="bold">%s</text>`+"\n", y+15, html.EscapeString(p.title))
		y += titleH
		// The scale is that of the figures drawn: a failed row may
		// carry figures (a run that failed after measuring), which
		// must not shrink every bar.
		top := 0.0
		for i, v := range p.values {
			if !p.failed[i] {
				top = max(top, v)
			}
		}
		for i, l := range p.labels {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-6, y+barH-4, html.EscapeString(l))
			if p.failed[i] {
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#a00">failed</text>`+"\n", labelW+4, y+barH-4)
				y += barH + gap
				continue
			}
			// A negative figure (an idle slope where the RSS fell) is
			// written, with no bar: SVG has no negative width.
			bw := 0.0
			if top > 0 && p.values[i] > 0 {
				bw = float64(barMaxW) * p.values[i] / top
			}
			color := "#8c9bab"
			if isOurs(l) {
				color = "#d9622b"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, y, bw, barH, color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(labelW)+bw+4, y+barH-4, html.EscapeString(num(p.values[i])))
			y += barH + gap
		}
		y += 10
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func writePlots(res *Results, dir string) error {
	res = summarize(res)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	echoPanels := func(f func(EchoResult) float64) []panel {
		var ps []panel
		for _, s := range scenarios(res) {
			p := panel{title: echoTitle(s.Conns, s.Size)}
			for _, r := range echoRows(res, s) {
				p.labels = append(p.labels, r.Lib)
				p.values = append(p.values, f(r))
				p.failed = append(p.failed, r.Error != "")
			}
			ps = append(ps, p)
		}
		return append(ps, compressPanels(res, f)...)
	}
	files := map[string][]byte{
		plotFiles.rate: barChart("Echo throughput, closed loop", "messages/s, higher is better",
			echoPanels(func(r EchoResult) float64 { return r.MsgsPerSec })),
		plotFiles.cpu: barChart("Server CPU per echoed message", "µs, lower is better",
			echoPanels(func(r EchoResult) float64 { return r.ServerUsMsg })),
		plotFiles.p99: barChart("p99 round-trip latency", "µs, lower is better",
			echoPanels(func(r EchoResult) float64 { return r.P99us })),
	}
	var conn []panel
	if len(res.Handshake) > 0 {
		p := panel{title: "connections per second (open, upgrade, close), higher is better"}
		for _, r := range res.Handshake {
			p.labels = append(p.labels, r.Lib)
			p.values = append(p.values, r.PerSec)
			p.failed = append(p.failed, r.Error != "" && r.Count == 0)
		}
		conn = append(conn, p)
	}
	if len(res.Idle) > 0 {
		p := panel{title: "server RSS per idle connection (slope), bytes, lower is better"}
		for _, r := range res.Idle {
			p.labels = append(p.labels, r.Lib)
			p.values = append(p.values, r.SlopeBytes)
			p.failed = append(p.failed, r.Error != "")
		}
		conn = append(conn, p)
	}
	files[plotFiles.conn] = barChart("Connections", "", conn)
	if a := allocPlot(res); a != nil {
		files[allocPlotFile] = a
	}
	if len(res.Broadcast) > 0 {
		files[bcastPlotFile] = bcastPlot(res)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// median returns the median of v (the mean of the middle two for an even
// count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// mergeRounds turns the rows of several rounds into one row per key: every
// field given by fields is the median over the rounds that did not fail;
// a key whose every round failed keeps its first failed row.
func mergeRounds[T any](rows []T, key func(T) string, failed func(T) bool, fields func(*T) []*float64, note func(out *T, ok []T)) []T {
	var keys []string
	groups := map[string][]T{}
	for _, r := range rows {
		k := key(r)
		if _, seen := groups[k]; !seen {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []T
	for _, k := range keys {
		var ok []T
		for _, r := range groups[k] {
			if !failed(r) {
				ok = append(ok, r)
			}
		}
		if len(ok) == 0 {
			out = append(out, groups[k][0])
			continue
		}
		m := ok[0]
		dst := fields(&m)
		for i := range dst {
			var vals []float64
			for j := range ok {
				vals = append(vals, *fields(&ok[j])[i])
			}
			*dst[i] = median(vals)
		}
		if note != nil {
			note(&m, ok)
		}
		out = append(out, m)
	}
	return out
}

// mergeHandshakes merges the rounds of the handshake scenario into one
// row per library. A round with failed cycles has an error but may still
// have completed thousands: it is left out of the medians when the
// library has rounds without failures, and otherwise the medians are
// those of its rounds that completed a cycle (the row keeps the first
// error, so the ratios leave it out). Failures is the sum over every
// round: a median would hide a round's failures.
func mergeHandshakes(rows []HSResult) []HSResult {
	clean := map[string]bool{}
	failures := map[string]uint64{}
	for _, r := range rows {
		clean[r.Lib] = clean[r.Lib] || r.Error == ""
		failures[r.Lib] += r.Failures
	}
	out := mergeRounds(rows,
		func(r HSResult) string { return r.Lib },
		func(r HSResult) bool { return r.Error != "" && (clean[r.Lib] || r.Count == 0) },
		func(r *HSResult) []*float64 {
			return []*float64{&r.PerSec, &r.P50us, &r.P99us, &r.ServerCPUPct, &r.ServerUsConn, &r.ClientCPUPct, &r.LoadAvg}
		}, nil)
	for i := range out {
		out[i].Failures = failures[out[i].Lib]
	}
	return out
}

// hsWorkers is the handshake scenario's number of workers: that of the
// first row that has one (a server that did not start leaves a row with
// none).
func hsWorkers(rows []HSResult) int {
	for _, r := range rows {
		if r.Workers > 0 {
			return r.Workers
		}
	}
	return 0
}

// summarize returns res with one row per library and scenario: medians
// over the rounds, with the range of messages/s.
func summarize(res *Results) *Results {
	s := *res
	mergeEcho := func(rows []EchoResult) []EchoResult {
		return mergeRounds(rows,
			func(r EchoResult) string { return fmt.Sprintf("%s %d %d %s", r.Lib, r.Conns, r.Size, compressionOf(r)) },
			func(r EchoResult) bool { return r.Error != "" },
			func(r *EchoResult) []*float64 {
				return []*float64{&r.MsgsPerSec, &r.MBPerSec, &r.P50us, &r.P99us, &r.P999us, &r.ServerCPUPct,
					&r.ServerUsMsg, &r.ClientCPUPct, &r.OtherCPUSec, &r.ServerRSSKiB, &r.LoadAvg,
					&r.AllocsPerMsg, &r.AllocBytesPerMsg, &r.WireSentPerMsg, &r.WireEchoPerMsg, &r.CompressedEchoPct}
			},
			func(m *EchoResult, ok []EchoResult) {
				m.Runs = len(ok)
				m.MsgsMin, m.MsgsMax = ok[0].MsgsPerSec, ok[0].MsgsPerSec
				for _, r := range ok {
					m.MsgsMin, m.MsgsMax = min(m.MsgsMin, r.MsgsPerSec), max(m.MsgsMax, r.MsgsPerSec)
				}
			})
	}
	s.Echo = mergeEcho(res.Echo)
	s.Compress = mergeEcho(res.Compress)
	s.Broadcast = mergeBroadcast(res.Broadcast)
	s.Handshake = mergeHandshakes(res.Handshake)
	s.Idle = mergeRounds(res.Idle,
		func(r IdleResult) string { return r.Lib },
		func(r IdleResult) bool { return r.Error != "" },
		func(r *IdleResult) []*float64 {
			r.RSSKiB = slices.Clone(r.RSSKiB)
			f := []*float64{&r.BaseRSSKiB, &r.SlopeBytes}
			for i := range r.RSSKiB {
				f = append(f, &r.RSSKiB[i])
			}
			return f
		}, nil)
	return &s
}
