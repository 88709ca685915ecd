package websocket

import (
	"encoding/binary"
	"math/bits"
)

// maskBytes XORs b with the 4-byte masking key (RFC 6455 §5.3), starting at
// key position pos, and returns the key position after b. Masking is its own
// inverse, so one function masks and unmasks, and it is on the path of every
// payload byte read from a client or written by one. Where there is an
// assembly version (amd64 without the purego build tag: AVX2 or SSE2) a
// slice of maskAsmMin bytes or more has its whole 32- or 16-byte blocks
// masked by maskBlocks, several times faster than 8-byte Go operations;
// the Go code below does the rest, and everything elsewhere. The Go code
// works eight bytes at a time with plain loads and stores (no unsafe), which
// the compiler turns into single 64-bit instructions; the key is turned to
// the starting position by a rotation, not byte by byte, which matters for
// small frames. Both are in one function because a second call costs small
// frames more than the masking itself.
func maskBytes(key [4]byte, pos int, b []byte) int {
	end := (pos + len(b)) & 3
	k := bits.RotateLeft32(binary.LittleEndian.Uint32(key[:]), -8*(pos&3))
	if maskAsm && len(b) >= maskAsmMin {
		// The blocks are multiples of 4 bytes long, so the rest starts
		// at the same key position.
		b = b[maskBlocks(k, b):]
	}
	if len(b) >= 8 {
		kw := uint64(k) | uint64(k)<<32
		for len(b) >= 32 {
			// Constant offsets into a 32-byte slice: no bounds checks.
			w := b[:32:32]
			binary.LittleEndian.PutUint64(w[0:], binary.LittleEndian.Uint64(w[0:])^kw)
			binary.LittleEndian.PutUint64(w[8:], binary.LittleEndian.Uint64(w[8:])^kw)
			binary.LittleEndian.PutUint64(w[16:], binary.LittleEndian.Uint64(w[16:])^kw)
			binary.LittleEndian.PutUint64(w[24:], binary.LittleEndian.Uint64(w[24:])^kw)
			b = b[32:]
		}
		for len(b) >= 8 {
			v := binary.LittleEndian.Uint64(b)
			binary.LittleEndian.PutUint64(b, v^kw)
			b = b[8:]
		}
	}
	if len(b) >= 4 {
		binary.LittleEndian.PutUint32(b, binary.LittleEndian.Uint32(b)^k)
		b = b[4:]
	}
	for i := range b {
		b[i] ^= byte(k >> (8 * i))
	}
	return end
}
