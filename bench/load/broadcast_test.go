package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestParseBroadcast checks -broadcast: scenarios in order, empty for
// none, and a named error for each bad one.
func TestParseBroadcast(t *testing.T) {
	got, err := parseBroadcast("10000x32, 50x1024")
	if err != nil || !slices.Equal(got, []bcastSpec{{10000, 32}, {50, 1024}}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := parseBroadcast(""); err != nil || got != nil {
		t.Fatalf("empty: got %v, %v, want none", got, err)
	}
	for in, want := range map[string]string{
		"10000":    `bad -broadcast scenario "10000" (want SUBSCRIBERSxSIZE)`,
		"ax32":     `bad -broadcast scenario "ax32" (want SUBSCRIBERSxSIZE)`,
		"0x32":     `bad -broadcast scenario "0x32": 1 to 15000 subscribers (one process may open about 20000 files)`,
		"15001x32": `bad -broadcast scenario "15001x32": 1 to 15000 subscribers (one process may open about 20000 files)`,
		"100x15":   `bad -broadcast scenario "100x15": messages of 16 bytes (sequence number and send time) to 1 MiB`,
	} {
		if _, err := parseBroadcast(in); err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

// TestBroadcastReport checks the broadcast table, its ratio line, its rows
// in the Duplex-against-best-peer table (the best of duplex and
// duplex-eventloop against the best peer, a failed peer left out), the
// medians over rounds, the chart and the link to it.
func TestBroadcastReport(t *testing.T) {
	res := &Results{Date: "d", Machine: "m", Duration: 1, Rounds: 2, Broadcast: []BCResult{
		{Lib: "duplex", Round: 1, Subs: 10000, Size: 32, Window: 16, Seconds: 1, DeliveriesPerSec: 1e6, MsgsPerSec: 100, P50us: 900, P99us: 2000, P999us: 3000, ServerUsDelivery: 0.5, PerCore: 2e6, ServerRSSKiB: 2048},
		{Lib: "duplex", Round: 2, Subs: 10000, Size: 32, Window: 16, Seconds: 1, DeliveriesPerSec: 3e6, MsgsPerSec: 300, P50us: 700, P99us: 1000, P999us: 2000, ServerUsDelivery: 0.3, PerCore: 4e6, ServerRSSKiB: 2048},
		{Lib: "duplex-eventloop", Round: 1, Subs: 10000, Size: 32, Window: 16, Seconds: 1, DeliveriesPerSec: 1.5e6, MsgsPerSec: 150, ServerUsDelivery: 0.2, PerCore: 5e6},
		{Lib: "gws", Round: 1, Subs: 10000, Size: 32, Window: 16, Seconds: 1, DeliveriesPerSec: 1e6, MsgsPerSec: 100, ServerUsDelivery: 1, PerCore: 1e6},
		{Lib: "nbio", Round: 1, Subs: 10000, Size: 32, Window: 16, Error: "subscriber 3: message 21 arrived when 20 was expected"},
	}}
	md := markdown(res)
	for _, want := range []string{
		"#### Broadcast, 10 000 subscribers × 32 B\n",
		"at most 16 messages not yet received by every subscriber",
		"| duplex | 2 000 000 | 1 000 000–3 000 000 | 200 | 800 | 1 500 | 2 500 | 0.40 | 3 000 000 | 0 % | 0 % | 2.0 MiB | 0.0 s |",
		"| nbio | failed: subscriber 3: message 21 arrived when 20 was expected | | | | | | | | | | |",
		"Duplex (duplex) ÷ best peer: deliveries/s 2.00 (best: gws); deliveries per second per server core 5.00 (duplex-eventloop against gws, higher is better).",
		"| broadcast, 10 000 subscribers × 32 B: deliveries/s | 2 000 000 | 1 000 000 | gws | 2.00 |",
		"| broadcast, 10 000 subscribers × 32 B: deliveries/s per server core | 5 000 000 (duplex-eventloop) | 1 000 000 | gws | 5.00 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}

	dir := t.TempDir()
	if err := writePlots(res, dir); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, bcastPlotFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"10 000 subscribers × 32 B: deliveries/s, higher is better",
		"10 000 subscribers × 32 B: deliveries/s per server core, higher is better",
		"10 000 subscribers × 32 B: p99 publish-to-receipt µs, lower is better",
		">2 000 000<", ">failed<",
	} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("chart lacks %q", want)
		}
	}

	doc := filepath.Join(dir, "doc.md")
	os.WriteFile(doc, []byte("before\n"+beginMarker+"\nold\n"+endMarker+"\nafter\n"), 0o644)
	if err := writeDoc(res, doc); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(doc)
	if !strings.Contains(string(b), "](plots/"+bcastPlotFile+")") || strings.Contains(string(b), "\nold\n") {
		t.Errorf("doc without the broadcast chart, or with the old results:\n%s", b)
	}
	res.Broadcast = nil
	if md := markdown(res); strings.Contains(md, "Broadcast") || bcastDocLinks(res) != "" {
		t.Errorf("a run without broadcast shows one:\n%s", md)
	}
}

// TestBroadcastTitle: subscriber counts are whole numbers at any size
// (num gave "50.0 subscribers").
func TestBroadcastTitle(t *testing.T) {
	for _, c := range []struct {
		subs, size int
		want       string
	}{
		{50, 32, "50 subscribers × 32 B"},
		{100, 1024, "100 subscribers × 1 KiB"},
		{10000, 32, "10 000 subscribers × 32 B"},
	} {
		if got := bcastTitle(c.subs, c.size); got != c.want {
			t.Errorf("bcastTitle(%d, %d) = %q, want %q", c.subs, c.size, got, c.want)
		}
	}
}
