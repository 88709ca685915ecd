package interop

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"

	"github.com/duplex-ws/duplex/websocket"
)

// The compression scenario (README.md, "The compression scenario"): the
// messages every peer sends and checks when it runs with --compress (the
// page: mode=compress in its query).

// jsonPayload is the records {"id":I,"user":"userI","tags":["alpha","beta","gamma"],"score":S},
// for I = 0, 1, 2, ... with S = I*37 mod 1000, concatenated and cut to n
// bytes: compressible ASCII text.
func jsonPayload(n int) []byte {
	b := make([]byte, 0, n+100)
	for i := 0; len(b) < n; i++ {
		b = append(b, `{"id":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"user":"user`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `","tags":["alpha","beta","gamma"],"score":`...)
		b = strconv.AppendInt(b, int64(i*37%1000), 10)
		b = append(b, "},"...)
	}
	return b[:n]
}

// smallPayload is the 60-byte message number k (0..9999):
// {"seq":KKKK,"event":"tick","payload":"abcdefghijklmnopqrst"}.
func smallPayload(k int) []byte {
	return fmt.Appendf(nil, `{"seq":%04d,"event":"tick","payload":"abcdefghijklmnopqrst"}`, k)
}

// randomPayload is n bytes of xorshift32 seeded with n: x = n; then, for
// each 4 bytes, x ^= x<<13; x ^= x>>17; x ^= x<<5 (on 32 bits) and the
// bytes of x little-endian; the last step's bytes cut to n. Incompressible.
func randomPayload(n int) []byte {
	b := make([]byte, (n+3)/4*4)
	x := uint32(n)
	for i := 0; i < len(b); i += 4 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		binary.LittleEndian.PutUint32(b[i:], x)
	}
	return b[:n]
}

// periodicPayload is randomPayload(p) repeated and cut to n bytes: it
// compresses only with a window that reaches p bytes back.
func periodicPayload(n, p int) []byte {
	r := randomPayload(p)
	b := make([]byte, n)
	for i := 0; i < n; i += p {
		copy(b[i:], r)
	}
	return b
}

const smallMessages = 50

var (
	compressOnce sync.Once
	compressMsgs []message
)

// compressSequence returns the messages of the compression scenario. The
// payloads are shared: do not modify them.
func compressSequence() []message {
	compressOnce.Do(func() {
		add := func(typ websocket.MessageType, family, name string, frag bool, period int, data []byte) {
			compressMsgs = append(compressMsgs, message{
				index: len(compressMsgs), typ: typ, frag: frag, data: data,
				name: name, family: family, period: period,
			})
		}
		text, bin := websocket.MessageText, websocket.MessageBinary
		json := func(n int, frag bool) {
			add(text, "json", fmt.Sprintf("json(%d)", n), frag, 0, jsonPayload(n))
		}
		random := func(n int, frag bool) {
			add(bin, "random", fmt.Sprintf("random(%d)", n), frag, 0, randomPayload(n))
		}
		periodic := func(n, p int) {
			add(bin, "periodic", fmt.Sprintf("periodic(%d,%d)", n, p), false, p, periodicPayload(n, p))
		}
		json(0, false)
		json(10<<10, false)
		json(10<<10, true)
		json(1<<20, false)
		json(1<<20, true)
		json(16<<20, false)
		for k := range smallMessages {
			add(text, "small", fmt.Sprintf("small(%d)", k), false, 0, smallPayload(k))
		}
		random(0, false)
		random(100, false)
		random(64<<10, false)
		random(64<<10, true)
		random(1<<20, false)
		periodic(64<<10, 200)
		periodic(64<<10, 3000)
		periodic(256<<10, 30000)
		json(10<<10, false)
	})
	return compressMsgs
}
