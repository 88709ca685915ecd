//go:build !linux

package main

// startEchoClient drives the echo connections with a goroutine each:
// the epoll loops of echo_linux.go need Linux.
func startEchoClient(run *loopRun, conns []*echoConn) (func() []*loopStats, error) {
	return startGoroutineClient(run, conns)
}
