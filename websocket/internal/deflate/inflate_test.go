package deflate

// A test-only DEFLATE decoder (after Mark Adler's puff.c) that checks what
// compress/flate does not: the distance of every back-reference against
// the window and against the history actually given, that no block is
// final, that every Huffman code is complete and within its length limit,
// and that each message ends with a sync flush exactly at its last byte.
// It decodes one bit at a time, so it is slow but simple enough to trust.

import (
	"errors"
	"fmt"
)

var (
	tLenBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	tLenExtra = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	tDistBase = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	tDistExt  = [30]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	tCLOrder  = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// tStats counts what a decoder saw.
type tStats struct {
	stored, fixed, dynamic int // blocks (not counting sync flushes)
	syncs                  int
	matches, literals      int
	matched                int // bytes produced by matches
	maxDist                int
	maxLitBits, maxCLBits  int // longest code lengths in dynamic blocks
}

// tInflater decodes a stream message by message, keeping the history.
type tInflater struct {
	window  int    // largest distance allowed
	hist    []byte // the end of the history since the last reset, then the output
	dropped int    // history bytes trimmed from the front of hist
	st      tStats
	trace   [][2]int // with record: each token as {length, distance} (literal: {1, 0})
	record  bool

	in     []byte
	pos    int
	bitbuf uint32
	bitcnt uint
}

var errEOF = errors.New("input ends inside the message")

func (f *tInflater) bits(n uint) (int, error) {
	v := f.bitbuf
	for f.bitcnt < n {
		if f.pos >= len(f.in) {
			return 0, errEOF
		}
		v |= uint32(f.in[f.pos]) << f.bitcnt
		f.pos++
		f.bitcnt += 8
	}
	f.bitbuf = v >> n
	f.bitcnt -= n
	return int(v & (1<<n - 1)), nil
}

// tHuff is a canonical code as puff stores it.
type tHuff struct {
	count  [16]int
	symbol []int
}

// build makes a code from lengths. complete requires the code to use all
// of its code space (ours always do); the fixed distance code does not.
func (h *tHuff) build(lens []int, complete bool) error {
	h.count = [16]int{}
	for _, l := range lens {
		h.count[l]++
	}
	if h.count[0] == len(lens) {
		return errors.New("empty code")
	}
	left := 1
	for l := 1; l < 16; l++ {
		left <<= 1
		left -= h.count[l]
		if left < 0 {
			return errors.New("over-subscribed code")
		}
	}
	if complete && left != 0 {
		return fmt.Errorf("incomplete code (lengths %v)", lens)
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	h.symbol = make([]int, len(lens))
	for s, l := range lens {
		if l != 0 {
			h.symbol[offs[l]] = s
			offs[l]++
		}
	}
	return nil
}

func (f *tInflater) decode(h *tHuff) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		b, err := f.bits(1)
		if err != nil {
			return 0, err
		}
		code |= b
		count := h.count[l]
		if code-count < first {
			return h.symbol[index+code-first], nil
		}
		index += count
		first += count
		first <<= 1
		code <<= 1
	}
	return 0, errors.New("invalid code")
}

// message decodes one Encode output (which must start byte-aligned) and
// returns what it inflates to.
func (f *tInflater) message(msg []byte) ([]byte, error) {
	f.in, f.pos, f.bitbuf, f.bitcnt = msg, 0, 0, 0
	if len(f.hist) > 1<<17 {
		k := len(f.hist) - 1<<16
		f.dropped += k
		f.hist = append(f.hist[:0], f.hist[k:]...)
	}
	start := len(f.hist)
	for {
		final, err := f.bits(1)
		if err != nil {
			return nil, err
		}
		if final != 0 {
			return nil, errors.New("BFINAL set")
		}
		typ, err := f.bits(2)
		if err != nil {
			return nil, err
		}
		switch typ {
		case 0:
			f.bitbuf, f.bitcnt = 0, 0 // to a byte boundary
			if f.pos+4 > len(f.in) {
				return nil, errEOF
			}
			n := int(f.in[f.pos]) | int(f.in[f.pos+1])<<8
			nn := int(f.in[f.pos+2]) | int(f.in[f.pos+3])<<8
			f.pos += 4
			if n != ^nn&0xffff {
				return nil, errors.New("stored block LEN/NLEN mismatch")
			}
			if f.pos+n > len(f.in) {
				return nil, errEOF
			}
			f.hist = append(f.hist, f.in[f.pos:f.pos+n]...)
			f.pos += n
			if n == 0 {
				f.st.syncs++
				if f.pos == len(f.in) {
					return f.hist[start:], nil
				}
			} else {
				f.st.stored++
			}
		case 1:
			f.st.fixed++
			var lens [288]int
			for s := range lens {
				switch {
				case s < 144:
					lens[s] = 8
				case s < 256:
					lens[s] = 9
				case s < 280:
					lens[s] = 7
				default:
					lens[s] = 8
				}
			}
			var lit, dist tHuff
			lit.build(lens[:], true)
			var dl [30]int
			for s := range dl {
				dl[s] = 5
			}
			dist.build(dl[:], false)
			if err := f.codes(&lit, &dist); err != nil {
				return nil, err
			}
		case 2:
			f.st.dynamic++
			lit, dist, err := f.dynamicHeader()
			if err != nil {
				return nil, err
			}
			if err := f.codes(lit, dist); err != nil {
				return nil, err
			}
		default:
			return nil, errors.New("invalid block type 3")
		}
	}
}

func (f *tInflater) dynamicHeader() (*tHuff, *tHuff, error) {
	nlen, err := f.bits(5)
	if err != nil {
		return nil, nil, err
	}
	nlen += 257
	ndist, err := f.bits(5)
	if err != nil {
		return nil, nil, err
	}
	ndist++
	ncode, err := f.bits(4)
	if err != nil {
		return nil, nil, err
	}
	ncode += 4
	if nlen > 286 || ndist > 30 {
		return nil, nil, errors.New("bad counts")
	}
	var cl [19]int
	for i := 0; i < ncode; i++ {
		v, err := f.bits(3)
		if err != nil {
			return nil, nil, err
		}
		cl[tCLOrder[i]] = v
		f.st.maxCLBits = max(f.st.maxCLBits, v)
	}
	var clh tHuff
	if err := clh.build(cl[:], true); err != nil {
		return nil, nil, fmt.Errorf("code-length code: %v", err)
	}
	lens := make([]int, nlen+ndist)
	for i := 0; i < nlen+ndist; {
		sym, err := f.decode(&clh)
		if err != nil {
			return nil, nil, err
		}
		if sym < 16 {
			lens[i] = sym
			i++
			continue
		}
		v, rep := 0, 0
		switch sym {
		case 16:
			if i == 0 {
				return nil, nil, errors.New("repeat with no previous length")
			}
			v = lens[i-1]
			rep, err = f.bits(2)
			rep += 3
		case 17:
			rep, err = f.bits(3)
			rep += 3
		default:
			rep, err = f.bits(7)
			rep += 11
		}
		if err != nil {
			return nil, nil, err
		}
		if i+rep > nlen+ndist {
			return nil, nil, errors.New("too many lengths")
		}
		for ; rep > 0; rep-- {
			lens[i] = v
			i++
		}
	}
	for _, l := range lens {
		f.st.maxLitBits = max(f.st.maxLitBits, l)
	}
	if lens[256] == 0 {
		return nil, nil, errors.New("no end-of-block code")
	}
	lit, dist := new(tHuff), new(tHuff)
	if err := lit.build(lens[:nlen], true); err != nil {
		return nil, nil, fmt.Errorf("literal/length code: %v", err)
	}
	if err := dist.build(lens[nlen:], true); err != nil {
		return nil, nil, fmt.Errorf("distance code: %v", err)
	}
	return lit, dist, nil
}

func (f *tInflater) codes(lit, dist *tHuff) error {
	for {
		sym, err := f.decode(lit)
		if err != nil {
			return err
		}
		if sym < 256 {
			f.hist = append(f.hist, byte(sym))
			f.st.literals++
			if f.record {
				f.trace = append(f.trace, [2]int{1, 0})
			}
			continue
		}
		if sym == 256 {
			return nil
		}
		sym -= 257
		if sym >= 29 {
			return errors.New("invalid length symbol")
		}
		e, err := f.bits(tLenExtra[sym])
		if err != nil {
			return err
		}
		length := tLenBase[sym] + e
		ds, err := f.decode(dist)
		if err != nil {
			return err
		}
		if ds >= 30 {
			return errors.New("invalid distance symbol")
		}
		e, err = f.bits(tDistExt[ds])
		if err != nil {
			return err
		}
		d := tDistBase[ds] + e
		if d > f.window {
			return fmt.Errorf("distance %d exceeds the window (%d)", d, f.window)
		}
		if d > f.dropped+len(f.hist) {
			return fmt.Errorf("distance %d exceeds the history (%d bytes)", d, f.dropped+len(f.hist))
		}
		f.st.matches++
		f.st.matched += length
		if f.record {
			f.trace = append(f.trace, [2]int{length, d})
		}
		f.st.maxDist = max(f.st.maxDist, d)
		for k := 0; k < length; k++ {
			f.hist = append(f.hist, f.hist[len(f.hist)-d])
		}
	}
}

// reset forgets the history: references before this point are errors.
func (f *tInflater) reset() { f.hist, f.dropped = f.hist[:0], 0 }

// addHistory appends bytes the peer got some other way.
func (f *tInflater) addHistory(p []byte) { f.hist = append(f.hist, p...) }
