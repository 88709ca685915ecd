package websocket

import "encoding/binary"

// maskBytes XORs b with the 4-byte masking key (RFC 6455 §5.3), starting at
// key position pos, and returns the key position after b. Masking is its own
// inverse, so one function masks and unmasks. It works eight bytes at a time
// with plain loads and stores (no unsafe), which the compiler turns into
// single 64-bit instructions.
func maskBytes(key [4]byte, pos int, b []byte) int {
	pos &= 3
	// Align the key to the starting position.
	var k [8]byte
	for i := 0; i < 8; i++ {
		k[i] = key[(pos+i)&3]
	}
	if len(b) >= 8 {
		kw := binary.LittleEndian.Uint64(k[:])
		for len(b) >= 64 {
			for j := 0; j < 64; j += 8 {
				v := binary.LittleEndian.Uint64(b[j:])
				binary.LittleEndian.PutUint64(b[j:], v^kw)
			}
			b = b[64:]
		}
		for len(b) >= 8 {
			v := binary.LittleEndian.Uint64(b)
			binary.LittleEndian.PutUint64(b, v^kw)
			b = b[8:]
		}
	}
	for i := range b {
		b[i] ^= k[i&7]
	}
	return (pos + len(b)) & 3
}
