package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// echoRound is an echo row of one library in one round with a server
// CPU per message.
func echoRound(lib string, round int, us float64) EchoResult {
	return EchoResult{Lib: lib, Round: round, Conns: 100, Size: 32, ServerUsMsg: us, MsgsPerSec: 1e6 / us}
}

func cpuInterval(rows []EchoResult) (lo, hi float64, ok bool) {
	return ratioInterval(rows, echoKind.round, echoKind.lib, echoKind.failed, func(r EchoResult) float64 { return r.ServerUsMsg }, false)
}

// TestRatioIntervalKeepsRoundsTogether checks that a draw takes every
// library's figure of the rounds it draws: when a slow round slows every
// library alike, the ratio does not move and neither does its interval.
// Drawing each library's rounds on their own would spread it.
func TestRatioIntervalKeepsRoundsTogether(t *testing.T) {
	var rows []EchoResult
	for r := 1; r <= 7; r++ {
		rows = append(rows, echoRound("duplex", r, float64(r)), echoRound("gobwas", r, 2*float64(r)))
	}
	lo, hi, ok := cpuInterval(rows)
	if !ok || lo != 0.5 || hi != 0.5 {
		t.Errorf("interval %v–%v (ok %v), want exactly 0.5–0.5", lo, hi, ok)
	}
}

// TestRatioIntervalSpread checks the interval of a noisy library against
// a steady one: it holds the ratio of the medians, lies within the
// ratios the rounds allow, is not a point, and comes out the same every
// time (fixed seed).
func TestRatioIntervalSpread(t *testing.T) {
	var rows []EchoResult
	for r := 1; r <= 9; r++ {
		rows = append(rows, echoRound("duplex", r, float64(r)), echoRound("gorilla", r, 10))
	}
	lo, hi, ok := cpuInterval(rows)
	if !ok {
		t.Fatal("no interval for 9 rounds")
	}
	if point := 5.0 / 10; lo > point || hi < point || lo >= hi || lo < 0.1 || hi > 0.9 {
		t.Errorf("interval %v–%v, want 0.1 ≤ lo < 0.5 < hi ≤ 0.9", lo, hi)
	}
	if lo2, hi2, _ := cpuInterval(rows); lo2 != lo || hi2 != hi {
		t.Errorf("second computation %v–%v, first %v–%v: want the same", lo2, hi2, lo, hi)
	}
}

// TestRatioIntervalBestOfEach checks that each draw compares the best of
// ours with the best peer, and that failed rows count for nothing.
func TestRatioIntervalBestOfEach(t *testing.T) {
	var rows []EchoResult
	for r := 1; r <= 5; r++ {
		rows = append(rows,
			echoRound("duplex", r, 4), echoRound("duplex-eventloop", r, 3),
			echoRound("gobwas", r, 6), echoRound("gws", r, 5),
			EchoResult{Lib: "nbio", Round: r, Conns: 100, Size: 32, ServerUsMsg: 0.001, Error: "boom"})
	}
	lo, hi, ok := cpuInterval(rows)
	if !ok || lo != 0.6 || hi != 0.6 {
		t.Errorf("interval %v–%v (ok %v), want 0.6–0.6: duplex-eventloop's 3 against gws's 5, nbio failed", lo, hi, ok)
	}
}

// TestRatioIntervalTooFewRounds checks that two rounds give no interval,
// nor do rounds where no peer has a figure.
func TestRatioIntervalTooFewRounds(t *testing.T) {
	rows := []EchoResult{echoRound("duplex", 1, 1), echoRound("gws", 1, 2), echoRound("duplex", 2, 1), echoRound("gws", 2, 2)}
	if lo, hi, ok := cpuInterval(rows); ok {
		t.Errorf("two rounds gave %v–%v, want none", lo, hi)
	}
	var ourOnly []EchoResult
	for r := 1; r <= 5; r++ {
		ourOnly = append(ourOnly, echoRound("duplex", r, 1), EchoResult{Lib: "gws", Round: r, Error: "down"})
	}
	if lo, hi, ok := cpuInterval(ourOnly); ok {
		t.Errorf("no peer figure gave %v–%v, want none", lo, hi)
	}
}

// TestMarkdownIntervals checks that a run of several rounds reports each
// ratio with its interval, in the scenario's line and in the summary,
// and explains it; a run of one round has none.
func TestMarkdownIntervals(t *testing.T) {
	res := &Results{Date: "d", Machine: "m", Rounds: 3}
	for r := 1; r <= 3; r++ {
		res.Echo = append(res.Echo, echoRound("duplex", r, 2), echoRound("gorilla", r, 4))
	}
	md := markdown(res)
	for _, want := range []string{
		"server CPU per message 0.50, 95 % interval 0.50–0.50 (duplex against gorilla, lower is better)",
		"| 100 connections × 32 B: server µs per message | 2.00 | 4.00 | gorilla | 0.50, 95 % interval 0.50–0.50 |",
		"A ratio of ours to the best peer is followed by its 95 % interval: the rounds drawn again with replacement 4000 times",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	res.Rounds, res.Echo = 1, res.Echo[:2]
	if md := markdown(res); strings.Contains(md, "interval") {
		t.Errorf("a one-round report mentions an interval:\n%s", md)
	}
}

// onOffRound is a compression row of one library, mode and round with a
// server CPU per message (and the messages/s it implies).
func onOffRound(lib, mode string, round int, us float64) EchoResult {
	return EchoResult{Lib: lib, Round: round, Conns: 100, Size: 1024, Compression: mode, ServerUsMsg: us, MsgsPerSec: 1e6 / us,
		WireSentPerMsg: 324, WireEchoPerMsg: 342}
}

func usOnOff(on, off []EchoResult) (lo, hi float64, ok bool) {
	return onOffInterval(on, off, func(r EchoResult) float64 { return r.ServerUsMsg })
}

// TestOnOffInterval checks the interval of a library's on ÷ off ratio.
// When a round slows both runs alike (on 3r µs, off r µs in round r), a
// draw brings both runs of a round, so every draw's ratio of medians is
// 3: the interval is 3–3, where drawing each mode's rounds on their own
// would spread it. With on steady at 10 µs and off 1 to 5 µs, the
// ratio of medians is 10 ÷ off's median of 5 rounds drawn from 1 to 5:
// that median is 5 (and 1) in 5.8 % of draws, more than 2.5 %, so the
// interval is exactly 10/5–10/1. Failed rows count for nothing, a draw
// without a figure of a mode has no ratio, and fewer than 3 rounds, or a
// mode without a figure in any, give no interval.
func TestOnOffInterval(t *testing.T) {
	var on, off []EchoResult
	for r := 1; r <= 5; r++ {
		on, off = append(on, onOffRound("duplex", "on", r, 3*float64(r))), append(off, onOffRound("duplex", "off", r, float64(r)))
	}
	if lo, hi, ok := usOnOff(on, off); !ok || lo != 3 || hi != 3 {
		t.Errorf("rounds slowing both runs alike: interval %v–%v (ok %v), want exactly 3–3", lo, hi, ok)
	}
	// Round 6 failed both ways, with figures that would give 1000.
	bad := func(r EchoResult) EchoResult { r.Round, r.Error = 6, "boom"; return r }
	if lo, hi, ok := usOnOff(append(on, bad(onOffRound("duplex", "on", 6, 1000))), append(off, bad(onOffRound("duplex", "off", 6, 1)))); !ok || lo != 3 || hi != 3 {
		t.Errorf("with a failed round: interval %v–%v (ok %v), want exactly 3–3", lo, hi, ok)
	}

	var steady []EchoResult
	for r := 1; r <= 5; r++ {
		steady = append(steady, onOffRound("gorilla", "on", r, 10))
	}
	off = off[:0]
	for r := 1; r <= 5; r++ {
		off = append(off, onOffRound("gorilla", "off", r, float64(r)))
	}
	if lo, hi, ok := usOnOff(steady, off); !ok || lo != 2 || hi != 10 {
		t.Errorf("on steady, off 1 to 5: interval %v–%v (ok %v), want exactly 2–10", lo, hi, ok)
	}
	// On ran only in rounds 4 and 5: a draw of neither (7.8 % of them)
	// has no on figure and no ratio, not a ratio of 0.
	onlyLate := slices.Clone(steady)
	for i := range 3 {
		onlyLate[i].Error = "boom"
	}
	if lo, hi, ok := usOnOff(onlyLate, off); !ok || lo < 2 || hi > 10 {
		t.Errorf("on in two rounds of five: interval %v–%v (ok %v), want within 2–10", lo, hi, ok)
	}
	if lo, hi, ok := usOnOff(steady[:2], off[:2]); ok {
		t.Errorf("two rounds gave %v–%v, want none", lo, hi)
	}
	failedOff := slices.Clone(off)
	for i := range failedOff {
		failedOff[i].Error = "boom"
	}
	if lo, hi, ok := usOnOff(steady, failedOff); ok {
		t.Errorf("every off run failed, yet %v–%v", lo, hi)
	}
}

// TestCompressOnOffIntervals writes the report of five rounds of the
// compression scenario on and off and checks the side-by-side table:
// the ratios of messages/s and server µs/msg each with its interval as
// TestOnOffInterval computes it by hand, the frame bytes' ratio without;
// a library whose off run failed has "–" and no interval. JSON saved
// before rounds had numbers (round 0 for every row) still loads, with no
// interval.
func TestCompressOnOffIntervals(t *testing.T) {
	res := &Results{Rounds: 5}
	for r := 1; r <= 5; r++ {
		fail := onOffRound("nbio", "off", r, 5)
		fail.Error = "boom"
		res.Compress = append(res.Compress,
			onOffRound("duplex", "on", r, 3*float64(r)), onOffRound("duplex", "off", r, float64(r)),
			onOffRound("gorilla", "on", r, 10), onOffRound("gorilla", "off", r, float64(r)),
			onOffRound("nbio", "on", r, 20), fail)
	}
	md := markdown(res)
	rows := "| duplex | 111 111 | 333 333 | 0.33, 95 % interval 0.33–0.33 | 9.00 | 3.00 | 3.00, 95 % interval 3.00–3.00 | 324 | 324 | 342 | 342 | 1.00 |\n" +
		// messages/s on ÷ off is off's median µs ÷ 10: 0.1 to 0.5.
		"| gorilla | 100 000 | 333 333 | 0.30, 95 % interval 0.10–0.50 | 10.0 | 3.00 | 3.33, 95 % interval 2.00–10.00 | 324 | 324 | 342 | 342 | 1.00 |\n" +
		"| nbio | 50 000 | failed | – | 20.0 | failed | – | 324 | failed | 342 | failed | – |\n"
	if !strings.Contains(md, rows) || !strings.Contains(md, "(with fewer than 3 rounds there is none).\n") {
		t.Errorf("report lacks\n%s\nin:\n%s", rows, md)
	}

	for i := range res.Compress {
		res.Compress[i].Round = 0
	}
	b, _ := json.Marshal(res)
	var back Results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if md := markdown(&back); !strings.Contains(md, "| duplex | 111 111 | 333 333 | 0.33 | 9.00 | 3.00 | 3.00 | 324 |") {
		t.Errorf("rows without round numbers: report lacks the duplex row without intervals:\n%s", md)
	}
}
