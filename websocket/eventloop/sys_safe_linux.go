//go:build linux && eventloop_safe

package eventloop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The fallback of sys_linux.go, built with the tag eventloop_safe: reads,
// writes and the zero-timeout epoll_wait go through x/sys/unix's wrappers,
// which tell the scheduler about each system call (entersyscall) instead
// of calling the kernel raw. Nothing else changes: the loops still park in
// the runtime's poller when idle.

func rawRead(fd int, p []byte) (int, error) { return unix.Read(fd, p) }

func rawWrite(fd int, p []byte) (int, error) { return unix.Write(fd, p) }

// writev is unix.Syscall on the caller's iovecs, as unix.Writev itself
// does after building them from [][]byte. iov must not be empty.
func writev(fd int, iov []unix.Iovec) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func epollNow(epfd int, events []unix.EpollEvent) (int, error) {
	return unix.EpollWait(epfd, events, 0)
}
