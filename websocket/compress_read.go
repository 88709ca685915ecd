package websocket

import (
	"compress/flate"
	"errors"
	"io"
	"math"
	"sync"
)

// This file is the receiving half of permessage-deflate (RFC 7692 §7.2.2):
// the compressed payload of a message's frames, with the 00 00 ff ff tail
// the sender removed appended again, is inflated as it is read. The limit
// on message size and the UTF-8 check apply to the inflated bytes, counted
// as they are produced, so a small frame that inflates to gigabytes is
// stopped at the limit with 1009 and memory stays bounded by the limit.
//
// Memory: decompressors are pooled and borrowed for one message. With
// context takeover the connection keeps the peer's window between messages
// (1<<windowBits bytes, at most 32 KiB, in a buffer of twice that size so it
// slides with one copy per window); without it, nothing.

// deflateTail is what RFC 7692 §7.2.2 has the receiver append to a
// message's compressed payload: the end of an empty stored block.
var deflateTail = [4]byte{0x00, 0x00, 0xff, 0xff}

// inflateEnd is what the decompressor is fed after a message's payload:
// the tail, then an empty final block (fixed Huffman, end of block only).
// A well-formed payload ends at the tail's sync point, so that final block
// ends the stream with io.EOF; a payload cut off inside a block runs on
// into these bytes and ends without a final block, which compress/flate
// reports as io.ErrUnexpectedEOF: invalid data (1007), never a message
// with the tail's bytes or a half-decoded block in it.
var inflateEnd = [6]byte{0x00, 0x00, 0xff, 0xff, 0x03, 0x00}

// inflater is a pooled decompressor together with the source it reads
// the compressed payload from.
type inflater struct {
	fr  io.ReadCloser // a compress/flate reader; implements flate.Resetter
	src inflateSource
}

var inflaterPool sync.Pool

// inflateSource reads the compressed payload of the current message, frame
// after frame, unmasked, followed by the tail. It implements io.ByteReader,
// so compress/flate reads it without adding a buffer of its own, and it
// never reads past the message.
type inflateSource struct {
	c    *Conn
	buf  [2048]byte
	r, w int
	tail int   // bytes of inflateEnd already served
	eof  bool  // the message and inflateEnd are all served
	err  error // what reading the frames failed with, if it did
}

func (s *inflateSource) fill() error {
	c := s.c
	for {
		if c.p.inFrame {
			n, err := c.readPayload(s.buf[:])
			s.r, s.w = 0, n
			if n > 0 || err != nil {
				s.err = err
				return err
			}
			continue
		}
		if c.p.inMessage {
			if err := c.readFrameStart(); err != nil {
				s.err = err
				return err
			}
			continue
		}
		if s.tail < len(inflateEnd) {
			n := copy(s.buf[:], inflateEnd[s.tail:])
			s.tail += n
			s.r, s.w = 0, n
			return nil
		}
		s.eof = true
		return io.EOF
	}
}

// ReadByte returns the next compressed byte.
func (s *inflateSource) ReadByte() (byte, error) {
	if s.r == s.w {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	b := s.buf[s.r]
	s.r++
	return b, nil
}

// Read reads compressed bytes.
func (s *inflateSource) Read(p []byte) (int, error) {
	if s.r == s.w {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.buf[s.r:s.w])
	s.r += n
	return n, nil
}

// recvDeflate is the receiving state of a connection that negotiated
// permessage-deflate.
type recvDeflate struct {
	takeover bool
	window   int    // 1 << the peer's window bits
	hist     []byte // with takeover: the last window bytes inflated, in a buffer of 2*window
	inflated int64  // bytes of the current message inflated so far
}

// remember appends inflated bytes to the window kept for the next message.
func (d *recvDeflate) remember(p []byte) {
	if !d.takeover {
		return
	}
	if len(p) >= d.window {
		d.hist = append(d.hist[:0], p[len(p)-d.window:]...)
		return
	}
	if len(d.hist)+len(p) > cap(d.hist) {
		keep := d.window - len(p)
		n := copy(d.hist, d.hist[len(d.hist)-keep:])
		d.hist = d.hist[:n]
	}
	d.hist = append(d.hist, p...)
}

// dict returns the window to inflate the next message with.
func (d *recvDeflate) dict() []byte {
	if len(d.hist) > d.window {
		return d.hist[len(d.hist)-d.window:]
	}
	return d.hist
}

// startInflate borrows a decompressor for the compressed message whose
// first frame header was just read.
func (c *Conn) startInflate() {
	inf, _ := inflaterPool.Get().(*inflater)
	if inf == nil {
		inf = &inflater{}
		inf.src.c = c
		inf.fr = flate.NewReader(&inf.src)
	}
	inf.src = inflateSource{c: c}
	inf.fr.(flate.Resetter).Reset(&inf.src, c.recv.dict())
	c.recv.inflated = 0
	c.inf = inf
}

// endInflate returns the decompressor to the pool.
func (c *Conn) endInflate() {
	if c.inf != nil {
		c.inf.src.c = nil
		inflaterPool.Put(c.inf)
		c.inf = nil
	}
}

// readInflated reads inflated bytes of the current compressed message.
func (c *Conn) readInflated(p []byte) (n int, eom bool, err error) {
	if limit := c.limit.Load(); limit < math.MaxInt64 {
		room := limit - c.recv.inflated + 1 // one byte past the limit shows it broken
		if room <= 1 && c.recv.inflated > limit {
			// The limit was lowered below what this message already holds.
			return 0, false, protocolErrorf(StatusMessageTooBig, "message inflates to more than the limit of %d bytes", limit)
		}
		if int64(len(p)) > room {
			p = p[:room]
		}
	}
	n, err = c.inf.fr.Read(p)
	if n > 0 {
		// The first fault in the message's bytes decides the code, however
		// much one call inflates: bytes that are not UTF-8 within the
		// limit (1007) come before the byte past it (1009).
		limit := c.limit.Load()
		over := max(c.recv.inflated+int64(n)-limit, 0)
		c.recv.inflated += int64(n)
		if c.p.msgType == MessageText && c.p.checkUTF8 && !c.p.utf8.write(p[:n-int(min(over, int64(n)))]) {
			return 0, false, protocolErrorf(StatusInvalidFramePayloadData, "text message is not valid UTF-8")
		}
		if over > 0 {
			return 0, false, protocolErrorf(StatusMessageTooBig, "message inflates to more than the limit of %d bytes", limit)
		}
		c.recv.remember(p[:n])
	}
	switch {
	case err == nil:
		return n, false, nil
	case c.inf.src.err != nil:
		// Reading the frames failed (the transport ended, a context, a
		// bad frame header): that is the error, not the data.
		return n, false, c.inf.src.err
	case err == io.EOF:
		// A final block ended the stream: the one after the tail, or one
		// the peer sent.
		if !c.inf.src.eof {
			if err := c.drainCompressed(); err != nil {
				return n, false, err
			}
		}
		c.endInflate()
		if c.p.msgType == MessageText && c.p.checkUTF8 && !c.p.utf8.complete() {
			return n, false, protocolErrorf(StatusInvalidFramePayloadData, "text message ends inside a UTF-8 sequence")
		}
		return n, true, nil
	}
	var ce flate.CorruptInputError
	if errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF) {
		return n, false, protocolErrorf(StatusInvalidFramePayloadData, "compressed message is not valid DEFLATE data")
	}
	return n, false, err
}

// drainCompressed drops compressed payload left after a final block.
func (c *Conn) drainCompressed() error {
	for {
		c.inf.src.r = c.inf.src.w
		if err := c.inf.src.fill(); err != nil {
			if c.inf.src.eof { // all served, not the transport's io.EOF
				return nil
			}
			return err
		}
	}
}
