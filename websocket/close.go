package websocket

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// maxCloseReason is the longest close reason: a control frame carries at
// most 125 bytes, two of which are the status code (RFC 6455 §5.5).
const maxCloseReason = maxControlPayload - 2

// closePayload encodes and checks a close frame's payload. Only codes that
// may be sent are accepted; StatusNoStatusRcvd means "send no code at all"
// and then the reason must be empty.
func closePayload(code StatusCode, reason string) ([]byte, error) {
	if code == StatusNoStatusRcvd {
		if reason != "" {
			return nil, errors.New("websocket: a close frame without a status code cannot carry a reason")
		}
		return nil, nil
	}
	if !code.Sendable() {
		return nil, fmt.Errorf("websocket: status code %d may not be sent in a close frame", int(code))
	}
	if len(reason) > maxCloseReason {
		return nil, fmt.Errorf("websocket: close reason of %d bytes is longer than %d", len(reason), maxCloseReason)
	}
	if !utf8.ValidString(reason) {
		return nil, errors.New("websocket: close reason is not valid UTF-8")
	}
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	return append(b, reason...), nil
}

// Close runs the closing handshake (RFC 6455 §7): it sends a close frame
// with code and reason, waits for the peer's close frame, and closes the
// transport (the server at once, the client after the server did, §7.1.1).
// It never takes longer than Options.CloseTimeout (default 5 s), even while
// another goroutine is blocked in Read or Write: on timeout the transport is
// closed anyway. While another goroutine reads, that reader sees the peer's
// answer; otherwise Close reads and drops data until it.
//
// code must be one that may be sent (see StatusCode.Sendable), or
// StatusNoStatusRcvd to send a close frame without a code; reason must be
// valid UTF-8 of at most 123 bytes. Close returns nil when the peer answered;
// if the connection had already ended, it returns the sticky error.
func (c *Conn) Close(code StatusCode, reason string) error {
	payload, err := closePayload(code, reason)
	if err != nil {
		return err
	}
	c.closeMu.Lock()
	if c.closeSent || c.err != nil {
		err := c.err
		c.closeMu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		return err
	}
	c.closeSent = true
	c.err = fmt.Errorf("%w (sent close %v)", ErrClosed, code)
	c.ended.Store(true)
	c.closeBy = time.Now().Add(c.opts.closeTimeout())
	deadline := c.closeBy
	c.closeMu.Unlock()
	c.state.CompareAndSwap(int32(StateOpen), int32(StateClosing))

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := c.writeControl(ctx, opClose, payload); err != nil {
		c.closeTransport()
		return err
	}
	// Wait for the peer's close frame: read it ourselves when no one else
	// is reading, or let the reader that is blocked now see it.
	if c.readLock.lock(ctx, c.closed) == nil {
		c.awaitPeerClose(ctx)
		c.readLock.unlock()
	}
	select {
	case <-c.closed:
	case <-ctx.Done():
	}
	c.closeTransport()
	c.closeMu.Lock()
	answered := c.closeRecvd
	c.closeMu.Unlock()
	if !answered {
		return fmt.Errorf("websocket: peer did not answer the close frame within %v", c.opts.closeTimeout())
	}
	return nil
}

// awaitPeerClose reads and drops frames until the peer's close frame has
// been handled (which closes the transport) or ctx ends. The caller holds
// readLock.
func (c *Conn) awaitPeerClose(ctx context.Context) {
	done := c.watchRead(ctx)
	defer done()
	scratch := getWriteBuf()
	defer putWriteBuf(scratch)
	for {
		select {
		case <-c.closed:
			return
		default:
		}
		var err error
		if c.p.inFrame {
			_, err = c.readPayload(*scratch)
		} else {
			c.p.dropMessage() // dropped data needs no UTF-8 check
			err = c.readFrameStart()
		}
		if err != nil {
			c.closeTransport()
			return
		}
	}
}

// CloseNow closes the transport at once, without a closing handshake. Use
// it when the peer is gone or misbehaving; otherwise prefer Close.
//
// After this side failed the connection (the peer broke the protocol), the
// close frame that says why may still be on its way out; CloseNow then lets
// it go and the transport closes within a bounded time on its own.
func (c *Conn) CloseNow() error {
	c.setErr(ErrClosed)
	if c.lingering.Load() {
		return nil
	}
	c.closeTransport()
	return nil
}

// fail fails the connection (RFC 6455 §7.1.7): it sends a close frame with
// the error's code, then closes the transport. It does not wait for the
// peer: the close frame goes out and the transport is shut down in the
// background, so the caller returns at once. To keep the close frame from
// being lost to a TCP reset, the write side is shut first and unread input
// is drained briefly before the final close ("lingering close").
func (c *Conn) fail(pe *ProtocolError) {
	c.closeMu.Lock()
	if c.err != nil {
		c.closeMu.Unlock()
		c.closeTransport()
		return
	}
	c.err = pe
	c.ended.Store(true)
	send := !c.closeSent
	c.closeSent = true
	c.closeMu.Unlock()
	c.state.CompareAndSwap(int32(StateOpen), int32(StateClosing))
	c.lingering.Store(true)
	go c.lingerClose(pe.Code, pe.Reason, send)
}

// lingerClose sends a close frame (when send is set), shuts the write side,
// drains input for a short while, and closes the transport.
func (c *Conn) lingerClose(code StatusCode, reason string, send bool) {
	timeout := c.opts.closeTimeout()
	if send {
		if len(reason) > maxCloseReason {
			reason = truncateUTF8(reason, maxCloseReason)
		}
		payload, _ := closePayload(code, reason)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		c.writeControl(ctx, opClose, payload)
		cancel()
	}
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok && c.readDL != nil {
		cw.CloseWrite()
		c.dlMu.Lock()
		c.readGen++
		c.readDL(time.Now().Add(min(timeout, time.Second)))
		c.dlMu.Unlock()
		var drain [512]byte
		for total := 0; total < 1<<20; {
			n, err := c.rwc.Read(drain[:])
			total += n
			if err != nil {
				break
			}
		}
	}
	c.closeTransport()
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
