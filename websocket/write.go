package websocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
)

// Write sends p as one message of type typ, in a single frame. It is safe to
// call from several goroutines: messages are sent whole, one after another.
// p is not modified and may be reused when Write returns. Whole-message
// writes allocate nothing in steady state.
//
// If ctx ends while Write waits for its turn, nothing was sent and the
// connection stays usable; if it ends while the frame is being written, the
// connection fails, since the peer may have received part of a frame.
func (c *Conn) Write(ctx context.Context, typ MessageType, p []byte) error {
	if typ != MessageText && typ != MessageBinary {
		return fmt.Errorf("websocket: cannot write message of type %v", typ)
	}
	if err := c.lock(ctx, &c.msgLock); err != nil {
		return err
	}
	defer c.msgLock.unlock()
	if err := c.dataAllowed(); err != nil {
		return err
	}
	if err := c.lock(ctx, &c.frameLock); err != nil {
		return err
	}
	defer c.unlockFrame()
	if err := c.dataAllowed(); err != nil {
		return err
	}
	if c.send.on && len(p) >= c.send.threshold {
		return c.writeCompressed(ctx, opcode(typ), p)
	}
	return c.writeMessageFrame(ctx, 0, opcode(typ), p)
}

// writeCompressed sends p compressed as one frame; the caller holds both
// write locks. Compressed only once the frame lock is held: from here on
// the message must go out, since the compressor's history includes it.
func (c *Conn) writeCompressed(ctx context.Context, op opcode, p []byte) error {
	cb := c.send.compress(p)
	defer putCompressBuf(cb)
	defer c.send.done()
	return c.writeMessageFrame(ctx, rsv1Bit, op, *cb)
}

// writeMessageFrame sends a whole message as one frame; the caller holds
// both write locks. (Apart from Write, so that each function has few
// enough defers and returns for the compiler to inline its defers.)
func (c *Conn) writeMessageFrame(ctx context.Context, rsv byte, op opcode, p []byte) error {
	done := c.watchWrite(ctx)
	defer done()
	buf := c.borrowWriteBuf()
	err := c.writeFrame(*buf, true, rsv, op, p)
	c.returnWriteBuf(buf)
	if err != nil {
		return c.writeFailed(ctx, err)
	}
	return nil
}

// Writer returns a writer for one message of type typ, sent as a sequence
// of frames (RFC 6455 §5.4) so that a message of any size needs only a
// small buffer. Each time the buffer fills, a frame goes out; Flush sends
// what is buffered as a frame at once; Close sends the final frame. The
// message holds the connection's message lock until Close, so other
// messages wait; control frames (pings, pongs, close) still go out between
// its frames. ctx bounds the whole message.
func (c *Conn) Writer(ctx context.Context, typ MessageType) (io.WriteCloser, error) {
	if typ != MessageText && typ != MessageBinary {
		return nil, fmt.Errorf("websocket: cannot write message of type %v", typ)
	}
	if err := c.lock(ctx, &c.msgLock); err != nil {
		return nil, err
	}
	if err := c.dataAllowed(); err != nil {
		c.msgLock.unlock()
		return nil, err
	}
	return &messageWriter{c: c, ctx: ctx, op: opcode(typ), buf: getWriteBuf()}, nil
}

// messageWriter sends one message as frames. Its buffer keeps room for a
// frame header in front of the payload, so a frame goes out in one write.
type messageWriter struct {
	c    *Conn
	ctx  context.Context
	op   opcode // opcode of the next frame: the type first, then continuation
	buf  *[]byte
	n    int // payload bytes buffered at buf[maxHeaderSize:]
	sent int // frames sent since the last Flush

	// With permessage-deflate, whether to compress is decided when the
	// first frame goes out: a message that ends before reaching the
	// threshold goes out plain.
	decided  bool
	compress bool
	closed   bool
	err      error
}

var errWriterClosed = errors.New("websocket: write to a closed message writer")

// Write buffers p, sending full frames as the buffer fills.
func (w *messageWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errWriterClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	total := len(p)
	room := len(*w.buf) - maxHeaderSize
	for len(p) > 0 {
		if w.n == 0 && len(p) >= room {
			// Large write: send it as a frame of its own, without copying
			// into the buffer (the server sends it with a vectored write).
			if err := w.frame(false, p); err != nil {
				return total - len(p), err
			}
			return total, nil
		}
		k := copy((*w.buf)[maxHeaderSize+w.n:], p)
		w.n += k
		p = p[k:]
		if w.n == room {
			if err := w.flush(false); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

// Flush ends the current fragment: it sends the buffered bytes now as a
// non-final frame. When nothing is buffered because the bytes written since
// the last Flush already went out in frames of their own, it sends nothing;
// otherwise it sends a frame even if it is empty, so each Flush ends exactly
// one fragment.
func (w *messageWriter) Flush() error {
	if w.closed {
		return errWriterClosed
	}
	if w.err != nil {
		return w.err
	}
	if w.n == 0 && w.sent > 0 {
		w.sent = 0
		return nil
	}
	err := w.flush(false)
	w.sent = 0
	return err
}

// Close sends the final frame with whatever is buffered and releases the
// connection for the next message.
func (w *messageWriter) Close() error {
	if w.closed {
		return errWriterClosed
	}
	w.closed = true
	defer w.c.msgLock.unlock()
	var err error
	if w.err == nil {
		err = w.flush(true)
	} else {
		err = w.err
	}
	putWriteBuf(w.buf)
	w.buf = nil
	return err
}

// decide settles whether the message is compressed, before its first frame.
func (w *messageWriter) decide(fin bool, n int) {
	if !w.decided {
		w.decided = true
		w.compress = w.c.send.on && !(fin && n < w.c.send.threshold)
	}
}

// rsv returns the RSV bits of the next frame: RSV1 on the first frame of a
// compressed message only (RFC 7692 §6).
func (w *messageWriter) rsv() byte {
	if w.compress && w.op != opContinuation {
		return rsv1Bit
	}
	return 0
}

// flush sends the buffered payload as one frame.
func (w *messageWriter) flush(fin bool) error {
	w.decide(fin, w.n)
	if w.compress {
		return w.frame(fin, (*w.buf)[maxHeaderSize:maxHeaderSize+w.n])
	}
	c := w.c
	if err := c.lock(w.ctx, &c.frameLock); err != nil {
		w.err = w.lockFailed(err)
		return w.err
	}
	defer c.unlockFrame()
	if err := c.dataAllowed(); err != nil {
		w.err = err
		return err
	}
	done := c.watchWrite(w.ctx)
	defer done()
	h := frameHeader{fin: fin, op: w.op, length: int64(w.n)}
	if c.role == RoleClient {
		h.masked = true
		h.maskKey = newMaskKey()
	}
	hdr := appendHeader(c.hdr[:0], h)
	start := maxHeaderSize - len(hdr)
	b := (*w.buf)[start : maxHeaderSize+w.n]
	copy(b, hdr)
	if h.masked {
		maskBytes(h.maskKey, 0, b[len(hdr):])
	}
	_, err := c.rwc.Write(b)
	w.n = 0
	w.sent++
	w.op = opContinuation
	if err != nil {
		w.err = c.writeFailed(w.ctx, err)
		return w.err
	}
	return nil
}

// frame sends p as one frame of the message, bypassing the buffer (or
// compressing it).
func (w *messageWriter) frame(fin bool, p []byte) error {
	c := w.c
	w.decide(fin, len(p))
	rsv := w.rsv()
	if err := c.lock(w.ctx, &c.frameLock); err != nil {
		w.err = w.lockFailed(err)
		return w.err
	}
	defer c.unlockFrame()
	if err := c.dataAllowed(); err != nil {
		w.err = err
		return err
	}
	if w.compress {
		cb := c.send.compressPart(p, fin)
		defer putCompressBuf(cb)
		if fin {
			defer c.send.done()
		}
		p = *cb
		w.n = 0
	}
	done := c.watchWrite(w.ctx)
	defer done()
	err := c.writeFrame(*w.buf, fin, rsv, w.op, p)
	w.sent++
	w.op = opContinuation
	if err != nil {
		w.err = c.writeFailed(w.ctx, err)
		return w.err
	}
	return nil
}

// lockFailed handles a message writer that could not get the frame lock.
// Before its first frame nothing was sent and the connection stays usable;
// after it, the peer holds an unfinished message that no other message may
// interrupt (RFC 6455 §5.4), so the connection fails.
func (w *messageWriter) lockFailed(err error) error {
	c := w.c
	if w.op == opContinuation {
		if se := c.stickyErr(); se != nil {
			return se
		}
		c.setErr(fmt.Errorf("websocket: message left unfinished: %w", err))
		c.closeTransport()
		return c.stickyErr()
	}
	return c.writeFailed(w.ctx, err)
}

// newMaskKey returns a fresh masking key from the runtime's
// cryptographically seeded generator (RFC 6455 §5.3 asks for keys the
// application cannot predict).
func newMaskKey() [4]byte {
	v := rand.Uint32()
	return [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// writeFrame writes one frame. The caller holds frameLock; scratch is a
// buffer of writeBufSize bytes it may use. Small frames go out in one write;
// large server frames go out as a vectored write of header and payload,
// without copying; client frames are masked through scratch.
func (c *Conn) writeFrame(scratch []byte, fin bool, rsv byte, op opcode, p []byte) error {
	h := frameHeader{fin: fin, rsv: rsv, op: op, length: int64(len(p))}
	if c.role == RoleClient {
		h.masked = true
		h.maskKey = newMaskKey()
	}
	hdr := appendHeader(c.hdr[:0], h)
	if !h.masked {
		if len(hdr)+len(p) <= len(scratch) {
			b := append(scratch[:0], hdr...)
			b = append(b, p...)
			_, err := c.rwc.Write(b)
			return err
		}
		if tc, ok := c.netConn.(*net.TCPConn); ok {
			c.vec[0], c.vec[1] = hdr, p
			c.bufs = c.vec[:]
			_, err := c.bufs.WriteTo(tc)
			c.vec[0], c.vec[1] = nil, nil
			return err
		}
		if _, err := c.rwc.Write(hdr); err != nil {
			return err
		}
		_, err := c.rwc.Write(p)
		return err
	}
	if len(hdr)+len(p) > len(scratch) {
		// Mask a large client frame through a larger buffer: fewer writes.
		big := getMaskBuf()
		defer putMaskBuf(big)
		scratch = *big
	}
	b := append(scratch[:0], hdr...)
	pos := 0
	for {
		k := min(len(p), len(scratch)-len(b))
		b = append(b, p[:k]...)
		pos = maskBytes(h.maskKey, pos, b[len(b)-k:])
		p = p[k:]
		if _, err := c.rwc.Write(b); err != nil {
			return err
		}
		if len(p) == 0 {
			return nil
		}
		b = scratch[:0]
	}
}

// writeControl sends a control frame, waiting for the frame lock but not
// for a message in progress, so it can go out between fragments.
func (c *Conn) writeControl(ctx context.Context, op opcode, payload []byte) error {
	if err := c.lock(ctx, &c.frameLock); err != nil {
		return err
	}
	defer c.unlockFrame()
	return c.writeControlLocked(ctx, op, payload)
}

func (c *Conn) writeControlLocked(ctx context.Context, op opcode, payload []byte) error {
	select {
	case <-c.closed:
		return c.stickyErr()
	default:
	}
	done := c.watchWrite(ctx)
	defer done()
	var scratch [maxHeaderSize + maxControlPayload]byte
	if err := c.writeFrame(scratch[:], true, 0, op, payload); err != nil {
		return c.writeFailed(ctx, err)
	}
	return nil
}

// dataAllowed reports why data may not be sent, if it may not: once a close
// frame was sent, nothing else may follow it (RFC 6455 §5.5.1). Sending a
// close frame sets the sticky error too, so while the connection is open
// this costs one atomic load.
func (c *Conn) dataAllowed() error {
	if !c.ended.Load() {
		return nil
	}
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closeSent || c.err != nil {
		if c.err != nil {
			return c.err
		}
		return ErrClosed
	}
	return nil
}

// borrowWriteBuf returns the write buffer, from the pool unless the Conn
// holds one (the buffer donated at hijack).
func (c *Conn) borrowWriteBuf() *[]byte {
	if c.wbuf != nil {
		b := c.wbuf
		c.wbuf = nil
		return b
	}
	return getWriteBuf()
}

func (c *Conn) returnWriteBuf(b *[]byte) { putWriteBuf(b) }

// unlockFrame releases the frame lock, then sends a pong the reader queued
// while the lock was held, if no one else took the lock to do it.
func (c *Conn) unlockFrame() {
	for {
		c.frameLock.unlock()
		if !c.pongPending.Load() {
			return
		}
		if !c.frameLock.tryLock() {
			return // the holder will send it when it unlocks
		}
		c.sendPendingPong()
	}
}

// queuePong arranges for a pong with payload to be sent, without making the
// reader wait for a writer (reads never block on writes). Only the latest
// pong is kept, as RFC 6455 §5.5.3 allows.
func (c *Conn) queuePong(payload []byte) {
	c.pongMu.Lock()
	c.pongLen = copy(c.pongBuf[:], payload)
	c.pongMu.Unlock()
	c.pongPending.Store(true)
	if c.frameLock.tryLock() {
		c.sendPendingPong()
		c.unlockFrame()
	}
}

// sendPendingPong sends the queued pong. The caller holds frameLock.
func (c *Conn) sendPendingPong() {
	if !c.pongPending.Swap(false) {
		return
	}
	var p [maxControlPayload]byte
	c.pongMu.Lock()
	n := copy(p[:], c.pongBuf[:c.pongLen])
	c.pongMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.closeTimeout())
	c.writeControlLocked(ctx, opPong, p[:n])
	cancel()
}

// writeFailed turns an error met while writing into what the caller sees.
// A write that may have sent part of a frame fails the connection.
func (c *Conn) writeFailed(ctx context.Context, err error) error {
	if se := c.stickyErr(); se != nil {
		return se
	}
	if cerr := ctxErr(ctx); cerr != nil && (err == cerr || isTimeout(err)) {
		if err == cerr {
			return err // gave up waiting for the lock: nothing was sent
		}
		c.setErr(fmt.Errorf("websocket: write stopped in the middle of a frame: %w", cerr))
	} else {
		c.setErr(fmt.Errorf("websocket: write failed: %w", err))
	}
	c.closeTransport()
	return c.stickyErr()
}
