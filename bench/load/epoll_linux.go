package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

// The epoll machinery the broadcast subscribers and the echo connections
// share. A load generator that drives thousands of sockets from a
// goroutine each pays the Go scheduler and the runtime's poller for every
// read and write, and its CPU per message then rivals the server's. Here a
// few goroutines each own an epoll descriptor: its own readiness waits in
// the runtime's poller (so no thread blocks in epoll_wait holding a P),
// and once it is readable a zero-timeout epoll_pwait takes the ready
// sockets. Sockets are non-blocking and level-triggered for reading; reads
// and writes are raw system calls (RawSyscall: a non-blocking call never
// blocks, and Syscall's hand-off bookkeeping, with sysmon retaking the P
// of a thread that stays in a system call, would cost more than the call).

// errEpollerClosed is what wait returns once the epoller was closed.
var errEpollerClosed = errors.New("epoller closed")

// epoller is one epoll descriptor parked in the runtime's poller.
type epoller struct {
	file   *os.File // the epoll descriptor, non-blocking, so in the runtime's poller
	rc     syscall.RawConn
	events []syscall.EpollEvent
}

// newEpoller creates an epoll descriptor that returns at most maxEvents
// ready sockets per wait.
func newEpoller(maxEvents int) (*epoller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &epoller{file: f, rc: rc, events: make([]syscall.EpollEvent, maxEvents)}, nil
}

// add registers socket fd for reading (level-triggered); its events carry
// tag in their Fd field.
func (p *epoller) add(fd int, tag int32) error {
	return p.ctl(syscall.EPOLL_CTL_ADD, fd, syscall.EPOLLIN, tag)
}

// modify sets the events fd is watched for.
func (p *epoller) modify(fd int, events uint32, tag int32) error {
	return p.ctl(syscall.EPOLL_CTL_MOD, fd, events, tag)
}

// ctl runs epoll_ctl while the descriptor is held open, so that a close
// from another goroutine cannot hand its number to another file first.
func (p *epoller) ctl(op, fd int, events uint32, tag int32) error {
	ev := syscall.EpollEvent{Events: events, Fd: tag}
	var err error
	if cerr := p.rc.Control(func(efd uintptr) {
		err = syscall.EpollCtl(int(efd), op, fd, &ev)
	}); cerr != nil {
		return errEpollerClosed
	}
	if err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// wait parks the calling goroutine in the runtime's poller until a
// registered socket is ready and returns the ready ones (valid until the
// next wait), or errEpollerClosed once close was called.
func (p *epoller) wait() ([]syscall.EpollEvent, error) {
	var (
		n     int
		errno syscall.Errno
	)
	err := p.rc.Read(func(efd uintptr) bool {
		n, errno = epollPwait(int(efd), p.events)
		if errno == syscall.EINTR {
			n, errno = 0, 0
		}
		return n > 0 || errno != 0
	})
	if err != nil {
		return nil, errEpollerClosed
	}
	if errno != 0 {
		return nil, fmt.Errorf("epoll_pwait: %w", errno)
	}
	return p.events[:n], nil
}

// close closes the descriptor; a goroutine in wait returns
// errEpollerClosed.
func (p *epoller) close() { p.file.Close() }

// loopCount is how many epoll loops drive n sockets: one per GOMAXPROCS
// (one when the load generator is pinned), at most 4, at most n.
func loopCount(n int) int {
	return max(1, min(runtime.GOMAXPROCS(0), 4, n))
}

// epollPwait takes the ready events of epfd without waiting.
func epollPwait(epfd int, events []syscall.EpollEvent) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(r), e
}

// rawRead reads from non-blocking fd into b (len(b) > 0).
func rawRead(fd int, b []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(r), e
}

// rawSend writes b (len(b) > 0) to non-blocking socket fd; MSG_NOSIGNAL:
// a peer that closed gives EPIPE, not the signal.
func rawSend(fd int, b []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_NOSIGNAL, 0, 0)
	return int(r), e
}

// detachConn takes c's socket out of the runtime's poller: it returns a
// non-blocking, close-on-exec duplicate and closes c (which removes the
// socket from the runtime's epoll; the duplicate keeps it open).
func detachConn(c net.Conn) (int, error) {
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = dupCloexec(int(s))
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// dupCloexec duplicates fd with close-on-exec set.
func dupCloexec(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
