//go:build amd64 && !purego

package websocket

import (
	"sync/atomic"

	"golang.org/x/sys/cpu"
)

// maskAsm reports whether maskBlocks has an assembly version: on amd64
// without the purego build tag it has.
const maskAsm = true

// maskAsmMin is the length from which maskBytes hands the whole blocks to
// maskBlocks. Below it the call costs about as much as the assembly saves
// over the Go loops. Measured on an AMD EPYC (2 shared cores, noisy), with
// old and new test binaries run alternately: at 64 bytes the assembly was
// 23 % slower than the Go loops (p=0.03), at 128 bytes 15 % faster (p=0.02).
const maskAsmMin = 128

// The code paths of maskBlocks, for maskPath.
const (
	maskPathGo   = iota // mask nothing, leave all to the Go loops
	maskPathSSE2        // 16-byte blocks, present on every amd64 CPU
	maskPathAVX2        // 32-byte blocks, where the CPU has AVX2
)

// maskPath selects the code path of maskBlocks. It is set once from the
// CPU features; tests change it to check every path on one machine, so it
// is atomic: a test cannot race with a connection's goroutine.
var maskPath atomic.Int32

func init() {
	if cpu.X86.HasAVX2 {
		maskPath.Store(maskPathAVX2)
	} else {
		maskPath.Store(maskPathSSE2)
	}
}

// maskAVX2 XORs the n bytes at p, n a positive multiple of 32, with key
// repeated: 128 bytes per iteration, then 32. Implemented in mask_amd64.s.
//
//go:noescape
func maskAVX2(p *byte, n int, key uint32)

// maskSSE2 XORs the n bytes at p, n a positive multiple of 16, with key
// repeated: 64 bytes per iteration, then 16. Implemented in mask_amd64.s.
//
//go:noescape
func maskSSE2(p *byte, n int, key uint32)

// maskBlocks XORs the whole 32-byte (AVX2) or 16-byte (SSE2) blocks at the
// start of b, at least 32 bytes long, with the key k already rotated to
// the start position, and returns how many bytes it masked: a multiple of
// 16, so maskBytes goes on at the same key position.
func maskBlocks(k uint32, b []byte) int {
	switch maskPath.Load() {
	case maskPathAVX2:
		n := len(b) &^ 31
		maskAVX2(&b[0], n, k)
		return n
	case maskPathSSE2:
		n := len(b) &^ 15
		maskSSE2(&b[0], n, k)
		return n
	}
	return 0
}
