//go:build linux && !eventloop_safe

package eventloop

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A loop hands the kernel a round's reads, and then the round's writes, in
// one io_uring_enter each instead of one read(2) or writev(2) per
// connection (batch_linux.go). The operations are non-blocking
// (MSG_DONTWAIT): each completes, or fails with EAGAIN, inside the
// io_uring_enter that submits it, so that the ring never holds an
// operation between two calls and a buffer is never written by the kernel
// after the call returned. The loop keeps epoll for readiness.
//
// The ring's memory is shared with the kernel (mmap) and written with
// unsafe pointers, the way liburing does in C. Building with the tag
// eventloop_safe leaves io_uring out (uring_safe_linux.go), as does
// Server.DisableIOURing, and a kernel that refuses io_uring_setup (older
// than 5.18, or io_uring turned off by sysctl or seccomp): the loops then
// read and write one connection at a time.

// io_uring ABI (include/uapi/linux/io_uring.h).
const (
	uringSetupSubmitAll = 1 << 7 // IORING_SETUP_SUBMIT_ALL (5.18): go on past a failed SQE
	uringEnterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS

	uringOffSQRing = 0
	uringOffCQRing = 0x8000000
	uringOffSQEs   = 0x10000000

	uringOpSendmsg = 9  // IORING_OP_SENDMSG
	uringOpSend    = 26 // IORING_OP_SEND
	uringOpRecv    = 27 // IORING_OP_RECV
)

type uringSQOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  uringSQOffsets
	cqOff                                                                  uringCQOffsets
}

// uringSQE is struct io_uring_sqe (64 bytes).
type uringSQE struct {
	opcode, flags uint8
	ioprio        uint16
	fd            int32
	off, addr     uint64
	len           uint32
	opFlags       uint32 // msg_flags for send and recv
	userData      uint64
	bufIndex      uint16
	personality   uint16
	spliceFDIn    int32
	addr3, pad    uint64
}

// uringCQE is struct io_uring_cqe (16 bytes).
type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// uring is one loop's submission and completion rings. Only the loop
// goroutine uses it.
type uring struct {
	fd      int
	rings   []byte // the SQ and CQ rings' mapping
	sqeMap  []byte // the SQE array's mapping
	sqHead  *uint32
	sqTail  *uint32
	sqMask  uint32
	sqes    []uringSQE
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    []uringCQE
	pending uint32 // SQEs filled since the last submit
	max     uint32 // SQEs one submit may hold
}

// newURing sets up a ring for batches of up to entries operations.
func newURing(entries uint32) (*uring, error) {
	var p uringParams
	p.flags = uringSetupSubmitAll
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("eventloop: io_uring_setup: %w", e)
	}
	r := &uring{fd: int(fd), max: p.sqEntries}
	ringsLen := max(int(p.sqOff.array+p.sqEntries*4), int(p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(uringCQE{}))))
	var err error
	// One mapping holds both rings: the SQ ring's offset maps the CQ ring
	// too on every kernel with IORING_FEAT_SINGLE_MMAP (5.4), and the
	// kernels without it do not have IORING_SETUP_SUBMIT_ALL either.
	if r.rings, err = unix.Mmap(r.fd, uringOffSQRing, ringsLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		unix.Close(r.fd)
		return nil, fmt.Errorf("eventloop: io_uring rings: %w", err)
	}
	if r.sqeMap, err = unix.Mmap(r.fd, uringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, fmt.Errorf("eventloop: io_uring SQEs: %w", err)
	}
	base := unsafe.Pointer(&r.rings[0])
	r.sqHead = (*uint32)(unsafe.Add(base, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(base, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(base, p.sqOff.ringMask))
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&r.sqeMap[0])), p.sqEntries)
	// The SQ array maps ring slots to SQEs: slot i always holds SQE i.
	array := unsafe.Slice((*uint32)(unsafe.Add(base, p.sqOff.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.cqHead = (*uint32)(unsafe.Add(base, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(base, p.cqOff.ringMask))
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Add(base, p.cqOff.cqes)), p.cqEntries)
	return r, nil
}

func (r *uring) close() {
	if r.sqeMap != nil {
		unix.Munmap(r.sqeMap)
	}
	unix.Munmap(r.rings)
	unix.Close(r.fd)
}

// next returns a zeroed SQE to fill, at most r.max per submit.
func (r *uring) next() *uringSQE {
	if r.pending == r.max {
		panic("eventloop: more io_uring operations than the ring holds") // the batches are bounded: a bug
	}
	i := (atomic.LoadUint32(r.sqTail) + r.pending) & r.sqMask
	r.pending++
	s := &r.sqes[i]
	*s = uringSQE{}
	return s
}

// recv adds a non-blocking recv of p (not empty) on fd.
func (r *uring) recv(fd int, p []byte, id uint64) {
	s := r.next()
	s.opcode = uringOpRecv
	s.fd = int32(fd)
	s.addr = uint64(uintptr(unsafe.Pointer(&p[0])))
	s.len = uint32(len(p))
	s.opFlags = unix.MSG_DONTWAIT
	s.userData = id
}

// send adds a non-blocking send of iov (not empty) on fd: a send of the
// one segment, or a sendmsg of several through m, which must stay put
// until submit returned.
func (r *uring) send(fd int, iov []unix.Iovec, m *unix.Msghdr, id uint64) {
	s := r.next()
	s.fd = int32(fd)
	s.opFlags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
	s.userData = id
	if len(iov) == 1 {
		s.opcode = uringOpSend
		s.addr = uint64(uintptr(unsafe.Pointer(iov[0].Base)))
		s.len = uint32(iov[0].Len)
		return
	}
	*m = unix.Msghdr{Iov: &iov[0]}
	m.SetIovlen(len(iov))
	s.opcode = uringOpSendmsg
	s.addr = uint64(uintptr(unsafe.Pointer(m)))
}

// submit hands the kernel the pending SQEs and waits until all of them
// completed, which they do inside the call (they are non-blocking: the
// wait in io_uring_enter never waits for a peer), and sets
// res[id] to the result of the operation given id (bytes, or a negative
// errno); ids must index res. The memory the SQEs point to must stay
// reachable until submit returns.
func (r *uring) submit(res []int32) error {
	n := r.pending
	if n == 0 {
		return nil
	}
	r.pending = 0
	tail := atomic.LoadUint32(r.sqTail) + n
	atomic.StoreUint32(r.sqTail, tail)
	for got := uint32(0); got < n; {
		// The kernel's SQ head says what it took: with SUBMIT_ALL a call
		// takes every SQE, unless it failed before (EAGAIN, EBUSY, EINTR).
		toSubmit := tail - atomic.LoadUint32(r.sqHead)
		_, _, e := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(n-got), uringEnterGetEvents, 0, 0)
		if e != 0 && e != unix.EINTR && e != unix.EAGAIN && e != unix.EBUSY {
			return fmt.Errorf("eventloop: io_uring_enter: %w", e)
		}
		head := atomic.LoadUint32(r.cqHead)
		cqTail := atomic.LoadUint32(r.cqTail)
		for ; head != cqTail; head++ {
			c := &r.cqes[head&r.cqMask]
			res[c.userData] = c.res
			got++
		}
		atomic.StoreUint32(r.cqHead, head)
	}
	return nil
}

// uringBuilt says that this build can batch with io_uring.
const uringBuilt = true
