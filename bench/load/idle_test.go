package main

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
)

// TestIdleScenario runs the idle scenario through run against the
// duplex and duplex-eventloop echoservers, with its client processes
// (this test binary, see TestMain) holding at most 100 connections each:
// every count gets an RSS reading, 50 then 250 connections take 1 + 2
// client processes, the slope is the RSS difference between the last and
// first count per connection, and the report shows each library's row
// with that slope and its projection for 10⁶ connections.
func TestIdleScenario(t *testing.T) {
	libs := []string{"duplex", "duplex-eventloop"}
	counts := []int{50, 250}
	cfg := &config{server: buildEchoserver(t), libs: libs, rounds: 1, idle: counts, perProc: 100}
	res := run(cfg)
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %q", res.Errors)
	}
	if len(res.Idle) != len(libs) {
		t.Fatalf("%d idle results, want %d: %+v", len(res.Idle), len(libs), res.Idle)
	}
	md := markdown(res)
	header := "| library | RSS, 0 conns | RSS, 50 conns | RSS, 250 conns | slope, bytes/conn | projected for 1M conns |"
	if !strings.Contains(md, "#### Idle connections\n") || !strings.Contains(md, header) {
		t.Errorf("report lacks the idle table's title or header %q:\n%s", header, md)
	}
	for i, r := range res.Idle {
		if r.Lib != libs[i] || r.Error != "" || !slices.Equal(r.Counts, counts) {
			t.Fatalf("row %d: %+v, want %s over counts %v without error", i, r, libs[i], counts)
		}
		if len(r.RSSKiB) != len(counts) || r.BaseRSSKiB <= 0 || slices.ContainsFunc(r.RSSKiB, func(v float64) bool { return v <= 0 }) {
			t.Fatalf("%s: base RSS %v KiB, RSS %v KiB; want one positive value per count", r.Lib, r.BaseRSSKiB, r.RSSKiB)
		}
		// 50 connections: one process; 200 more: two of 100.
		if r.Procs != 3 {
			t.Errorf("%s: %d client processes, want 3", r.Lib, r.Procs)
		}
		slope := (r.RSSKiB[1] - r.RSSKiB[0]) * 1024 / 200
		if d := r.SlopeBytes - slope; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: slope %v B/conn, want (%v − %v) KiB / 200 = %v", r.Lib, r.SlopeBytes, r.RSSKiB[1], r.RSSKiB[0], slope)
		}
		row := fmt.Sprintf("| %s | %.1f MiB | %.1f MiB | %.1f MiB | %s | %.1f GiB |\n",
			r.Lib, r.BaseRSSKiB/1024, r.RSSKiB[0]/1024, r.RSSKiB[1]/1024, num(slope), slope*1e6/(1<<30))
		if !strings.Contains(md, row) {
			t.Errorf("report lacks %q:\n%s", row, md)
		}
	}
}

// TestIdleChildCannotConnect gives the idle scenario a live server (which
// answers the RSS requests) but an address nothing listens on: the first
// client process cannot connect, and the scenario fails saying so rather
// than reporting readings without the connections.
func TestIdleChildCannotConnect(t *testing.T) {
	cfg := &config{server: buildEchoserver(t), idle: []int{50, 250}, perProc: 100}
	s, err := startServer(cfg, "duplex")
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	ln.Close()

	r, err := runIdle(cfg, s)
	if err == nil {
		t.Fatalf("no error; result %+v", r)
	}
	if want := "opening 50 idle connections (0 open): idle child said"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want one containing %q", err, want)
	}
	if len(r.RSSKiB) != 0 || r.SlopeBytes != 0 || r.Procs != 0 {
		t.Errorf("failed run reported RSS %v, slope %v, %d processes; want none", r.RSSKiB, r.SlopeBytes, r.Procs)
	}
}
