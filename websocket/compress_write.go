package websocket

import (
	"sync"

	"github.com/duplex-ws/duplex/websocket/internal/deflate"
)

// This file is the sending half of permessage-deflate (RFC 7692 §7.2.1):
// a message is compressed with our own DEFLATE encoder, which keeps every
// back-reference within the window the peer agreed to, and sent with RSV1
// on its first frame and the trailing 00 00 ff ff removed.
//
// Memory: without context takeover, encoders are pooled per window size
// and level and borrowed for one message. With takeover, the connection
// owns an encoder for its life: about 72 KiB at a 15-bit window and level
// 1, 12 KiB at 12 bits (see package internal/deflate), against about
// 1.2 MB for a compress/flate Writer at BestSpeed.

// sendDeflate is the sending state of a connection that negotiated
// permessage-deflate.
type sendDeflate struct {
	on         bool
	takeover   bool
	windowBits int
	level      int
	threshold  int
	enc        *deflate.Encoder // owned with takeover; borrowed per message otherwise
}

// encoderPools holds encoders without context, by window bits and level.
var encoderPools [16][10]sync.Pool

// encoder returns the encoder for the next message.
func (s *sendDeflate) encoder() *deflate.Encoder {
	if s.enc != nil {
		return s.enc
	}
	if e, ok := encoderPools[s.windowBits][s.level].Get().(*deflate.Encoder); ok {
		e.Reset()
		s.enc = e
	} else {
		s.enc = deflate.NewEncoder(s.windowBits, s.level)
	}
	return s.enc
}

// done ends a message: an encoder without context goes back to its pool.
func (s *sendDeflate) done() {
	if !s.takeover && s.enc != nil {
		encoderPools[s.windowBits][s.level].Put(s.enc)
		s.enc = nil
	}
}

// compressBufPool holds the buffers compressed messages are built in.
var compressBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 4096)
	return &b
}}

// putCompressBuf returns a compression buffer to the pool, unless it grew
// large: one huge message must not pin its memory in the pool.
func putCompressBuf(b *[]byte) {
	if cap(*b) <= 256<<10 {
		compressBufPool.Put(b)
	}
}

// compress returns p compressed as a whole message's payload (tail
// removed) in a pooled buffer the caller must give back with putCompressBuf.
func (s *sendDeflate) compress(p []byte) *[]byte { return s.compressPart(p, true) }

// compressPart compresses the next part of a message. Every part ends with
// a sync flush, so each frame can be inflated as it arrives; the last
// part's 00 00 ff ff is removed (RFC 7692 §7.2.1).
func (s *sendDeflate) compressPart(p []byte, last bool) *[]byte {
	buf := compressBufPool.Get().(*[]byte)
	if need := len(p) + len(p)/64 + 64; cap(*buf) < need {
		*buf = make([]byte, 0, need)
	}
	b := s.encoder().Encode((*buf)[:0], p)
	if last {
		b = b[:len(b)-len(deflateTail)]
	}
	*buf = b
	return buf
}

// setupDeflate sets the connection up for the parameters agreed in the
// handshake.
func (c *Conn) setupDeflate(params deflateParams, opts *CompressionOptions) {
	c.p.dec.allowedRSV = rsv1Bit
	c.recv.takeover = params.recvTakeover(c.role)
	c.recv.window = 1 << params.recvWindowBits(c.role)
	if c.recv.takeover {
		c.recv.hist = make([]byte, 0, 2*c.recv.window)
	}
	c.send = sendDeflate{
		on:         true,
		takeover:   params.sendTakeover(c.role),
		windowBits: params.sendWindowBits(c.role),
		level:      opts.level(),
	}
	c.send.threshold = opts.threshold(c.send.takeover)
	if c.send.takeover {
		c.send.enc = deflate.NewEncoder(c.send.windowBits, c.send.level)
	}
}
