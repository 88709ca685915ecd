package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// hsRound is a handshake row of one library in one round.
func hsRound(lib string, round int, perSec, p50, p99, usConn, serverCPU, clientCPU float64) HSResult {
	return HSResult{Lib: lib, Round: round, Workers: 32, Seconds: 5, Count: uint64(5 * perSec), PerSec: perSec,
		P50us: p50, P99us: p99, ServerUsConn: usConn, ServerCPUPct: serverCPU, ClientCPUPct: clientCPU}
}

// TestHandshakeTable writes the report of three rounds of the handshake
// scenario and checks the table row by row: in the order the libraries
// first ran, every figure the median of the rounds without failures
// (formatted as the other tables), the failures those rounds left out
// had counted in the last column; a library whose every round had some
// failures has the medians of those rounds, its failures, and no place
// in the ratio; one that never completed a cycle shows its first error,
// "|" replaced. The workers come from a library that ran (a server that
// did not start has none), and the ratio line and summary row compare
// the medians, with an interval within what the rounds allow.
func TestHandshakeTable(t *testing.T) {
	failed := func(r HSResult, failures uint64, err string) HSResult {
		r.Failures, r.Error = failures, err
		return r
	}
	res := &Results{Date: "d", Machine: "m", Rounds: 3, Handshake: []HSResult{
		{Lib: "nbio", Round: 1, Error: `server did not start (said "a|b")`},
		hsRound("duplex", 1, 10000, 300, 900, 40, 45, 90),
		hsRound("gorilla", 1, 9000, 320, 1200, 50, 60, 92),
		failed(hsRound("gws", 1, 7000, 400, 1500, 60, 70, 80), 1, "1 of 35001 cycles failed, first: EOF"),

		{Lib: "nbio", Round: 2, Error: "server did not start (again)"},
		hsRound("duplex", 2, 12000, 250, 1100, 42, 50, 95),
		// A round with failures: left out of gorilla's medians (its
		// figures would move every one of them), its failures counted.
		failed(hsRound("gorilla", 2, 20000, 100, 200, 10, 99, 99), 3, "3 of 100003 cycles failed, first: EOF"),
		failed(hsRound("gws", 2, 6000, 500, 1600, 70, 72, 82), 2, "2 of 30002 cycles failed, first: EOF"),

		{Lib: "nbio", Round: 3, Workers: 32, Count: 0, Failures: 9, Error: "9 of 9 cycles failed, first: EOF"},
		hsRound("duplex", 3, 11000, 280, 1000, 38, 40, 85),
		hsRound("gorilla", 3, 8000, 340, 1400, 55, 62, 94),
		failed(hsRound("gws", 3, 5000, 600, 1700, 80, 74, 84), 4, "4 of 25004 cycles failed, first: EOF"),
	}}
	md := markdown(res)
	table := "#### Connections per second (open, upgrade, close)\n\n" +
		"Each of 32 workers in a loop: TCP connect, opening handshake, a close frame, wait for the server to close. " +
		"\"failures\" counts the failed cycles of every round; a round with a failure is left out of the medians, unless every round of the library had one.\n\n" +
		"| library | connections/s | p50 µs | p99 µs | server µs/connection | server CPU | client CPU | failures |\n" +
		"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n" +
		"| nbio | failed: server did not start (said \"a/b\") | | | | | | |\n" +
		"| duplex | 11 000 | 280 | 1 000 | 40.0 | 45 % | 90 % | 0 |\n" +
		"| gorilla | 8 500 | 330 | 1 300 | 52.5 | 61 % | 93 % | 3 |\n" +
		"| gws | 6 000 | 500 | 1 600 | 70.0 | 72 % | 82 % | 7 |\n" +
		"\nDuplex (duplex) ÷ best peer: connections/s 1.29, 95 % interval "
	i := strings.Index(md, table)
	if i < 0 {
		t.Fatalf("report lacks the handshake table\n%s\nin:\n%s", table, md)
	}
	var lo, hi float64
	var best string
	if n, err := fmt.Sscanf(md[i+len(table):], "%f–%f (best: %s", &lo, &hi, &best); n != 3 || err != nil {
		t.Fatalf("ratio line %q: %v", md[i+len(table):][:60], err)
	}
	// Each draw divides a median of duplex's 10 000 to 12 000 by one of
	// gorilla's 8 000 to 9 000: 1.11 to 1.50 with two decimals.
	if best != "gorilla)." || lo > 1.29 || hi < 1.29 || lo < 1.11 || hi > 1.50 {
		t.Errorf("interval %.2f–%.2f against %q, want 1.11 ≤ lo ≤ 1.29 ≤ hi ≤ 1.50 against gorilla", lo, hi, best)
	}
	if want := fmt.Sprintf("| connections/s | 11 000 | 8 500 | gorilla | 1.29, 95 %% interval %.2f–%.2f |\n", lo, hi); !strings.Contains(md, want) {
		t.Errorf("summary lacks %q:\n%s", want, md)
	}
	if strings.Count(md, "| gws |") != 1 || strings.Contains(md, "(best: gws)") {
		t.Errorf("gws, with failures in every round, shows more than its table row:\n%s", md)
	}

	// One round: the row as measured, a failed round's figures shown
	// with its failures when it completed cycles.
	one := &Results{Rounds: 1, Handshake: []HSResult{res.Handshake[1], res.Handshake[3]}}
	md = markdown(one)
	for _, want := range []string{
		"| duplex | 10 000 | 300 | 900 | 40.0 | 45 % | 90 % | 0 |\n",
		"| gws | 7 000 | 400 | 1 500 | 60.0 | 70 % | 80 % | 1 |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("one-round report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "÷ best peer: connections/s") {
		t.Errorf("one-round report compares duplex with a peer whose run failed:\n%s", md)
	}
}

// chartBar is one library's bar of a chart as drawn: its label, the
// width of its rect (absent when failed), the value written after it,
// its colour, and whether it says "failed" instead.
type chartBar struct {
	label, value, color string
	width               float64
	failed              bool
}

// chartPanel is a titled group of bars.
type chartPanel struct {
	title string
	bars  []chartBar
}

// svgChart is a bar chart read back from its SVG.
type svgChart struct {
	title  string
	panels []chartPanel
}

// attrs returns the attributes of an XML element by local name.
func attrs(e xml.StartElement) map[string]string {
	m := map[string]string{}
	for _, a := range e.Attr {
		m[a.Name.Local] = a.Value
	}
	return m
}

// attrNum parses the numeric attribute name of a, failing t unless it is
// a finite number of at least 0.
func attrNum(t *testing.T, a map[string]string, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(a[name], 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		t.Fatalf("attribute %s=%q: want a finite number ≥ 0 (%v)", name, a[name], err)
	}
	return v
}

// readChart parses a chart barChart drew, strictly as XML, and reads
// back its title, panels and bars from the elements' order and places:
// the chart's title (bold, larger), each panel's title (bold), then per
// library its label (right-aligned) followed by either a rect and the
// value's text, or the text "failed". Each rect and "failed" must sit on
// its label's line; anything else fails t.
func readChart(t *testing.T, data []byte) svgChart {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var (
		c         svgChart
		stack     []string
		labelY    float64
		lastRect  = -1.0 // x + width of the last bar's rect
		text      strings.Builder
		textAttrs map[string]string
	)
	bar := func() *chartBar {
		if len(c.panels) == 0 || len(c.panels[len(c.panels)-1].bars) == 0 {
			t.Fatalf("a bar's element before any label:\n%s", data)
		}
		p := &c.panels[len(c.panels)-1]
		return &p.bars[len(p.bars)-1]
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, data)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			a := attrs(tok)
			if len(stack) == 0 {
				if tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("root element %v, want svg in the SVG namespace", tok.Name)
				}
				w, h := attrNum(t, a, "width"), attrNum(t, a, "height")
				if a["viewBox"] != fmt.Sprintf("0 0 %v %v", w, h) {
					t.Errorf("viewBox %q for %v × %v", a["viewBox"], w, h)
				}
			}
			stack = append(stack, tok.Name.Local)
			switch tok.Name.Local {
			case "svg":
			case "rect":
				if a["width"] == "100%" {
					continue // the background
				}
				b := bar()
				y, h := attrNum(t, a, "y"), attrNum(t, a, "height")
				if b.failed || b.color != "" || labelY <= y || labelY >= y+h {
					t.Fatalf("rect %v does not belong to the bar of %q (label at y %v)", a, b.label, labelY)
				}
				b.width, b.color = attrNum(t, a, "width"), a["fill"]
				lastRect = attrNum(t, a, "x") + b.width
			case "text":
				text.Reset()
				textAttrs = a
			default:
				t.Fatalf("unexpected element %v", tok.Name)
			}
		case xml.CharData:
			if len(stack) > 0 && stack[len(stack)-1] == "text" {
				text.Write(tok)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if tok.Name.Local != "text" {
				continue
			}
			s, a := text.String(), textAttrs
			switch {
			case a["font-size"] == "15" && a["font-weight"] == "bold":
				if c.title != "" || len(c.panels) > 0 {
					t.Fatalf("second chart title %q", s)
				}
				c.title = s
			case a["font-weight"] == "bold":
				c.panels = append(c.panels, chartPanel{title: s})
			case a["text-anchor"] == "end":
				if len(c.panels) == 0 {
					t.Fatalf("label %q before any panel", s)
				}
				p := &c.panels[len(c.panels)-1]
				p.bars = append(p.bars, chartBar{label: s})
				labelY, lastRect = attrNum(t, a, "y"), -1
			case s == "failed" && a["fill"] == "#a00":
				b := bar()
				if b.color != "" || attrNum(t, a, "y") != labelY {
					t.Fatalf("\"failed\" off its line or after a rect, for %q", b.label)
				}
				b.failed = true
			default:
				b := bar()
				if b.color == "" || b.value != "" || attrNum(t, a, "y") != labelY || attrNum(t, a, "x") <= lastRect {
					t.Fatalf("text %q (%v) is not the value after the bar of %q", s, a, b.label)
				}
				b.value = s
			}
		}
	}
	for _, p := range c.panels {
		for _, b := range p.bars {
			if !b.failed && (b.color == "" || b.value == "") {
				t.Fatalf("bar of %q in %q has no rect or no value", b.label, p.title)
			}
		}
	}
	return c
}

// wantPanel is what a panel must show: its title, and per library, in
// order, its value or failed.
type wantPanel struct {
	title  string
	labels []string
	values []float64 // NaN: failed
}

// checkChart checks that c has title and exactly the panels of want: per
// panel one bar per library, in order, each with its name; a failed one
// marked so, without a bar; every other one a bar in our colour or the
// peers', its value written as the tables write it, its length
// proportional to its value, the panel's largest being the full length
// (so a larger figure is always drawn longer, whether the chart says
// higher or lower is better), and a negative figure drawn as no length.
func checkChart(t *testing.T, name string, c svgChart, title string, want []wantPanel) {
	t.Helper()
	if c.title != title {
		t.Errorf("%s: title %q, want %q", name, c.title, title)
	}
	if len(c.panels) != len(want) {
		var got []string
		for _, p := range c.panels {
			got = append(got, p.title)
		}
		t.Fatalf("%s: panels %q, want %d", name, got, len(want))
	}
	for i, w := range want {
		p := c.panels[i]
		if p.title != w.title || len(p.bars) != len(w.labels) {
			t.Errorf("%s: panel %d is %q with %d bars, want %q with %d", name, i, p.title, len(p.bars), w.title, len(w.labels))
			continue
		}
		top := 0.0
		for _, v := range w.values {
			if !math.IsNaN(v) {
				top = max(top, v)
			}
		}
		for j, b := range p.bars {
			v := w.values[j]
			color := "#8c9bab"
			if strings.HasPrefix(w.labels[j], "duplex") {
				color = "#d9622b"
			}
			switch {
			case b.label != w.labels[j]:
				t.Errorf("%s, %s: bar %d is %q, want %q", name, p.title, j, b.label, w.labels[j])
			case math.IsNaN(v) != b.failed:
				t.Errorf("%s, %s, %s: failed %v, want %v", name, p.title, b.label, b.failed, math.IsNaN(v))
			case b.failed:
			case b.value != num(v) || b.color != color:
				t.Errorf("%s, %s, %s: value %q in %s, want %q in %s", name, p.title, b.label, b.value, b.color, num(v), color)
			case math.Abs(b.width-470*max(v, 0)/top) > 0.0501: // drawn with one decimal
				t.Errorf("%s, %s, %s: bar of %v long for %v, want %.1f (%v is the panel's largest, 470 long)",
					name, p.title, b.label, b.width, v, 470*max(v, 0)/top, top)
			}
		}
	}
}

// TestEchoAndConnectionPlots draws the plots of a hand-made run of two
// rounds (two echo scenarios, the compression scenario on and off, the
// handshake and idle scenarios), reads each chart back from its SVG and
// checks what it shows: the medians of the rounds, one bar per library
// in the order they ran, a failed library marked failed whatever
// figures its failed rounds carried (they must not set the scale
// either), and the titles that say what is drawn and which way is
// better.
func TestEchoAndConnectionPlots(t *testing.T) {
	failed := math.NaN()
	echo := func(lib string, round, conns, size int, msgs, us, p99 float64, err string) EchoResult {
		return EchoResult{Lib: lib, Round: round, Conns: conns, Size: size, MsgsPerSec: msgs, ServerUsMsg: us, P99us: p99,
			MemStats: true, AllocsPerMsg: us / 10, Error: err}
	}
	comp := func(lib, mode string, msgs, us, p99 float64) EchoResult {
		r := echo(lib, 1, 2, 1024, msgs, us, p99, "")
		r.Compression = mode
		return r
	}
	res := &Results{Rounds: 2}
	for round := 1; round <= 2; round++ {
		d := float64(round - 1) // duplex and gorilla differ between rounds
		res.Echo = append(res.Echo,
			echo("duplex", round, 100, 32, 100000+20000*d, 8+2*d, 500+200*d, ""),
			echo("duplex-eventloop", round, 100, 32, 130000, 6, 400, ""),
			echo("gorilla", round, 100, 32, 90000-20000*d, 12+2*d, 900+200*d, ""),
			// Failed in both rounds, with figures that would be the
			// largest or smallest of the panel.
			echo("nbio", round, 100, 32, 500000, 100, 50000, "echo differs"))
	}
	for round := 1; round <= 2; round++ {
		res.Echo = append(res.Echo,
			echo("duplex", round, 1000, 1024, 50000, 20, 3000, ""),
			echo("duplex-eventloop", round, 1000, 1024, 999999, 99, 99999, "server did not start"),
			echo("gorilla", round, 1000, 1024, 40000, 25, 4000, ""),
			echo("nbio", round, 1000, 1024, 45000, 22, 3500, ""))
	}
	res.Compress = []EchoResult{
		comp("duplex", compressionOn, 20000, 40, 5000), comp("duplex", compressionOff, 50000, 15, 2000),
		comp("gorilla", compressionOn, 16000, 41, 6000), comp("gorilla", compressionOff, 60000, 13, 1500),
	}
	res.Handshake = []HSResult{
		hsRound("duplex", 1, 10000, 0, 0, 0, 0, 0), hsRound("gorilla", 1, 8000, 0, 0, 0, 0, 0),
		{Lib: "nbio", Round: 1, Error: "server did not start"}, hsRound("duplex", 2, 12000, 0, 0, 0, 0, 0),
		hsRound("gorilla", 2, 8000, 0, 0, 0, 0, 0), {Lib: "nbio", Round: 2, Error: "server did not start", PerSec: 99999},
	}
	// Cycles failed in every round of gws, but it completed thousands:
	// drawn, as its table row shows its figures, with the medians.
	for round, perSec := range []float64{6000, 5000} {
		r := hsRound("gws", round+1, perSec, 0, 0, 0, 0, 0)
		r.Failures, r.Error = 1, "1 of 5001 cycles failed, first: EOF"
		res.Handshake = append(res.Handshake, r)
	}
	res.Idle = []IdleResult{
		{Lib: "duplex", Round: 1, SlopeBytes: 18000}, {Lib: "duplex-eventloop", Round: 1, SlopeBytes: 260},
		{Lib: "gorilla", Round: 1, SlopeBytes: 17000}, {Lib: "gws", Round: 1, SlopeBytes: -50},
		{Lib: "nbio", Round: 1, SlopeBytes: 99999, Error: "idle child: too many open files"},
	}
	dir := t.TempDir()
	if err := writePlots(res, dir); err != nil {
		t.Fatal(err)
	}
	read := func(name string) svgChart {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return readChart(t, b)
	}
	libs := []string{"duplex", "duplex-eventloop", "gorilla", "nbio"}
	echoPanels := func(a, b, on, off []float64) []wantPanel {
		return []wantPanel{
			{"100 connections × 32 B", libs, a},
			{"1000 connections × 1 KiB", libs, b},
			{"permessage-deflate, 2 connections × 1 KiB", []string{"duplex", "gorilla"}, on},
			{"permessage-deflate off (not offered), 2 connections × 1 KiB", []string{"duplex", "gorilla"}, off},
		}
	}
	checkChart(t, plotFiles.rate, read(plotFiles.rate), "Echo throughput, closed loop (messages/s, higher is better)", echoPanels(
		[]float64{110000, 130000, 80000, failed}, []float64{50000, failed, 40000, 45000}, []float64{20000, 16000}, []float64{50000, 60000}))
	checkChart(t, plotFiles.cpu, read(plotFiles.cpu), "Server CPU per echoed message (µs, lower is better)", echoPanels(
		[]float64{9, 6, 13, failed}, []float64{20, failed, 25, 22}, []float64{40, 41}, []float64{15, 13}))
	checkChart(t, plotFiles.p99, read(plotFiles.p99), "p99 round-trip latency (µs, lower is better)", echoPanels(
		[]float64{600, 400, 1000, failed}, []float64{3000, failed, 4000, 3500}, []float64{5000, 6000}, []float64{2000, 1500}))
	checkChart(t, allocPlotFile, read(allocPlotFile), "Server heap allocations per echoed message (objects, lower is better)", echoPanels(
		[]float64{0.9, 0.6, 1.3, failed}, []float64{2, failed, 2.5, 2.2}, []float64{4, 4.1}, []float64{1.5, 1.3}))
	checkChart(t, plotFiles.conn, read(plotFiles.conn), "Connections", []wantPanel{
		{"connections per second (open, upgrade, close), higher is better", []string{"duplex", "gorilla", "nbio", "gws"}, []float64{11000, 8000, failed, 5500}},
		{"server RSS per idle connection (slope), bytes, lower is better", []string{"duplex", "duplex-eventloop", "gorilla", "gws", "nbio"},
			[]float64{18000, 260, 17000, -50, failed}},
	})
}

// TestSavedResultsRedraw redraws the report and the plots of every run
// saved in bench/results, as -from does: none may panic, and every chart
// must be well-formed SVG that reads back as barChart draws (bars of
// finite, non-negative size on their labels' lines), with one panel per
// scenario (and per compression mode) and one bar or "failed" per
// library that ran it; the allocation and broadcast charts exist when
// the run has their figures.
func TestSavedResultsRedraw(t *testing.T) {
	files, err := filepath.Glob("../results/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no saved results: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var res Results
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatal(err)
			}
			if md := markdown(&res); !strings.HasPrefix(md, "Run of ") {
				t.Errorf("report starts %q", md[:min(len(md), 40)])
			}
			dir := t.TempDir()
			if err := writePlots(&res, dir); err != nil {
				t.Fatal(err)
			}
			sum := summarize(&res)
			echoPanels := len(scenarios(sum)) + len(compressPanels(sum, func(EchoResult) float64 { return 0 }))
			want := map[string]int{plotFiles.rate: echoPanels, plotFiles.cpu: echoPanels, plotFiles.p99: echoPanels, plotFiles.conn: 0}
			if len(sum.Handshake) > 0 {
				want[plotFiles.conn]++
			}
			if len(sum.Idle) > 0 {
				want[plotFiles.conn]++
			}
			if slices.ContainsFunc(append(slices.Clone(res.Echo), res.Compress...), func(r EchoResult) bool { return r.MemStats }) {
				want[allocPlotFile] = echoPanels
			}
			if len(res.Broadcast) > 0 {
				want[bcastPlotFile] = 3 * len(bcastScenarios(sum))
			}
			names, _ := filepath.Glob(filepath.Join(dir, "*"))
			if len(names) != len(want) {
				t.Errorf("plots %q, want %d", names, len(want))
			}
			for name, panels := range want {
				data, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Error(err)
					continue
				}
				c := readChart(t, data)
				if len(c.panels) != panels {
					t.Errorf("%s: %d panels, want %d", name, len(c.panels), panels)
				}
				for _, p := range c.panels {
					if len(p.bars) == 0 || len(p.bars) > len(res.Libs) {
						t.Errorf("%s, %s: %d bars for %d libraries", name, p.title, len(p.bars), len(res.Libs))
					}
					for _, b := range p.bars {
						if !slices.Contains(res.Libs, b.label) {
							t.Errorf("%s, %s: bar of %q, not a library of the run %q", name, p.title, b.label, res.Libs)
						}
					}
				}
			}
		})
	}
}
