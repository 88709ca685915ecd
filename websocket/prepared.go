package websocket

import (
	"context"
	"fmt"
	"sync"
)

// PreparedMessage is a message framed once, and compressed once per
// compression setting, then written to many connections. A server that
// sends the same message to thousands of subscribers frames and compresses
// it once instead of once per subscriber.
//
// Frames are shared only between server connections (a client must mask
// every frame with a fresh key, so WritePrepared on a client falls back to
// Write). A compressed frame is built without reference to earlier
// messages, so it is valid whatever context each connection keeps; on a
// connection with context takeover the message is then added to its
// compressor's history, as the peer adds it to its window. A frame
// compressed for a window of 2^w bytes serves every connection that agreed
// to that window and level.
//
// A PreparedMessage is safe for concurrent use.
type PreparedMessage struct {
	typ   MessageType
	data  []byte
	plain []byte // the whole uncompressed server frame

	mu       sync.Mutex
	deflated map[preparedKey][]byte // whole compressed server frames
}

type preparedKey struct{ windowBits, level int }

// NewPreparedMessage frames a message of type typ with payload data (which
// it copies) for WritePrepared.
func NewPreparedMessage(typ MessageType, data []byte) (*PreparedMessage, error) {
	if typ != MessageText && typ != MessageBinary {
		return nil, fmt.Errorf("websocket: cannot prepare a message of type %v", typ)
	}
	h := frameHeader{fin: true, op: opcode(typ), length: int64(len(data))}
	plain := appendHeader(make([]byte, 0, maxHeaderSize+len(data)), h)
	plain = append(plain, data...)
	return &PreparedMessage{typ: typ, data: plain[len(plain)-len(data):], plain: plain}, nil
}

// compressedFrame returns the compressed frame for a window and level,
// building it on first use.
func (pm *PreparedMessage) compressedFrame(windowBits, level int) []byte {
	key := preparedKey{windowBits, level}
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if f, ok := pm.deflated[key]; ok {
		return f
	}
	s := sendDeflate{windowBits: windowBits, level: level}
	cb := s.compress(pm.data)
	s.done()
	h := frameHeader{fin: true, rsv: rsv1Bit, op: opcode(pm.typ), length: int64(len(*cb))}
	f := appendHeader(make([]byte, 0, maxHeaderSize+len(*cb)), h)
	f = append(f, *cb...)
	putCompressBuf(cb)
	if pm.deflated == nil {
		pm.deflated = make(map[preparedKey][]byte)
	}
	pm.deflated[key] = f
	return f
}

// WritePrepared writes a prepared message, with the same guarantees and
// context rules as Write.
func (c *Conn) WritePrepared(ctx context.Context, pm *PreparedMessage) error {
	if c.role == RoleClient {
		return c.Write(ctx, pm.typ, pm.data)
	}
	if err := c.lock(ctx, c.msgLock); err != nil {
		return err
	}
	defer unlock(c.msgLock)
	if err := c.lock(ctx, c.frameLock); err != nil {
		return err
	}
	defer c.unlockFrame()
	if err := c.dataAllowed(); err != nil {
		return err
	}
	frame := pm.plain
	compressed := c.send.on && len(pm.data) >= c.send.threshold
	if compressed {
		frame = pm.compressedFrame(c.send.windowBits, c.send.level)
	}
	done := c.watchWrite(ctx)
	defer done()
	if _, err := c.rwc.Write(frame); err != nil {
		return c.writeFailed(ctx, err)
	}
	if compressed && c.send.takeover {
		c.send.enc.AddHistory(pm.data)
	}
	return nil
}
