package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Allocations per message: the echoserver answers SIGUSR2 with a line
// "mem MALLOCS TOTALALLOC" (its runtime.MemStats.Mallocs and TotalAlloc,
// both counting up from its start); an echo scenario reads it at the start
// and at the end of its measured window and divides the differences by the
// messages echoed in the window. The window's ends are a signal's round
// trip (well under a millisecond) wider than the one messages are counted
// in, and the two answers themselves allocate a few objects: both are lost
// in the thousands of messages of a window.

// memStats is one answer to SIGUSR2.
type memStats struct{ mallocs, bytes uint64 }

// parseMemLine parses "mem MALLOCS TOTALALLOC".
func parseMemLine(line string) (memStats, bool) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "mem" {
		return memStats{}, false
	}
	m, err1 := strconv.ParseUint(f[1], 10, 64)
	b, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return memStats{}, false
	}
	return memStats{m, b}, true
}

// memTimeout bounds the wait for the server's answer to SIGUSR2.
const memTimeout = 10 * time.Second

// serverMem asks the server for its allocation counts (SIGUSR2) and waits
// for the answer, skipping any other line it prints.
func serverMem(s *server) (memStats, error) {
	for len(s.lines) > 0 { // stale lines
		<-s.lines
	}
	if err := syscall.Kill(s.pid, syscall.SIGUSR2); err != nil {
		return memStats{}, fmt.Errorf("asking the server for its allocations: %w", err)
	}
	deadline := time.After(memTimeout)
	for {
		select {
		case line := <-s.lines:
			if m, ok := parseMemLine(line); ok {
				return m, nil
			}
		case <-deadline:
			return memStats{}, errors.New("server did not answer SIGUSR2 (mem MALLOCS TOTALALLOC) within 10 s")
		}
	}
}

// setAllocs fills r's allocation figures from the counts at the start and
// end of its measured window.
func setAllocs(r *EchoResult, a, b memStats) {
	r.MemStats = true
	if r.Messages > 0 {
		r.AllocsPerMsg = float64(b.mallocs-a.mallocs) / float64(r.Messages)
		r.AllocBytesPerMsg = float64(b.bytes-a.bytes) / float64(r.Messages)
	}
}

// allocCells are a result's two allocation cells of a report table
// (objects and bytes per message), "–" when not measured.
func allocCells(r EchoResult) string {
	if !r.MemStats {
		return " – | – |"
	}
	return fmt.Sprintf(" %s | %s |", num(r.AllocsPerMsg), num(r.AllocBytesPerMsg))
}

// allocPlotFile is the chart of allocations per message, relative to the
// plots directory.
const allocPlotFile = "sbs-echo-allocs.svg"

// allocPlot draws the server's heap allocations per echoed message, one
// panel per echo and compression scenario, or returns nil when no result
// has them.
func allocPlot(res *Results) []byte {
	var ps []panel
	any := false
	add := func(prefix string, rows []EchoResult) {
		for _, s := range distinctKeys(rows, echoKey) {
			p := panel{title: prefix + echoTitle(s.Conns, s.Size)}
			for _, r := range rowsWithKey(rows, echoKey, s) {
				p.labels = append(p.labels, r.Lib)
				p.values = append(p.values, r.AllocsPerMsg)
				p.failed = append(p.failed, r.Error != "" || !r.MemStats)
				any = any || r.MemStats
			}
			ps = append(ps, p)
		}
	}
	add("", res.Echo)
	add(deflateTitlePrefix, compressRows(res, compressionOn))
	add(offTitlePrefix, compressRows(res, compressionOff))
	if !any {
		return nil
	}
	return barChart("Server heap allocations per echoed message", "objects, lower is better", ps)
}
