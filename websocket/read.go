package websocket

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"time"
	"unicode/utf8"
)

// errStaleReader is returned by a message reader after a newer Reader or
// Read call took over the connection.
var errStaleReader = errors.New("websocket: reader used after the next message was requested")

// Read reads the next data message whole. Pings, pongs and close frames
// that arrive meanwhile are handled on the way (RFC 6455 §5.5).
//
// The returned slice belongs to the Conn and is valid only until the next
// call to Read or Reader: copy it to keep it. This lets whole-message reads
// reuse pooled buffers and allocate nothing in steady state.
//
// If ctx ends while Read waits between frames, Read returns ctx.Err() and
// the connection stays usable: the next Read continues the same message. If
// ctx ends in the middle of a frame, the connection fails, because the rest
// of that frame can no longer be found; so does a context that ends in the
// middle of a compressed message, whose decompressor cannot be resumed.
func (c *Conn) Read(ctx context.Context) (MessageType, []byte, error) {
	if err := c.lock(ctx, &c.readLock); err != nil {
		return 0, nil, err
	}
	defer c.readLock.unlock()
	if err := c.stickyErr(); err != nil {
		return 0, nil, err
	}
	done := c.watchRead(ctx)
	defer done()

	if !c.readResume {
		if c.msgBuf != nil {
			putMsgBuf(c.msgBuf)
			c.msgBuf = nil
		}
		c.reader = nil
		if err := c.beginMessage(); err != nil {
			return 0, nil, c.readFailed(ctx, err)
		}
		c.msgBuf = getMsgBuf(int(min(c.p.payloadLeft(), 64<<10)))
		c.readResume = true
	}
	for {
		b := *c.msgBuf
		if len(b) == cap(b) {
			hint := int64(64 << 10)
			if !c.p.compressed {
				hint = min(c.p.payloadLeft(), 1<<20)
			}
			// A message holds at most the limit, and an inflated one the
			// byte past it that shows the limit broken: no more room.
			most := 0
			if l := c.limit.Load(); l < math.MaxInt {
				most = int(l) + 1
				hint = min(hint, int64(most-len(b)))
			}
			c.msgBuf = growMsgBuf(c.msgBuf, int(max(hint, 1)), most)
			b = *c.msgBuf
		}
		n, eom, err := c.readData(b[len(b):cap(b)])
		*c.msgBuf = b[:len(b)+n]
		if err != nil {
			return 0, nil, c.readFailed(ctx, err)
		}
		if eom {
			c.readResume = false
			return c.p.msgType, *c.msgBuf, nil
		}
	}
}

// Reader waits for the next data message and returns its type and a reader
// of its payload, for messages too large to hold in memory. The reader
// returns io.EOF at the end of the message. Calling Read or Reader again
// before the end discards the rest of the message.
//
// ctx bounds the wait and every Read of the returned reader. As with Read,
// a context that ends between frames leaves the connection usable, and one
// that ends in the middle of a frame (or of a compressed message) fails it.
func (c *Conn) Reader(ctx context.Context) (MessageType, io.Reader, error) {
	if err := c.lock(ctx, &c.readLock); err != nil {
		return 0, nil, err
	}
	defer c.readLock.unlock()
	if err := c.stickyErr(); err != nil {
		return 0, nil, err
	}
	done := c.watchRead(ctx)
	defer done()

	c.readResume = false
	if c.msgBuf != nil {
		putMsgBuf(c.msgBuf)
		c.msgBuf = nil
	}
	if err := c.beginMessage(); err != nil {
		return 0, nil, c.readFailed(ctx, err)
	}
	r := &messageReader{c: c, ctx: ctx}
	c.reader = r
	return c.p.msgType, r, nil
}

// messageReader streams the payload of one message.
type messageReader struct {
	c   *Conn
	ctx context.Context
	eof bool
}

// Read reads payload bytes of the message.
func (r *messageReader) Read(p []byte) (int, error) {
	if r.eof {
		return 0, io.EOF
	}
	c := r.c
	if err := c.lock(r.ctx, &c.readLock); err != nil {
		return 0, err
	}
	defer c.readLock.unlock()
	if c.reader != r {
		return 0, errStaleReader
	}
	if err := c.stickyErr(); err != nil {
		return 0, err
	}
	done := c.watchRead(r.ctx)
	defer done()
	if len(p) == 0 {
		return 0, nil
	}
	n, eom, err := c.readData(p)
	if err != nil {
		return n, c.readFailed(r.ctx, err)
	}
	if eom {
		r.eof = true
		c.reader = nil
		if n == 0 {
			return 0, io.EOF
		}
	}
	return n, nil
}

// beginMessage finishes the current message if a Reader abandoned it, and
// reads up to the first data frame of the next one.
func (c *Conn) beginMessage() error {
	if c.p.inMessage || c.inf != nil {
		if err := c.discardMessage(); err != nil {
			return err
		}
	}
	if err := c.readFrameStart(); err != nil {
		return err
	}
	if c.p.compressed {
		c.startInflate()
	}
	return nil
}

// readData reads the next bytes of the current message's payload into p,
// inflated when the message is compressed, crossing frame boundaries and
// handling the control frames between them. eom reports that the message
// ended with these bytes.
func (c *Conn) readData(p []byte) (n int, eom bool, err error) {
	if c.inf != nil {
		return c.readInflated(p)
	}
	for {
		if c.p.inFrame {
			if len(p) == 0 {
				return 0, false, nil
			}
			n, err := c.readPayload(p)
			return n, err == nil && !c.p.inMessage, err
		}
		if !c.p.inMessage {
			return 0, true, nil
		}
		if err := c.readFrameStart(); err != nil {
			return 0, false, err
		}
	}
}

// readHeader reads one frame header with the incremental parser, taking
// whatever bytes the read buffer holds and refilling it when empty.
func (c *Conn) readHeader() (frameHeader, error) {
	for {
		if c.br.Buffered() == 0 {
			if _, err := c.br.Peek(1); err != nil {
				return frameHeader{}, err
			}
		}
		b, _ := c.br.Peek(c.br.Buffered())
		n, h, done, err := c.p.parseHeader(b, c.limit.Load())
		c.br.Discard(n)
		if err != nil {
			return h, err
		}
		if done {
			return h, nil
		}
	}
}

// readFrameStart reads frames until the header of a data frame, handling
// control frames on the way.
func (c *Conn) readFrameStart() error {
	for {
		h, err := c.readHeader()
		if err != nil {
			return err
		}
		if !h.op.isControl() {
			return nil
		}
		if err := c.handleControl(h); err != nil {
			return err
		}
	}
}

// readPayload reads up to len(p) bytes of the current frame's payload,
// unmasked and validated.
func (c *Conn) readPayload(p []byte) (int, error) {
	if left := c.p.payloadLeft(); int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.br.Read(p)
	if n > 0 {
		if err := c.p.parsePayload(p[:n]); err != nil {
			return 0, err
		}
		return n, nil
	}
	return 0, err
}

// discardMessage reads and drops the rest of the current message. A
// compressed message is still inflated, so that the window shared with the
// peer stays right for the messages after it.
func (c *Conn) discardMessage() error {
	scratch := getWriteBuf()
	defer putWriteBuf(scratch)
	for {
		_, eom, err := c.readData(*scratch)
		if err != nil {
			return err
		}
		if eom {
			return nil
		}
	}
}

// handleControl reads the payload of a control frame and acts on it.
func (c *Conn) handleControl(h frameHeader) error {
	payload := c.ctrl[:h.length]
	c.inControl = true // a half-read control frame counts as a half-read frame
	if _, err := io.ReadFull(c.br, payload); err != nil {
		return err
	}
	c.inControl = false
	unmaskControl(h, payload)
	switch h.op {
	case opPing:
		if c.opts.OnPing != nil {
			c.opts.OnPing(payload)
		}
		c.queuePong(payload)
	case opPong:
		if c.opts.OnPong != nil {
			c.opts.OnPong(payload)
		}
		c.gotPong(payload)
	case opClose:
		return c.handleClose(payload)
	}
	return nil
}

// parseClosePayload decodes and checks a received close frame (§5.5.1, §7.4).
func parseClosePayload(p []byte) (*CloseError, error) {
	switch {
	case len(p) == 0:
		return &CloseError{Code: StatusNoStatusRcvd}, nil
	case len(p) == 1:
		return nil, protocolErrorf(StatusProtocolError, "close frame with a 1-byte payload")
	}
	code := StatusCode(binary.BigEndian.Uint16(p))
	if !code.Sendable() {
		return nil, protocolErrorf(StatusProtocolError, "close frame with invalid status code %d", int(code))
	}
	if !utf8.Valid(p[2:]) {
		return nil, protocolErrorf(StatusInvalidFramePayloadData, "close reason is not valid UTF-8")
	}
	return &CloseError{Code: code, Reason: string(p[2:])}, nil
}

// handleClose answers the peer's close frame and ends the connection
// (RFC 6455 §5.5.1, §7.1.1): it echoes the status code unless we sent a
// close first, then the server closes the transport at once and the client
// waits, bounded, for the server to close it.
func (c *Conn) handleClose(p []byte) error {
	ce, perr := parseClosePayload(p)
	if perr != nil {
		return perr
	}
	c.closeMu.Lock()
	c.closeRecvd = true
	reply := !c.closeSent
	c.closeSent = true
	if c.err == nil {
		c.err = ce
		c.ended.Store(true)
	}
	err := c.err
	c.closeMu.Unlock()
	c.state.CompareAndSwap(int32(StateOpen), int32(StateClosing))

	// One deadline for the rest of the handshake: Close's, if it started it.
	deadline := time.Now().Add(c.opts.closeTimeout())
	c.closeMu.Lock()
	if !c.closeBy.IsZero() && c.closeBy.Before(deadline) {
		deadline = c.closeBy
	}
	c.closeMu.Unlock()
	if reply {
		var buf [2]byte
		echo := buf[:0]
		if ce.Code != StatusNoStatusRcvd {
			echo = binary.BigEndian.AppendUint16(echo, uint16(ce.Code))
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		c.writeControl(ctx, opClose, echo)
		cancel()
	}
	if c.role == RoleClient {
		c.awaitEOF(deadline)
	}
	c.closeTransport()
	return err
}

// awaitEOF reads and drops bytes until the peer closes the transport, at
// the latest until deadline. A client calls it so that the server closes TCP first and
// the client's port does not linger in TIME_WAIT (RFC 6455 §7.1.1).
func (c *Conn) awaitEOF(deadline time.Time) {
	if c.readDL != nil {
		c.dlMu.Lock()
		c.readGen++
		c.readDL(deadline)
		c.readDLSet = true
		c.dlMu.Unlock()
	}
	c.br.Discard(c.br.Buffered())
	io.CopyN(io.Discard, c.br, 1<<20)
}

// readFailed turns an error met while reading into what the caller sees,
// and ends the connection when the error demands it.
func (c *Conn) readFailed(ctx context.Context, err error) error {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		c.fail(pe)
		return c.stickyErr()
	}
	if se := c.stickyErr(); se != nil {
		return se
	}
	if cerr := ctxErr(ctx); cerr != nil && isTimeout(err) {
		if c.p.betweenFrames() && !c.inControl && c.inf == nil {
			return cerr // between frames: the connection stays usable
		}
		c.setErr(fmt.Errorf("websocket: read stopped in the middle of a frame: %w", cerr))
		c.closeTransport()
		return c.stickyErr()
	}
	reason := "transport closed without a close frame"
	if !errors.Is(err, io.EOF) {
		reason += ": " + err.Error()
	}
	c.setErr(&CloseError{Code: StatusAbnormalClosure, Reason: reason})
	c.closeTransport()
	return c.stickyErr()
}

// ctxErr returns ctx.Err(), or context.DeadlineExceeded when ctx's deadline
// has passed but its timer has not fired yet: the transport deadline set
// from ctx.Deadline can wake a blocked read or write a moment before ctx
// itself ends, and that timeout must still be seen as ctx's doing.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
