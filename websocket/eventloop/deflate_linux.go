//go:build linux

package eventloop

import (
	"errors"

	"github.com/duplex-ws/duplex/websocket"
)

// permessage-deflate (RFC 7692). websocket.AnswerUpgrade negotiates it
// without context takeover either way, so a connection keeps no
// compression state between messages: an idle connection costs the same
// with compression as without. A compressed message is gathered whole,
// then inflated into a pooled buffer with a decompressor borrowed for it
// (ServerParser.Inflate, which applies the read limit to the inflated size
// and checks UTF-8); a Write of at least the threshold is compressed with a
// pooled compressor (websocket.AppendCompressed) and sent with RSV1 set.
// Broadcast sends its frame uncompressed to every connection, which RFC
// 7692 allows (a message with RSV1 clear is not compressed), so that one
// frame still serves them all.

// rsv1 marks the first frame of a compressed message (RFC 7692 §6).
const rsv1 = 0x40

// deflateSettings are the server's compression settings, fixed at Serve.
type deflateSettings struct {
	min   int // the least message size compressed
	level int // 0 for websocket.DefaultCompressionLevel
}

// newDeflateSettings checks opts' compression settings and returns them.
func newDeflateSettings(opts *websocket.CompressionOptions) (deflateSettings, error) {
	if err := opts.Validate(); err != nil {
		return deflateSettings{}, err
	}
	d := deflateSettings{min: opts.Threshold, level: opts.Level}
	switch {
	case d.min == 0:
		d.min = websocket.DefaultCompressionThreshold
	case d.min < 0:
		d.min = 0
	}
	return d, nil
}

// deliver hands a whole message to OnMessage, inflated first when it came
// compressed. It reports false when the message broke the protocol (bad
// DEFLATE data, invalid UTF-8, past the read limit): the connection was
// then failed with the error's close code.
func (l *loop) deliver(c *Conn, typ websocket.MessageType, p []byte, compressed bool) bool {
	if !compressed {
		l.srv.s.OnMessage(c, typ, p)
		return true
	}
	b := getBuf(min(4*len(p)+64, maxBufHint))
	out, err := c.p.Inflate((*b)[:0], p, typ)
	if err != nil {
		putBuf(b)
		var pe *websocket.ProtocolError
		if !errors.As(err, &pe) {
			pe = &websocket.ProtocolError{Code: websocket.StatusInternalError, Reason: err.Error()}
		}
		l.fail(c, pe)
		return false
	}
	*b = out // keep what the message grew it to, for the pool
	l.srv.s.OnMessage(c, typ, out)
	putBuf(b)
	return true
}

// writeCompressed sends p compressed with the connection's agreed window,
// as one frame with RSV1 set; op is its data opcode.
func (c *Conn) writeCompressed(op byte, p []byte, bits int) error {
	b := getBuf(len(p) + len(p)/2048 + 64) // the encoder's worst case: it never grows
	z := websocket.AppendCompressed((*b)[:0], p, bits, c.loop.srv.deflate.level)
	c.mu.Lock()
	err := c.writeFrameOpen(op|rsv1, z)
	c.mu.Unlock()
	*b = z
	putBuf(b) // writeFrame copied what the socket did not take
	return err
}
