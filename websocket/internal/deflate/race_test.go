//go:build race

package deflate

// raceEnabled reports a -race build, whose instrumentation allocates.
const raceEnabled = true
