package websocket

import (
	"encoding/binary"
	"math/bits"
)

// maskBytes XORs b with the 4-byte masking key (RFC 6455 §5.3), starting at
// key position pos, and returns the key position after b. Masking is its own
// inverse, so one function masks and unmasks. It works eight bytes at a time
// with plain loads and stores (no unsafe), which the compiler turns into
// single 64-bit instructions; the key is turned to the starting position
// by a rotation, not byte by byte, which matters for small frames.
func maskBytes(key [4]byte, pos int, b []byte) int {
	end := (pos + len(b)) & 3
	k := bits.RotateLeft32(binary.LittleEndian.Uint32(key[:]), -8*(pos&3))
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
