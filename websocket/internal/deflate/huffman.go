package deflate

// Huffman coding for the encoder: the DEFLATE symbol tables (RFC 1951
// §3.2.5), length-limited code construction, canonical code assignment,
// the run-length coding of code lengths in a dynamic block header
// (§3.2.7) and the bit writer that emits it all.

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

const (
	maxCodeBits = 15 // longest literal/length or distance code (§3.2.7)
	maxCLBits   = 7  // longest code-length code (3-bit lengths in the header)

	numLitSyms  = 286 // literal/length symbols a block may use (0..285)
	numDistSyms = 30  // distance symbols a block may use (0..29)
	numCLSyms   = 19  // code-length symbols (0..18)
	endOfBlock  = 256 // the end-of-block symbol
)

// lengthExtra and distExtra are the numbers of extra bits that follow each
// length code (symbols 257..285) and distance code (§3.2.5).
var (
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// clOrder is the order in which a dynamic header sends the code lengths of
// the code-length alphabet (§3.2.7), so that trailing unused ones can be
// left out.
var clOrder = [numCLSyms]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// Tables derived from the ones above, filled by init.
var (
	lengthCode [256]uint8 // match length-3 -> length code (0..28; symbol 257+code)
	lengthBase [29]uint16 // length code -> smallest match length-3 it covers
	distBase   [30]uint16 // distance code -> smallest distance-1 it covers
	// distCodes maps distance-1 to its code: entries 0..255 directly,
	// entries 256+((distance-1)>>7) for larger distances (as zlib does).
	distCodes [512]uint8

	// fixedLit and fixedDist are the fixed Huffman codes (§3.2.6) in the
	// packed form the bit writer uses (see packCode).
	fixedLit  [288]uint32
	fixedDist [32]uint32
	fixedLens [256]uint32 // fixed length codes with extra bits (see lengthCodes)
)

func init() {
	l := 0
	for code := 0; code < 28; code++ {
		lengthBase[code] = uint16(l)
		for n := 0; n < 1<<lengthExtra[code]; n++ {
			lengthCode[l] = uint8(code)
			l++
		}
	}
	// Length 258 has its own code, 285, without extra bits: RFC 1951's
	// table gives code 284 the lengths 227..257 only.
	lengthCode[255] = 28
	lengthBase[28] = 255

	d := 0
	for code := 0; code < numDistSyms; code++ {
		distBase[code] = uint16(d)
		for n := 0; n < 1<<distExtra[code]; n++ {
			if d < 256 {
				distCodes[d] = uint8(code)
			} else {
				distCodes[256+d>>7] = uint8(code)
			}
			d++
		}
	}

	var lens [288]uint8
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
	canonicalCodes(lens[:], fixedLit[:])
	var dlens [32]uint8
	for s := range dlens {
		dlens[s] = 5
	}
	canonicalCodes(dlens[:], fixedDist[:])
	lengthCodes(&fixedLens, &fixedLit)
}

// distCode returns the distance code of a match whose distance is d+1.
func distCode(d uint32) uint32 {
	// Without a branch, which would be unpredictable: m is all ones
	// when d < 256 (d>>8 is at most 127).
	m := -((d>>8 - 1) >> 31)
	i := d&m | (256+d>>7)&^m
	return uint32(distCodes[i&511])
}

// packCode packs a Huffman code for the bit writer: the code's bits,
// already reversed so that they go out first-bit-first in DEFLATE's
// LSB-first bit order, in the low 24 bits, and its length in the top 8.
func packCode(rev uint32, n uint8) uint32 { return rev | uint32(n)<<24 }

// canonicalCodes assigns the canonical codes (§3.2.2) for the code lengths
// lens to codes, packed by packCode. A length of 0 gives code 0 (unused).
func canonicalCodes(lens []uint8, codes []uint32) {
	var count [maxCodeBits + 1]uint16
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	var next [maxCodeBits + 1]uint16
	code := uint16(0)
	for b := 1; b <= maxCodeBits; b++ {
		code = (code + count[b-1]) << 1
		next[b] = code
	}
	for s, l := range lens {
		if l == 0 {
			codes[s] = 0
			continue
		}
		c := next[l]
		next[l]++
		codes[s] = packCode(uint32(bits.Reverse16(c)>>(16-l)), l)
	}
}

// huffBuilder holds the scratch space for building codes, so that building
// one allocates nothing.
type huffBuilder struct {
	sorted [288]uint64 // frequency<<9 | symbol, sorted
	tmp    [288]uint64 // radix sort buffer
	work   [288]uint64 // weights, then code lengths, in sorted order
}

// lengths computes code lengths for the symbol frequencies freq into lens
// (same length as freq): a Huffman code, made no longer than maxBits by
// moving the excess down the tree (the Kraft-sum repair miniz uses; it is
// close to optimal and, unlike package-merge, needs no extra memory).
//
// The code is always complete: when fewer than two symbols are used, one
// or two unused symbols get length 1 as well. RFC 1951 allows a single
// one-bit code for distances, but a complete code is accepted by every
// inflater (zlib rejects incomplete code-length codes), and it costs at
// most a few bits.
func (hb *huffBuilder) lengths(freq []uint32, lens []uint8, maxBits int) {
	clear(lens)
	n := 0
	for s, f := range freq {
		if f != 0 {
			hb.sorted[n] = uint64(f)<<9 | uint64(s)
			n++
		}
	}
	switch n {
	case 0:
		lens[0], lens[1] = 1, 1
		return
	case 1:
		s := hb.sorted[0] & 511
		lens[s] = 1
		if s == 0 {
			lens[1] = 1
		} else {
			lens[0] = 1
		}
		return
	}
	sorted := hb.sorted[:n]
	hb.sort(sorted)
	w := hb.work[:n]
	for k, v := range sorted {
		w[k] = v >> 9
	}
	minimumRedundancy(w)
	if int(w[0]) > maxBits {
		limitLengths(w, maxBits)
	}
	for k, v := range sorted {
		lens[v&511] = uint8(w[k])
	}
}

// sort sorts s (frequency<<9 | symbol, symbols in increasing order) by
// frequency, then symbol: when the frequencies fit in 16 bits (nearly
// always), with a stable radix sort, several times faster than a
// comparison sort for the few hundred symbols of a block.
func (hb *huffBuilder) sort(s []uint64) {
	var maxf uint64
	for _, v := range s {
		maxf = max(maxf, v)
	}
	if maxf>>9 >= 1<<16 {
		slices.Sort(s)
		return
	}
	out := s
	tmp := hb.tmp[:len(s)]
	for shift := uint(9); shift < 9+16; shift += 8 {
		if shift > 9 && maxf>>shift == 0 {
			break // all high digits are 0
		}
		var count [256]uint16
		for _, v := range s {
			count[uint8(v>>shift)]++
		}
		sum := uint16(0)
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, v := range s {
			d := uint8(v >> shift)
			tmp[count[d]] = v
			count[d]++
		}
		s, tmp = tmp, s
	}
	if &s[0] != &out[0] {
		copy(out, s)
	}
}

// minimumRedundancy replaces the weights a, sorted in increasing order
// (len(a) >= 2), by the lengths of an optimal prefix code for them, in
// place and in O(n) (Moffat and Katajainen, "In-place calculation of
// minimum-redundancy codes", 1995). The result is non-increasing: a[0],
// the rarest symbol, gets the longest code.
func minimumRedundancy(a []uint64) {
	n := len(a)
	// Phase 1: combine the two lightest nodes, leaves from the right
	// (a[leaf:]) or internal nodes from the left (a[root:next]); an
	// internal node slot first holds its weight, then its parent's index.
	a[0] += a[1]
	root, leaf := 0, 2
	for next := 1; next < n-1; next++ {
		if leaf >= n || a[root] < a[leaf] {
			a[next] = a[root]
			a[root] = uint64(next)
			root++
		} else {
			a[next] = a[leaf]
			leaf++
		}
		if leaf >= n || (root < next && a[root] < a[leaf]) {
			a[next] += a[root]
			a[root] = uint64(next)
			root++
		} else {
			a[next] += a[leaf]
			leaf++
		}
	}
	// Phase 2: depth of each internal node from its parent's.
	a[n-2] = 0
	for next := n - 3; next >= 0; next-- {
		a[next] = a[a[next]] + 1
	}
	// Phase 3: leaf depths, from the count of internal nodes per depth.
	avail, used, depth := 1, 0, uint64(0)
	root, next := n-2, n-1
	for avail > 0 {
		for root >= 0 && a[root] == depth {
			used++
			root--
		}
		for avail > used {
			a[next] = depth
			next--
			avail--
		}
		avail = 2 * used
		depth++
		used = 0
	}
}

// limitLengths rewrites the non-increasing code lengths a (a complete
// code) so that none exceeds maxBits and the code stays complete: clamp,
// then, while the Kraft sum is too large, drop one code of length maxBits
// and split the deepest shorter leaf into two. Lengths are reassigned in
// the same order, so rarer symbols keep the longer codes.
func limitLengths(a []uint64, maxBits int) {
	var count [maxCodeBits + 1]int
	for _, l := range a {
		count[min(int(l), maxBits)]++
	}
	total := 0
	for b := 1; b <= maxBits; b++ {
		total += count[b] << (maxBits - b)
	}
	for total > 1<<maxBits {
		count[maxBits]--
		for b := maxBits - 1; b > 0; b-- {
			if count[b] > 0 {
				count[b]--
				count[b+1] += 2
				break
			}
		}
		total--
	}
	k := 0
	for b := maxBits; b > 0; b-- {
		for c := 0; c < count[b]; c++ {
			a[k] = uint64(b)
			k++
		}
	}
}

// dynHeader is a dynamic block's code description: the literal/length and
// distance code lengths and their run-length coding in the code-length
// alphabet (§3.2.7).
type dynHeader struct {
	litLen  [numLitSyms]uint8
	distLen [numDistSyms]uint8
	numLit  int // HLIT+257
	numDist int // HDIST+1
	numCL   int // HCLEN+4

	// rle is the code-length sequence: symbol in the low 5 bits, the
	// repeat count's extra-bits value above.
	rle    [numLitSyms + numDistSyms]uint16
	nrle   int
	clFreq [numCLSyms]uint32
	clLen  [numCLSyms]uint8
	clCode [numCLSyms]uint32

	litCode  [288]uint32
	distCode [32]uint32
	lenCode  [256]uint32 // see lengthCodes
}

// clExtra is the number of extra bits after code-length symbols 16, 17, 18.
var clExtra = [3]uint8{2, 3, 7}

// build derives the codes for a block with the given frequencies and
// returns the bit size of the header (after the 3 block-type bits) and of
// the symbols (without extra bits).
func (h *dynHeader) build(hb *huffBuilder, litFreq, distFreq []uint32) (headerBits, symBits int) {
	hb.lengths(litFreq[:numLitSyms], h.litLen[:], maxCodeBits)
	hb.lengths(distFreq[:numDistSyms], h.distLen[:], maxCodeBits)
	h.numLit = numLitSyms
	for h.numLit > 257 && h.litLen[h.numLit-1] == 0 {
		h.numLit--
	}
	h.numDist = numDistSyms
	for h.numDist > 1 && h.distLen[h.numDist-1] == 0 {
		h.numDist--
	}
	for s := 0; s < numLitSyms; s++ {
		symBits += int(litFreq[s]) * int(h.litLen[s])
	}
	for s := 0; s < numDistSyms; s++ {
		symBits += int(distFreq[s]) * int(h.distLen[s])
	}

	// Run-length code the lengths as one sequence (§3.2.7 lets a run
	// cross from the literal/length lengths into the distance lengths).
	clear(h.clFreq[:])
	h.nrle = 0
	total := h.numLit + h.numDist
	at := func(i int) uint8 {
		if i < h.numLit {
			return h.litLen[i]
		}
		return h.distLen[i-h.numLit]
	}
	emit := func(sym uint8, extra int) {
		h.rle[h.nrle] = uint16(sym) | uint16(extra)<<5
		h.nrle++
		h.clFreq[sym]++
	}
	for i := 0; i < total; {
		v := at(i)
		run := 1
		for i+run < total && at(i+run) == v {
			run++
		}
		i += run
		if v == 0 {
			for run >= 11 {
				k := min(run, 138)
				if r := run - k; r > 0 && r < 3 && k > 11 {
					k -= 3 - r // leave 3 for a code 17 rather than 1-2 literal zeros
				}
				emit(18, k-11)
				run -= k
			}
			if run >= 3 {
				emit(17, run-3)
				run = 0
			}
		} else {
			emit(v, 0)
			run--
			for run >= 3 {
				k := min(run, 6)
				if r := run - k; r > 0 && r < 3 && k > 3 {
					k -= 3 - r
				}
				emit(16, k-3)
				run -= k
			}
		}
		for ; run > 0; run-- {
			emit(v, 0)
		}
	}
	hb.lengths(h.clFreq[:], h.clLen[:], maxCLBits)
	canonicalCodes(h.clLen[:], h.clCode[:])
	h.numCL = numCLSyms
	for h.numCL > 4 && h.clLen[clOrder[h.numCL-1]] == 0 {
		h.numCL--
	}
	headerBits = 5 + 5 + 4 + 3*h.numCL
	for s := 0; s < numCLSyms; s++ {
		headerBits += int(h.clFreq[s]) * int(h.clLen[s])
	}
	for s := 16; s < numCLSyms; s++ {
		headerBits += int(h.clFreq[s]) * int(clExtra[s-16])
	}
	canonicalCodes(h.litLen[:], h.litCode[:numLitSyms])
	canonicalCodes(h.distLen[:], h.distCode[:numDistSyms])
	return headerBits, symBits
}

// write sends the header (after the block-type bits) and prepares
// lenCode for writeTokens.
func (h *dynHeader) write(w *bitWriter) {
	lengthCodes(&h.lenCode, &h.litCode)
	w.writeBits(uint64(h.numLit-257), 5)
	w.writeBits(uint64(h.numDist-1), 5)
	w.writeBits(uint64(h.numCL-4), 4)
	for _, s := range clOrder[:h.numCL] {
		w.writeBits(uint64(h.clLen[s]), 3)
	}
	for _, r := range h.rle[:h.nrle] {
		sym := r & 31
		c := h.clCode[sym]
		w.writeBits(uint64(c&0xffffff), uint(c>>24))
		if sym >= 16 {
			w.writeBits(uint64(r>>5), uint(clExtra[sym-16]))
		}
	}
}

// bitWriter appends DEFLATE's LSB-first bit stream to out. Callers reserve
// room first (reserve): writes store eight bytes at a time into out's
// spare capacity.
type bitWriter struct {
	out  []byte
	bits uint64
	n    uint // valid bits in bits, < 64
}

// reserve makes room for at least nbytes more bytes (plus the slack the
// eight-byte stores need).
func (w *bitWriter) reserve(nbytes int) {
	w.out = slices.Grow(w.out, nbytes+16)
}

// writeBits appends the low n bits of v (n <= 32; the accumulator holds
// fewer than 32 bits between calls).
func (w *bitWriter) writeBits(v uint64, n uint) {
	w.bits |= v << w.n
	w.n += n
	if w.n >= 32 {
		w.flushBytes()
	}
}

// flushBytes moves the whole bytes out of the accumulator.
func (w *bitWriter) flushBytes() {
	l := len(w.out)
	binary.LittleEndian.PutUint64(w.out[l:l+8], w.bits)
	k := w.n >> 3
	w.out = w.out[:l+int(k)]
	w.bits >>= k << 3
	w.n &= 7
}

// align pads with zero bits to a byte boundary and flushes.
func (w *bitWriter) align() {
	w.n = (w.n + 7) &^ 7
	w.flushBytes()
}

// lengthCodes fills tab with, for each match length-3, its length code
// from lit followed by the extra bits, packed as packCode does.
func lengthCodes(tab *[256]uint32, lit *[288]uint32) {
	for lc := range tab {
		code := lengthCode[lc]
		c := lit[257+int(code)]
		n := c >> 24
		v := c&0xffffff | (uint32(lc)-uint32(lengthBase[code]))<<n
		tab[lc] = v | (n+uint32(lengthExtra[code]))<<24
	}
}

// writeTokens sends a block's tokens, taking the literals from raw (the
// block's input), with the literal codes lit, the length codes (with their
// extra bits) lens and the distance codes dist.
func (w *bitWriter) writeTokens(tokens []uint32, raw []byte, lit *[288]uint32, lens *[256]uint32, dist *[32]uint32) {
	out, acc, n := w.out, w.bits, w.n
	p := 0
	for _, t := range tokens {
		nl := int(t)
		if t >= tokMatch {
			nl = int(t >> tokLitShift & maxTokLits)
		}
		for _, b := range raw[p : p+nl] {
			if n > 48 {
				l := len(out)
				binary.LittleEndian.PutUint64(out[l:l+8], acc)
				k := n >> 3
				out = out[:l+int(k)]
				acc >>= k << 3
				n &= 7
			}
			c := lit[b]
			acc |= uint64(c&0xffffff) << n
			n += uint(c >> 24)
		}
		p += nl
		if t < tokMatch {
			continue
		}
		if n > 16 {
			l := len(out)
			binary.LittleEndian.PutUint64(out[l:l+8], acc)
			k := n >> 3
			out = out[:l+int(k)]
			acc >>= k << 3
			n &= 7
		}
		lc := uint8(t >> tokLenShift)
		c := lens[lc]
		acc |= uint64(c&0xffffff) << n
		n += uint(c >> 24)
		d := t & 0x7fff
		dc := distCode(d)
		c = dist[dc]
		dn := uint(c >> 24)
		acc |= (uint64(c&0xffffff) | uint64(d-uint32(distBase[dc]))<<dn) << n
		n += dn + uint(distExtra[dc])
		p += int(lc) + 3
	}
	w.out, w.bits, w.n = out, acc, n
	if w.n >= 32 {
		w.flushBytes()
	}
}
