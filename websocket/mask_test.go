package websocket

import (
	"bytes"
	"strconv"
	"testing"
)

// TestMaskBytes compares maskBytes with the byte-at-a-time definition of
// RFC 6455 §5.3 (maskRef) for every start position, lengths around the 4-, 8- and
// 64-byte steps, and a payload masked in two pieces at every split point.
func TestMaskBytes(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	ref := func(pos int, b []byte) []byte {
		out := bytes.Clone(b)
		maskRef(key, pos, out)
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

// maskImpl is one code path of maskBytes: use selects it for the calling
// test (restored by t.Cleanup) and reports false when this CPU lacks it.
type maskImpl struct {
	name string
	use  func(t testing.TB) bool
}

// maskRef is the byte-at-a-time definition of RFC 6455 §5.3 that the code
// paths of maskBytes are checked against.
func maskRef(key [4]byte, pos int, b []byte) int {
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}

// TestMaskBytesPaths compares every code path of maskBytes with maskRef
// for every length up to 1100 bytes, every key position
// and slices at unaligned offsets inside a larger buffer: the masked bytes,
// the untouched bytes around the slice and the returned position must all
// match.
func TestMaskBytesPaths(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	const guard = 67
	src := make([]byte, 31+1100+guard)
	for i := range src {
		src[i] = byte(i*131 + 17)
	}
	for _, impl := range maskImpls() {
		t.Run(impl.name, func(t *testing.T) {
			if !impl.use(t) {
				t.Skipf("this CPU cannot run the %s path", impl.name)
			}
			got := make([]byte, len(src))
			want := make([]byte, len(src))
			for _, off := range []int{0, 1, 3, 7, 8, 13, 31} {
				for n := 0; n <= 1100; n++ {
					for pos := 0; pos < 4; pos++ {
						copy(got, src)
						copy(want, src)
						gotPos := maskBytes(key, pos, got[off:off+n])
						wantPos := maskRef(key, pos, want[off:off+n])
						if gotPos != wantPos {
							t.Fatalf("offset %d, %d bytes, pos %d: returned position %d, want %d", off, n, pos, gotPos, wantPos)
						}
						if i := firstDiff(got, want); i >= 0 {
							t.Fatalf("offset %d, %d bytes, pos %d: byte %d of the buffer (slice is [%d:%d]) is %#x, want %#x",
								off, n, pos, i, off, off+n, got[i], want[i])
						}
					}
				}
			}
		})
	}
}

// firstDiff returns the index of the first byte where a and b (of equal
// length) differ, or -1.
func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// FuzzMaskBytes compares every code path of maskBytes with maskRef on
// fuzzed payloads, keys, start positions and slice offsets.
func FuzzMaskBytes(f *testing.F) {
	for _, n := range []int{0, 1, 3, 15, 16, 31, 32, 63, 64, 65, 127, 128, 129, 200, 1100} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + n)
		}
		f.Add(data, uint32(0x3d21fa37), n&3, uint8(n%5))
	}
	impls := maskImpls()
	f.Fuzz(func(t *testing.T, data []byte, k uint32, pos int, off uint8) {
		key := [4]byte{byte(k), byte(k >> 8), byte(k >> 16), byte(k >> 24)}
		o := int(off % 32)
		if pos < 0 {
			pos = -(pos + 1)
		}
		ref := bytes.Clone(data)
		wantPos := maskRef(key, pos, ref)
		for _, impl := range impls {
			if !impl.use(t) {
				continue
			}
			buf := make([]byte, o+len(data)+32)
			copy(buf[o:], data)
			got := maskBytes(key, pos, buf[o:o+len(data)])
			if got != wantPos || !bytes.Equal(buf[o:o+len(data)], ref) {
				t.Fatalf("%s: maskBytes(%x, %d, %d bytes at offset %d): position %d, bytes % x; want %d, % x",
					impl.name, key, pos, len(data), o, got, buf[o:o+len(data)], wantPos, ref)
			}
			if i := firstDiff(buf[:o], make([]byte, o)); i >= 0 {
				t.Fatalf("%s: byte %d before the slice changed", impl.name, i)
			}
			if i := firstDiff(buf[o+len(data):], make([]byte, 32)); i >= 0 {
				t.Fatalf("%s: byte %d after the slice changed", impl.name, i)
			}
		}
	})
}
