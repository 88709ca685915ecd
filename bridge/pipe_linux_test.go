package bridge

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"unsafe"
)

// fGetPipeSz is F_GETPIPE_SZ, the capacity of a pipe (fcntl(2)).
const fGetPipeSz = 1032

// pipeState reports, for the pipe that is file descriptor fd of process
// pid, how many bytes it holds unread and its capacity, and the process's
// scheduler state (the third field of /proc/PID/stat: 'R' running, 'S'
// sleeping). The pipe is opened again through /proc/PID/fd/FD, which gives
// a new descriptor of the same pipe; nothing is read from it.
func pipeState(pid, fd int) (queued, capacity int, state byte, err error) {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	var n int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); e != 0 {
		return 0, 0, 0, fmt.Errorf("FIONREAD: %w", e)
	}
	c, _, e := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), fGetPipeSz, 0)
	if e != 0 {
		return 0, 0, 0, fmt.Errorf("F_GETPIPE_SZ: %w", e)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 || i+2 >= len(stat) {
		return 0, 0, 0, fmt.Errorf("cannot parse /proc/%d/stat: %q", pid, stat)
	}
	return int(n), int(c), stat[i+2], nil
}

// sleepsInPipeWrite reports whether process pid waits in the kernel's pipe
// write ("pipe_write", "anon_pipe_write", or "pipe_wait" on older
// kernels), per /proc/PID/wchan. Where wchan is hidden (it reads "0") it
// reports true, and the caller's other checks must do.
func sleepsInPipeWrite(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	if err != nil {
		return false
	}
	w := string(b)
	return w == "0" || w == "" || strings.Contains(w, "pipe")
}
