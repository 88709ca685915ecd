//go:build !linux

package bridge

import "errors"

// pipeState needs Linux's /proc; see pipe_linux_test.go.
func pipeState(pid, fd int) (queued, capacity int, state byte, err error) {
	return 0, 0, 0, errors.New("pipe state needs /proc (Linux)")
}

func sleepsInPipeWrite(pid int) bool { return false }
