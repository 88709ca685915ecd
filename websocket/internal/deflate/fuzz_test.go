package deflate

// FuzzEncoder drives an Encoder with a script and checks every message
// with the test inflater (every back-reference within the window and the
// history) and with compress/flate. Run it with
//
//	go test -run '^$' -fuzz FuzzEncoder -fuzztime 100000x ./websocket/internal/deflate/
//
// Without -fuzz, `go test` runs the seeds below (and any in
// testdata/fuzz/FuzzEncoder/) as an ordinary test.

import (
	"bytes"
	"testing"
)

// maxFuzzBytes and maxFuzzMessages bound the input one run encodes, to
// keep runs fast.
const (
	maxFuzzBytes    = 256 << 10
	maxFuzzMessages = 2000
)

func FuzzEncoder(f *testing.F) {
	text := genText(3000, 1)
	rnd := genRandom(2000, 1)
	ticker := []byte(`{"symbol":"ACME","price":123.45,"seq":1234}`)
	f.Add([]byte{}, uint8(7), uint8(0), []byte{})
	f.Add([]byte("a"), uint8(0), uint8(0), []byte{0, 1})
	f.Add(ticker, uint8(7), uint8(0), []byte{0, 43, 0, 43, 0, 43, 4, 0, 43})
	f.Add(ticker, uint8(0), uint8(5), []byte{0x38, 255, 5, 43, 0, 43, 6, 0})
	f.Add(text, uint8(7), uint8(5), []byte{0x38, 200, 0x18, 90, 4, 0x3f, 255})
	f.Add(text, uint8(2), uint8(8), []byte{0x20, 255, 0x27, 255, 5, 100, 0x20, 255})
	f.Add(rnd, uint8(7), uint8(1), []byte{0x38, 255, 0x38, 255, 0x1f, 255})
	f.Add(bytes.Repeat([]byte{'x'}, 300), uint8(0), uint8(2), []byte{0x38, 255, 0x18, 3})
	f.Add(append(rnd[:257:257], rnd[:257]...), uint8(0), uint8(3), []byte{0x18, 255, 0x18, 255})
	f.Fuzz(func(t *testing.T, data []byte, wb, lv uint8, script []byte) {
		wbits := 8 + int(wb%8)
		level := 1 + int(lv%9)
		h := newHarness(t, wbits, level)
		// take returns n bytes cut from data at pos, repeating data as
		// needed, so short inputs still make long and self-similar
		// messages that cross the window.
		pos := 0
		take := func(n int) []byte {
			if len(data) == 0 {
				return make([]byte, n)
			}
			p := make([]byte, n)
			for i := range p {
				p[i] = data[(pos+i)%len(data)]
			}
			pos = (pos + n) % len(data)
			return p
		}
		if len(script) == 0 {
			h.encode(data)
			h.check()
			return
		}
		total := 0
		for len(script) > 0 && total < maxFuzzBytes && h.messages < maxFuzzMessages {
			op := script[0]
			n := 0
			if len(script) > 1 {
				// The length: the next byte, scaled by 1 << (op >> 3 & 7).
				n = int(script[1]) << (op >> 3 & 7)
				script = script[2:]
			} else {
				script = script[1:]
			}
			n = min(n, maxFuzzBytes-total)
			total += n
			switch op & 7 {
			case 0, 1, 2:
				h.encode(take(n))
			case 3:
				// Noisy data: edits in repeated content.
				p := take(n)
				for i := 0; i < len(p); i += 1 + int(op)%97 {
					p[i] ^= byte(i)
				}
				h.encode(p)
			case 4:
				h.reset()
				total -= n
			case 5:
				h.addHistory(take(n))
			case 6:
				h.encode(nil)
				total -= n
			case 7:
				// One message cut into many small ones.
				for p := take(n); len(p) > 0 && h.messages < maxFuzzMessages; {
					k := min(len(p), 1+int(op)%23)
					h.encode(p[:k])
					p = p[k:]
				}
			}
		}
		h.check()
	})
}
