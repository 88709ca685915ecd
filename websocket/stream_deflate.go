package websocket

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
)

// permessage-deflate (RFC 7692) for servers that do their own I/O (the
// hook of stream.go). Such a server keeps no compression state between
// messages: AnswerUpgrade always answers with server_no_context_takeover
// and client_no_context_takeover, so each message is inflated and deflated
// on its own, with a decompressor or compressor borrowed from a pool for
// that message alone. A connection then costs nothing for compression
// while it is idle, which is what an event loop holding many idle
// connections needs; the price is the ratio that context takeover gives
// small, similar messages.

// Agreement is what AnswerUpgrade settled with a client besides the upgrade
// itself. A server that does its own I/O keeps it with the connection (its
// ServerParser holds the compression part: SetAgreement).
type Agreement struct {
	// Subprotocol is the subprotocol chosen, "" for none.
	Subprotocol string
	// DeflateWindowBits is 0 when permessage-deflate was not negotiated.
	// Otherwise it is the base-2 logarithm (8 to 15) of the furthest the
	// server's compressor may refer back, as agreed: pass it to
	// AppendCompressed. Context takeover is off both ways.
	DeflateWindowBits int
}

// SetAgreement sets the parser up for what the handshake agreed: with
// permessage-deflate, a message whose first frame has RSV1 set is
// compressed; Parse reports its frames with Parsed.Compressed and leaves
// its UTF-8 check to Inflate. Call it once, after Init and before Parse.
// It panics when DeflateWindowBits is neither 0 nor 8 to 15: no handshake
// agrees to that, so the Agreement was not AnswerUpgrade's.
func (s *ServerParser) SetAgreement(a Agreement) {
	if a.DeflateWindowBits == 0 {
		s.p.dec.allowedRSV = 0
		s.p.deflateBits = 0
		return
	}
	checkWindowBits("ServerParser.SetAgreement", a.DeflateWindowBits)
	s.p.dec.allowedRSV = rsv1Bit
	s.p.deflateBits = uint8(a.DeflateWindowBits)
}

// checkWindowBits panics unless bits is a window RFC 7692 allows (8 to 15).
func checkWindowBits(fn string, bits int) {
	if bits < minWindowBits || bits > maxWindowBits {
		panic(fmt.Sprintf("websocket: %s: window bits %d, want %d to %d", fn, bits, minWindowBits, maxWindowBits))
	}
}

// DeflateWindowBits returns the Agreement's DeflateWindowBits that
// SetAgreement was given: 0 when the connection does not compress.
func (s *ServerParser) DeflateWindowBits() int { return int(s.p.deflateBits) }

// msgInflater is a pooled decompressor for whole messages, with its
// source: the compressed payload, then inflateEnd.
type msgInflater struct {
	fr  io.ReadCloser // compress/flate's reader; implements flate.Resetter
	src msgSource
}

var msgInflaterPool sync.Pool

// msgSource serves a compressed message's payload and then inflateEnd. It
// implements io.ByteReader, so compress/flate reads it without a buffer of
// its own.
type msgSource struct {
	p    []byte
	tail int // bytes of inflateEnd served
}

// ReadByte returns the next compressed byte.
func (m *msgSource) ReadByte() (byte, error) {
	if len(m.p) > 0 {
		b := m.p[0]
		m.p = m.p[1:]
		return b, nil
	}
	if m.tail < len(inflateEnd) {
		m.tail++
		return inflateEnd[m.tail-1], nil
	}
	return 0, io.EOF
}

// Read reads compressed bytes.
func (m *msgSource) Read(p []byte) (int, error) {
	if len(m.p) > 0 {
		n := copy(p, m.p)
		m.p = m.p[n:]
		return n, nil
	}
	if m.tail < len(inflateEnd) {
		n := copy(p, inflateEnd[m.tail:])
		m.tail += n
		return n, nil
	}
	return 0, io.EOF
}

// Inflate appends the inflated message to dst and returns it. payload is
// the whole compressed message: the payloads of its frames, in order and
// joined, as Parse reported them with Compressed set; typ is its type.
// The parser's read limit applies to the inflated size (1009 as soon as it
// is passed, so a small payload that inflates to gigabytes costs about the
// limit in memory, at most twice it with the buffer's growth), and a text message must be valid UTF-8 unless the
// Options turned the check off (1007). Data that is not valid DEFLATE is
// 1007 too. Where a message has several faults, the first in its bytes
// decides the code, as on Conn: text that is not UTF-8 within the limit
// is 1007 even if the message also inflates past it. Errors are *ProtocolError. Inflate keeps neither payload nor
// dst; it borrows a decompressor (about 40 KiB) for the call alone.
func (s *ServerParser) Inflate(dst, payload []byte, typ MessageType) ([]byte, error) {
	inf, _ := msgInflaterPool.Get().(*msgInflater)
	if inf == nil {
		inf = &msgInflater{}
		inf.fr = flate.NewReader(&inf.src)
	}
	inf.src = msgSource{p: payload}
	inf.fr.(flate.Resetter).Reset(&inf.src, nil)
	defer func() {
		inf.src = msgSource{}
		msgInflaterPool.Put(inf)
	}()
	start := len(dst)
	limit := s.limit
	for {
		// One byte past the limit shows it broken.
		left := int64(math.MaxInt64)
		if limit < math.MaxInt64 {
			left = limit - int64(len(dst)-start) + 1
		}
		if len(dst) == cap(dst) {
			// Double what the message holds, by 512 B to 1 MiB, never
			// past what the limit lets it reach.
			dst = slices.Grow(dst, int(min(int64(max(512, min(cap(dst)-start, 1<<20))), left)))
		}
		room := dst[len(dst):cap(dst)]
		if int64(len(room)) > left {
			room = room[:left]
		}
		n, err := inf.fr.Read(room)
		dst = dst[:len(dst)+n]
		if int64(len(dst)-start) > limit {
			// As on Conn, the first fault in byte order decides: bytes
			// that are not UTF-8 within the limit come before it.
			var v utf8Validator
			if typ == MessageText && s.p.checkUTF8 && !v.write(dst[start:start+int(limit)]) {
				return dst[:start], protocolErrorf(StatusInvalidFramePayloadData, "text message is not valid UTF-8")
			}
			return dst[:start], protocolErrorf(StatusMessageTooBig, "message inflates to more than the limit of %d bytes", limit)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			var ce flate.CorruptInputError
			if errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF) {
				return dst[:start], protocolErrorf(StatusInvalidFramePayloadData, "compressed message is not valid DEFLATE data")
			}
			return dst[:start], err
		}
	}
	if typ == MessageText && s.p.checkUTF8 {
		var v utf8Validator
		if !v.write(dst[start:]) || !v.complete() {
			return dst[:start], protocolErrorf(StatusInvalidFramePayloadData, "text message is not valid UTF-8")
		}
	}
	return dst, nil
}

// AppendCompressed appends msg compressed as the payload of one
// permessage-deflate message (RFC 7692 §7.2.1: DEFLATE without reference
// to earlier messages, the final 00 00 ff ff removed) to dst, for servers
// that frame messages themselves: the message's first frame must have RSV1
// set. bits is the Agreement's DeflateWindowBits, 8 to 15 (it panics
// otherwise: 0 means permessage-deflate was not agreed, and the peer would
// fail a compressed message); level is 1 to 9 (0: DefaultCompressionLevel).
// msg must not share memory with dst's spare capacity (compressing a
// buffer into itself), which the output overwrites as it is produced. A
// message shorter than the CompressionOptions' threshold is better sent as
// it is, RSV1 clear. The compressor is borrowed from a pool for the call.
func AppendCompressed(dst, msg []byte, bits, level int) []byte {
	checkWindowBits("AppendCompressed", bits)
	o := CompressionOptions{Level: level}
	sd := sendDeflate{windowBits: bits, level: o.level()}
	dst = sd.encoder().Encode(dst, msg)
	sd.done()
	return dst[:len(dst)-len(deflateTail)]
}
