package main

import (
	"fmt"
	"runtime"
)

// memLine is the answer to SIGUSR2: "mem MALLOCS TOTALALLOC", the heap
// objects and bytes this process allocated since it started
// (runtime.MemStats; both only grow). The load generator reads it at the
// start and end of a measured echo window and divides the differences by
// the messages echoed in between. Reading the statistics stops the world
// for a few microseconds, twice per window.
func memLine() string {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return fmt.Sprintf("mem %d %d", m.Mallocs, m.TotalAlloc)
}
