package websocket

import "unicode/utf8"

// utf8Validator checks UTF-8 text that arrives in pieces (frames, reads)
// and fails on the first byte that cannot belong to valid UTF-8, without
// waiting for the rest of the message (RFC 6455 §8.1: fail fast).
//
// It keeps at most three bytes of an unfinished character between calls.
// The bulk of each piece is checked with unicode/utf8.Valid, which has an
// ASCII fast path.
type utf8Validator struct {
	partial [4]byte
	n       int // bytes held in partial
}

// reset forgets any unfinished character, for the next message.
func (v *utf8Validator) reset() { v.n = 0 }

// complete reports whether the text seen so far ends on a character boundary;
// a message must, when its final frame has been read.
func (v *utf8Validator) complete() bool { return v.n == 0 }

// write checks the next piece of text and reports whether everything seen so
// far is valid UTF-8 or a valid prefix of it.
func (v *utf8Validator) write(p []byte) bool {
	if v.n > 0 {
		// Finish the character begun in an earlier piece.
		need := utf8SeqLen(v.partial[0]) - v.n
		take := min(need, len(p))
		copy(v.partial[v.n:], p[:take])
		v.n += take
		p = p[take:]
		if !validPrefix(v.partial[:v.n]) {
			return false
		}
		if v.n < utf8SeqLen(v.partial[0]) {
			return true // still unfinished; p is empty
		}
		v.n = 0
	}
	if len(p) == 0 {
		return true
	}
	// Find where a trailing, unfinished character starts (at most 3 bytes back).
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-3; i-- {
		c := p[i]
		if c < 0x80 {
			break
		}
		if c >= 0xC0 { // a leading byte
			if len(p)-i < utf8SeqLen(c) {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(p[:cut]) {
		return false
	}
	tail := p[cut:]
	if len(tail) == 0 {
		return true
	}
	if !validPrefix(tail) {
		return false
	}
	v.n = copy(v.partial[:], tail)
	return true
}

// utf8SeqLen returns the length of the sequence that leading byte c starts,
// or 1 for bytes that cannot start one (validPrefix rejects those).
func utf8SeqLen(c byte) int {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 2
	case c >= 0xE0 && c <= 0xEF:
		return 3
	case c >= 0xF0 && c <= 0xF4:
		return 4
	}
	return 1
}

// validPrefix reports whether p (1 to 4 bytes, starting a character) can be
// completed to a valid character. It rejects overlong forms, surrogates and
// code points above U+10FFFF as soon as the byte that betrays them is seen.
func validPrefix(p []byte) bool {
	c := p[0]
	n := utf8SeqLen(c)
	if n == 1 {
		return c < 0x80
	}
	if len(p) > n {
		return false
	}
	if len(p) >= 2 {
		lo, hi := byte(0x80), byte(0xBF)
		switch c {
		case 0xE0:
			lo = 0xA0 // overlong
		case 0xED:
			hi = 0x9F // surrogates
		case 0xF0:
			lo = 0x90 // overlong
		case 0xF4:
			hi = 0x8F // above U+10FFFF
		}
		if p[1] < lo || p[1] > hi {
			return false
		}
	}
	for _, b := range p[min(len(p), 2):] {
		if b < 0x80 || b > 0xBF {
			return false
		}
	}
	return true
}
