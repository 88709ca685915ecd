package websocket

import (
	"encoding/binary"
	"fmt"
)

// This file is the frame codec (RFC 6455 §5.2): header encoding and an
// incremental header decoder. It holds no connection state and does no I/O,
// like golang.org/x/net/http2's Framer, so the blocking Conn and an event
// loop can both drive it.

// opcode is a frame's opcode (RFC 6455 §5.2, §11.8).
type opcode byte

const (
	opContinuation opcode = 0x0
	opText         opcode = 0x1
	opBinary       opcode = 0x2
	opClose        opcode = 0x8
	opPing         opcode = 0x9
	opPong         opcode = 0xA
)

func (op opcode) isControl() bool { return op&0x8 != 0 }

func (op opcode) String() string {
	switch op {
	case opContinuation:
		return "continuation"
	case opText:
		return "text"
	case opBinary:
		return "binary"
	case opClose:
		return "close"
	case opPing:
		return "ping"
	case opPong:
		return "pong"
	}
	return fmt.Sprintf("opcode(%#x)", byte(op))
}

// Header bits.
const (
	finBit  = 0x80
	rsv1Bit = 0x40
	rsv2Bit = 0x20
	rsv3Bit = 0x10
	maskBit = 0x80

	// maxHeaderSize is the longest frame header: 2 bytes, an 8-byte
	// extended length and a 4-byte masking key.
	maxHeaderSize = 14
	// maxControlPayload is the largest payload of a control frame (§5.5).
	maxControlPayload = 125
)

// frameHeader is a decoded frame header.
type frameHeader struct {
	fin     bool
	rsv     byte // the RSV1..RSV3 bits, in their header positions
	op      opcode
	masked  bool
	maskKey [4]byte
	length  int64
}

// appendHeader appends the encoded header h to b. The length must be
// non-negative; the mask key is written only when h.masked is set.
func appendHeader(b []byte, h frameHeader) []byte {
	b0 := byte(h.op) | h.rsv
	if h.fin {
		b0 |= finBit
	}
	var b1 byte
	if h.masked {
		b1 = maskBit
	}
	switch {
	case h.length <= 125:
		b = append(b, b0, b1|byte(h.length))
	case h.length <= 0xFFFF:
		b = append(b, b0, b1|126, byte(h.length>>8), byte(h.length))
	default:
		b = append(b, b0, b1|127)
		b = binary.BigEndian.AppendUint64(b, uint64(h.length))
	}
	if h.masked {
		b = append(b, h.maskKey[:]...)
	}
	return b
}

// headerDecoder decodes one frame header from bytes that may arrive a few at
// a time. It keeps what it has seen in a fixed buffer inside the struct, so
// decoding never allocates, and it checks every rule a header alone can
// break, failing with a *protocolError that names the close code to send.
type headerDecoder struct {
	buf [maxHeaderSize]byte
	n   int // bytes held in buf

	// Rules fixed per connection.
	expectMasked bool // a server expects masked frames, a client unmasked ones
	allowedRSV   byte // RSV bits an extension negotiated
}

// inProgress reports whether part of a header has been consumed.
func (d *headerDecoder) inProgress() bool { return d.n > 0 }

// headerLen returns the full header length implied by the first two bytes.
func headerLen(b0, b1 byte) int {
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&maskBit != 0 {
		n += 4
	}
	return n
}

// decode consumes bytes from p until a header is complete. It returns how
// many bytes it consumed and, once done is true, the header. Bytes after the
// header are not consumed. An error means the peer broke the protocol; the
// decoder must not be used again.
func (d *headerDecoder) decode(p []byte) (n int, h frameHeader, done bool, err error) {
	if d.n == 0 && len(p) >= 2 {
		// The usual case: the whole header is in p. Decode it in place.
		if need := headerLen(p[0], p[1]); len(p) >= need {
			if err := d.checkFirstBytes(p[0], p[1]); err != nil {
				return 2, h, false, err
			}
			h, err = decodeHeader(p[:need])
			return need, h, err == nil, err
		}
	}
	for {
		need := 2
		if d.n >= 2 {
			need = headerLen(d.buf[0], d.buf[1])
		}
		if d.n == need {
			break
		}
		if n == len(p) {
			return n, h, false, nil
		}
		c := copy(d.buf[d.n:need], p[n:])
		d.n += c
		n += c
		if d.n == 2 {
			if err := d.checkFirstBytes(d.buf[0], d.buf[1]); err != nil {
				return n, h, false, err
			}
		}
	}
	h, err = decodeHeader(d.buf[:d.n])
	if err != nil {
		return n, h, false, err
	}
	d.n = 0
	return n, h, true, nil
}

// decodeHeader decodes a complete header whose first two bytes passed
// checkFirstBytes, and checks what only the rest can break.
func decodeHeader(b []byte) (h frameHeader, err error) {
	h.fin = b[0]&finBit != 0
	h.rsv = b[0] & (rsv1Bit | rsv2Bit | rsv3Bit)
	h.op = opcode(b[0] & 0x0F)
	h.masked = b[1]&maskBit != 0
	i := 2
	switch l := b[1] & 0x7F; l {
	case 126:
		h.length = int64(binary.BigEndian.Uint16(b[2:]))
		i += 2
	case 127:
		u := binary.BigEndian.Uint64(b[2:])
		if u>>63 != 0 {
			return h, protocolErrorf(StatusProtocolError, "64-bit payload length has its most significant bit set")
		}
		h.length = int64(u)
		i += 8
	default:
		h.length = int64(l)
	}
	if h.masked {
		copy(h.maskKey[:], b[i:i+4])
	}
	if h.op.isControl() && h.length > maxControlPayload {
		return h, protocolErrorf(StatusProtocolError, "%s frame payload of %d bytes exceeds 125", h.op, h.length)
	}
	return h, nil
}

// checkFirstBytes checks the rules visible in the first two header bytes, so
// a bad frame fails before the rest of its header arrives.
func (d *headerDecoder) checkFirstBytes(b0, b1 byte) error {
	op := opcode(b0 & 0x0F)
	switch op {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
	default:
		return protocolErrorf(StatusProtocolError, "reserved opcode %#x", byte(op))
	}
	if rsv := b0 & (rsv1Bit | rsv2Bit | rsv3Bit); rsv&^d.allowedRSV != 0 {
		return protocolErrorf(StatusProtocolError, "reserved bits %#x set without a negotiated extension", rsv>>4)
	}
	if op.isControl() {
		if b0&finBit == 0 {
			return protocolErrorf(StatusProtocolError, "fragmented %s frame", op)
		}
		if b1&0x7F > maxControlPayload {
			return protocolErrorf(StatusProtocolError, "%s frame payload exceeds 125 bytes", op)
		}
	}
	masked := b1&maskBit != 0
	if masked != d.expectMasked {
		if d.expectMasked {
			return protocolErrorf(StatusProtocolError, "client frame is not masked")
		}
		return protocolErrorf(StatusProtocolError, "server frame is masked")
	}
	return nil
}
