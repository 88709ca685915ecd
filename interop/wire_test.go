package interop

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// This file looks at the bytes of a WebSocket connection as they crossed
// TCP, independently of the websocket package: a net.Conn that records
// them, a frame parser, and a DEFLATE decoder (RFC 1951) that fails on any
// back-reference beyond the window the sender agreed to or before the
// history it may use. The standard compress/flate and zlib accept distances
// up to 32 KiB whatever the negotiated window, and zlib (Python's, Node's)
// only rejects one that reaches back past the output of the current
// decompress call, so neither proves that a sender honoured a smaller window.

// tapConn is a net.Conn that keeps a copy of every byte read and written.
type tapConn struct {
	net.Conn
	mu      sync.Mutex
	read    bytes.Buffer
	written bytes.Buffer
}

func newTapConn(c net.Conn) *tapConn { return &tapConn{Conn: c} }

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.written.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// streams returns copies of the bytes read and written so far.
func (c *tapConn) streams() (read, written []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.read.Bytes()), bytes.Clone(c.written.Bytes())
}

// tapListener wraps every accepted connection in a tapConn, found again by
// the remote address a handler sees in http.Request.RemoteAddr.
type tapListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[string]*tapConn
}

func newTapListener(l net.Listener) *tapListener {
	return &tapListener{Listener: l, conns: map[string]*tapConn{}}
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := newTapConn(c)
	l.mu.Lock()
	l.conns[c.RemoteAddr().String()] = tc
	l.mu.Unlock()
	return tc, nil
}

func (l *tapListener) conn(remoteAddr string) *tapConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[remoteAddr]
}

// afterHandshake returns the frames that follow the HTTP request or
// response at the start of stream.
func afterHandshake(stream []byte) ([]byte, error) {
	i := bytes.Index(stream, []byte("\r\n\r\n"))
	if i < 0 {
		return nil, errors.New("no end of the HTTP header in the recorded bytes")
	}
	return stream[i+4:], nil
}

// wireMessage is one data message as it crossed the wire.
type wireMessage struct {
	op      byte // 1 text, 2 binary
	rsv1    bool // on the first frame: compressed (RFC 7692)
	frames  int
	payload []byte // the frames' payloads, unmasked, concatenated
}

// parseFrames splits frames (the bytes after the handshake, in one
// direction) into data messages, up to the first close frame. It checks
// the framing rules that concern compression: RSV1 only on the first
// frame of a message, never RSV2 or RSV3, never RSV on a control frame.
func parseFrames(frames []byte) ([]wireMessage, error) {
	msgs, _, err := parseFramesClose(frames)
	return msgs, err
}

// parseFramesClose is parseFrames that also returns the payload of the
// first close frame (its code and reason).
func parseFramesClose(frames []byte) ([]wireMessage, []byte, error) {
	var msgs []wireMessage
	var cur *wireMessage
	for off := 0; ; {
		if off == len(frames) {
			return nil, nil, errors.New("the recorded bytes end without a close frame")
		}
		if len(frames)-off < 2 {
			return nil, nil, fmt.Errorf("frame header cut at byte %d", off)
		}
		b0, b1 := frames[off], frames[off+1]
		fin, rsv, op := b0&0x80 != 0, b0&0x70, b0&0x0f
		masked := b1&0x80 != 0
		n := uint64(b1 & 0x7f)
		h := 2
		switch n {
		case 126:
			if len(frames)-off < 4 {
				return nil, nil, fmt.Errorf("frame header cut at byte %d", off)
			}
			n, h = uint64(binary.BigEndian.Uint16(frames[off+2:])), 4
		case 127:
			if len(frames)-off < 10 {
				return nil, nil, fmt.Errorf("frame header cut at byte %d", off)
			}
			n, h = binary.BigEndian.Uint64(frames[off+2:]), 10
		}
		var key []byte
		if masked {
			if len(frames)-off < h+4 {
				return nil, nil, fmt.Errorf("frame header cut at byte %d", off)
			}
			key = frames[off+h : off+h+4]
			h += 4
		}
		if n > uint64(len(frames)-off-h) {
			return nil, nil, fmt.Errorf("frame at byte %d: %d-byte payload cut", off, n)
		}
		p := bytes.Clone(frames[off+h : off+h+int(n)])
		if masked {
			for i := range p {
				p[i] ^= key[i&3]
			}
		}
		at := off
		off += h + int(n)
		if rsv&0x30 != 0 {
			return nil, nil, fmt.Errorf("frame at byte %d (opcode %d) has RSV2 or RSV3", at, op)
		}
		switch {
		case op >= 8: // control
			if rsv != 0 {
				return nil, nil, fmt.Errorf("control frame at byte %d (opcode %d) has RSV1", at, op)
			}
			if op == 8 {
				if cur != nil {
					return nil, nil, fmt.Errorf("close frame at byte %d inside a message", at)
				}
				return msgs, p, nil
			}
			continue
		case op == 0:
			if cur == nil {
				return nil, nil, fmt.Errorf("continuation frame at byte %d outside a message", at)
			}
			if rsv != 0 {
				return nil, nil, fmt.Errorf("continuation frame at byte %d has RSV1", at)
			}
		case op == 1 || op == 2:
			if cur != nil {
				return nil, nil, fmt.Errorf("data frame at byte %d inside a message", at)
			}
			msgs = append(msgs, wireMessage{op: op, rsv1: rsv != 0})
			cur = &msgs[len(msgs)-1]
		default:
			return nil, nil, fmt.Errorf("frame at byte %d has reserved opcode %d", at, op)
		}
		cur.frames++
		cur.payload = append(cur.payload, p...)
		if fin {
			cur = nil
		}
	}
}

// extParams are the parameters of a permessage-deflate answer.
type extParams map[string]string

// parseDeflateAnswer parses a Sec-WebSocket-Extensions answer that names
// permessage-deflate alone. Parameters without a value map to "".
func parseDeflateAnswer(h string) (extParams, error) {
	parts := strings.Split(h, ";")
	if strings.TrimSpace(parts[0]) != "permessage-deflate" || strings.Contains(h, ",") {
		return nil, fmt.Errorf("answer %q is not a single permessage-deflate", h)
	}
	params := extParams{}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		v = strings.Trim(strings.TrimSpace(v), `"`)
		if _, dup := params[k]; dup {
			return nil, fmt.Errorf("answer %q repeats %s", h, k)
		}
		params[k] = v
	}
	return params, nil
}

// sender returns the window and takeover a side ("server" or "client") may
// use when compressing, by the answer p: the window defaults to 15 bits,
// and takeover holds unless <side>_no_context_takeover is there. (A client
// that announced client_no_context_takeover itself may drop context even
// when the answer does not say so; checking it with takeover allowed is
// looser, never wrong.)
func (p extParams) sender(side string) (windowBits int, takeover bool) {
	windowBits = 15
	if v, ok := p[side+"_max_window_bits"]; ok && v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			windowBits = n
		}
	}
	_, noTakeover := p[side+"_no_context_takeover"]
	return windowBits, !noTakeover
}

// strictInflater inflates the messages of one sender (RFC 7692 §7.2.2:
// append 00 00 ff ff, inflate) and fails on a back-reference farther than
// the window or before the history: the start of the message without
// context takeover, the window's worth of earlier messages with it.
type strictInflater struct {
	window   int
	takeover bool
	hist     []byte // the last window bytes of earlier messages (takeover)
	maxDist  int    // the longest distance seen
}

func newStrictInflater(windowBits int, takeover bool) *strictInflater {
	return &strictInflater{window: 1 << windowBits, takeover: takeover}
}

// inflate returns the message whose compressed payload (tail removed) is
// data. sizeHint is the expected size of the message, to allocate once.
func (f *strictInflater) inflate(data []byte, sizeHint int) ([]byte, error) {
	in := make([]byte, 0, len(data)+4)
	in = append(append(in, data...), 0x00, 0x00, 0xff, 0xff)
	br := &bitReader{in: in}
	out := append(make([]byte, 0, len(f.hist)+sizeHint), f.hist...)
	start := len(out)
	for {
		if br.done() {
			break
		}
		final, err := br.bits(1)
		if err != nil {
			return nil, err
		}
		typ, err := br.bits(2)
		if err != nil {
			return nil, err
		}
		switch typ {
		case 0:
			out, err = br.stored(out)
		case 1:
			out, err = f.codes(br, out, start, &fixedLit, &fixedDist)
		case 2:
			var lit, dist huffman
			if err = br.dynamicTables(&lit, &dist); err == nil {
				out, err = f.codes(br, out, start, &lit, &dist)
			}
		default:
			err = errors.New("block type 3")
		}
		if err != nil {
			return nil, fmt.Errorf("at input byte %d of %d: %w", br.pos, len(data), err)
		}
		if final == 1 {
			break // the rest, if any, is ignored (RFC 7692 §7.2.3.3 allows BFINAL)
		}
	}
	if f.takeover {
		h := out[max(0, len(out)-f.window):]
		f.hist = append(f.hist[:0], h...)
	}
	return out[start:], nil
}

var (
	lengthBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

	fixedLit, fixedDist huffman
)

func init() {
	var l [288]uint8
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
	if err := fixedLit.build(l[:]); err != nil {
		panic(err)
	}
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	if err := fixedDist.build(d[:]); err != nil {
		panic(err)
	}
}

// codes decodes one Huffman-coded block.
//
//go:norace
func (f *strictInflater) codes(br *bitReader, out []byte, start int, lit, dist *huffman) ([]byte, error) {
	for {
		sym, err := br.decode(lit)
		if err != nil {
			return out, err
		}
		switch {
		case sym < 256:
			out = append(out, byte(sym))
			continue
		case sym == 256:
			return out, nil
		case sym > 285:
			return out, fmt.Errorf("length symbol %d", sym)
		}
		sym -= 257
		e, err := br.bits(lengthExtra[sym])
		if err != nil {
			return out, err
		}
		length := lengthBase[sym] + int(e)
		ds, err := br.decode(dist)
		if err != nil {
			return out, err
		}
		if ds > 29 {
			return out, fmt.Errorf("distance symbol %d", ds)
		}
		e, err = br.bits(distExtra[ds])
		if err != nil {
			return out, err
		}
		d := distBase[ds] + int(e)
		f.maxDist = max(f.maxDist, d)
		if d > f.window {
			return out, fmt.Errorf("distance %d beyond the %d-byte window (at output byte %d of the message)", d, f.window, len(out)-start)
		}
		if d > len(out) {
			what := "the start of the message (no context takeover)"
			if f.takeover {
				what = "the history (earlier messages)"
			}
			return out, fmt.Errorf("distance %d reaches before %s, which is %d bytes back (at output byte %d of the message)", d, what, len(out), len(out)-start)
		}
		// The copy may overlap what it writes: the bytes from `from` on
		// repeat with period d, so copying from there in growing chunks is
		// the byte-by-byte copy.
		from := len(out) - d
		for length > 0 {
			k := min(length, len(out)-from)
			out = append(out, out[from:from+k]...)
			length -= k
		}
	}
}

// huffman is a canonical Huffman code: the number of codes of each length
// and the symbols in code order (as in zlib's puff.c), and a table of the
// codes of up to fastBits bits, indexed by the next fastBits input bits.
type huffman struct {
	count  [16]int
	symbol []int
	fast   [1 << fastBits]uint16 // symbol<<4 | code length; 0: longer code or none
}

const fastBits = 9

func (h *huffman) build(lengths []uint8) error {
	h.count = [16]int{}
	for _, l := range lengths {
		h.count[l]++
	}
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - h.count[l]
		if left < 0 {
			return errors.New("over-subscribed Huffman code")
		}
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	h.symbol = make([]int, len(lengths))
	for s, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = s
			offs[l]++
		}
	}
	// Canonical codes (RFC 1951 §3.2.2), reversed: DEFLATE sends a code's
	// bits from its most significant one, into the LSB-first stream.
	h.fast = [1 << fastBits]uint16{}
	var next [16]int
	code := 0
	for l := 1; l < 16; l++ {
		code = (code + h.count[l-1]) << 1
		if l == 1 {
			code = 0
		}
		next[l] = code
	}
	for s, l := range lengths {
		if l == 0 {
			continue
		}
		c := next[l]
		next[l]++
		if l > fastBits {
			continue
		}
		r := 0
		for i := range int(l) {
			r |= (c >> i & 1) << (int(l) - 1 - i)
		}
		for i := r; i < 1<<fastBits; i += 1 << l {
			h.fast[i] = uint16(s<<4 | int(l))
		}
	}
	return nil
}

// bitReader reads DEFLATE's LSB-first bit stream.
type bitReader struct {
	in    []byte
	pos   int    // next byte to load
	buf   uint64 // bits not yet consumed, LSB first
	nbits uint
}

// done reports whether every byte was consumed and only padding bits (at
// most 7) remain: the end of a message's stream after its 00 00 ff ff.
func (br *bitReader) done() bool { return br.pos == len(br.in) && br.nbits < 8 && br.buf == 0 }

//go:norace
func (br *bitReader) bits(n uint) (int, error) {
	for br.nbits < n {
		if br.pos == len(br.in) {
			return 0, errors.New("compressed data cut short")
		}
		br.buf |= uint64(br.in[br.pos]) << br.nbits
		br.pos++
		br.nbits += 8
	}
	v := int(br.buf & (1<<n - 1))
	br.buf >>= n
	br.nbits -= n
	return v, nil
}

//go:norace
func (br *bitReader) decode(h *huffman) (int, error) {
	for br.nbits <= 56 && br.pos < len(br.in) {
		br.buf |= uint64(br.in[br.pos]) << br.nbits
		br.pos++
		br.nbits += 8
	}
	if e := h.fast[br.buf&(1<<fastBits-1)]; e != 0 && uint(e&15) <= br.nbits {
		br.buf >>= e & 15
		br.nbits -= uint(e & 15)
		return int(e >> 4), nil
	}
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		b, err := br.bits(1)
		if err != nil {
			return 0, err
		}
		code |= b
		count := h.count[l]
		if code-first < count {
			return h.symbol[index+code-first], nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, errors.New("invalid Huffman code")
}

// stored copies a stored block.
func (br *bitReader) stored(out []byte) ([]byte, error) {
	// Drop the bits up to the byte boundary, then give back whole bytes.
	br.buf >>= br.nbits % 8
	br.nbits -= br.nbits % 8
	br.pos -= int(br.nbits / 8)
	br.buf, br.nbits = 0, 0
	if len(br.in)-br.pos < 4 {
		return out, errors.New("stored block header cut short")
	}
	n := int(binary.LittleEndian.Uint16(br.in[br.pos:]))
	if nn := int(binary.LittleEndian.Uint16(br.in[br.pos+2:])); nn != n^0xffff {
		return out, fmt.Errorf("stored block LEN %04x NLEN %04x", n, nn)
	}
	br.pos += 4
	if len(br.in)-br.pos < n {
		return out, errors.New("stored block cut short")
	}
	out = append(out, br.in[br.pos:br.pos+n]...)
	br.pos += n
	return out, nil
}

var clOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamicTables reads the code tables of a dynamic block.
func (br *bitReader) dynamicTables(lit, dist *huffman) error {
	hlit, err := br.bits(5)
	if err != nil {
		return err
	}
	hdist, err := br.bits(5)
	if err != nil {
		return err
	}
	hclen, err := br.bits(4)
	if err != nil {
		return err
	}
	nlit, ndist := hlit+257, hdist+1
	if nlit > 286 || ndist > 30 {
		return fmt.Errorf("dynamic block with %d literal/length and %d distance codes", nlit, ndist)
	}
	var cl [19]uint8
	for i := range hclen + 4 {
		v, err := br.bits(3)
		if err != nil {
			return err
		}
		cl[clOrder[i]] = uint8(v)
	}
	var clh huffman
	if err := clh.build(cl[:]); err != nil {
		return err
	}
	lengths := make([]uint8, nlit+ndist)
	for i := 0; i < len(lengths); {
		sym, err := br.decode(&clh)
		if err != nil {
			return err
		}
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var prev uint8
		var rep int
		switch sym {
		case 16:
			if i == 0 {
				return errors.New("repeat with no previous length")
			}
			prev = lengths[i-1]
			r, err := br.bits(2)
			if err != nil {
				return err
			}
			rep = 3 + r
		case 17:
			r, err := br.bits(3)
			if err != nil {
				return err
			}
			rep = 3 + r
		default:
			r, err := br.bits(7)
			if err != nil {
				return err
			}
			rep = 11 + r
		}
		if i+rep > len(lengths) {
			return errors.New("code lengths overflow")
		}
		for range rep {
			lengths[i] = prev
			i++
		}
	}
	if lengths[256] == 0 {
		return errors.New("no end-of-block code")
	}
	if err := lit.build(lengths[:nlit]); err != nil {
		return err
	}
	return dist.build(lengths[nlit:])
}

// The decoder's inner loops (codes, decode, bits) are marked go:norace:
// a decoder runs on one goroutine over its own copy of the bytes, and the
// race detector's instrumentation of this byte-level work would make each
// compression test several seconds slower.

// TestStrictInflater checks the checker: it inflates what compress/flate
// writes (sync-flushed, tail removed, as permessage-deflate sends it), and
// it rejects a back-reference beyond the window, or before the message
// without context takeover, which compress/flate makes at 32 KiB.
func TestStrictInflater(t *testing.T) {
	block := randomPayload(2000)
	msg := append(bytes.Clone(block), block...) // distance 2000 in the message
	deflateMsg := func(w *flate.Writer, buf *bytes.Buffer, p []byte) []byte {
		buf.Reset()
		w.Write(p)
		w.Flush()
		b := bytes.Clone(buf.Bytes())
		if !bytes.HasSuffix(b, []byte{0, 0, 0xff, 0xff}) {
			t.Fatalf("flushed output %x does not end with 00 00 ff ff", b[max(0, len(b)-8):])
		}
		return b[:len(b)-4]
	}
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	first := deflateMsg(w, &buf, msg)
	second := deflateMsg(w, &buf, block) // refers to the first message
	empty := deflateMsg(w, &buf, nil)

	inf := newStrictInflater(15, true)
	for i, c := range []struct{ wire, want []byte }{{first, msg}, {second, block}, {empty, nil}} {
		got, err := inf.inflate(c.wire, len(c.want))
		if err != nil || !bytes.Equal(got, c.want) {
			t.Fatalf("message %d with takeover: err %v, got %d bytes, want %d (%s)", i, err, len(got), len(c.want), firstDiff(got, c.want))
		}
	}
	if inf.maxDist < 2000 {
		t.Errorf("longest distance %d, want at least 2000", inf.maxDist)
	}
	if len(second) > len(block)/4 {
		t.Fatalf("the second message takes %d bytes: compress/flate did not refer to the first", len(second))
	}

	if _, err := newStrictInflater(10, true).inflate(first, 0); err == nil || !strings.Contains(err.Error(), "beyond the 1024-byte window") {
		t.Errorf("distance 2000 with a 10-bit window: err %v, want beyond the window", err)
	}
	noCtx := newStrictInflater(15, false)
	if _, err := noCtx.inflate(first, 0); err != nil {
		t.Fatalf("first message without takeover: %v", err)
	}
	if _, err := noCtx.inflate(second, 0); err == nil || !strings.Contains(err.Error(), "before the start of the message") {
		t.Errorf("second message without takeover: err %v, want a reference before the start of the message", err)
	}
	// Fixed Huffman codes (compress/flate's level 1 writes only dynamic and
	// stored blocks).
	w6, _ := flate.NewWriter(&buf, flate.DefaultCompression)
	short := []byte("hello, hello, hello")
	if got, err := newStrictInflater(8, false).inflate(deflateMsg(w6, &buf, short), 0); err != nil || !bytes.Equal(got, short) {
		t.Errorf("short message: err %v, got %q, want %q", err, got, short)
	}
	// A cut stream fails.
	if _, err := newStrictInflater(15, false).inflate(first[:len(first)/2], 0); err == nil {
		t.Error("half a message inflated without error")
	}
}
