// Package deflate is a DEFLATE (RFC 1951) encoder for the WebSocket
// permessage-deflate extension (RFC 7692). It exists because the two
// encoders at hand do not fit that use: compress/flate cannot keep its
// back-references within fewer than 32 KiB, so it cannot serve a peer that
// negotiated a smaller window (server_max_window_bits /
// client_max_window_bits 8..14); klauspost/compress can (NewWriterWindow)
// but its writers measured 0.8 to 1.05 MiB each, the small-window one
// included; and at their fast levels (compress/flate 1, klauspost 1 to 6)
// both store small inputs verbatim, so a stream of small similar messages
// (tickers, chat, JSON events) gains nothing from context takeover. This
// encoder costs about 72 KiB at a 15-bit window (docs/benchmarks.md).
// Decoding stays with compress/flate.
//
// An Encoder turns a sequence of messages into one DEFLATE stream, each
// message ending with a sync flush, and never refers further back than its
// window. See Encoder for the memory it needs.
package deflate

import (
	"encoding/binary"
	"math/bits"
	"sync"
)

const (
	minMatch  = 4                   // shortest match looked for (the hash covers 4 bytes)
	maxMatch  = 258                 // longest match DEFLATE can express
	lookahead = maxMatch + minMatch // unread bytes kept ahead of the match finder until the input ends
	maxStored = 65535               // largest stored block

	hashMul = 0x1e35a7bd // multiplicative hash of 4 bytes

	// minChunk is the least room the buffer keeps beyond the window for
	// new input, so the window slides at most once per this many bytes.
	minChunk = 4096
	// maxBlockTokens bounds the tokens (4 bytes each) buffered for one
	// block. A token is a match with the literals before it, so 4096 of
	// them cover some 20 to 40 KiB of text: enough to make a dynamic
	// header's cost negligible.
	maxBlockTokens = 4096
	// maxBlockBytes bounds a block's input, checked each time the window
	// slides, so that a long message's blocks adapt their codes to its
	// parts.
	maxBlockBytes = 64 << 10
	// dynMinBytes is the least input for which a block considers a
	// dynamic Huffman code. Below it the header (typically 40 to 80
	// bytes) outweighs what a tailored code can save over the fixed one,
	// and building the code would dominate the cost of encoding a small
	// message.
	dynMinBytes = 128
	// maxSkip bounds how far a search jumps ahead while it finds no
	// matches (incompressible input).
	maxSkip = 32
	// chainSkipAfter is how many positions in a row without a match the
	// chain strategies search before they start skipping like stratFast.
	chainSkipAfter = 128
	// repTries is how many positions after a match the fast strategy
	// tries the last match distances at (those of the first probe).
	repTries = 2
	// tooFar is the longest distance at which a match of minMatch bytes is
	// taken: further, its distance code costs more than the literals.
	tooFar = 4096
)

// Tokens. A match token carries the number of literals before it (read
// from the input when the block is written), so runs of literals cost no
// token space: tokMatch | lits<<tokLitShift | (length-3)<<tokLenShift |
// (distance-1). A token without tokMatch is a run of that many literals.
const (
	tokMatch    = 1 << 31
	tokLitShift = 23
	tokLenShift = 15
	maxTokLits  = 255
)

// tokLits returns the number of literals token t stands for or precedes.
func tokLits(t uint32) int {
	if t < tokMatch {
		return int(t)
	}
	return int(t >> tokLitShift & maxTokLits)
}

type strategy uint8

const (
	// stratFast: one hash-table probe per position, greedy, sparse hash
	// updates inside matches, and growing skips over input that does not
	// match (like Snappy or compress/flate's BestSpeed).
	stratFast strategy = iota
	// stratGreedy: hash chains, take the longest match found.
	stratGreedy
	// stratLazy: hash chains, and before taking a match look one byte
	// ahead for a longer one (zlib's deflate_slow).
	stratLazy
)

// levelParams tunes the match finder, as zlib's configuration table does.
type levelParams struct {
	strat strategy
	good  int // a previous match this long quarters the chain searched
	lazy  int // lazy: stop looking ahead at a match this long; greedy: hash positions inside matches no longer than this
	nice  int // stop searching at a match this long
	chain int // most chain entries examined per position
}

var levels = [10]levelParams{
	1: {strat: stratFast},
	2: {stratGreedy, 4, 8, 16, 8},
	3: {stratGreedy, 4, 8, 32, 16},
	4: {stratLazy, 4, 4, 16, 16},
	5: {stratLazy, 8, 16, 32, 32},
	6: {stratLazy, 8, 16, 128, 128},
	7: {stratLazy, 8, 32, 128, 256},
	8: {stratLazy, 32, 128, 258, 1024},
	9: {stratLazy, 32, 258, 258, 4096},
}

// Encoder compresses a sequence of messages as one DEFLATE stream whose
// back-references never reach further than 1<<windowBits bytes, nor
// before the history it was given, so a peer that agreed to a smaller
// window (RFC 7692 §7.1.2, window bits 8..15) can inflate it.
//
// Memory, for a window of W = 1<<windowBits bytes: an Encoder keeps the
// window plus room for new input (W + max(W/4, 4096) bytes) and a hash
// table of 2-byte entries (1<<clamp(windowBits-1, 8, 14) of them at level
// 1); levels 2..9 have a smaller table (1<<clamp(windowBits-3, 8, 12)) and
// hash chains of 2-byte entries (min(W, max(W/2, 4096)) of them), so the
// chains reach back W/2 at windowBits 14 and 15 while the table still
// finds matches anywhere in the window. Measured with runtime.MemStats
// (TestMemory), in KiB:
//
//	windowBits   8    9   10   11   12   13   14   15
//	level 1     5.6  5.6  6.6  8.3 12.3 20.3 36.3 72.3
//	levels 2-9  6.1  6.6  8.1 10.8 17.3 22.3 40.3 80.3
//
// While Encode runs it also borrows about 28 KiB of scratch space (block
// tokens, symbol counts, Huffman tables) from a pool shared by all
// Encoders, so idle connections do not hold it.
//
// An Encoder is not safe for concurrent use.
type Encoder struct {
	wsize  int // window size, 1<<windowBits
	params levelParams

	// buf holds the history followed by input not yet encoded. Positions
	// are buffer indices; base is the stream position of buf[0] modulo
	// 2^32, so hash entries (stream positions modulo 2^16) survive slides.
	buf   []byte
	end   int    // end of the data in buf
	cur   int    // first byte not yet encoded; buf[start:cur] is history
	start int    // first byte of history (since the last Reset)
	tail  int    // first history position not yet hashed (it had < 4 bytes after it)
	base  uint32 // stream position of buf[0]

	// head maps a hash of 4 bytes to the last stream position (mod 2^16)
	// where they occurred; prev links each position to the previous one
	// with the same hash. Entries may be stale or collide: every
	// candidate is checked against the window, the history and the bytes
	// themselves, so neither Reset nor a slide needs to clear them.
	head   []uint16
	prev   []uint16 // nil for stratFast
	hshift uint32
	pmask  uint32

	rep [2]int // distances of the last two matches, tried first

	// State of the Encode call in progress.
	in        []byte // its input
	inBase    int    // buffer index of in[0] (negative once slid out)
	blockOff  int    // offset in in where the current block starts
	storedOff int    // offset in in of a stored block not yet written
	storedLen int    // and its length (0: none)
	misses    int    // positions searched since the last match
	w         bitWriter
	s         *scratch // borrowed from scratchPool for the duration of Encode
}

// scratch is the state an Encode call needs only while it runs: the
// current block's tokens and symbol counts and the Huffman tables. Blocks
// never span calls (each ends with a sync flush), so Encoders share these
// through a pool instead of each keeping its own; an idle connection
// holds only its history and hash tables.
type scratch struct {
	tokens   []uint32 // see tokMatch
	litFreq  [288]uint32
	distFreq [32]uint32
	hb       huffBuilder
	dyn      dynHeader
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{tokens: make([]uint32, 0, maxBlockTokens)}
}}

// NewEncoder returns an Encoder whose back-references stay within
// 1<<windowBits bytes (windowBits 8..15, the range RFC 7692 negotiates)
// and whose level trades speed for size: 1 finds matches with one hash
// probe per position (fastest), 2 and 3 search short hash chains greedily,
// 4 to 9 search longer chains and defer each match by a byte when the
// next position matches longer (lazy matching, as zlib). It panics if an
// argument is out of range, since a caller can only get that wrong by
// mistake.
func NewEncoder(windowBits, level int) *Encoder {
	if windowBits < 8 || windowBits > 15 {
		panic("deflate: windowBits out of range 8..15")
	}
	if level < 1 || level > 9 {
		panic("deflate: level out of range 1..9")
	}
	w := 1 << windowBits
	e := &Encoder{wsize: w, params: levels[level]}
	e.buf = make([]byte, w+max(w/4, minChunk))
	// Sizes chosen by measurement: the fast strategy relies on one probe,
	// so a larger table pays; with chains the table size hardly matters,
	// but how far back the chains reach does.
	hbits := min(max(windowBits-1, 8), 14)
	if e.params.strat != stratFast {
		hbits = min(max(windowBits-3, 8), 12)
		n := min(w, max(w/2, 4096))
		e.prev = make([]uint16, n)
		e.pmask = uint32(n - 1)
	}
	e.head = make([]uint16, 1<<hbits)
	e.hshift = uint32(32 - hbits)
	return e
}

// Encode compresses p, appends the result to dst and returns it. The
// output ends with a sync flush (an empty non-final stored block, whose
// last four bytes are 00 00 ff ff, which RFC 7692 §7.2.1 has the sender
// remove), so a peer can inflate everything up to here. Successive calls
// continue one stream: the output may refer to any byte passed to Encode
// or AddHistory since the last Reset, within the window. No block is
// final. Encode does not keep p, and allocates nothing when dst has spare
// capacity for the worst case, len(p) + len(p)/2048 + 64 bytes
// (incompressible input grows by 5 bytes per 64 KiB, plus 5 for the sync
// flush). p must not overlap dst's spare capacity.
func (e *Encoder) Encode(dst, p []byte) []byte {
	e.s = scratchPool.Get().(*scratch)
	e.w = bitWriter{out: dst}
	e.in = p
	e.inBase = e.end
	e.blockOff = 0
	e.misses = 0
	for {
		n := copy(e.buf[e.end:], p)
		p = p[n:]
		e.end += n
		e.hashTail()
		final := len(p) == 0
		if e.params.strat == stratFast {
			e.tokenizeFast(final)
		} else {
			e.tokenizeChain(final)
		}
		if final {
			break
		}
		e.tail = e.cur // the tokenizer hashed what it wanted to
		if e.cur-e.inBase-e.blockOff >= maxBlockBytes {
			e.flushBlock(e.cur - e.inBase)
		}
		e.slide()
	}
	e.flushBlock(len(e.in))
	e.flushStored()
	// Sync flush: an empty stored block (§3.2.4), LEN 0 and NLEN 0xffff.
	e.w.reserve(8)
	e.w.writeBits(0, 3)
	e.w.align()
	dst = append(e.w.out, 0, 0, 0xff, 0xff)
	e.w = bitWriter{}
	e.in = nil
	scratchPool.Put(e.s)
	e.s = nil
	e.tail = max(e.end-minMatch+1, e.start)
	return dst
}

// AddHistory appends p to the history without producing output, as if the
// peer had just inflated it. The Encoder's history must always be a suffix
// of the peer's inflate window, or its back-references would point at the
// wrong bytes. So every message the peer inflates that this Encoder did not
// compress must go through AddHistory (or Reset must be called before the
// next Encode): for instance a prepared message, compressed once without
// context (by an Encoder just Reset) and sent on many connections, whose
// uncompressed payload each connection's Encoder then adds. A message sent
// uncompressed (RSV1 clear) must not be added: it never goes through the
// peer's inflater, so it is not in the peer's window. Giving the contents
// of a preset dictionary before the first Encode works the same way.
func (e *Encoder) AddHistory(p []byte) {
	if len(p) > e.wsize {
		// Only the last wsize bytes can be referred to; start afresh.
		skip := len(p) - e.wsize
		e.base += uint32(e.end + skip)
		e.end, e.cur, e.start, e.tail = 0, 0, 0, 0
		p = p[skip:]
	}
	for len(p) > 0 {
		if e.end == len(e.buf) {
			e.slide()
		}
		n := copy(e.buf[e.end:], p)
		p = p[n:]
		e.end += n
		e.cur = e.end
		e.hashTail()
	}
}

// Reset forgets the history, so the next Encode refers to nothing before
// it: call it before each message when context takeover is off
// (server_no_context_takeover / client_no_context_takeover), or to recover
// when the history can no longer be known to match the peer's. It takes
// constant time: stale hash entries are rejected when they are looked up.
func (e *Encoder) Reset() {
	e.rep = [2]int{}
	e.base += uint32(e.end)
	e.end, e.cur, e.start, e.tail = 0, 0, 0, 0
}

// slide drops the bytes before the window (and before the history) from
// the buffer, making room for more input.
func (e *Encoder) slide() {
	s := max(e.cur-e.wsize, e.start)
	if s <= 0 {
		return
	}
	copy(e.buf, e.buf[s:e.end])
	e.end -= s
	e.cur -= s
	e.start = max(e.start-s, 0)
	e.tail = max(e.tail-s, 0)
	e.base += uint32(s)
	e.inBase -= s
}

// hash returns the hash-table index for the 4 bytes x.
func (e *Encoder) hash(x uint32) uint32 { return (x * hashMul) >> e.hshift }

// insert records position i (which has at least 4 bytes after it) in the
// hash table and chains.
func (e *Encoder) insert(i int) {
	h := e.hash(binary.LittleEndian.Uint32(e.buf[i:]))
	pos := e.base + uint32(i)
	if e.prev != nil {
		e.prev[pos&e.pmask] = e.head[h]
	}
	e.head[h] = uint16(pos)
}

// hashTail records the history positions that could not be hashed before
// because fewer than 4 bytes followed them.
func (e *Encoder) hashTail() {
	for e.tail < e.cur && e.tail+minMatch <= e.end {
		e.insert(e.tail)
		e.tail++
	}
}

// matchLen returns how many bytes, up to max, b[a:] and b[c:] have in
// common. b[c+max-1] must exist.
func matchLen(b []byte, a, c, max int) int {
	n := 0
	for n+8 <= max {
		x := binary.LittleEndian.Uint64(b[a+n:]) ^ binary.LittleEndian.Uint64(b[c+n:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < max && b[a+n] == b[c+n] {
		n++
	}
	return n
}

// tokenizeFast encodes buf[cur:end] (all of it if final, else up to the
// lookahead) with one hash-table probe per position, two positions at a
// time.
func (e *Encoder) tokenizeFast(final bool) {
	end := e.end
	buf := e.buf[:end]
	limit := end - lookahead
	if final {
		limit = end - minMatch + 1
	}
	head := e.head
	shift := e.hshift
	base := e.base
	wsize, start := e.wsize, e.start
	rep0, rep1 := e.rep[0], e.rep[1]
	misses := e.misses
	sc := e.s
	tokens := sc.tokens
	i, lit := e.cur, e.cur
	for i < limit {
		var d int
		if i+8 <= end {
			// Probe positions i and i+1 together: one load, and the two
			// hash-table reads overlap.
			x64 := binary.LittleEndian.Uint64(buf[i:])
			x0, x1 := uint32(x64), uint32(x64>>8)
			h0, h1 := (x0*hashMul)>>shift, (x1*hashMul)>>shift
			pos := uint16(base + uint32(i))
			c0, c1 := head[h0], head[h1]
			head[h0], head[h1] = pos, pos+1
			// A distance d is usable at i if 1 <= d <= maxDist: one
			// unsigned comparison, uint(d-1) < uint(maxDist).
			maxDist := uint(min(wsize, i-start))
			d0, d1 := int(pos-c0), int(pos+1-c1)
			// Just after a match, try the last two match distances
			// first: they find the rest of a repeat after an edit,
			// where the hash table may offer a nearer but shorter one.
			if misses < repTries && uint(rep0-1) < maxDist && binary.LittleEndian.Uint32(buf[i-rep0:]) == x0 {
				d = rep0
			} else if misses < repTries && uint(rep1-1) < maxDist && binary.LittleEndian.Uint32(buf[i-rep1:]) == x0 {
				d = rep1
			} else if uint(d0-1) < maxDist && binary.LittleEndian.Uint32(buf[i-d0:]) == x0 {
				d = d0
			} else if misses < repTries && uint(rep0-1) < uint(min(wsize, i+1-start)) && binary.LittleEndian.Uint32(buf[i+1-rep0:]) == x1 {
				d = rep0
				i++
			} else if uint(d1-1) < uint(min(wsize, i+1-start)) && binary.LittleEndian.Uint32(buf[i+1-d1:]) == x1 {
				d = d1
				i++
			} else {
				misses += 2
				i += 2 + min(misses>>5, maxSkip)
				continue
			}
		} else {
			// The last bytes of the input: one position at a time.
			x := binary.LittleEndian.Uint32(buf[i:])
			h := (x * hashMul) >> shift
			pos := uint16(base + uint32(i))
			d = int(pos - head[h])
			head[h] = pos
			maxDist := uint(min(wsize, i-start))
			if misses < repTries && uint(rep0-1) < maxDist && binary.LittleEndian.Uint32(buf[i-rep0:]) == x {
				d = rep0
			} else if misses < repTries && uint(rep1-1) < maxDist && binary.LittleEndian.Uint32(buf[i-rep1:]) == x {
				d = rep1
			} else if uint(d-1) >= maxDist || binary.LittleEndian.Uint32(buf[i-d:]) != x {
				misses++
				i++
				continue
			}
		}
		l := minMatch + matchLen(buf, i-d+minMatch, i+minMatch, min(maxMatch, end-i)-minMatch)
		if nl := i - lit; nl <= maxTokLits && len(tokens) < cap(tokens) {
			// Fast path: one token for the literals and the match.
			for _, b := range buf[lit:i] {
				sc.litFreq[b]++
			}
			tokens = append(tokens, tokMatch|uint32(nl)<<tokLitShift|uint32(l-3)<<tokLenShift|uint32(d-1))
			sc.litFreq[257+int(lengthCode[uint8(l-3)])]++
			sc.distFreq[distCode(uint32(d-1))&31]++
		} else {
			sc.tokens = tokens
			e.addMatch(lit, i, l, d)
			tokens = sc.tokens
		}
		if d != rep0 {
			rep0, rep1 = d, rep0
		}
		i += l
		lit = i
		misses = 0
		// Hash the match's last two positions: what follows a repeat
		// often repeats too.
		if j := i - 2; j+8 <= end {
			x := binary.LittleEndian.Uint64(buf[j:])
			head[(uint32(x)*hashMul)>>shift] = uint16(base + uint32(j))
			head[(uint32(x>>8)*hashMul)>>shift] = uint16(base + uint32(j+1))
		} else {
			for ; j+minMatch <= end && j < i; j++ {
				x := binary.LittleEndian.Uint32(buf[j:])
				head[(x*hashMul)>>shift] = uint16(base + uint32(j))
			}
		}
	}
	if final || i > end {
		i = end
	}
	sc.tokens = tokens
	e.addLits(lit, i)
	e.cur = i
	e.rep = [2]int{rep0, rep1}
	e.misses = misses
}

// tokenizeChain encodes buf[cur:end] (all of it if final, else up to the
// lookahead) with hash chains, greedily or lazily.
func (e *Encoder) tokenizeChain(final bool) {
	end := e.end
	limit := end - lookahead
	if final {
		limit = end - minMatch + 1
	}
	p := e.params
	i := e.cur
	lit := i // first pending literal
	misses := e.misses
	for i < limit {
		l, d := e.longest(i, minMatch-1, min(maxMatch, end-i))
		if d == 0 {
			// After a long run without matches (incompressible
			// data), search only every few positions.
			misses++
			i++
			if misses > chainSkipAfter {
				i += min((misses-chainSkipAfter)>>5, maxSkip)
			}
			continue
		}
		misses = 0
		ins := i + 1 // next position to hash
		if p.strat == stratLazy {
			for l < p.lazy && i+1 < limit {
				l2, d2 := e.longest(i+1, l, min(maxMatch, end-i-1))
				ins = i + 2
				if d2 == 0 {
					break
				}
				i++ // buf[i] becomes a literal
				l, d = l2, d2
			}
		}
		e.addMatch(lit, i, l, d)
		if d != e.rep[0] {
			e.rep[1], e.rep[0] = e.rep[0], d
		}
		if p.strat == stratLazy || l <= p.lazy {
			stop := min(i+l, end-minMatch+1)
			for ; ins < stop; ins++ {
				e.insert(ins)
			}
		}
		i += l
		lit = i
	}
	if final || i > end {
		i = end
	}
	e.addLits(lit, i)
	e.cur = i
	e.misses = misses
}

// longest hashes position i and returns the longest match for it longer
// than best and at most maxLen bytes, trying the last match distances,
// then the hash chain; d is 0 if there is none.
func (e *Encoder) longest(i, best, maxLen int) (length, d int) {
	buf := e.buf[:e.end]
	x := binary.LittleEndian.Uint32(buf[i:])
	h := e.hash(x)
	pos := e.base + uint32(i)
	cand := e.head[h]
	e.prev[pos&e.pmask] = cand
	e.head[h] = uint16(pos)
	if best >= maxLen {
		return 0, 0
	}
	maxDist := min(e.wsize, i-e.start)
	chainLen := len(e.prev)
	chain := e.params.chain
	if best >= e.params.good {
		chain >>= 2
	}
	nice := min(e.params.nice, maxLen)
	bestD := 0
	// First the last two match distances, which find the rest of a
	// repeat after an edit however far back it is.
	for _, r := range e.rep {
		if r == 0 || r > maxDist {
			continue
		}
		j := i - r
		if buf[j+best] == buf[i+best] && binary.LittleEndian.Uint32(buf[j:]) == x {
			l := minMatch + matchLen(buf, j+minMatch, i+minMatch, maxLen-minMatch)
			if l > best && (l > minMatch || r <= tooFar) {
				best, bestD = l, r
				if l >= nice {
					return best, bestD
				}
			}
		}
	}
	dist := int(uint16(pos) - cand)
	for dist != 0 && dist <= maxDist {
		j := i - dist
		if buf[j+best] == buf[i+best] && binary.LittleEndian.Uint32(buf[j:]) == x {
			l := minMatch + matchLen(buf, j+minMatch, i+minMatch, maxLen-minMatch)
			if l > best && (l > minMatch || dist <= tooFar) {
				best, bestD = l, dist
				if l >= nice {
					break
				}
			}
		}
		chain--
		// The chain link of a position chainLen or more back has been
		// overwritten by a newer position.
		if chain <= 0 || dist >= chainLen {
			break
		}
		next := int(uint16(pos) - e.prev[(pos-uint32(dist))&e.pmask])
		if next <= dist {
			break // stale link
		}
		dist = next
	}
	if bestD == 0 {
		return 0, 0
	}
	return best, bestD
}

// addLits adds the literals buf[from:to] to the block.
func (e *Encoder) addLits(from, to int) {
	if from >= to {
		return
	}
	sc := e.s
	if len(sc.tokens) == cap(sc.tokens) {
		e.flushBlock(from - e.inBase)
	}
	for _, b := range e.buf[from:to] {
		sc.litFreq[b]++
	}
	sc.tokens = append(sc.tokens, uint32(to-from))
}

// addMatch adds the literals buf[from:i] and a match of length l at
// distance d at position i to the block.
func (e *Encoder) addMatch(from, i, l, d int) {
	if i-from > maxTokLits {
		e.addLits(from, i)
		from = i
	}
	sc := e.s
	if len(sc.tokens) == cap(sc.tokens) {
		e.flushBlock(from - e.inBase)
	}
	for _, b := range e.buf[from:i] {
		sc.litFreq[b]++
	}
	sc.tokens = append(sc.tokens, tokMatch|uint32(i-from)<<tokLitShift|uint32(l-3)<<tokLenShift|uint32(d-1))
	sc.litFreq[257+int(lengthCode[uint8(l-3)])]++
	sc.distFreq[distCode(uint32(d-1))&31]++
}

// Block types as sent in the 3-bit block header (BFINAL clear).
const (
	blockStored  = 0
	blockFixed   = 1 << 1
	blockDynamic = 2 << 1
)

// storedChunks returns how many stored blocks n > 0 bytes need.
func storedChunks(n int) int { return (n + maxStored - 1) / maxStored }

// flushBlock ends the current block at offset endOff of the input (where
// its tokens end) and writes it as whichever of fixed Huffman, dynamic
// Huffman or stored is smallest. A stored block is held back so that
// following stored blocks merge into it (5 bytes of overhead per 64 KiB of
// incompressible input).
func (e *Encoder) flushBlock(endOff int) {
	raw := e.in[e.blockOff:endOff]
	off := e.blockOff
	e.blockOff = endOff
	sc := e.s
	tokens := sc.tokens
	if len(tokens) == 0 {
		return
	}
	n := len(raw)
	sc.litFreq[endOfBlock] = 1
	// A small block only considers the fixed code, whose size is quicker
	// to add up over the block than over the alphabets.
	small := n < dynMinBytes
	extra, fixedBits := 0, 3+7 // block type and end of block
	if small {
		p := 0
		for _, t := range tokens {
			nl := tokLits(t)
			for _, b := range raw[p : p+nl] {
				fixedBits += int(fixedLit[b] >> 24)
			}
			p += nl
			if t >= tokMatch {
				lc := uint8(t >> tokLenShift)
				fixedBits += int(fixedLens[lc]>>24) + 5 + int(distExtra[distCode(t&0x7fff)])
				p += int(lc) + 3
			}
		}
	} else {
		for c, x := range lengthExtra {
			extra += int(sc.litFreq[257+c]) * int(x)
		}
		for c, x := range distExtra {
			extra += int(sc.distFreq[c]) * int(x)
		}
		fixedBits = 3 + extra
		for s, f := range sc.litFreq[:numLitSyms] {
			fixedBits += int(f) * int(fixedLit[s]>>24)
		}
		for _, f := range sc.distFreq[:numDistSyms] {
			fixedBits += int(f) * 5
		}
	}
	best, kind := fixedBits, blockFixed
	if !small {
		hdr, sym := sc.dyn.build(&sc.hb, sc.litFreq[:], sc.distFreq[:])
		if b := 3 + hdr + sym + extra; b < best {
			best, kind = b, blockDynamic
		}
	}
	var storedBits int
	if e.storedLen > 0 {
		// Continues the held-back stored block.
		storedBits = 8*n + 40*(storedChunks(e.storedLen+n)-storedChunks(e.storedLen))
	} else {
		pad := (8 - (e.w.n+3)&7) & 7
		storedBits = 3 + int(pad) + 32 + 8*n + 40*(storedChunks(n)-1)
	}
	if storedBits <= best {
		if e.storedLen == 0 {
			e.storedOff = off
		}
		e.storedLen += n
	} else {
		e.flushStored()
		w := &e.w
		w.reserve(best/8 + 8)
		w.writeBits(uint64(kind), 3)
		lit, lens, dist := &fixedLit, &fixedLens, &fixedDist
		if kind == blockDynamic {
			sc.dyn.write(w)
			lit, lens, dist = &sc.dyn.litCode, &sc.dyn.lenCode, &sc.dyn.distCode
		}
		w.writeTokens(tokens, raw, lit, lens, dist)
		c := lit[endOfBlock]
		w.writeBits(uint64(c&0xffffff), uint(c>>24))
	}
	if small {
		// Zero only the counts the block touched.
		p := 0
		for _, t := range tokens {
			nl := tokLits(t)
			for _, b := range raw[p : p+nl] {
				sc.litFreq[b] = 0
			}
			p += nl
			if t >= tokMatch {
				lc := uint8(t >> tokLenShift)
				sc.litFreq[257+int(lengthCode[lc])] = 0
				sc.distFreq[distCode(t&0x7fff)&31] = 0
				p += int(lc) + 3
			}
		}
		sc.litFreq[endOfBlock] = 0
	} else {
		clear(sc.litFreq[:])
		clear(sc.distFreq[:])
	}
	sc.tokens = tokens[:0]
}

// flushStored writes the held-back stored block, if any.
func (e *Encoder) flushStored() {
	if e.storedLen == 0 {
		return
	}
	raw := e.in[e.storedOff : e.storedOff+e.storedLen]
	e.storedLen = 0
	w := &e.w
	w.reserve(len(raw) + 5*storedChunks(len(raw)) + 8)
	for len(raw) > 0 {
		k := min(len(raw), maxStored)
		w.writeBits(blockStored, 3)
		w.align()
		w.out = append(w.out, byte(k), byte(k>>8), ^byte(k), ^byte(k>>8))
		w.out = append(w.out, raw[:k]...)
		raw = raw[k:]
	}
}
