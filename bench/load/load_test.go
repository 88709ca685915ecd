package main

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// TestHistQuantile checks percentiles of a uniform spread of latencies
// against their exact values, within the histogram's 1.6 % resolution.
func TestHistQuantile(t *testing.T) {
	var h hist
	for i := 1; i <= 10000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 5000}, {0.99, 9900}, {0.999, 9990}, {1, 10000}} {
		got := h.quantile(c.q)
		if math.Abs(got-c.want)/c.want > 0.016 {
			t.Errorf("quantile(%v) = %.1f µs, want %.0f within 1.6 %%", c.q, got, c.want)
		}
	}
	var small hist
	small.add(42)
	if got := small.quantile(0.5); got != 0.042 {
		t.Errorf("one value of 42 ns: p50 = %v µs, want 0.042", got)
	}
}

// TestReadEcho feeds the echo check server frames through a
// bufio.Reader, as the goroutine client does: a fragmented echo is one
// message; a changed byte, a masked frame, a wrong opcode, a close frame
// or a short echo are errors.
func TestReadEcho(t *testing.T) {
	want := []byte("hello")
	cases := []struct {
		name   string
		frames []byte
		errHas string
	}{
		{"whole", []byte("\x82\x05hello"), ""},
		{"fragmented", []byte("\x02\x03hel\x80\x02lo"), ""},
		{"changed", []byte("\x82\x05hellO"), "differs"},
		{"masked", []byte("\x82\x85\x00\x00\x00\x00hello"), "masked"},
		{"text", []byte("\x81\x05hello"), "opcode"},
		{"short", []byte("\x82\x04hell"), "echo of 4 bytes"},
		{"long", []byte("\x82\x06hello!"), "longer"},
		{"close", []byte("\x88\x02\x03\xe8"), "unexpected opcode 0x8 (a close frame)"},
	}
	for _, c := range cases {
		check := &echoCheck{want: want}
		err := check.readFrom(bufio.NewReader(bytes.NewReader(c.frames)))
		switch {
		case c.errHas == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.errHas != "" && (err == nil || !strings.Contains(err.Error(), c.errHas)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.errHas)
		}
	}
}

// TestEchoScenario runs a short echo scenario against an in-process Duplex
// echo server (this process stands in for the server's pid) and checks
// that messages were counted, timed and echoed without error.
func TestEchoScenario(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, p, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if c.Write(context.Background(), typ, p) != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()

	cfg := &config{duration: 300 * time.Millisecond, warmup: 50 * time.Millisecond, hsWorkers: 4, hsDuration: 200 * time.Millisecond}
	s := &server{pid: os.Getpid(), addr: ln.Addr().String()}
	for _, e := range []echoSpec{{4, 32}, {2, 70000}} {
		r, err := runEcho(cfg, s, e)
		if err != nil {
			t.Fatalf("echo %v: %v", e, err)
		}
		if r.Messages == 0 || r.MsgsPerSec <= 0 || r.P50us <= 0 || r.P99us < r.P50us || r.P999us < r.P99us {
			t.Fatalf("echo %v: implausible result %+v", e, r)
		}
	}
	h, err := runHandshakes(cfg, s)
	if err != nil {
		t.Fatalf("handshakes: %v", err)
	}
	if h.Count == 0 || h.Failures != 0 {
		t.Fatalf("handshakes: %+v", h)
	}
}

// TestMarkdown checks the report's ratio line for a scenario where Duplex
// and two peers ran and one peer failed.
func TestMarkdown(t *testing.T) {
	res := &Results{Date: "d", Machine: "m", Pinned: true, ServerCPU: 1, LoadCPU: 0, Warmup: 0.5, Duration: 2, Echo: []EchoResult{
		{Lib: "duplex", Conns: 10, Size: 32, MsgsPerSec: 300, ServerUsMsg: 2},
		{Lib: "gorilla", Conns: 10, Size: 32, MsgsPerSec: 200, ServerUsMsg: 4},
		{Lib: "gws", Conns: 10, Size: 32, MsgsPerSec: 250, ServerUsMsg: 5},
		{Lib: "nbio", Conns: 10, Size: 32, Error: "boom"},
	}}
	md := markdown(res)
	for _, want := range []string{
		"Run of d on m; each server pinned to CPU 1 and the load generator to CPU 0 (`taskset`), GOMAXPROCS 1 on both sides. Every echo scenario had 0.5 s of warm-up, then 2 s measured;",
		"#### Echo, 10 connections × 32 B",
		"Duplex (duplex) ÷ best peer: messages/s 1.20 (best: gws); server CPU per message 0.50 (duplex against gorilla, lower is better).",
		"| nbio | failed: boom |",
		"| 10 connections × 32 B: messages/s | 300 | 250 | gws | 1.20 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}

	// A second mode of ours is compared as ours, never as a peer: the
	// best of ours against the best peer.
	res.Echo = append(res.Echo, EchoResult{Lib: "duplex-eventloop", Conns: 10, Size: 32, MsgsPerSec: 400, ServerUsMsg: 3})
	md = markdown(res)
	for _, want := range []string{
		"Duplex (duplex-eventloop) ÷ best peer: messages/s 1.60 (best: gws); server CPU per message 0.50 (duplex against gorilla, lower is better).",
		"| 10 connections × 32 B: messages/s | 400 (duplex-eventloop) | 250 | gws | 1.60 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestSummarize checks that rounds merge into medians, that a failed round
// is left out, and that the range of messages/s is kept.
func TestSummarize(t *testing.T) {
	res := &Results{Rounds: 3, Echo: []EchoResult{
		{Lib: "duplex", Conns: 1, Size: 32, Round: 1, MsgsPerSec: 100, ServerUsMsg: 3},
		{Lib: "duplex", Conns: 1, Size: 32, Round: 2, MsgsPerSec: 300, ServerUsMsg: 1},
		{Lib: "duplex", Conns: 1, Size: 32, Round: 3, Error: "boom"},
		{Lib: "gws", Conns: 1, Size: 32, Round: 1, Error: "down"},
	}, Idle: []IdleResult{
		{Lib: "duplex", Round: 1, RSSKiB: []float64{10, 20}, SlopeBytes: 5},
		{Lib: "duplex", Round: 2, RSSKiB: []float64{30, 40}, SlopeBytes: 7},
		{Lib: "duplex", Round: 3, RSSKiB: []float64{50, 60}, SlopeBytes: 9},
	}}
	s := summarize(res)
	if len(s.Echo) != 2 {
		t.Fatalf("got %d echo rows, want 2: %+v", len(s.Echo), s.Echo)
	}
	d := s.Echo[0]
	if d.MsgsPerSec != 200 || d.ServerUsMsg != 2 || d.Runs != 2 || d.MsgsMin != 100 || d.MsgsMax != 300 || d.Error != "" {
		t.Errorf("duplex row %+v, want medians 200 msg/s and 2 µs over 2 runs, range 100–300", d)
	}
	if s.Echo[1].Error != "down" {
		t.Errorf("gws row %+v, want its failure", s.Echo[1])
	}
	if i := s.Idle[0]; len(s.Idle) != 1 || i.SlopeBytes != 7 || !slices.Equal(i.RSSKiB, []float64{30, 40}) {
		t.Errorf("idle rows %+v, want one with slope 7 and RSS [30 40]", s.Idle)
	}
	if !slices.Equal(res.Idle[0].RSSKiB, []float64{10, 20}) {
		t.Errorf("summarize changed the raw rows: %v", res.Idle[0].RSSKiB)
	}
}
