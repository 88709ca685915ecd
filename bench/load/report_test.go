package main

import (
	"fmt"
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
