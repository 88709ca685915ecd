//go:build linux && eventloop_safe

package eventloop

import (
	"errors"

	"golang.org/x/sys/unix"
)

// The build with the tag eventloop_safe has no io_uring (see
// uring_linux.go): newURing fails, and the loops read and write one
// connection at a time with x/sys/unix's wrappers.

type uring struct{ pending uint32 }

func newURing(entries uint32) (*uring, error) {
	return nil, errors.New("eventloop: built with eventloop_safe: no io_uring")
}

func (r *uring) close()                                                   {}
func (r *uring) recv(fd int, p []byte, id uint64)                         {}
func (r *uring) send(fd int, iov []unix.Iovec, m *unix.Msghdr, id uint64) {}
func (r *uring) submit(res []int32) error                                 { return nil }

// uringBuilt says that this build cannot batch with io_uring.
const uringBuilt = false
