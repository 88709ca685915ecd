package main

import (
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
