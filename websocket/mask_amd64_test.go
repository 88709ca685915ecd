//go:build amd64 && !purego

package websocket

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// maskImpls returns the AVX2, SSE2 and Go paths of maskBytes; the AVX2 one
// runs only where the CPU has AVX2.
func maskImpls() []maskImpl {
	sel := func(path int32) func(t testing.TB) bool {
		return func(t testing.TB) bool {
			if path == maskPathAVX2 && !cpu.X86.HasAVX2 {
				return false
			}
			old := maskPath.Load()
			t.Cleanup(func() { maskPath.Store(old) })
			maskPath.Store(path)
			return true
		}
	}
	return []maskImpl{{"avx2", sel(maskPathAVX2)}, {"sse2", sel(maskPathSSE2)}, {"go", sel(maskPathGo)}}
}
