package websocket

import (
	"bytes"
	"strconv"
	"testing"
)

// TestMaskBytes compares maskBytes with the byte-at-a-time definition of
// RFC 6455 §5.3 for every start position, lengths around the 4-, 8- and
// 64-byte steps, and a payload masked in two pieces at every split point.
func TestMaskBytes(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	ref := func(pos int, b []byte) []byte {
		out := bytes.Clone(b)
		for i := range out {
			out[i] ^= key[(pos+i)&3]
		}
		return out
	}
	src := make([]byte, 300)
	for i := range src {
		src[i] = byte(i*7 + 3)
	}
	for pos := 0; pos < 8; pos++ {
		for n := 0; n <= len(src); n++ {
			b := bytes.Clone(src[:n])
			if got := maskBytes(key, pos, b); got != (pos+n)&3 {
				t.Fatalf("pos %d, %d bytes: returned position %d, want %d", pos, n, got, (pos+n)&3)
			}
			if want := ref(pos, src[:n]); !bytes.Equal(b, want) {
				t.Fatalf("pos %d, %d bytes: % x, want % x", pos, n, b, want)
			}
		}
	}
	for split := 0; split <= 150; split++ {
		b := bytes.Clone(src[:150])
		next := maskBytes(key, 0, b[:split])
		maskBytes(key, next, b[split:])
		if want := ref(0, src[:150]); !bytes.Equal(b, want) {
			t.Fatalf("split at %d: % x, want % x", split, b, want)
		}
	}
}

// BenchmarkMaskBytes measures unmasking at the sizes of the echo scenarios
// and around the step from the byte loops to the block loops.
func BenchmarkMaskBytes(b *testing.B) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, n := range []int{16, 32, 64, 128, 1024, 64 << 10} {
		p := make([]byte, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				maskBytes(key, 1, p)
			}
		})
	}
}
