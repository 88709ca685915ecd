package deflate

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// ---------------------------------------------------------------------------
// Test data

// textWords is a vocabulary for English-like text: the most common English
// words, drawn with a Zipf distribution, which gives text about as
// compressible as real prose.
var textWords = strings.Fields(`the of and to a in that is was he for it with as his on be at by I
this had not are but from or have an they which one you were her all she there would their we him
been has when who will more no if out so said what up its about into than them can only other new
some could time these two may then do first any my now such like our over man me even most made
after also did many before must through back years where much your way well down should because
each just those people Mr how too little state good very make world still own see men work long
get here between both life being under never day same another know while last might us great old
year off come since against go came right used take three light colours rays glass prism water
experiment reflected refracted observed sun image paper white red green blue violet yellow hole
window room distance inch feet lens object eye upon therefore whence which appears manner`)

// genText returns n bytes of English-like text.
func genText(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	z := rand.NewZipf(rng, 1.2, 2, uint64(len(textWords)-1))
	var b bytes.Buffer
	line := 0
	for b.Len() < n {
		words := 5 + rng.IntN(15)
		for i := 0; i < words; i++ {
			w := textWords[z.Uint64()]
			if i == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			if line+len(w) > 72 {
				b.WriteByte('\n')
				line = 0
			} else if i > 0 || line > 0 {
				b.WriteByte(' ')
				line++
			}
			b.WriteString(w)
			line += len(w)
			if i == words-1 {
				b.WriteByte(".,;:!?"[min(rng.IntN(10), 5)])
			} else if rng.IntN(12) == 0 {
				b.WriteByte(',')
			}
		}
	}
	return b.Bytes()[:n]
}

func genRandom(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// tickers returns n messages like {"symbol":"ACME","price":123.45,"seq":N}.
// With vary, the symbol and price change too.
func tickers(n int, vary bool) [][]byte {
	rng := rand.New(rand.NewPCG(7, 7))
	syms := []string{"ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"}
	prices := []float64{123.45, 87.5, 1043.2, 12.07, 455.9}
	msgs := make([][]byte, n)
	for i := range msgs {
		s, p := 0, 123.45
		if vary {
			s = rng.IntN(len(syms))
			prices[s] += float64(rng.IntN(21)-10) / 100
			p = prices[s]
		}
		msgs[i] = fmt.Appendf(nil, `{"symbol":%q,"price":%.2f,"seq":%d}`, syms[s], p, 1000+i)
	}
	return msgs
}

// ---------------------------------------------------------------------------
// Harness: an Encoder, the test inflater and compress/flate, in step.

// streamSource hands compress/flate the stream written so far and reports
// io.EOF past it. It is an io.ByteReader, so flate reads it directly with
// no read-ahead: a reader that needed bytes beyond a message before
// returning that message's data would fail (the error is sticky).
type streamSource struct {
	buf []byte
	pos int
}

func (s *streamSource) Read(p []byte) (int, error) {
	if s.pos >= len(s.buf) {
		return 0, io.EOF
	}
	n := copy(p, s.buf[s.pos:])
	s.pos += n
	return n, nil
}

func (s *streamSource) ReadByte() (byte, error) {
	if s.pos >= len(s.buf) {
		return 0, io.EOF
	}
	s.pos++
	return s.buf[s.pos-1], nil
}

func (s *streamSource) add(p []byte) {
	if s.pos > 1<<20 {
		s.buf = append(s.buf[:0], s.buf[s.pos:]...)
		s.pos = 0
	}
	s.buf = append(s.buf, p...)
}

type harness struct {
	t            testing.TB
	wbits, level int
	e            *Encoder
	ti           *tInflater
	src          streamSource
	fr           io.ReadCloser
	dict         []byte // history given before the stream started
	out, got     []byte
	in, outBytes int // totals
	messages     int
}

func newHarness(t testing.TB, wbits, level int) *harness {
	return &harness{t: t, wbits: wbits, level: level,
		e: NewEncoder(wbits, level), ti: &tInflater{window: 1 << wbits}}
}

// feed hands a compressed message to compress/flate and checks that it
// inflates to p without reading past the message.
func (h *harness) feed(out, p []byte) {
	h.t.Helper()
	h.src.add(out)
	if h.fr == nil {
		h.fr = flate.NewReaderDict(&h.src, h.dict)
	}
	if cap(h.got) < len(p) {
		h.got = make([]byte, len(p))
	}
	got := h.got[:len(p)]
	if _, err := io.ReadFull(h.fr, got); err != nil {
		h.t.Fatalf("w%d l%d: compress/flate: %v", h.wbits, h.level, err)
	}
	if !bytes.Equal(got, p) {
		h.t.Fatalf("w%d l%d: compress/flate inflated %d bytes that differ from the input", h.wbits, h.level, len(p))
	}
}

// encode runs one message through everything and returns its compressed
// size.
func (h *harness) encode(p []byte) int {
	h.t.Helper()
	out := h.e.Encode(h.out[:0], p)
	h.out = out
	if !bytes.HasSuffix(out, []byte{0, 0, 0xff, 0xff}) {
		h.t.Fatalf("w%d l%d: output does not end with 00 00 ff ff: % x", h.wbits, h.level, out[max(0, len(out)-8):])
	}
	got, err := h.ti.message(out)
	if err != nil {
		h.t.Fatalf("w%d l%d: test inflater: %v (input %d bytes)", h.wbits, h.level, err, len(p))
	}
	if !bytes.Equal(got, p) {
		h.t.Fatalf("w%d l%d: test inflater: output differs from the %d-byte input", h.wbits, h.level, len(p))
	}
	h.feed(out, p)
	h.in += len(p)
	h.outBytes += len(out)
	h.messages++
	return len(out)
}

func (h *harness) reset() {
	h.e.Reset()
	h.ti.reset()
}

// addHistory gives p to the Encoder as history. Before the stream starts
// it becomes the preset dictionary; after, it is sent as a prepared
// message (compressed once without context by another Encoder), which is
// what AddHistory is for.
func (h *harness) addHistory(p []byte) {
	h.t.Helper()
	if h.fr == nil {
		h.dict = append(h.dict, p...)
		h.ti.addHistory(p)
		h.e.AddHistory(p)
		return
	}
	prep := NewEncoder(h.wbits, h.level).Encode(nil, p)
	alone := &tInflater{window: 1 << h.wbits}
	if got, err := alone.message(prep); err != nil || !bytes.Equal(got, p) {
		h.t.Fatalf("prepared message: %v", err)
	}
	if got, err := h.ti.message(prep); err != nil || !bytes.Equal(got, p) {
		h.t.Fatalf("prepared message in stream: %v", err)
	}
	h.feed(prep, p)
	h.e.AddHistory(p)
}

func (h *harness) check() {
	h.t.Helper()
	if h.ti.st.maxDist > 1<<h.wbits {
		h.t.Fatalf("w%d: max distance %d", h.wbits, h.ti.st.maxDist)
	}
}

// ---------------------------------------------------------------------------
// Round trips

type namedInput struct {
	name string
	data []byte
}

func roundTripInputs(wbits int) []namedInput {
	w := 1 << wbits
	all := make([]byte, 512)
	for i := range all {
		all[i] = byte(i)
	}
	rnd := genRandom(w, 11)
	return []namedInput{
		{"empty", nil},
		{"one", []byte("a")},
		{"run257", bytes.Repeat([]byte{'x'}, 257)},
		{"run258", bytes.Repeat([]byte{'x'}, 258)},
		{"run259", bytes.Repeat([]byte{'x'}, 259)},
		{"run3000", bytes.Repeat([]byte{0}, 3000)},
		{"allbytes", all},
		{"random", genRandom(20000, uint64(wbits))},
		{"repeat", bytes.Repeat([]byte("abcdefghij0123"), 3000)},
		{"text", genText(40000, uint64(wbits))},
		{"periodW", bytes.Repeat(rnd, 3)},
		{"periodW+1", bytes.Repeat(append(rnd[:w:w], 'z'), 3)},
		{"periodW-1", bytes.Repeat(rnd[:w-1], 3)},
		{"crossWindow", genText(3*w+5000, 99)},
	}
}

// TestRoundTrip encodes each input as one message, then split into
// messages of random sizes, for every window size and several levels,
// checking the output with both inflaters and every distance.
func TestRoundTrip(t *testing.T) {
	levels := []int{1, 2, 4, 6, 9}
	if testing.Short() {
		levels = []int{1, 6}
	}
	for wbits := 8; wbits <= 15; wbits++ {
		for _, level := range levels {
			for _, in := range roundTripInputs(wbits) {
				h := newHarness(t, wbits, level)
				h.encode(in.data)
				h.check()

				h = newHarness(t, wbits, level)
				rng := rand.New(rand.NewPCG(uint64(wbits), uint64(level)))
				for p := in.data; len(p) > 0; {
					n := min(len(p), 1+rng.IntN(3000))
					h.encode(p[:n])
					p = p[n:]
				}
				h.check()
			}
		}
	}
}

// TestAllLevels runs every level over text, random data and small
// messages and checks that higher levels do not compress worse.
func TestAllLevels(t *testing.T) {
	text := genText(100000, 3)
	var prev int
	for level := 1; level <= 9; level++ {
		h := newHarness(t, 15, level)
		n := h.encode(text)
		h.encode(genRandom(70000, 4))
		for _, m := range tickers(200, true) {
			h.encode(m)
		}
		h.check()
		t.Logf("level %d: text %d -> %d (%.1f%%)", level, len(text), n, 100*float64(n)/float64(len(text)))
		if level > 1 && float64(n) > float64(prev)*1.02 {
			t.Errorf("level %d compresses text to %d bytes, level %d to %d", level, n, level-1, prev)
		}
		prev = n
	}
}

// TestMessages sends many small messages with context takeover, with
// resets and prepared messages mixed in.
func TestMessages(t *testing.T) {
	msgs := tickers(400, true)
	text := genText(20000, 5)
	for wbits := 8; wbits <= 15; wbits++ {
		for _, level := range []int{1, 3, 5, 9} {
			h := newHarness(t, wbits, level)
			rng := rand.New(rand.NewPCG(uint64(wbits), 9))
			for i, m := range msgs {
				switch {
				case i%97 == 50:
					h.reset()
				case i%61 == 30:
					h.addHistory(msgs[rng.IntN(len(msgs))])
				case i%53 == 20:
					k := rng.IntN(len(text) - 2000)
					h.encode(text[k : k+rng.IntN(2000)])
				case i%41 == 10:
					h.encode(nil)
				}
				h.encode(m)
			}
			h.check()
		}
	}
}

// TestTickerCompression checks that small similar messages gain from
// context takeover: 1000 {"symbol":"ACME","price":123.45,"seq":N} messages
// with a 15-bit window average well under 20 bytes each after the first
// few, counting the 00 00 ff ff tail that RFC 7692 has the sender strip.
func TestTickerCompression(t *testing.T) {
	for _, vary := range []bool{false, true} {
		msgs := tickers(1000, vary)
		for _, wbits := range []int{15, 10, 8} {
			for _, level := range []int{1, 6, 9} {
				h := newHarness(t, wbits, level)
				total, rawTotal := 0, 0
				for i, m := range msgs {
					n := h.encode(m)
					if i >= 10 {
						total += n
						rawTotal += len(m)
					}
				}
				avg := float64(total) / float64(len(msgs)-10)
				t.Logf("vary=%v w%d level %d: %.1f bytes/message with the tail, %.1f without (messages average %.1f)",
					vary, wbits, level, avg, avg-4, float64(rawTotal)/float64(len(msgs)-10))
				if !vary && avg >= 12 {
					t.Errorf("w%d level %d: %.1f bytes per ticker message", wbits, level, avg)
				}
				if vary && avg >= 24 {
					t.Errorf("w%d level %d: %.1f bytes per varying ticker message", wbits, level, avg)
				}
			}
		}
	}
}

// TestWindowExact checks the window is used to its exact size and no
// further: data with a period of exactly 1<<windowBits compresses almost
// entirely to matches at that distance (RFC 7692 §7.1.2.1: window bits 8
// is a 256-byte window), while with a period one byte longer no match
// reaches back a full period.
func TestWindowExact(t *testing.T) {
	for wbits := 8; wbits <= 15; wbits++ {
		w := 1 << wbits
		rnd := genRandom(w+1, uint64(wbits))
		for _, level := range []int{1, 2, 6, 9} {
			h := newHarness(t, wbits, level)
			n := h.encode(bytes.Repeat(rnd[:w], 8))
			if h.ti.st.maxDist != w {
				t.Errorf("w%d level %d: period %d: longest distance %d", wbits, level, w, h.ti.st.maxDist)
			}
			if n > w+w/8+64 {
				t.Errorf("w%d level %d: period %d: %d bytes for %d", wbits, level, w, n, 8*w)
			}

			h = newHarness(t, wbits, level)
			h.encode(bytes.Repeat(rnd, 8))
			h.check()
			if m := h.ti.st.matched; m > 8*(w+1)/100 {
				t.Errorf("w%d level %d: period %d: %d bytes matched, in random data", wbits, level, w+1, m)
			}

			// The same across messages, one period per message.
			h = newHarness(t, wbits, level)
			for i := 0; i < 4; i++ {
				h.encode(rnd[:w])
			}
			if h.ti.st.maxDist != w {
				t.Errorf("w%d level %d: messages of %d: longest distance %d", wbits, level, w, h.ti.st.maxDist)
			}
		}
	}
}

// TestHistory checks that Reset forgets the history (the test inflater
// rejects any reference before it) and AddHistory provides it.
func TestHistory(t *testing.T) {
	msg := genText(3000, 8)
	for _, level := range []int{1, 4, 9} {
		h := newHarness(t, 15, level)
		first := h.encode(msg)
		again := h.encode(msg)
		h.reset()
		afterReset := h.encode(msg)
		h.reset()
		h.encode(msg[:100])
		h.reset()
		h.encode(nil)
		h.encode(msg[1000:])
		h.check()
		if again > 60 || afterReset != first {
			t.Errorf("level %d: first %d bytes, repeated %d, after Reset %d", level, first, again, afterReset)
		}

		// A preset dictionary.
		h = newHarness(t, 15, level)
		h.addHistory(msg)
		if n := h.encode(msg); n > 60 {
			t.Errorf("level %d: message equal to the dictionary took %d bytes", level, n)
		}
		// A prepared message in the middle of the stream.
		other := genText(2000, 9)
		h.addHistory(other)
		if n := h.encode(other); n > 60 {
			t.Errorf("level %d: message equal to a prepared message took %d bytes", level, n)
		}
		h.check()

		// History added in many pieces, more than the buffer holds.
		h = newHarness(t, 15, level)
		hist := genText(100000, 11)
		for p := hist; len(p) > 0; p = p[min(len(p), 999):] {
			h.addHistory(p[:min(len(p), 999)])
		}
		if n := h.encode(hist[len(hist)-5000:]); n > 100 {
			t.Errorf("level %d: message equal to the end of the history took %d bytes", level, n)
		}
		h.check()

		// A dictionary longer than the window: only its end counts.
		h = newHarness(t, 9, level)
		h.addHistory(genText(5000, 10))
		h.addHistory(nil)
		h.encode(genText(5000, 10)[4700:])
		h.check()
	}
}

// TestIncompressible checks that random data grows by at most the stored
// block headers: 5 bytes per 64 KiB, plus the sync flush.
func TestIncompressible(t *testing.T) {
	for _, n := range []int{1, 100, 5000, 65535, 65536, 200000} {
		for _, level := range []int{1, 6, 9} {
			h := newHarness(t, 15, level)
			p := genRandom(n, uint64(n))
			got := h.encode(p)
			limit := n + 5*storedChunks(n) + 5
			if got > limit {
				t.Errorf("level %d: %d random bytes -> %d (limit %d)", level, n, got, limit)
			}
		}
	}
}

// TestWorstCase checks the output bound Encode documents: with that much
// spare capacity in dst it does not reallocate, whatever the input.
func TestWorstCase(t *testing.T) {
	rnd := genRandom(300000, 1)
	text := genText(300000, 1)
	mixed := make([]byte, 0, 300000)
	for i := 0; len(mixed) < 300000; i++ {
		// Alternate incompressible and compressible stretches, so blocks
		// alternate between stored and Huffman.
		k := 1000 + i*997%20000
		mixed = append(mixed, rnd[len(mixed)%200000:][:k]...)
		mixed = append(mixed, text[len(mixed)%200000:][:k]...)
	}
	for _, in := range [][]byte{rnd, text, mixed} {
		for _, n := range []int{0, 1, 7, 100, 4095, 65535, 65536, 131073, 300000} {
			for _, level := range []int{1, 4, 9} {
				p := in[:n]
				dst := make([]byte, 3, 3+n+n/2048+64)
				out := NewEncoder(15, level).Encode(dst, p)
				if &out[0] != &dst[0] {
					t.Errorf("level %d: %d bytes reallocated dst (output %d)", level, n, len(out)-3)
				}
			}
		}
	}
}

// TestBlockTypes checks the block choice: fixed Huffman for small inputs,
// dynamic for large compressible ones, stored for incompressible ones.
func TestBlockTypes(t *testing.T) {
	h := newHarness(t, 15, 6)
	h.encode([]byte(`{"symbol":"ACME","price":123.45,"seq":1}`))
	if st := h.ti.st; st.fixed != 1 || st.dynamic+st.stored != 0 {
		t.Errorf("small message: %+v", st)
	}
	h = newHarness(t, 15, 6)
	h.encode(genText(50000, 1))
	if st := h.ti.st; st.dynamic == 0 || st.stored != 0 || st.maxLitBits > 15 || st.maxCLBits > 7 {
		t.Errorf("text: %+v", st)
	}
	h = newHarness(t, 15, 1)
	h.encode(genRandom(50000, 1))
	if st := h.ti.st; st.stored != 1 || st.fixed+st.dynamic != 0 {
		t.Errorf("random: %+v", st)
	}
}

// startManual prepares e to be given tokens for p by hand, as Encode
// would, bypassing the match finder.
func startManual(e *Encoder, p []byte) {
	e.s = scratchPool.Get().(*scratch)
	e.in, e.inBase = p, 0
	copy(e.buf, p)
}

// finishManual ends what startManual began as Encode does.
func finishManual(e *Encoder) []byte {
	e.flushBlock(len(e.in))
	e.flushStored()
	e.w.reserve(8)
	e.w.writeBits(0, 3)
	e.w.align()
	scratchPool.Put(e.s)
	e.s = nil
	return append(e.w.out, 0, 0, 0xff, 0xff)
}

// literalBlock encodes p as one block of literals through the real block
// writer, skipping the match finder (which would find repeats in p).
func literalBlock(p []byte) []byte {
	e := NewEncoder(15, 1)
	startManual(e, p)
	e.addLits(0, len(p))
	return finishManual(e)
}

// TestFullBlock checks a block that fills up just before a run of more
// literals than a match token can carry: the run gets its own token, in
// the next block.
func TestFullBlock(t *testing.T) {
	pat := []byte("01234567")
	rnd := genRandom(300, 5)
	p := append(bytes.Repeat(pat, maxBlockTokens), rnd...)
	p = append(p, pat...)
	e := NewEncoder(15, 1)
	startManual(e, p)
	e.addLits(0, len(pat))
	for i := len(pat); i < maxBlockTokens*len(pat); i += len(pat) {
		e.addMatch(i, i, len(pat), len(pat))
	}
	if n := len(e.s.tokens); n != maxBlockTokens {
		t.Fatalf("%d tokens", n)
	}
	from := maxBlockTokens * len(pat)
	e.addMatch(from, from+len(rnd), len(pat), len(rnd)+len(pat))
	out := finishManual(e)

	ti := &tInflater{window: 1 << 15}
	got, err := ti.message(out)
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("test inflater: %v", err)
	}
	if st := ti.st; st.stored+st.fixed+st.dynamic != 2 {
		t.Errorf("%+v", st)
	}
	r := flate.NewReader(io.MultiReader(bytes.NewReader(out), bytes.NewReader([]byte{1, 0, 0, 0xff, 0xff})))
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("compress/flate: %v", err)
	}
}

// TestLongCodes checks the length limits through the real block writer.
// Literals with Fibonacci counts 1, 2, 3, 5, ... 1597 and the end-of-block
// symbol need a 16-bit code without the limit. The code-length code's
// 7-bit limit binds more often: the second part searches skewed literal
// distributions for blocks whose unrestricted code-length code would be
// deeper than 7 bits and checks that they are sent correctly.
func TestLongCodes(t *testing.T) {
	check := func(p []byte) tStats {
		t.Helper()
		out := literalBlock(p)
		ti := &tInflater{window: 1 << 15}
		got, err := ti.message(out)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("test inflater: %v", err)
		}
		r := flate.NewReader(io.MultiReader(bytes.NewReader(out), bytes.NewReader([]byte{1, 0, 0, 0xff, 0xff})))
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("compress/flate: %v", err)
		}
		return ti.st
	}

	var fib []byte
	f0, f1 := 1, 2
	for s := 0; s < 16; s++ {
		fib = append(fib, bytes.Repeat([]byte{byte('A' + s)}, f0)...)
		f0, f1 = f1, f0+f1
	}
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(fib), func(i, j int) { fib[i], fib[j] = fib[j], fib[i] })
	var freq [288]uint32
	for _, b := range fib {
		freq[b]++
	}
	freq[endOfBlock] = 1
	if _, depth := refHuffmanCost(freq[:]); depth <= maxCodeBits {
		t.Fatalf("unrestricted depth %d", depth)
	}
	if st := check(fib); st.dynamic != 1 || st.maxLitBits != maxCodeBits {
		t.Errorf("Fibonacci literals: %+v", st)
	}

	rng := rand.New(rand.NewPCG(3, 3))
	found := 0
	for try := 0; try < 3000 && found < 20; try++ {
		// Symbol weights spread over several orders of magnitude give
		// literal code lengths of many different values.
		var p []byte
		for s := 0; s < 256 && len(p) < maxBlockTokens; s++ {
			if rng.IntN(3) == 0 {
				continue
			}
			n := 1 << rng.IntN(1+rng.IntN(9))
			p = append(p, bytes.Repeat([]byte{byte(s)}, min(n, maxBlockTokens-len(p)))...)
		}
		rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		var freq [288]uint32
		for _, b := range p {
			freq[b]++
		}
		freq[endOfBlock] = 1
		var d dynHeader
		var hb huffBuilder
		var dist [32]uint32
		d.build(&hb, freq[:], dist[:])
		if _, depth := refHuffmanCost(d.clFreq[:]); depth <= maxCLBits {
			continue
		}
		found++
		if st := check(p); st.maxCLBits != maxCLBits || st.maxLitBits > maxCodeBits {
			t.Errorf("%+v", st)
		}
	}
	if found == 0 {
		t.Fatal("no block needed the code-length limit")
	}
	t.Logf("%d blocks needed the 7-bit code-length limit", found)
}

// TestAppend checks that Encode appends to dst.
func TestAppend(t *testing.T) {
	e := NewEncoder(15, 6)
	prefix := []byte("prefix")
	out := e.Encode(append([]byte(nil), prefix...), []byte("hello hello hello"))
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("prefix lost: %q", out)
	}
	r := flate.NewReader(io.MultiReader(bytes.NewReader(out[len(prefix):]), bytes.NewReader([]byte{1, 0, 0, 0xff, 0xff})))
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "hello hello hello" {
		t.Fatalf("%q %v", got, err)
	}
	if got := NewEncoder(8, 1).Encode(nil, nil); !bytes.Equal(got, []byte{0, 0, 0, 0xff, 0xff}) {
		t.Errorf("empty message: % x", got)
	}
}

// TestNewEncoderPanics checks the argument checks.
func TestNewEncoderPanics(t *testing.T) {
	for _, a := range [][2]int{{7, 1}, {16, 1}, {15, 0}, {15, 10}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewEncoder(%d, %d) did not panic", a[0], a[1])
				}
			}()
			NewEncoder(a[0], a[1])
		}()
	}
}

// TestAllocs checks that Encode allocates nothing once dst has room.
func TestAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("instrumented build")
	}
	msgs := tickers(100, true)
	text := genText(70000, 2)
	for _, level := range []int{1, 6} {
		e := NewEncoder(15, level)
		dst := make([]byte, 0, 100000)
		i := 0
		allocs := testing.AllocsPerRun(200, func() {
			dst = e.Encode(dst[:0], msgs[i%len(msgs)])
			i++
			if i%50 == 0 {
				dst = e.Encode(dst[:0], text)
			}
			if i%77 == 0 {
				e.Reset()
			}
			if i%31 == 0 {
				e.AddHistory(msgs[0])
			}
		})
		if allocs != 0 {
			t.Errorf("level %d: %.1f allocations per Encode", level, allocs)
		}
	}
}

// TestMemory measures an Encoder's heap footprint with runtime.MemStats:
// what NewEncoder allocates (the window, the hash table and chains, kept
// for the Encoder's life) and the scratch space an Encode call borrows.
func TestMemory(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sc := scratchPool.New().(*scratch)
	runtime.ReadMemStats(&after)
	t.Logf("scratch borrowed during Encode (pooled, shared): %.1f KiB", float64(after.TotalAlloc-before.TotalAlloc)/1024)
	runtime.KeepAlive(sc)

	for _, wbits := range []int{8, 9, 10, 11, 12, 13, 14, 15} {
		for _, level := range []int{1, 6} {
			const n = 20
			encs := make([]*Encoder, n)
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range encs {
				encs[i] = NewEncoder(wbits, level)
			}
			runtime.ReadMemStats(&after)
			per := float64(after.TotalAlloc-before.TotalAlloc) / n
			t.Logf("windowBits %2d level %d: %.1f KiB per Encoder", wbits, level, per/1024)
			if wbits == 15 && per > 90*1024 {
				t.Errorf("windowBits 15 level %d: %.0f bytes", level, per)
			}
			runtime.KeepAlive(encs)
		}
	}
}
