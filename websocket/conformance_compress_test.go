package websocket

// Conformance tests for permessage-deflate (RFC 7692) against raw peers:
// a bare TCP client that sends exact bytes to our server (Accept), and a
// bare TCP server (ccListen, from conformance_client_test.go) that answers
// our client (Dial) with exact bytes. Compressed payloads are built with
// compress/flate, or bit by bit (pmdBits) when a test needs a DEFLATE
// stream compress/flate cannot make: a back-reference at an exact
// distance, or a 1 MB block that inflates to 1 GiB. What our side sends is
// decoded with pmdWalker, a small DEFLATE decoder written here, which
// reports the distance of every back-reference, so the window sizes agreed
// in the handshake can be checked against what is actually on the wire.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// pmdTimeout bounds every single wait in these tests.
const pmdTimeout = 10 * time.Second

// pmdBombTimeout bounds the wait for the server to stop a decompression
// bomb, which takes seconds of CPU under the race detector.
const pmdBombTimeout = 60 * time.Second

// pmdTail is the end of the empty stored block that RFC 7692 §7.2.1 has
// the sender strip from every compressed message and §7.2.2 has the
// receiver append again.
var pmdTail = []byte{0x00, 0x00, 0xff, 0xff}

// ---------------------------------------------------------------------------
// Building compressed payloads

// pmdDeflate compresses p with compress/flate at level, after the preset
// history dict (nil for none), ends it with a sync flush and strips the
// tail, as a sender does (RFC 7692 §7.2.1).
func pmdDeflate(t testing.TB, p, dict []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriterDict(&b, level, dict)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(p)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out := b.Bytes()
	if !bytes.HasSuffix(out, pmdTail) {
		t.Fatalf("compress/flate's sync flush does not end with 00 00 ff ff: % x", out[max(0, len(out)-8):])
	}
	return out[:len(out)-len(pmdTail)]
}

// pmdInflate inflates one message's payload with compress/flate, the tail
// appended, after the history dict.
func pmdInflate(payload, dict []byte) ([]byte, error) {
	src := append(bytes.Clone(payload), pmdTail...)
	r := flate.NewReaderDict(bytes.NewReader(src), dict)
	out, err := io.ReadAll(r)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil // the stream stops after the tail's sync point, as it must
	}
	return out, err
}

// pmdBits writes a DEFLATE bit stream (RFC 1951 §3.1.1): data elements
// from the least significant bit, Huffman codes from their most
// significant bit.
type pmdBits struct {
	out  []byte
	acc  uint64
	nacc uint
}

func (w *pmdBits) bits(v uint64, n uint) {
	w.acc |= v << w.nacc
	w.nacc += n
	for w.nacc >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

// code writes a Huffman code of n bits.
func (w *pmdBits) code(c uint64, n uint) {
	var r uint64
	for i := uint(0); i < n; i++ {
		r = r<<1 | c>>i&1
	}
	w.bits(r, n)
}

// syncFlush ends the stream with an empty stored block and returns it
// without the tail, as a sender puts it in a message.
func (w *pmdBits) syncFlush() []byte {
	w.bits(0, 3) // BFINAL 0, BTYPE 00
	if w.nacc > 0 {
		w.bits(0, 8-w.nacc)
	}
	return w.out // 00 00 ff ff would follow
}

// DEFLATE's length and distance codes (RFC 1951 §3.2.5).
var (
	pmdLenBase   = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	pmdLenExtra  = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	pmdDistBase  = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	pmdDistExtra = [30]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// pmdToken is a literal (length 0) or a back-reference.
type pmdToken struct {
	lit          byte
	length, dist int
}

func pmdLit(s string) []pmdToken {
	var t []pmdToken
	for i := 0; i < len(s); i++ {
		t = append(t, pmdToken{lit: s[i]})
	}
	return t
}

func pmdMatch(length, dist int) pmdToken { return pmdToken{length: length, dist: dist} }

// pmdFixedCode writes literal/length symbol sym with the fixed code.
func (w *pmdBits) pmdFixedCode(sym int) {
	switch {
	case sym < 144:
		w.code(uint64(0x30+sym), 8)
	case sym < 256:
		w.code(uint64(0x190+sym-144), 9)
	case sym < 280:
		w.code(uint64(sym-256), 7)
	default:
		w.code(uint64(0xc0+sym-280), 8)
	}
}

// pmdFixed encodes tokens as one fixed-Huffman block (RFC 1951 §3.2.6)
// followed by a sync flush, tail stripped: exactly the back-references a
// test asks for, which no compressor can be made to choose.
func pmdFixed(tokens []pmdToken) []byte {
	var w pmdBits
	w.bits(0, 1) // BFINAL
	w.bits(1, 2) // BTYPE 01
	for _, t := range tokens {
		if t.length == 0 {
			w.pmdFixedCode(int(t.lit))
			continue
		}
		i := 28
		for pmdLenBase[i] > t.length {
			i--
		}
		w.pmdFixedCode(257 + i)
		w.bits(uint64(t.length-pmdLenBase[i]), pmdLenExtra[i])
		j := 29
		for pmdDistBase[j] > t.dist {
			j--
		}
		w.code(uint64(j), 5)
		w.bits(uint64(t.dist-pmdDistBase[j]), pmdDistExtra[j])
	}
	w.pmdFixedCode(256)
	return w.syncFlush()
}

// pmdBomb returns a compressed payload (tail stripped) that inflates to
// 1 + 258*matches zero bytes: one dynamic-Huffman block whose codes give
// the length 258 and the distance 1 one bit each, so every 258 bytes of
// output cost two bits of input (1 GiB from about 1 MB).
func pmdBomb(matches int) []byte {
	var w pmdBits
	w.bits(0, 1)  // BFINAL
	w.bits(2, 2)  // BTYPE 10
	w.bits(29, 5) // HLIT: 286 literal/length codes
	w.bits(1, 5)  // HDIST: 2 distance codes
	w.bits(14, 4) // HCLEN: 18 code length codes
	// Code length code lengths in the order 16 17 18 0 8 7 9 6 10 5 11 4
	// 12 3 13 2 14 1: symbol 18 (a run of zeros) gets 1 bit, symbols 1
	// and 2 get 2 bits: codes 18 = 0, 1 = 10, 2 = 11.
	for _, l := range []uint64{0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2} {
		w.bits(l, 3)
	}
	cl1 := func() { w.code(2, 2) }
	cl2 := func() { w.code(3, 2) }
	zeros := func(n int) { w.code(0, 1); w.bits(uint64(n-11), 7) }
	// Literal/length lengths: 0 → 2, 1..255 → 0, 256 → 2, 257..284 → 0,
	// 285 (length 258) → 1; distance lengths: 0 (distance 1) → 1, 1 → 1.
	cl2()
	zeros(138)
	zeros(117)
	cl2()
	zeros(28)
	cl1()
	cl1()
	cl1()
	// Canonical codes: 285 = 0, literal 0 = 10, end of block = 11;
	// distance 1 = 0.
	w.code(2, 2) // the literal 0
	for i := 0; i < matches; i++ {
		w.bits(0, 2) // length 258, distance 1
	}
	w.code(3, 2) // end of block
	return w.syncFlush()
}

// ---------------------------------------------------------------------------
// pmdWalker: an independent DEFLATE decoder that checks distances

// pmdWalker decodes the compressed messages of one direction of a
// connection, keeping the history across messages when the sender keeps
// its context. It fails on any back-reference further than window bytes
// or before the start of the history, and records the longest distance.
type pmdWalker struct {
	window   int    // the largest distance allowed
	takeover bool   // history is kept from one message to the next
	hist     []byte // everything decoded since the last reset
	maxDist  int    // the longest distance seen
	matches  int    // back-references seen

	in     []byte
	pos    int
	bitbuf uint64
	nbits  uint
}

var errPmdEOF = errors.New("input ends inside a block")

func (w *pmdWalker) need(n uint) (uint64, error) {
	for w.nbits < n {
		if w.pos >= len(w.in) {
			return 0, errPmdEOF
		}
		w.bitbuf |= uint64(w.in[w.pos]) << w.nbits
		w.pos++
		w.nbits += 8
	}
	v := w.bitbuf & (1<<n - 1)
	w.bitbuf >>= n
	w.nbits -= n
	return v, nil
}

// pmdHuff is a canonical Huffman code as counts per length and symbols in
// code order (as in zlib's puff.c).
type pmdHuff struct {
	count [16]int
	sym   []int
}

func newPmdHuff(lengths []int) (*pmdHuff, error) {
	h := &pmdHuff{sym: make([]int, len(lengths))}
	for _, l := range lengths {
		h.count[l]++
	}
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - h.count[l]
		if left < 0 {
			return nil, errors.New("over-subscribed Huffman code")
		}
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for s, l := range lengths {
		if l != 0 {
			h.sym[offs[l]] = s
			offs[l]++
		}
	}
	return h, nil
}

func (w *pmdWalker) decode(h *pmdHuff) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		b, err := w.need(1)
		if err != nil {
			return 0, err
		}
		code |= int(b)
		count := h.count[l]
		if code-count < first {
			return h.sym[index+code-first], nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, errors.New("invalid Huffman code")
}

var pmdFixedLit, pmdFixedDist = func() (*pmdHuff, *pmdHuff) {
	l := make([]int, 288)
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	d := make([]int, 30)
	for i := range d {
		d[i] = 5
	}
	lit, _ := newPmdHuff(l)
	dist, _ := newPmdHuff(d)
	return lit, dist
}()

// message decodes one message's payload, the tail appended, and returns
// the bytes it inflates to. The payload must end exactly at the end of a
// block, and may not contain a final block.
func (w *pmdWalker) message(payload []byte) ([]byte, error) {
	if !w.takeover {
		w.hist = w.hist[:0]
	}
	start := len(w.hist)
	w.in = append(bytes.Clone(payload), pmdTail...)
	w.pos, w.bitbuf, w.nbits = 0, 0, 0
	for w.pos < len(w.in) {
		final, err := w.need(1)
		if err != nil {
			return nil, err
		}
		if final == 1 {
			return nil, errors.New("final block in a message")
		}
		typ, err := w.need(2)
		if err != nil {
			return nil, err
		}
		switch typ {
		case 0:
			w.bitbuf, w.nbits = 0, 0 // to the byte boundary
			if w.pos+4 > len(w.in) {
				return nil, errPmdEOF
			}
			n := int(binary.LittleEndian.Uint16(w.in[w.pos:]))
			if ^uint16(n) != binary.LittleEndian.Uint16(w.in[w.pos+2:]) {
				return nil, errors.New("stored block: LEN and NLEN disagree")
			}
			w.pos += 4
			if w.pos+n > len(w.in) {
				return nil, errPmdEOF
			}
			w.hist = append(w.hist, w.in[w.pos:w.pos+n]...)
			w.pos += n
		case 1:
			err = w.codes(pmdFixedLit, pmdFixedDist)
		case 2:
			var lit, dist *pmdHuff
			if lit, dist, err = w.dynamic(); err == nil {
				err = w.codes(lit, dist)
			}
		default:
			err = errors.New("block type 3")
		}
		if err != nil {
			return nil, err
		}
	}
	if w.nbits >= 8 || w.bitbuf != 0 {
		return nil, errors.New("bits left after the last block")
	}
	return bytes.Clone(w.hist[start:]), nil
}

func (w *pmdWalker) dynamic() (*pmdHuff, *pmdHuff, error) {
	hlit, err := w.need(5)
	if err != nil {
		return nil, nil, err
	}
	hdist, err := w.need(5)
	if err != nil {
		return nil, nil, err
	}
	hclen, err := w.need(4)
	if err != nil {
		return nil, nil, err
	}
	nlen, ndist := int(hlit)+257, int(hdist)+1
	order := [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
	cl := make([]int, 19)
	for i := 0; i < int(hclen)+4; i++ {
		v, err := w.need(3)
		if err != nil {
			return nil, nil, err
		}
		cl[order[i]] = int(v)
	}
	clh, err := newPmdHuff(cl)
	if err != nil {
		return nil, nil, err
	}
	lengths := make([]int, 0, nlen+ndist)
	for len(lengths) < nlen+ndist {
		s, err := w.decode(clh)
		if err != nil {
			return nil, nil, err
		}
		if s < 16 {
			lengths = append(lengths, s)
			continue
		}
		var rep, v int
		var extra uint64
		switch s {
		case 16:
			if len(lengths) == 0 {
				return nil, nil, errors.New("repeat with no previous length")
			}
			v = lengths[len(lengths)-1]
			extra, err = w.need(2)
			rep = 3 + int(extra)
		case 17:
			extra, err = w.need(3)
			rep = 3 + int(extra)
		default:
			extra, err = w.need(7)
			rep = 11 + int(extra)
		}
		if err != nil {
			return nil, nil, err
		}
		if len(lengths)+rep > nlen+ndist {
			return nil, nil, errors.New("too many code lengths")
		}
		for ; rep > 0; rep-- {
			lengths = append(lengths, v)
		}
	}
	lit, err := newPmdHuff(lengths[:nlen])
	if err != nil {
		return nil, nil, err
	}
	dist, err := newPmdHuff(lengths[nlen:])
	return lit, dist, err
}

func (w *pmdWalker) codes(lit, dist *pmdHuff) error {
	for {
		s, err := w.decode(lit)
		if err != nil {
			return err
		}
		switch {
		case s < 256:
			w.hist = append(w.hist, byte(s))
			continue
		case s == 256:
			return nil
		case s > 285:
			return fmt.Errorf("invalid length symbol %d", s)
		}
		e, err := w.need(pmdLenExtra[s-257])
		if err != nil {
			return err
		}
		length := pmdLenBase[s-257] + int(e)
		ds, err := w.decode(dist)
		if err != nil {
			return err
		}
		if ds > 29 {
			return fmt.Errorf("invalid distance symbol %d", ds)
		}
		e, err = w.need(pmdDistExtra[ds])
		if err != nil {
			return err
		}
		d := pmdDistBase[ds] + int(e)
		if d > w.window {
			return fmt.Errorf("distance %d is beyond the window of %d bytes", d, w.window)
		}
		if d > len(w.hist) {
			return fmt.Errorf("distance %d reaches before the start of the history (%d bytes)", d, len(w.hist))
		}
		w.matches++
		w.maxDist = max(w.maxDist, d)
		for i := 0; i < length; i++ {
			w.hist = append(w.hist, w.hist[len(w.hist)-d])
		}
	}
}

// The helpers above are themselves checked against compress/flate, so a
// mistake in them cannot pass for a property of the library.
func TestCompressConformanceHelpers(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	msg := make([]byte, 40000)
	for i := range msg {
		msg[i] = "abcdefgh"[rng.IntN(8)]
	}
	for _, level := range []int{flate.HuffmanOnly, 1, 6, 9} {
		w := pmdWalker{window: 1 << 15, takeover: true}
		c1 := pmdDeflate(t, msg, nil, level)
		c2 := pmdDeflate(t, msg[:5000], msg, level)
		for i, c := range [][]byte{c1, c2} {
			got, err := w.message(c)
			if err != nil {
				t.Fatalf("level %d, message %d: walker: %v", level, i, err)
			}
			want := msg
			if i == 1 {
				want = msg[:5000]
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("level %d, message %d: walker decoded %d bytes wrong", level, i, len(got))
			}
		}
		if level != flate.HuffmanOnly && w.matches == 0 {
			t.Fatalf("level %d: walker saw no back-reference", level)
		}
	}
	// pmdFixed: the exact back-references asked for.
	toks := append(pmdLit("abc"), pmdMatch(3, 3), pmdMatch(258, 1), pmdMatch(10, 7))
	p := pmdFixed(toks)
	want := "abcabc" + strings.Repeat("c", 258) + "c" + strings.Repeat("c", 9)
	if got, err := pmdInflate(p, nil); err != nil || string(got) != want {
		t.Fatalf("pmdFixed: compress/flate inflates %q, %v", got, err)
	}
	w := pmdWalker{window: 7}
	if got, err := w.message(p); err != nil || string(got) != want || w.maxDist != 7 {
		t.Fatalf("pmdFixed: walker %q, %v, max distance %d", got, err, w.maxDist)
	}
	w = pmdWalker{window: 6}
	if _, err := w.message(p); err == nil {
		t.Fatal("walker accepted a distance of 7 in a window of 6")
	}
	// Every length and distance code, at both ends of its range.
	var lit []byte
	for i := 0; i < 32768; i++ {
		lit = append(lit, byte(i*131+i>>7))
	}
	toks = nil
	for i := range lit {
		toks = append(toks, pmdToken{lit: lit[i]})
	}
	for i := range pmdLenBase {
		for j := range pmdDistBase {
			for _, l := range []int{pmdLenBase[i], pmdLenBase[i] + 1<<pmdLenExtra[i] - 1} {
				for _, d := range []int{pmdDistBase[j], pmdDistBase[j] + 1<<pmdDistExtra[j] - 1} {
					toks = append(toks, pmdMatch(min(l, 258), d))
				}
			}
		}
	}
	p = pmdFixed(toks)
	ref, err := pmdInflate(p, nil)
	if err != nil {
		t.Fatalf("pmdFixed with every code: compress/flate: %v", err)
	}
	w = pmdWalker{window: 32768}
	if got, err := w.message(p); err != nil || !bytes.Equal(got, ref) || w.maxDist != 32768 {
		t.Fatalf("every code: walker %v, %d bytes (want %d), max distance %d", err, len(got), len(ref), w.maxDist)
	}
	// pmdBomb inflates to zeros, 258 per match, by compress/flate and by
	// the walker.
	b := pmdBomb(1000)
	ref, err = pmdInflate(b, nil)
	if err != nil || len(ref) != 1+258*1000 || bytes.ContainsFunc(ref, func(r rune) bool { return r != 0 }) {
		t.Fatalf("pmdBomb: compress/flate: %d bytes, %v", len(ref), err)
	}
	w = pmdWalker{window: 256}
	if got, err := w.message(b); err != nil || !bytes.Equal(got, ref) {
		t.Fatalf("pmdBomb: walker: %d bytes, %v", len(got), err)
	}
	if n := len(pmdBomb(4 << 20)); n > 1100000 {
		t.Fatalf("a bomb of 1 GiB is %d bytes, want about 1 MB", n)
	}
}

// ---------------------------------------------------------------------------
// Our server and a raw client

// pmdEnd is how one of pmdServer's handlers ended: the error its read loop
// stopped on.
type pmdEnd struct {
	path string
	err  error
}

// pmdServer is our server on 127.0.0.1. By request path, each connection
// echoes every message with Read and Write ("/echo") or with Reader and
// Writer ("/stream", streamed through a 32 KiB buffer).
type pmdServer struct {
	addr  string
	conns chan *Conn  // every connection accepted
	ends  chan pmdEnd // how each connection's read loop ended
}

func pmdServe(t *testing.T, opts *AcceptOptions) *pmdServer {
	t.Helper()
	s := &pmdServer{conns: make(chan *Conn, 64), ends: make(chan pmdEnd, 64)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		select {
		case s.conns <- c:
		default:
		}
		ctx := context.Background()
		var rerr error
		if r.URL.Path == "/stream" {
			buf := make([]byte, 32<<10)
			for rerr == nil {
				var typ MessageType
				var mr io.Reader
				if typ, mr, rerr = c.Reader(ctx); rerr != nil {
					break
				}
				w, err := c.Writer(ctx, typ)
				if err != nil {
					rerr = err
					break
				}
				if _, rerr = io.CopyBuffer(w, mr, buf); rerr != nil {
					break
				}
				rerr = w.Close()
			}
		} else {
			for rerr == nil {
				var typ MessageType
				var p []byte
				if typ, p, rerr = c.Read(ctx); rerr == nil {
					rerr = c.Write(ctx, typ, p)
				}
			}
		}
		select {
		case s.ends <- pmdEnd{r.URL.Path, rerr}:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	s.addr = srv.Listener.Addr().String()
	return s
}

// conn returns the next connection the server accepted.
func (s *pmdServer) conn(t *testing.T) *Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(pmdTimeout):
		t.Fatal("the server accepted no connection")
	}
	return nil
}

// end returns how the next handler ended.
func (s *pmdServer) end(t *testing.T) pmdEnd {
	t.Helper()
	select {
	case e := <-s.ends:
		return e
	case <-time.After(pmdTimeout):
		t.Fatal("the server's read loop did not end")
	}
	return pmdEnd{}
}

// pmdMaskKey masks every frame the raw client sends.
var pmdMaskKey = []byte{0x37, 0xfa, 0x21, 0x3d}

// pmdFrame encodes a masked frame with first byte b0 (FIN, RSV, opcode).
func pmdFrame(b0 byte, payload []byte) []byte { return fzFrame(b0, pmdMaskKey, payload) }

// First bytes of frames.
const (
	pmdFin  = 0x80
	pmdRSV1 = 0x40
	pmdRSV2 = 0x20
	pmdRSV3 = 0x10
)

// pmdClient is a raw client: a TCP connection that sends exact bytes.
type pmdClient struct {
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// pmdDial connects to addr and performs the opening handshake with one
// Sec-WebSocket-Extensions line per element of ext, and checks the 101.
func pmdDial(t *testing.T, addr, path string, ext ...string) *pmdClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, pmdTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, addr)
	b.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for _, e := range ext {
		b.WriteString("Sec-WebSocket-Extensions: " + e + "\r\n")
	}
	b.WriteString("\r\n")
	conn.SetDeadline(time.Now().Add(pmdTimeout))
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the handshake response: %v", err)
	}
	conn.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answered %s, want 101", resp.Status)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	return &pmdClient{conn: conn, br: br, resp: resp}
}

// extensions returns the Sec-WebSocket-Extensions lines of the answer.
func (c *pmdClient) extensions() []string { return c.resp.Header.Values("Sec-WebSocket-Extensions") }

func (c *pmdClient) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(pmdTimeout))
	if _, err := c.conn.Write(bytes.Join(frames, nil)); err != nil {
		t.Fatalf("raw client write: %v", err)
	}
}

// sendAsync writes b in the background, for writes the server may stop
// reading in the middle of.
func (c *pmdClient) sendAsync(b []byte) <-chan error {
	ch := make(chan error, 1)
	c.conn.SetWriteDeadline(time.Now().Add(pmdTimeout))
	go func() {
		_, err := c.conn.Write(b)
		ch <- err
	}()
	return ch
}

func (c *pmdClient) tryReadFrame(d time.Duration) (ccWireFrame, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	defer c.conn.SetReadDeadline(time.Time{})
	return ccReadFrame(c.br)
}

// pmdMessage is a message as it came off the wire.
type pmdMessage struct {
	op         byte
	compressed bool     // RSV1 on its first frame
	frames     [][]byte // the payload of each frame
}

func (m pmdMessage) payload() []byte { return bytes.Join(m.frames, nil) }

// pmdReadMessage reads the frames of one data message, checking the
// rules for frames of a server (unmasked) or a client (masked): RSV1 only
// on the first frame of a message, never RSV2 or RSV3, continuations after
// the first frame. Control frames in between fail.
func pmdReadMessage(read func() (ccWireFrame, error), masked bool) (pmdMessage, error) {
	var m pmdMessage
	for {
		f, err := read()
		if err != nil {
			return m, err
		}
		if f.masked != masked {
			return m, fmt.Errorf("frame masked=%v, want %v", f.masked, masked)
		}
		if f.rsv&^pmdRSV1 != 0 {
			return m, fmt.Errorf("frame with RSV bits %#x", f.rsv)
		}
		if f.op >= 8 {
			return m, fmt.Errorf("control frame %#x (payload %q) where a message was expected", f.op, f.payload)
		}
		if len(m.frames) == 0 {
			if f.op != 1 && f.op != 2 {
				return m, fmt.Errorf("message starts with opcode %#x", f.op)
			}
			m.op, m.compressed = f.op, f.rsv != 0
		} else {
			if f.op != 0 {
				return m, fmt.Errorf("frame %d of a message has opcode %#x", len(m.frames), f.op)
			}
			if f.rsv != 0 {
				return m, fmt.Errorf("RSV1 on continuation frame %d", len(m.frames))
			}
		}
		m.frames = append(m.frames, f.payload)
		if f.fin {
			return m, nil
		}
	}
}

func (c *pmdClient) readMessage(t *testing.T) pmdMessage {
	t.Helper()
	m, err := c.tryReadMessage()
	if err != nil {
		t.Fatalf("raw client: %v", err)
	}
	return m
}

func (c *pmdClient) tryReadMessage() (pmdMessage, error) {
	return pmdReadMessage(func() (ccWireFrame, error) { return c.tryReadFrame(pmdTimeout) }, false)
}

// expectClose reads frames within d, skipping data frames when skipData
// (a streamed echo may have begun), until a close frame, and checks its
// code. It returns the reason.
func (c *pmdClient) expectClose(t *testing.T, code int, d time.Duration, skipData bool) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		f, err := c.tryReadFrame(time.Until(deadline))
		if err != nil {
			t.Fatalf("raw client: want a close frame with code %d: %v", code, err)
		}
		if f.op < 8 && skipData {
			continue
		}
		if f.op != 8 || !f.fin || f.masked || f.rsv != 0 || len(f.payload) < 2 {
			t.Fatalf("got frame op %#x fin %v masked %v rsv %#x payload %q, want a close frame with code %d", f.op, f.fin, f.masked, f.rsv, f.payload, code)
		}
		if got := int(binary.BigEndian.Uint16(f.payload)); got != code {
			t.Fatalf("close code %d (reason %q), want %d", got, f.payload[2:], code)
		}
		if !utf8.Valid(f.payload[2:]) {
			t.Fatalf("close reason %q is not UTF-8", f.payload[2:])
		}
		return string(f.payload[2:])
	}
}

// expectFail checks that the server failed the connection with code: a
// close frame promptly (well before the 5 s close timeout) and its read
// loop ending with a *ProtocolError of that code.
func (c *pmdClient) expectFail(t *testing.T, s *pmdServer, code int) {
	t.Helper()
	c.expectClose(t, code, 2*time.Second, false)
	pmdExpectProtocolError(t, s.end(t).err, code)
}

func pmdExpectProtocolError(t *testing.T, err error, code int) {
	t.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) || int(pe.Code) != code {
		t.Fatalf("error %v, want a *ProtocolError with code %d", err, code)
	}
}

// ---------------------------------------------------------------------------
// 1. Negotiation

// pmdAgreed reads an answer the way RFC 7692 §7.1 defines it: what the
// server's and the client's compressor may do. Written here from the RFC,
// not from the library's parser.
func pmdAgreed(answer string) deflateParams {
	p := deflateParams{serverMaxWindowBits: 15, clientMaxWindowBits: 15}
	for _, par := range strings.Split(answer, ";")[1:] {
		name, val, _ := strings.Cut(strings.TrimSpace(par), "=")
		var bits int
		fmt.Sscan(strings.Trim(val, `"`), &bits)
		switch name {
		case "server_no_context_takeover":
			p.serverNoContextTakeover = true
		case "client_no_context_takeover":
			p.clientNoContextTakeover = true
		case "server_max_window_bits":
			p.serverMaxWindowBits = bits
		case "client_max_window_bits":
			p.clientMaxWindowBits = bits
		}
	}
	return p
}

// pmdCheckInEffect checks that c, of role r, compresses and decompresses
// with the parameters p.
func pmdCheckInEffect(t *testing.T, c *Conn, r Role, p deflateParams) {
	t.Helper()
	if !c.send.on {
		t.Fatal("compression is not on")
	}
	if got, want := c.send.takeover, p.sendTakeover(r); got != want {
		t.Errorf("compressor keeps context: %v, want %v", got, want)
	}
	if got, want := c.send.windowBits, p.sendWindowBits(r); got != want {
		t.Errorf("compressor window: %d bits, want %d", got, want)
	}
	if got, want := c.recv.takeover, p.recvTakeover(r); got != want {
		t.Errorf("decompressor keeps context: %v, want %v", got, want)
	}
	if got, want := c.recv.window, 1<<p.recvWindowBits(r); got != want {
		t.Errorf("decompressor window: %d bytes, want %d", got, want)
	}
}

// The server's answer to every kind of offer, through a real handshake:
// the exact Sec-WebSocket-Extensions value (or none), the parameters the
// connection then uses, and a message that round-trips compressed (or, when
// declined, uncompressed) to show the answer holds.
func TestCompressConformanceServerNegotiation(t *testing.T) {
	on := CompressionOptions{Enabled: true}
	type tc struct {
		name   string
		opts   CompressionOptions
		offer  []string // Sec-WebSocket-Extensions lines
		answer string   // "" for no extension
	}
	cases := []tc{
		{"plain", on, []string{"permessage-deflate"}, "permessage-deflate"},
		{"client_max_window_bits without value", on, []string{"permessage-deflate; client_max_window_bits"}, "permessage-deflate"},
		{"server_no_context_takeover", on, []string{"permessage-deflate; server_no_context_takeover"}, "permessage-deflate; server_no_context_takeover"},
		{"client_no_context_takeover", on, []string{"permessage-deflate; client_no_context_takeover"}, "permessage-deflate; client_no_context_takeover"},
		{"client_max_window_bits=15", on, []string{"permessage-deflate; client_max_window_bits=15"}, "permessage-deflate"},
		{"all four", on, []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"},
		{"parameters in another order", on, []string{"permessage-deflate; client_max_window_bits=9; server_max_window_bits=10; client_no_context_takeover"},
			"permessage-deflate; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"},
		{"quoted values", on, []string{`permessage-deflate; server_max_window_bits="10"; client_max_window_bits="12"`}, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"},
		{"spaces and tabs", on, []string{"permessage-deflate \t;server_max_window_bits = 11 ;\tclient_max_window_bits"}, "permessage-deflate; server_max_window_bits=11"},
		{"Chromium's offer", on, []string{"permessage-deflate; client_max_window_bits"}, "permessage-deflate"},

		// Invalid offers are declined; the handshake still succeeds.
		{"server_max_window_bits without value", on, []string{"permessage-deflate; server_max_window_bits"}, ""},
		{"server_max_window_bits=7", on, []string{"permessage-deflate; server_max_window_bits=7"}, ""},
		{"server_max_window_bits=16", on, []string{"permessage-deflate; server_max_window_bits=16"}, ""},
		{"server_max_window_bits=0", on, []string{"permessage-deflate; server_max_window_bits=0"}, ""},
		{"server_max_window_bits=08", on, []string{"permessage-deflate; server_max_window_bits=08"}, ""},
		{"server_max_window_bits=010", on, []string{"permessage-deflate; server_max_window_bits=010"}, ""},
		{"server_max_window_bits=1a", on, []string{"permessage-deflate; server_max_window_bits=1a"}, ""},
		{"server_max_window_bits=-9", on, []string{"permessage-deflate; server_max_window_bits=-9"}, ""},
		{"server_max_window_bits=9.0", on, []string{"permessage-deflate; server_max_window_bits=9.0"}, ""},
		{"client_max_window_bits=7", on, []string{"permessage-deflate; client_max_window_bits=7"}, ""},
		{"client_max_window_bits=16", on, []string{"permessage-deflate; client_max_window_bits=16"}, ""},
		{"client_max_window_bits=009", on, []string{"permessage-deflate; client_max_window_bits=009"}, ""},
		{"server_no_context_takeover with a value", on, []string{"permessage-deflate; server_no_context_takeover=true"}, ""},
		{"client_no_context_takeover with a value", on, []string{"permessage-deflate; client_no_context_takeover=1"}, ""},
		{"duplicate server_no_context_takeover", on, []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, ""},
		{"duplicate client_no_context_takeover", on, []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, ""},
		{"duplicate server_max_window_bits", on, []string{"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"}, ""},
		{"duplicate client_max_window_bits", on, []string{"permessage-deflate; client_max_window_bits; client_max_window_bits=9"}, ""},
		{"unknown parameter", on, []string{"permessage-deflate; foo"}, ""},
		{"unknown parameter with a value", on, []string{"permessage-deflate; client_max_window_bits; max_window_bits=10"}, ""},
		{"extension name in capitals", on, []string{"Permessage-Deflate"}, ""},
		{"parameter name in capitals", on, []string{"permessage-deflate; Server_No_Context_Takeover"}, ""},
		{"other extensions only", on, []string{"x-webkit-deflate-frame, deflate-frame; max_window_bits=10", "permessage-bzip2"}, ""},

		// Several offers: the first valid one, in the client's order.
		{"first invalid, second valid", on, []string{"permessage-deflate; server_max_window_bits=16, permessage-deflate; server_max_window_bits=12"}, "permessage-deflate; server_max_window_bits=12"},
		{"first unknown parameter, second valid", on, []string{"permessage-deflate; foo, permessage-deflate; client_no_context_takeover"}, "permessage-deflate; client_no_context_takeover"},
		{"first valid wins", on, []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, "permessage-deflate; server_max_window_bits=10"},
		{"offers on two lines", on, []string{"permessage-deflate; server_max_window_bits=7", "permessage-deflate; server_no_context_takeover"}, "permessage-deflate; server_no_context_takeover"},
		{"three offers, last valid", on, []string{"permessage-deflate; a, permessage-deflate; server_max_window_bits, permessage-deflate; client_max_window_bits=8"}, "permessage-deflate; client_max_window_bits=8"},
		{"every offer invalid", on, []string{"permessage-deflate; a, permessage-deflate; server_max_window_bits=16"}, ""},

		// Unknown extensions mixed in are never answered.
		{"unknown before and after", on, []string{"x-foo; bar=1, permessage-deflate; client_max_window_bits=10, x-baz"}, "permessage-deflate; client_max_window_bits=10"},
		{"unknown on another line", on, []string{"x-webkit-deflate-frame", "permessage-deflate; client_max_window_bits"}, "permessage-deflate"},
		{"empty list elements", on, []string{", permessage-deflate ,"}, "permessage-deflate"},

		// A syntax error anywhere in the header drops compression.
		{"trailing semicolon", on, []string{"permessage-deflate;"}, ""},
		{"empty value", on, []string{"permessage-deflate; server_max_window_bits="}, ""},
		{"quoted value not a token", on, []string{`permessage-deflate; server_max_window_bits="1 0"`}, ""},
		{"unterminated quote", on, []string{`permessage-deflate; server_max_window_bits="10`}, ""},
		{"syntax error on another line", on, []string{"permessage-deflate", "x; ;"}, ""},

		// The server's options.
		{"server wants no context", CompressionOptions{Enabled: true, ServerNoContextTakeover: true}, []string{"permessage-deflate"}, "permessage-deflate; server_no_context_takeover"},
		{"server requires client no context", CompressionOptions{Enabled: true, ClientNoContextTakeover: true}, []string{"permessage-deflate"}, "permessage-deflate; client_no_context_takeover"},
		{"server window 10, none offered", CompressionOptions{Enabled: true, ServerMaxWindowBits: 10}, []string{"permessage-deflate"}, "permessage-deflate; server_max_window_bits=10"},
		{"server window 10, 12 offered", CompressionOptions{Enabled: true, ServerMaxWindowBits: 10}, []string{"permessage-deflate; server_max_window_bits=12"}, "permessage-deflate; server_max_window_bits=10"},
		{"server window 10, 9 offered", CompressionOptions{Enabled: true, ServerMaxWindowBits: 10}, []string{"permessage-deflate; server_max_window_bits=9"}, "permessage-deflate; server_max_window_bits=9"},
		{"server window 15", CompressionOptions{Enabled: true, ServerMaxWindowBits: 15}, []string{"permessage-deflate"}, "permessage-deflate"},
		{"client window 10, not offered", CompressionOptions{Enabled: true, ClientMaxWindowBits: 10}, []string{"permessage-deflate"}, "permessage-deflate"},
		{"client window 10, offered without value", CompressionOptions{Enabled: true, ClientMaxWindowBits: 10}, []string{"permessage-deflate; client_max_window_bits"}, "permessage-deflate; client_max_window_bits=10"},
		{"client window 10, 12 offered", CompressionOptions{Enabled: true, ClientMaxWindowBits: 10}, []string{"permessage-deflate; client_max_window_bits=12"}, "permessage-deflate; client_max_window_bits=10"},
		{"client window 10, 9 offered", CompressionOptions{Enabled: true, ClientMaxWindowBits: 10}, []string{"permessage-deflate; client_max_window_bits=9"}, "permessage-deflate; client_max_window_bits=9"},
		{"everything to Chromium", CompressionOptions{Enabled: true, ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 9, ClientMaxWindowBits: 8},
			[]string{"permessage-deflate; client_max_window_bits"},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8"},
		{"server options, second offer", CompressionOptions{Enabled: true, ServerMaxWindowBits: 12},
			[]string{"permessage-deflate; server_max_window_bits=5, permessage-deflate; server_max_window_bits=14; client_max_window_bits"},
			"permessage-deflate; server_max_window_bits=12"},

		// Compression off: nothing is answered, whatever is offered.
		{"disabled", CompressionOptions{}, []string{"permessage-deflate"}, ""},
		{"disabled with parameters set", CompressionOptions{ServerNoContextTakeover: true, ServerMaxWindowBits: 9, Level: 9}, []string{"permessage-deflate; client_max_window_bits"}, ""},
		{"enabled, nothing offered", on, nil, ""},
	}
	for i := 8; i <= 15; i++ {
		cases = append(cases,
			tc{fmt.Sprintf("server_max_window_bits=%d", i), on, []string{fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", i)}, fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", i)})
		if i < 15 {
			cases = append(cases,
				tc{fmt.Sprintf("client_max_window_bits=%d", i), on, []string{fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", i)}, fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", i)})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := pmdServe(t, &AcceptOptions{Options: Options{Compression: tc.opts}})
			c := pmdDial(t, s.addr, "/echo", tc.offer...)
			got := c.extensions()
			if tc.answer == "" {
				if len(got) != 0 {
					t.Fatalf("Sec-WebSocket-Extensions %q, want none", got)
				}
			} else if len(got) != 1 || got[0] != tc.answer {
				t.Fatalf("Sec-WebSocket-Extensions %q, want exactly %q", got, tc.answer)
			}
			sc := s.conn(t)
			msg := []byte(strings.Repeat("negotiated? ", 40))
			if tc.answer == "" {
				if sc.send.on || sc.p.dec.allowedRSV != 0 {
					t.Fatalf("compression on (send %v, allowed RSV %#x) without an answer", sc.send.on, sc.p.dec.allowedRSV)
				}
				c.send(t, pmdFrame(pmdFin|1, msg))
				m := c.readMessage(t)
				if m.compressed || !bytes.Equal(m.payload(), msg) {
					t.Fatalf("echo compressed=%v %q, want %q uncompressed", m.compressed, m.payload(), msg)
				}
				return
			}
			p := pmdAgreed(tc.answer)
			pmdCheckInEffect(t, sc, RoleServer, p)
			c.send(t, pmdFrame(pmdFin|pmdRSV1|1, pmdDeflate(t, msg, nil, 6)))
			m := c.readMessage(t)
			if !m.compressed {
				t.Fatalf("echo of %d bytes not compressed", len(msg))
			}
			w := pmdWalker{window: 1 << p.serverMaxWindowBits}
			if got, err := w.message(m.payload()); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo inflates to %q, %v; want %q", got, err, msg)
			}
		})
	}
}

// The exact offer our client sends for each set of options: a single
// permessage-deflate offer, parameters in RFC 7692 order, always with
// client_max_window_bits so the server may bound the client's window; none
// when compression is off, whatever the caller put in the header.
func TestCompressConformanceClientOffer(t *testing.T) {
	cases := []struct {
		name  string
		opts  CompressionOptions
		hdr   string // a Sec-WebSocket-Extensions the caller sets in DialOptions.Header
		offer string // "" for none
	}{
		{"default", CompressionOptions{Enabled: true}, "", "permessage-deflate; client_max_window_bits"},
		{"server no context", CompressionOptions{Enabled: true, ServerNoContextTakeover: true}, "", "permessage-deflate; server_no_context_takeover; client_max_window_bits"},
		{"client no context", CompressionOptions{Enabled: true, ClientNoContextTakeover: true}, "", "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
		{"server window 10", CompressionOptions{Enabled: true, ServerMaxWindowBits: 10}, "", "permessage-deflate; server_max_window_bits=10; client_max_window_bits"},
		{"server window 8", CompressionOptions{Enabled: true, ServerMaxWindowBits: 8}, "", "permessage-deflate; server_max_window_bits=8; client_max_window_bits"},
		{"client window 9", CompressionOptions{Enabled: true, ClientMaxWindowBits: 9}, "", "permessage-deflate; client_max_window_bits=9"},
		{"windows 15", CompressionOptions{Enabled: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}, "", "permessage-deflate; client_max_window_bits"},
		{"level and threshold are not offered", CompressionOptions{Enabled: true, Level: 9, Threshold: 100}, "", "permessage-deflate; client_max_window_bits"},
		{"everything", CompressionOptions{Enabled: true, ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 8, ClientMaxWindowBits: 8}, "",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8"},
		{"caller's header replaced", CompressionOptions{Enabled: true}, "x-foo, permessage-deflate; server_max_window_bits=9", "permessage-deflate; client_max_window_bits"},
		{"disabled", CompressionOptions{ServerNoContextTakeover: true, ClientMaxWindowBits: 9}, "", ""},
		{"disabled, caller's header dropped", CompressionOptions{}, "permessage-deflate", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := &DialOptions{Options: Options{Compression: tc.opts}}
			if tc.hdr != "" {
				opts.Header = http.Header{"Sec-Websocket-Extensions": {tc.hdr}}
			}
			r, p := ccHandshake(t, opts, func(req *http.Request) string { return ccResponse101(req, "") })
			got := p.req.Header.Values("Sec-WebSocket-Extensions")
			if tc.offer == "" {
				if len(got) != 0 {
					t.Errorf("offer %q, want none", got)
				}
			} else if len(got) != 1 || got[0] != tc.offer {
				t.Errorf("offer %q, want exactly %q", got, tc.offer)
			}
			if r.err != nil {
				t.Fatalf("Dial with no extension answered: %v", r.err)
			}
			if r.c.send.on || r.c.p.dec.allowedRSV != 0 {
				t.Errorf("compression on although the server answered no extension")
			}
		})
	}
}

// Our client against a raw server answering every kind of
// Sec-WebSocket-Extensions: a valid answer is taken and its parameters
// used; a malformed answer, or one that does not fit the offer, fails Dial
// with HandshakeError.Check == CheckExtension and the connection is
// dropped.
func TestCompressConformanceClientAnswer(t *testing.T) {
	on := CompressionOptions{Enabled: true}
	type tc struct {
		name   string
		opts   CompressionOptions
		answer []string // Sec-WebSocket-Extensions lines; nil for none
		ok     bool
	}
	cases := []tc{
		{"no answer", on, nil, true},
		{"plain", on, []string{"permessage-deflate"}, true},
		{"server adds server_no_context_takeover", on, []string{"permessage-deflate; server_no_context_takeover"}, true},
		{"server adds client_no_context_takeover", on, []string{"permessage-deflate; client_no_context_takeover"}, true},
		{"server adds server_max_window_bits=8", on, []string{"permessage-deflate; server_max_window_bits=8"}, true},
		{"client_max_window_bits=15", on, []string{"permessage-deflate; client_max_window_bits=15"}, true},
		{"quoted", on, []string{`permessage-deflate; server_max_window_bits="9"`}, true},
		{"all four", on, []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11"}, true},

		{"client_max_window_bits without value", on, []string{"permessage-deflate; client_max_window_bits"}, false},
		{"server_max_window_bits without value", on, []string{"permessage-deflate; server_max_window_bits"}, false},
		{"server_max_window_bits=16", on, []string{"permessage-deflate; server_max_window_bits=16"}, false},
		{"server_max_window_bits=7", on, []string{"permessage-deflate; server_max_window_bits=7"}, false},
		{"server_max_window_bits=08", on, []string{"permessage-deflate; server_max_window_bits=08"}, false},
		{"client_max_window_bits=7", on, []string{"permessage-deflate; client_max_window_bits=7"}, false},
		{"client_max_window_bits=16", on, []string{"permessage-deflate; client_max_window_bits=16"}, false},
		{"no_context_takeover with a value", on, []string{"permessage-deflate; server_no_context_takeover=1"}, false},
		{"duplicate parameter", on, []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, false},
		{"unknown parameter", on, []string{"permessage-deflate; foo=1"}, false},
		{"extension not offered", on, []string{"x-webkit-deflate-frame"}, false},
		{"name in capitals", on, []string{"Permessage-Deflate"}, false},
		{"two answers", on, []string{"permessage-deflate, permessage-deflate"}, false},
		{"two answers on two lines", on, []string{"permessage-deflate", "permessage-deflate; server_no_context_takeover"}, false},
		{"an extension not offered besides", on, []string{"permessage-deflate, x-foo"}, false},
		{"trailing semicolon", on, []string{"permessage-deflate;"}, false},
		{"empty header", on, []string{""}, false},
		{"unterminated quote", on, []string{`permessage-deflate; server_max_window_bits="9`}, false},

		// The answer must accept the offer as made.
		{"server_no_context_takeover asked, missing", CompressionOptions{Enabled: true, ServerNoContextTakeover: true}, []string{"permessage-deflate"}, false},
		{"server_no_context_takeover asked, given", CompressionOptions{Enabled: true, ServerNoContextTakeover: true}, []string{"permessage-deflate; server_no_context_takeover"}, true},
		{"server window 10 asked, missing", CompressionOptions{Enabled: true, ServerMaxWindowBits: 10}, []string{"permessage-deflate"}, false},
		{"server window 10 asked, 10", CompressionOptions{Enabled: true, ServerMaxWindowBits: 10}, []string{"permessage-deflate; server_max_window_bits=10"}, true},
		{"server window 10 asked, 9", CompressionOptions{Enabled: true, ServerMaxWindowBits: 10}, []string{"permessage-deflate; server_max_window_bits=9"}, true},
		{"server window 10 asked, 11", CompressionOptions{Enabled: true, ServerMaxWindowBits: 10}, []string{"permessage-deflate; server_max_window_bits=11"}, false},
		{"client window 10 offered, 10", CompressionOptions{Enabled: true, ClientMaxWindowBits: 10}, []string{"permessage-deflate; client_max_window_bits=10"}, true},
		{"client window 10 offered, 9", CompressionOptions{Enabled: true, ClientMaxWindowBits: 10}, []string{"permessage-deflate; client_max_window_bits=9"}, true},
		{"client window 10 offered, 11", CompressionOptions{Enabled: true, ClientMaxWindowBits: 10}, []string{"permessage-deflate; client_max_window_bits=11"}, false},
		{"client window 10 offered, not answered", CompressionOptions{Enabled: true, ClientMaxWindowBits: 10}, []string{"permessage-deflate"}, true},
		{"client no context announced, not answered", CompressionOptions{Enabled: true, ClientNoContextTakeover: true}, []string{"permessage-deflate"}, true},

		// Nothing offered: any extension fails.
		{"disabled, permessage-deflate answered", CompressionOptions{}, []string{"permessage-deflate"}, false},
		{"disabled, unknown answered", CompressionOptions{}, []string{"x-foo"}, false},
		{"disabled, no answer", CompressionOptions{}, nil, true},
	}
	for i := 8; i <= 15; i++ {
		cases = append(cases,
			tc{fmt.Sprintf("server_max_window_bits=%d", i), on, []string{fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", i)}, true},
			tc{fmt.Sprintf("client_max_window_bits=%d", i), on, []string{fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", i)}, true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, p := ccHandshake(t, &DialOptions{Options: Options{Compression: tc.opts}}, func(req *http.Request) string {
				var ext string
				for _, a := range tc.answer {
					ext += "Sec-WebSocket-Extensions: " + a + "\r\n"
				}
				return ccResponse101(req, ext)
			})
			if !tc.ok {
				var he *HandshakeError
				if !errors.As(r.err, &he) || he.Check != CheckExtension {
					t.Fatalf("Dial = %v, want a *HandshakeError with Check CheckExtension", r.err)
				}
				if r.c != nil {
					t.Fatal("Dial failed but returned a Conn")
				}
				p.expectEOF(t) // the client dropped the connection
				return
			}
			if r.err != nil {
				t.Fatalf("Dial: %v", r.err)
			}
			c := r.c
			if tc.answer == nil {
				if c.send.on || c.p.dec.allowedRSV != 0 {
					t.Fatal("compression on without an answer")
				}
				return
			}
			want := pmdAgreed(tc.answer[0])
			if tc.opts.ClientMaxWindowBits != 0 {
				want.clientMaxWindowBits = min(want.clientMaxWindowBits, tc.opts.ClientMaxWindowBits)
			}
			want.clientNoContextTakeover = want.clientNoContextTakeover || tc.opts.ClientNoContextTakeover
			pmdCheckInEffect(t, c, RoleClient, want)
			// A compressed message from the server is read.
			msg := strings.Repeat("agreed ", 50)
			p.write(t, ccFrame(pmdFin|pmdRSV1|1, pmdDeflate(t, []byte(msg), nil, 6)))
			if got := ccRead(t, c); got.err != nil || string(got.p) != msg {
				t.Fatalf("Read = %q, %v; want %q", got.p, got.err, msg)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 2. Data: compressed messages, fragmentation, the RSV1 rules

// expectPong reads one frame and checks it is a pong with payload.
func (c *pmdClient) expectPong(t *testing.T, payload string) {
	t.Helper()
	f, err := c.tryReadFrame(pmdTimeout)
	if err != nil {
		t.Fatalf("raw client: want a pong: %v", err)
	}
	if f.op != 0xA || !f.fin || f.rsv != 0 || f.masked || string(f.payload) != payload {
		t.Fatalf("got op %#x fin %v rsv %#x masked %v payload %q, want a pong %q", f.op, f.fin, f.rsv, f.masked, f.payload, payload)
	}
}

// expectEcho reads one message and checks it has opcode op and, inflated
// by w when compressed, the payload want.
func (c *pmdClient) expectEcho(t *testing.T, w *pmdWalker, op byte, want []byte) pmdMessage {
	t.Helper()
	m := c.readMessage(t)
	got := m.payload()
	if m.compressed {
		var err error
		if got, err = w.message(got); err != nil {
			t.Fatalf("echo does not inflate: %v", err)
		}
	}
	if m.op != op || !bytes.Equal(got, want) {
		t.Fatalf("echo: opcode %#x, %d bytes %q, want opcode %#x, %d bytes %q", m.op, len(got), pmdTrunc(got), op, len(want), pmdTrunc(want))
	}
	return m
}

func pmdTrunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// pmdText returns n bytes of text that compress well but not trivially.
func pmdText(n int) []byte {
	words := []string{"alpha", "héllo", "wörld", "ünïcode", "€uro", "𝄞clef", "delta", "gamma", "{\"k\":1}"}
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = append(b, words[(i*7+i/3)%len(words)]...)
		b = append(b, ' ')
	}
	return []byte(strings.ToValidUTF8(string(b[:n]), ""))
}

// pmdRandom returns n random bytes from seed.
func pmdRandom(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// pmdSplit3 splits b into three parts at a third and two thirds.
func pmdSplit3(b []byte) [3][]byte {
	n := len(b)
	return [3][]byte{b[:n/3], b[n/3 : 2*n/3], b[2*n/3:]}
}

// Compressed messages sent by a raw client reach our server's handler
// whole and right, whether in one frame or in three with pings between
// them, and come back compressed; with both echo handlers (Read and Write,
// Reader and Writer).
func TestCompressConformanceServerData(t *testing.T) {
	text := pmdText(3000)
	bin := append(pmdRandom(1, 1000), bytes.Repeat([]byte{0, 1, 2, 3}, 500)...)
	for _, path := range []string{"/echo", "/stream"} {
		t.Run(path, func(t *testing.T) {
			s := pmdServe(t, &AcceptOptions{Options: Options{Compression: CompressionOptions{Enabled: true}}})
			c := pmdDial(t, s.addr, path, "permessage-deflate")
			w := &pmdWalker{window: 1 << 15, takeover: true}
			sent := [][]byte{} // the client's history, for its own takeover

			// The examples of RFC 7692 §7.2.3, byte for byte: "Hello"
			// compressed, then again sharing the window, as a stored
			// block, with BFINAL set, in two blocks; and fragmented.
			for _, ex := range [][]byte{
				{0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00},
				{0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00},
				{0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00},
				{0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00},
				{0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00},
				{0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00},
			} {
				// The examples are unmasked; mask them as a client must.
				var frames [][]byte
				for b := ex; len(b) > 0; b = b[2+int(b[1]):] {
					frames = append(frames, pmdFrame(b[0], b[2:2+int(b[1])]))
				}
				c.send(t, frames...)
				c.expectEcho(t, w, 1, []byte("Hello"))
				sent = append(sent, []byte("Hello"))
			}

			// One frame: text and binary.
			c.send(t, pmdFrame(pmdFin|pmdRSV1|1, pmdDeflate(t, text, nil, 6)))
			if m := c.expectEcho(t, w, 1, text); !m.compressed {
				t.Errorf("echo of %d bytes of text not compressed", len(text))
			}
			c.send(t, pmdFrame(pmdFin|pmdRSV1|2, pmdDeflate(t, bin, nil, 1)))
			c.expectEcho(t, w, 2, bin)
			sent = append(sent, text, bin, text)

			// Three frames, RSV1 on the first only, the compressed bytes
			// cut at arbitrary places, a ping after each of the first two.
			parts := pmdSplit3(pmdDeflate(t, text, nil, 9))
			c.send(t,
				pmdFrame(pmdRSV1|1, parts[0]), pmdFrame(pmdFin|9, []byte("p1")),
				pmdFrame(0, parts[1]), pmdFrame(pmdFin|9, []byte("p2")),
				pmdFrame(pmdFin|0, parts[2]))
			c.expectPong(t, "p1")
			c.expectPong(t, "p2")
			c.expectEcho(t, w, 1, text)

			// Three frames each ending in a sync flush (so each inflates
			// as it arrives), the last one's tail stripped; the message
			// refers to the earlier ones (the client keeps its context),
			// and the UTF-8 characters are split between frames.
			var fb bytes.Buffer
			fw, _ := flate.NewWriterDict(&fb, 6, bytes.Join(sent, nil))
			msg := []byte("x€y𝄞z" + string(pmdText(500)))
			var frames [][]byte
			for i, cut := range [][]byte{msg[:2], msg[2:8], msg[8:]} {
				fb.Reset()
				fw.Write(cut)
				fw.Flush()
				p := fb.Bytes()
				b0 := byte(0)
				if i == 0 {
					b0 = pmdRSV1 | 1
				}
				if i == 2 {
					b0 |= pmdFin
					p = bytes.TrimSuffix(p, pmdTail)
				}
				frames = append(frames, pmdFrame(b0, p))
			}
			c.send(t, frames...)
			c.expectEcho(t, w, 1, msg)

			// Empty messages: a lone empty stored block, and a fixed
			// block with only its end (RFC 7692 §7.2.3.6).
			c.send(t, pmdFrame(pmdFin|pmdRSV1|1, []byte{0x00}))
			c.expectEcho(t, w, 1, nil)
			c.send(t, pmdFrame(pmdFin|pmdRSV1|2, []byte{0x02, 0x00}))
			c.expectEcho(t, w, 2, nil)

			// Uncompressed messages still pass, and do not enter the
			// window (the next compressed one refers to "Hello", not to
			// them).
			c.send(t, pmdFrame(pmdFin|1, []byte("plain text, no RSV1")))
			c.expectEcho(t, w, 1, []byte("plain text, no RSV1"))
			c.send(t, pmdFrame(pmdFin|2, nil))
			c.expectEcho(t, w, 2, nil)

			// Binary is not checked for UTF-8, even compressed.
			c.send(t, pmdFrame(pmdFin|pmdRSV1|2, pmdDeflate(t, []byte{0xff, 0xfe, 0xc3}, nil, 6)))
			c.expectEcho(t, w, 2, []byte{0xff, 0xfe, 0xc3})
		})
	}
}

// Every way to break the rules of compressed data fails the connection
// with the code RFC 6455 and RFC 7692 call for, promptly.
func TestCompressConformanceServerViolations(t *testing.T) {
	hello := pmdDeflate(t, []byte("Hello"), nil, 6)
	fox := pmdDeflate(t, []byte("The quick brown fox jumps over the lazy dog. The quick brown fox."), nil, 6)
	lengthMismatch := []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'H', 'e', 'l', 'l', 'o'}
	// flushed is s compressed with its sync flush whole, as a fragment
	// that is not the last.
	flushed := func(s string) []byte { return append(pmdDeflate(t, []byte(s), nil, 6), pmdTail...) }
	cases := []struct {
		name   string
		opts   CompressionOptions // Enabled is set unless off
		off    bool
		offer  []string // nil: "permessage-deflate"
		frames [][]byte
		before int // messages echoed before the failure
		code   int
	}{
		{name: "RSV1 on the continuation of a compressed message", frames: [][]byte{
			pmdFrame(pmdRSV1|1, hello[:2]), pmdFrame(pmdFin|pmdRSV1, hello[2:])}, code: 1002},
		{name: "RSV1 on the continuation of an uncompressed message", frames: [][]byte{
			pmdFrame(1, []byte("Hel")), pmdFrame(pmdFin|pmdRSV1, []byte("lo"))}, code: 1002},
		{name: "RSV1 on a ping", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|9, []byte("p"))}, code: 1002},
		{name: "RSV1 on an empty ping", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|9, nil)}, code: 1002},
		{name: "RSV1 on a pong", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|0xA, nil)}, code: 1002},
		{name: "RSV1 on a close", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|8, ccClosePayload(1000, ""))}, code: 1002},
		{name: "RSV1 on a ping inside a compressed message", frames: [][]byte{
			pmdFrame(pmdRSV1|1, hello[:2]), pmdFrame(pmdFin|pmdRSV1|9, []byte("p")), pmdFrame(pmdFin, hello[2:])}, code: 1002},
		{name: "RSV2 with compression", frames: [][]byte{pmdFrame(pmdFin|pmdRSV2|1, []byte("Hello"))}, code: 1002},
		{name: "RSV3 with compression", frames: [][]byte{pmdFrame(pmdFin|pmdRSV3|1, []byte("Hello"))}, code: 1002},
		{name: "RSV1 and RSV2", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|pmdRSV2|1, hello)}, code: 1002},
		{name: "RSV1 when not offered", offer: []string{}, frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|1, hello)}, code: 1002},
		{name: "RSV1 when the offer was declined", offer: []string{"permessage-deflate; server_max_window_bits=16"},
			frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|1, hello)}, code: 1002},
		{name: "RSV1 with compression off", off: true, frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|1, hello)}, code: 1002},
		{name: "RSV1 on an empty binary with compression off", off: true, frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|2, nil)}, code: 1002},

		{name: "block type 3", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|2, []byte{0x06, 0x00})}, code: 1007},
		{name: "distance before the start", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|2, pmdFixed([]pmdToken{pmdMatch(3, 1)}))}, code: 1007},
		{name: "distance before the start of the history", frames: [][]byte{
			pmdFrame(pmdFin|pmdRSV1|1, hello), pmdFrame(pmdFin|pmdRSV1|2, pmdFixed([]pmdToken{pmdMatch(3, 6)}))}, before: 1, code: 1007},
		{name: "stored block LEN and NLEN disagree", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|2, lengthMismatch)}, code: 1007},
		{name: "garbage", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|2, bytes.Repeat([]byte{0xff}, 64))}, code: 1007},
		{name: "corrupt third fragment", frames: [][]byte{
			pmdFrame(pmdRSV1|2, hello[:3]), pmdFrame(0, hello[3:]), pmdFrame(pmdFin, []byte{0xff, 0xff, 0xff})}, code: 1007},
		{name: "corrupt after a good message", frames: [][]byte{
			pmdFrame(pmdFin|pmdRSV1|1, hello), pmdFrame(pmdFin|pmdRSV1|1, []byte{0x07})}, before: 1, code: 1007},

		// A payload cut off inside a block is not a message: the tail
		// appended by the receiver must end it at a sync point.
		{name: "stored block cut short", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|2, append([]byte{0x00, 0x64, 0x00, 0x9b, 0xff}, "0123456789"...))}, code: 1007},
		{name: "Huffman block cut short", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|2, fox[:len(fox)/2])}, code: 1007},
		{name: "Huffman block cut short, text", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|1, fox[:len(fox)-3])}, code: 1007},
		{name: "dynamic block header cut short", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|2, pmdBomb(10)[:5])}, code: 1007},
		{name: "fragmented message cut short", frames: [][]byte{pmdFrame(pmdRSV1|2, fox[:4]), pmdFrame(pmdFin, fox[4:len(fox)-2])}, code: 1007},
		{name: "cut short after a good message", frames: [][]byte{
			pmdFrame(pmdFin|pmdRSV1|1, hello), pmdFrame(pmdFin|pmdRSV1|1, hello[:len(hello)-2])}, before: 1, code: 1007},

		{name: "text inflates to invalid UTF-8", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|1, pmdDeflate(t, []byte("abc\xffdef"), nil, 6))}, code: 1007},
		{name: "text inflates to a surrogate", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|1, pmdDeflate(t, []byte("a\xed\xa0\x80"), nil, 6))}, code: 1007},
		{name: "text inflates to an unfinished character", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|1, pmdDeflate(t, []byte("abc\xe2\x82"), nil, 6))}, code: 1007},
		{name: "invalid UTF-8 after much valid text", frames: [][]byte{pmdFrame(pmdFin|pmdRSV1|1, pmdDeflate(t, append(pmdText(900), 0xc0, 0xaf), nil, 6))}, code: 1007},

		// Fail fast: the first fragment alone breaks the rule, and the
		// rest of the message never comes.
		{name: "unfinished text inflates to invalid UTF-8", frames: [][]byte{pmdFrame(pmdRSV1|1, flushed("hello \xc3\x28"))}, code: 1007},

		// The limit (1000 here) applies to the inflated bytes.
		{name: "inflates to exactly ReadLimit, then past it", frames: [][]byte{
			pmdFrame(pmdFin|pmdRSV1|2, pmdDeflate(t, make([]byte, 1000), nil, 6)),
			pmdFrame(pmdFin|pmdRSV1|2, pmdDeflate(t, make([]byte, 1001), nil, 6))}, before: 1, code: 1009},
		{name: "unfinished message inflates past ReadLimit", frames: [][]byte{pmdFrame(pmdRSV1|2, flushed(string(make([]byte, 1001))))}, code: 1009},
		{name: "unfinished message inflates past ReadLimit across fragments", frames: [][]byte{
			pmdFrame(pmdRSV1|2, flushed(string(make([]byte, 600)))), pmdFrame(0, flushed(string(make([]byte, 401))))}, code: 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Enabled = !tc.off
			s := pmdServe(t, &AcceptOptions{Options: Options{Compression: opts, ReadLimit: 1000}})
			offer := tc.offer
			if offer == nil {
				offer = []string{"permessage-deflate"}
			}
			c := pmdDial(t, s.addr, "/echo", offer...)
			done := c.sendAsync(bytes.Join(tc.frames, nil))
			for i := 0; i < tc.before; i++ {
				c.readMessage(t) // good messages before the bad one come back first
			}
			c.expectFail(t, s, tc.code)
			<-done
		})
	}
}

// A compressed message that the transport or a close frame interrupts
// ends the server's Read the same way an uncompressed one does: a
// *CloseError with 1006 when TCP ends, with the peer's code when it
// closes, never a complaint about the data.
func TestCompressConformanceServerInterrupted(t *testing.T) {
	s := pmdServe(t, &AcceptOptions{Options: Options{Compression: CompressionOptions{Enabled: true}}})
	part := append(pmdDeflate(t, pmdText(2000), nil, 6), pmdTail...)
	for _, tc := range []struct {
		name  string
		first []byte
	}{
		{"uncompressed", pmdFrame(1, []byte("Hello, "))},
		{"compressed, between frames", pmdFrame(pmdRSV1|1, part)},
		{"compressed, inside a frame", pmdFrame(pmdRSV1|1, part)[:len(part)/2]},
		{"compressed, inside a block", pmdFrame(pmdRSV1|1, part[:len(part)/2])},
	} {
		t.Run(tc.name+"/TCP ends", func(t *testing.T) {
			c := pmdDial(t, s.addr, "/echo", "permessage-deflate")
			c.send(t, tc.first)
			c.conn.Close()
			e := s.end(t)
			var ce *CloseError
			if !errors.As(e.err, &ce) || ce.Code != StatusAbnormalClosure {
				t.Fatalf("server's Read = %v, want a *CloseError with 1006", e.err)
			}
		})
		if tc.name == "compressed, inside a frame" {
			continue // a close frame cannot come inside a frame
		}
		t.Run(tc.name+"/close frame", func(t *testing.T) {
			c := pmdDial(t, s.addr, "/echo", "permessage-deflate")
			c.send(t, tc.first, pmdFrame(pmdFin|8, ccClosePayload(4001, "bye")))
			c.expectClose(t, 4001, 2*time.Second, false)
			e := s.end(t)
			var ce *CloseError
			if !errors.As(e.err, &ce) || ce.Code != 4001 || ce.Reason != "bye" {
				t.Fatalf("server's Read = %v, want a *CloseError with 4001 \"bye\"", e.err)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 3. Window sizes

// pmdWindowMessage is a message built to tempt a compressor into long
// back-references: a block repeated at distance dist.
type pmdWindowMessage struct {
	data  []byte
	block int // the size of the repeated block
	dist  int // distance at which it repeats the block, from itself or from an earlier message
}

// pmdWindowMessages returns messages whose repeated blocks lie 21.5 KiB,
// 3 KiB, 1324 bytes and 200 bytes back, one that repeats a block of the
// first message about 7.6 KiB back, and for a window of bits, blocks
// repeated exactly 2^bits and 2^bits+1 bytes back: the furthest reference
// allowed and the nearest one not. (The blocks are long, up to 1 KiB,
// because a fast compressor skips ahead through incompressible data and
// may step over the start of a short repeat.)
func pmdWindowMessages(bits int) []pmdWindowMessage {
	var ms []pmdWindowMessage
	for i, gap := range []int{20 << 10, 2 << 10, 300} {
		r := pmdRandom(uint64(100+i), 1024)
		m := append(append(bytes.Clone(r), pmdRandom(uint64(200+i), gap)...), r...)
		ms = append(ms, pmdWindowMessage{m, 1024, 1024 + gap})
	}
	r := pmdRandom(300, 100)
	ms = append(ms, pmdWindowMessage{append(append(bytes.Clone(r), pmdRandom(301, 100)...), r...), 100, 200})
	total := 0
	for _, m := range ms {
		total += len(m.data)
	}
	first := ms[0].data
	ms = append(ms, pmdWindowMessage{bytes.Clone(first[len(first)-1024:]), 1024, total - (len(first) - 1024)})
	block := min(1024, 1<<bits/2)
	for i, d := range []int{1 << bits, 1<<bits + 1} {
		r := pmdRandom(uint64(400+i), block)
		m := append(append(bytes.Clone(r), pmdRandom(uint64(500+i), d-block)...), r...)
		ms = append(ms, pmdWindowMessage{m, block, d})
	}
	return ms
}

// pmdCheckWindow decodes what one side sent for pmdWindowMessages with a
// window of bits: every back-reference within it (pmdWalker fails
// otherwise), and the repeated block found whenever it lies within it, so
// that a compressor cannot pass by never referring back.
func pmdCheckWindow(t *testing.T, bits int, ms []pmdWindowMessage, sent []pmdMessage) {
	t.Helper()
	w := pmdWalker{window: 1 << bits, takeover: true}
	for i, m := range ms {
		if !sent[i].compressed {
			t.Fatalf("message %d (%d bytes) not compressed", i, len(m.data))
		}
		p := sent[i].payload()
		got, err := w.message(p)
		if err != nil {
			t.Fatalf("window %d bits, message %d: %v", bits, i, err)
		}
		if !bytes.Equal(got, m.data) {
			t.Fatalf("window %d bits, message %d: inflates to the wrong %d bytes", bits, i, len(got))
		}
		if m.dist <= 1<<bits && len(p) > len(m.data)-m.block/2 {
			t.Errorf("window %d bits, message %d: %d bytes compressed to %d: the block of %d repeated %d bytes back, within the window, was not found",
				bits, i, len(m.data), len(p), m.block, m.dist)
		}
	}
	if w.maxDist > 1<<bits {
		t.Fatalf("distance %d in a window of %d", w.maxDist, 1<<bits)
	}
	t.Logf("window %d bits: longest distance %d, %d back-references", bits, w.maxDist, w.matches)
}

// Our server, asked for server_max_window_bits=N (8..15), never refers
// further back than 2^N bytes, and does use the window it has.
func TestCompressConformanceWindowServer(t *testing.T) {
	for _, level := range []int{1, 2, 6, 9} {
		for bits := 8; bits <= 15; bits++ {
			ms := pmdWindowMessages(bits)
			t.Run(fmt.Sprintf("level%d/%d", level, bits), func(t *testing.T) {
				s := pmdServe(t, &AcceptOptions{Options: Options{Compression: CompressionOptions{Enabled: true, Level: level}}})
				offer := fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits)
				c := pmdDial(t, s.addr, "/echo", offer)
				if got := c.extensions(); len(got) != 1 || got[0] != offer {
					t.Fatalf("answer %q, want %q", got, offer)
				}
				var echoes []pmdMessage
				for _, m := range ms {
					c.send(t, pmdFrame(pmdFin|pmdRSV1|2, pmdDeflate(t, m.data, nil, 6)))
					echoes = append(echoes, c.readMessage(t))
				}
				pmdCheckWindow(t, bits, ms, echoes)
			})
		}
	}
}

// Our client, told client_max_window_bits=N (8..15) by the server, never
// refers further back than 2^N bytes, and does use the window it has.
func TestCompressConformanceWindowClient(t *testing.T) {
	for bits := 8; bits <= 15; bits++ {
		ms := pmdWindowMessages(bits)
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			answer := fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", bits)
			r, p := ccHandshake(t, &DialOptions{Options: Options{Compression: CompressionOptions{Enabled: true}}}, func(req *http.Request) string {
				return ccResponse101(req, "Sec-WebSocket-Extensions: "+answer+"\r\n")
			})
			if r.err != nil {
				t.Fatalf("Dial: %v", r.err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), pmdTimeout)
			defer cancel()
			var sent []pmdMessage
			for _, m := range ms {
				werr := make(chan error, 1)
				go func() { werr <- r.c.Write(ctx, MessageBinary, m.data) }()
				got, err := pmdReadMessage(func() (ccWireFrame, error) {
					p.conn.SetReadDeadline(time.Now().Add(pmdTimeout))
					return ccReadFrame(p.br)
				}, true)
				if err != nil {
					t.Fatalf("raw server: %v", err)
				}
				if err := <-werr; err != nil {
					t.Fatalf("Write: %v", err)
				}
				sent = append(sent, got)
			}
			pmdCheckWindow(t, bits, ms, sent)
		})
	}
}

// pmdApply computes what tokens inflate to after hist.
func pmdApply(hist []byte, tokens []pmdToken) []byte {
	out := bytes.Clone(hist)
	for _, t := range tokens {
		if t.length == 0 {
			out = append(out, t.lit)
			continue
		}
		for i := 0; i < t.length; i++ {
			out = append(out, out[len(out)-t.dist])
		}
	}
	return out[len(hist):]
}

// pmdWindowEdge returns two messages for a window of bits: 2^N+37 random
// bytes as literals, then one made only of back-references at exactly
// 2^N, reaching from the second message into the first, and within the
// second message itself.
func pmdWindowEdge(bits int) (first, second []byte, t1, t2 []pmdToken) {
	n := 1 << bits
	first = pmdRandom(uint64(bits), n+37)
	for _, b := range first {
		t1 = append(t1, pmdToken{lit: b})
	}
	for left := n + 300; left > 0; {
		l := min(left, 258)
		if l < 3 {
			l = 3
		}
		t2 = append(t2, pmdMatch(l, n))
		left -= l
	}
	second = pmdApply(first, t2)
	return first, second, t1, t2
}

// With context takeover, a peer may refer as far back as the window it
// agreed to, into the previous message: 2^N exactly. Our server inflates
// such a client stream for every N, and our client such a server stream.
func TestCompressConformanceWindowInflate(t *testing.T) {
	for bits := 8; bits <= 15; bits++ {
		first, second, t1, t2 := pmdWindowEdge(bits)
		p1, p2 := pmdFixed(t1), pmdFixed(t2)
		if got, err := pmdInflate(p2, first); err != nil || !bytes.Equal(got, second) {
			t.Fatalf("bits %d: the crafted message does not inflate with compress/flate: %v", bits, err)
		}
		t.Run(fmt.Sprintf("server/%d", bits), func(t *testing.T) {
			s := pmdServe(t, &AcceptOptions{Options: Options{Compression: CompressionOptions{Enabled: true}}})
			offer := fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", bits)
			c := pmdDial(t, s.addr, "/echo", offer)
			want := offer
			if bits == 15 {
				want = "permessage-deflate"
			}
			if got := c.extensions(); len(got) != 1 || got[0] != want {
				t.Fatalf("answer %q, want %q", got, want)
			}
			w := &pmdWalker{window: 1 << 15, takeover: true}
			c.send(t, pmdFrame(pmdFin|pmdRSV1|2, p1))
			c.expectEcho(t, w, 2, first)
			// The second message in three fragments.
			parts := pmdSplit3(p2)
			c.send(t, pmdFrame(pmdRSV1|2, parts[0]), pmdFrame(0, parts[1]), pmdFrame(pmdFin, parts[2]))
			c.expectEcho(t, w, 2, second)
		})
		t.Run(fmt.Sprintf("client/%d", bits), func(t *testing.T) {
			opts := &DialOptions{Options: Options{Compression: CompressionOptions{Enabled: true, ServerMaxWindowBits: bits}}}
			answer := fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits)
			r, p := ccHandshake(t, opts, func(req *http.Request) string {
				return ccResponse101(req, "Sec-WebSocket-Extensions: "+answer+"\r\n")
			})
			if r.err != nil {
				t.Fatalf("Dial: %v", r.err)
			}
			parts := pmdSplit3(p2)
			done := p.writeAsync(ccCat(ccFrame(pmdFin|pmdRSV1|2, p1),
				ccFrame(pmdRSV1|2, parts[0]), ccFrame(0, parts[1]), ccFrame(pmdFin, parts[2])))
			if got := ccRead(t, r.c); got.err != nil || !bytes.Equal(got.p, first) {
				t.Fatalf("first message: %d bytes, %v", len(got.p), got.err)
			}
			if got := ccRead(t, r.c); got.err != nil || !bytes.Equal(got.p, second) {
				t.Fatalf("second message: %d bytes, %v", len(got.p), got.err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 4. Context takeover on and off

// pmdCheckTakeover checks two compressed messages, both carrying m, as
// one side sent them: with takeover the second refers to the first (much
// smaller, and a decompressor without the first message's window cannot
// inflate it); without, each inflates on its own with a fresh decompressor
// and no dictionary.
func pmdCheckTakeover(t *testing.T, takeover bool, m []byte, sent [2]pmdMessage) {
	t.Helper()
	for i, s := range sent {
		if !s.compressed {
			t.Fatalf("message %d not compressed", i)
		}
	}
	w := pmdWalker{window: 1 << 15, takeover: true}
	for i, s := range sent {
		if got, err := w.message(s.payload()); err != nil || !bytes.Equal(got, m) {
			t.Fatalf("message %d does not inflate in sequence: %v", i, err)
		}
	}
	n1, n2 := len(sent[0].payload()), len(sent[1].payload())
	alone, err := pmdInflate(sent[1].payload(), nil)
	aloneOK := err == nil && bytes.Equal(alone, m)
	if takeover {
		if n2 > 64 || n2*20 > n1 {
			t.Errorf("with context takeover the repeated %d-byte message compressed to %d bytes (the first to %d): it does not refer to the first", len(m), n2, n1)
		}
		if aloneOK {
			t.Errorf("with context takeover the second message inflates without the first")
		}
		return
	}
	if n2 < len(m) {
		t.Errorf("without context takeover the repeated %d-byte random message compressed to %d bytes: it refers to the first", len(m), n2)
	}
	for i, s := range sent {
		if got, err := pmdInflate(s.payload(), nil); err != nil || !bytes.Equal(got, m) {
			t.Errorf("without context takeover message %d does not inflate on its own: %v", i, err)
		}
	}
}

// Our server's and our client's compressors keep or drop their context as
// agreed: each sends the same 4 KiB of random bytes twice.
func TestCompressConformanceTakeover(t *testing.T) {
	m := pmdRandom(42, 4096)
	server := []struct {
		name     string
		opts     CompressionOptions
		offer    string
		takeover bool
	}{
		{"takeover", CompressionOptions{Enabled: true}, "permessage-deflate", true},
		{"client asks server_no_context_takeover", CompressionOptions{Enabled: true}, "permessage-deflate; server_no_context_takeover", false},
		{"server chooses no context", CompressionOptions{Enabled: true, ServerNoContextTakeover: true}, "permessage-deflate", false},
		{"client_no_context_takeover leaves the server's context", CompressionOptions{Enabled: true}, "permessage-deflate; client_no_context_takeover", true},
		{"small window, takeover", CompressionOptions{Enabled: true}, "permessage-deflate; server_max_window_bits=13", true},
	}
	for _, tc := range server {
		t.Run("server/"+tc.name, func(t *testing.T) {
			s := pmdServe(t, &AcceptOptions{Options: Options{Compression: tc.opts}})
			c := pmdDial(t, s.addr, "/echo", tc.offer)
			var echoes [2]pmdMessage
			for i := range echoes {
				c.send(t, pmdFrame(pmdFin|pmdRSV1|2, pmdDeflate(t, m, nil, 6)))
				echoes[i] = c.readMessage(t)
				// A message too short to compress goes out as it is
				// and stays out of the window the next one refers to.
				c.send(t, pmdFrame(pmdFin|1, []byte("tiny")))
				if e := c.readMessage(t); e.compressed || string(e.payload()) != "tiny" {
					t.Fatalf("echo of a 4-byte message: compressed=%v %q", e.compressed, e.payload())
				}
			}
			pmdCheckTakeover(t, tc.takeover, m, echoes)
		})
	}
	client := []struct {
		name     string
		opts     CompressionOptions
		answer   string
		takeover bool
	}{
		{"takeover", CompressionOptions{Enabled: true}, "permessage-deflate", true},
		{"server requires client_no_context_takeover", CompressionOptions{Enabled: true}, "permessage-deflate; client_no_context_takeover", false},
		{"client announced no context, server silent", CompressionOptions{Enabled: true, ClientNoContextTakeover: true}, "permessage-deflate", false},
		{"server_no_context_takeover leaves the client's context", CompressionOptions{Enabled: true}, "permessage-deflate; server_no_context_takeover", true},
		{"small window, takeover", CompressionOptions{Enabled: true}, "permessage-deflate; client_max_window_bits=13", true},
	}
	for _, tc := range client {
		t.Run("client/"+tc.name, func(t *testing.T) {
			r, p := ccHandshake(t, &DialOptions{Options: Options{Compression: tc.opts}}, func(req *http.Request) string {
				return ccResponse101(req, "Sec-WebSocket-Extensions: "+tc.answer+"\r\n")
			})
			if r.err != nil {
				t.Fatalf("Dial: %v", r.err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), pmdTimeout)
			defer cancel()
			var sent [2]pmdMessage
			for i := range sent {
				if err := r.c.Write(ctx, MessageBinary, m); err != nil {
					t.Fatal(err)
				}
				var err error
				sent[i], err = pmdReadMessage(func() (ccWireFrame, error) {
					p.conn.SetReadDeadline(time.Now().Add(pmdTimeout))
					return ccReadFrame(p.br)
				}, true)
				if err != nil {
					t.Fatalf("raw server: %v", err)
				}
				// A message too short to compress goes out as it is
				// and stays out of the window the next one refers to.
				if err := r.c.Write(ctx, MessageText, []byte("tiny")); err != nil {
					t.Fatal(err)
				}
				if f := p.readFrame(t); f.rsv != 0 || string(f.payload) != "tiny" {
					t.Fatalf("a 4-byte message sent with RSV %#x as %q", f.rsv, f.payload)
				}
			}
			pmdCheckTakeover(t, tc.takeover, m, sent)
		})
	}
}

// The receiving side keeps the peer's window when the peer keeps its
// context: a message that refers to the one before it inflates right, on
// our server and on our client, also when the messages are fragmented.
func TestCompressConformanceTakeoverReceive(t *testing.T) {
	m1 := pmdRandom(7, 3000)
	m2 := append(bytes.Clone(m1[1000:2000]), m1[:500]...)
	c1 := pmdDeflate(t, m1, nil, 6)
	c2 := pmdDeflate(t, m2, m1, 6)
	if len(c2) > 64 {
		t.Fatalf("the second message compressed to %d bytes: it does not refer to the first", len(c2))
	}
	t.Run("server", func(t *testing.T) {
		s := pmdServe(t, &AcceptOptions{Options: Options{Compression: CompressionOptions{Enabled: true}}})
		c := pmdDial(t, s.addr, "/echo", "permessage-deflate; server_no_context_takeover")
		w := &pmdWalker{window: 1 << 15}
		p := pmdSplit3(c1)
		c.send(t, pmdFrame(pmdRSV1|2, p[0]), pmdFrame(0, p[1]), pmdFrame(pmdFin, p[2]))
		c.expectEcho(t, w, 2, m1)
		c.send(t, pmdFrame(pmdFin|pmdRSV1|2, c2))
		c.expectEcho(t, w, 2, m2)
	})
	t.Run("client", func(t *testing.T) {
		r, p := ccHandshake(t, &DialOptions{Options: Options{Compression: CompressionOptions{Enabled: true}}}, func(req *http.Request) string {
			return ccResponse101(req, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
		})
		if r.err != nil {
			t.Fatalf("Dial: %v", r.err)
		}
		parts := pmdSplit3(c1)
		done := p.writeAsync(ccCat(ccFrame(pmdRSV1|2, parts[0]), ccFrame(0x89, []byte("between")), ccFrame(0, parts[1]), ccFrame(pmdFin, parts[2]),
			ccFrame(pmdFin|pmdRSV1|2, c2)))
		if got := ccRead(t, r.c); got.err != nil || !bytes.Equal(got.p, m1) {
			t.Fatalf("first message: %d bytes, %v", len(got.p), got.err)
		}
		if got := ccRead(t, r.c); got.err != nil || !bytes.Equal(got.p, m2) {
			t.Fatalf("second message: %d bytes, %v", len(got.p), got.err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// ---------------------------------------------------------------------------
// 5. The decompression bomb

// pmdEchoer keeps one compressed connection busy with round trips in the
// background and reports how they went.
type pmdEchoer struct {
	n       atomic.Int64 // round trips done
	slowest atomic.Int64 // nanoseconds of the slowest one
	stop    chan struct{}
	done    chan error
}

func pmdStartEchoer(t *testing.T, addr string) *pmdEchoer {
	c := pmdDial(t, addr, "/echo", "permessage-deflate; server_no_context_takeover")
	e := &pmdEchoer{stop: make(chan struct{}), done: make(chan error, 1)}
	// Everything sent is built now: the test measures the heap while the
	// round trips go on, and compress/flate's Writer is a megabyte.
	var msgs, wire [][]byte
	for i := 0; i < 16; i++ {
		msg := []byte(fmt.Sprintf(`{"seq":%d,"text":"still here, still here, still here"}`, i))
		msgs = append(msgs, msg)
		wire = append(wire, pmdFrame(pmdFin|pmdRSV1|1, pmdDeflate(t, msg, nil, 6)))
	}
	go func() {
		e.done <- func() error {
			w := &pmdWalker{window: 1 << 15}
			for i := 0; ; i++ {
				select {
				case <-e.stop:
					return nil
				default:
				}
				msg := msgs[i%len(msgs)]
				start := time.Now()
				c.conn.SetWriteDeadline(time.Now().Add(pmdTimeout))
				if _, err := c.conn.Write(wire[i%len(wire)]); err != nil {
					return err
				}
				m, err := c.tryReadMessage()
				if err != nil {
					return err
				}
				got := m.payload()
				if m.compressed {
					if got, err = w.message(got); err != nil {
						return err
					}
				}
				if !bytes.Equal(got, msg) {
					return fmt.Errorf("round trip %d: echo %q, want %q", i, got, msg)
				}
				d := int64(time.Since(start))
				if d > e.slowest.Load() {
					e.slowest.Store(d)
				}
				e.n.Add(1)
			}
		}()
	}()
	return e
}

// awaitRoundTrips waits until n round trips are done.
func (e *pmdEchoer) awaitRoundTrips(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(pmdTimeout)
	for e.n.Load() < n {
		select {
		case err := <-e.done:
			t.Fatalf("echo connection: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo connection: %d round trips within %v, want %d", e.n.Load(), pmdTimeout, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *pmdEchoer) finish(t *testing.T) {
	t.Helper()
	close(e.stop)
	select {
	case err := <-e.done:
		if err != nil {
			t.Fatalf("echo connection: %v", err)
		}
	case <-time.After(pmdTimeout):
		t.Fatal("echo connection stuck")
	}
}

// pmdHeapPeak samples the heap in use until stopped, and returns the
// highest value seen.
func pmdHeapPeak() (stop func() uint64) {
	quit := make(chan struct{})
	res := make(chan uint64)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-quit:
				res <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(quit); return <-res }
}

// A message of about 1 MB that inflates to 1 GiB of zeros, against our
// server with the default 32 MiB ReadLimit: the server stops it at the
// limit with 1009, without waiting for the rest of the message, and its
// heap grows by a bounded multiple of the limit (the message buffer with
// Read, next to nothing with Reader); in one frame and spread over many
// small ones. Then, with another connection to the same server echoing
// all along, the same again: the other connection keeps its round trips
// going while the bomb is handled. (The heap is measured without the other
// connection, whose own allocations would count: under the race detector
// sync.Pool drops what it is given, so every round trip allocates.)
func TestCompressConformanceBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("inflates 32 MiB per case")
	}
	const limit = DefaultReadLimit
	bomb := pmdBomb(4161790) // 1 + 258*4161790 bytes, 1 GiB less 3
	t.Logf("bomb: %d bytes inflate to %d", len(bomb), 1+258*4161790)
	for _, tc := range []struct {
		name  string
		path  string
		split int    // bytes per frame; 0 for one frame, -1 for one frame without FIN
		inUse uint64 // bound on the growth of the heap in use
		alloc uint64 // bound on the bytes allocated
		live  bool   // also run it next to an echoing connection
	}{
		// Read holds the message: its buffer doubles up to the limit
		// (the one before is live while it is copied): about 1.75 times
		// the limit in use at the peak and twice allocated.
		{"Read/one frame", "/echo", 0, 5 * limit / 2, 5 * limit / 2, true},
		{"Read/1000-byte frames", "/echo", 1000, 5 * limit / 2, 5 * limit / 2, false},
		{"Read/125-byte frames", "/echo", 125, 5 * limit / 2, 5 * limit / 2, true},
		{"Read/unfinished message", "/echo", -1, 5 * limit / 2, 5 * limit / 2, false},
		// Reader streams it (here into a Writer): nothing grows. Under
		// the race detector sync.Pool drops what it is given, so the
		// buffers and scratch space every frame borrows are allocated
		// again and again (about 20 MiB in all); otherwise, under 1 MiB.
		{"Reader/one frame", "/stream", 0, limit / 4, limit, true},
		{"Reader/125-byte frames", "/stream", 125, limit / 4, limit, false},
		{"Reader/unfinished message", "/stream", -1, limit / 4, limit, false},
	} {
		var wire []byte
		switch tc.split {
		case 0:
			wire = pmdFrame(pmdFin|pmdRSV1|2, bomb)
		case -1:
			wire = pmdFrame(pmdRSV1|2, bomb) // the server must not wait for the rest
		default:
			for i := 0; i < len(bomb); i += tc.split {
				b0 := byte(0)
				if i == 0 {
					b0 = pmdRSV1 | 2
				}
				if i+tc.split >= len(bomb) {
					b0 |= pmdFin
				}
				wire = append(wire, pmdFrame(b0, bomb[i:min(i+tc.split, len(bomb))])...)
			}
		}
		// explode sends the bomb on a new connection and checks that the
		// server stops it with 1009. Inflating 32 MiB (and, with Reader,
		// compressing it again for the echo) takes seconds under the race
		// detector, over 10 s on a loaded machine: the wait for the close
		// is bounded by pmdBombTimeout, which only catches a hang (the
		// unfinished message would hang forever if the server waited for
		// its end).
		explode := func(t *testing.T, s *pmdServer) {
			t.Helper()
			c := pmdDial(t, s.addr, tc.path, "permessage-deflate")
			done := c.sendAsync(wire)
			c.expectClose(t, 1009, pmdBombTimeout, tc.path == "/stream")
			pmdExpectProtocolError(t, s.end(t).err, 1009)
			<-done
		}
		t.Run(tc.name+"/memory", func(t *testing.T) {
			s := pmdServe(t, &AcceptOptions{Options: Options{Compression: CompressionOptions{Enabled: true}}})
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			peak := pmdHeapPeak()
			start := time.Now()
			explode(t, s)
			took := time.Since(start)
			peakInuse := peak()
			runtime.ReadMemStats(&after)
			grew := int64(peakInuse) - int64(before.HeapInuse)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("stopped after %v; heap in use grew by at most %.1f MiB, %.1f MiB allocated",
				took, float64(grew)/(1<<20), float64(allocated)/(1<<20))
			if grew > int64(tc.inUse) {
				t.Errorf("heap in use grew by %d bytes, want at most %d", grew, tc.inUse)
			}
			if allocated > tc.alloc {
				t.Errorf("%d bytes allocated while the bomb was handled, want at most %d", allocated, tc.alloc)
			}
		})
		if !tc.live {
			continue
		}
		t.Run(tc.name+"/next to an echo", func(t *testing.T) {
			s := pmdServe(t, &AcceptOptions{Options: Options{Compression: CompressionOptions{Enabled: true}}})
			echo := pmdStartEchoer(t, s.addr)
			echo.awaitRoundTrips(t, 3)
			trips := echo.n.Load()
			explode(t, s)
			during := echo.n.Load() - trips
			t.Logf("%d echo round trips while the bomb was handled, the slowest %v", during, time.Duration(echo.slowest.Load()))
			if during == 0 {
				t.Errorf("no echo round trip while the bomb was handled")
			}
			// The other connection kept working, and still does.
			echo.awaitRoundTrips(t, echo.n.Load()+3)
			echo.finish(t)
			if slowest := time.Duration(echo.slowest.Load()); slowest > 2*time.Second {
				t.Errorf("an echo round trip took %v while the bomb was handled", slowest)
			}
		})
	}
}
