//go:build linux && !eventloop_safe

package eventloop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loops call the kernel directly with RawSyscall for what cannot
// block: reads and writes on non-blocking sockets and an epoll_wait with a
// zero timeout. A plain Syscall tells the scheduler that the goroutine may
// block (entersyscall): the system monitor then keeps polling every 20 µs
// to take the processor back, and on a busy server takes it and wakes a
// thread to run it, so that each message paid for wake-ups, futex calls
// and context switches besides its read and write (strace of a 100 × 32 B
// echo: 0.6 nanosleep and 0.04 to 0.16 futex per message). A loop waits
// for work only in the runtime's own poller (see waitEvents), never in the
// kernel while holding a processor.
//
// These raw calls pass buffers to the kernel as unsafe.Pointer, the way
// x/sys/unix does. Building with the tag eventloop_safe replaces them with
// x/sys/unix's own Read, Write and EpollWait (sys_safe_linux.go): the same
// behaviour at the cost of the scheduler's wake-ups; scripts/test.sh runs
// the package's tests in both builds.

// rawRead reads from a non-blocking descriptor.
func rawRead(fd int, p []byte) (int, error) { return rawIO(unix.SYS_READ, fd, p) }

// rawWrite writes to a non-blocking descriptor.
func rawWrite(fd int, p []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, p) }

// rawIO is read(2) or write(2), by trap, of p on fd.
func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	var b unsafe.Pointer
	if len(p) > 0 {
		b = unsafe.Pointer(&p[0])
	}
	r, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(b), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// writev writes iov to a non-blocking descriptor; the caller keeps the
// iovecs (unix.Writev builds its own on every call, an allocation per
// write). iov must not be empty.
func writev(fd int, iov []unix.Iovec) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// epollNow returns the events ready now, without waiting.
func epollNow(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
