package websocket

import (
	"context"
	"fmt"
	"net"
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
// It pays on connections without server context takeover. On one with
// takeover the frame, compressed without that connection's history, is
// larger than what Write would send, and the message must still enter the
// connection's history, so a fan-out server should negotiate
// ServerNoContextTakeover (see the package documentation).
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

// WritePrepared writes prepared messages, in order, with the same
// guarantees and context rules as Write. Several messages go out in one
// vectored write (writev) when the transport is a TCP connection, so a
// server that drains a queue of pushes pays one system call for the lot,
// not one per message. On a client it writes each message with Write.
func (c *Conn) WritePrepared(ctx context.Context, pms ...*PreparedMessage) error {
	if c.role == RoleClient {
		for _, pm := range pms {
			if err := c.Write(ctx, pm.typ, pm.data); err != nil {
				return err
			}
		}
		return nil
	}
	if len(pms) == 0 {
		return nil
	}
	if err := c.lock(ctx, &c.msgLock); err != nil {
		return err
	}
	defer c.msgLock.unlock()
	if err := c.lock(ctx, &c.frameLock); err != nil {
		return err
	}
	defer c.unlockFrame()
	if err := c.dataAllowed(); err != nil {
		return err
	}
	done := c.watchWrite(ctx)
	defer done()
	if len(pms) == 1 {
		if _, err := c.rwc.Write(c.preparedFrame(pms[0])); err != nil {
			return c.writeFailed(ctx, err)
		}
	} else if err := c.writeFrames(pms); err != nil {
		return c.writeFailed(ctx, err)
	}
	if c.send.on && c.send.takeover {
		for _, pm := range pms {
			if len(pm.data) >= c.send.threshold {
				c.send.enc.AddHistory(pm.data)
			}
		}
	}
	return nil
}

// preparedFrame returns the frame this connection sends for pm: compressed
// for its window and level when compression is on and pm reaches the
// threshold.
func (c *Conn) preparedFrame(pm *PreparedMessage) []byte {
	if c.send.on && len(pm.data) >= c.send.threshold {
		return pm.compressedFrame(c.send.windowBits, c.send.level)
	}
	return pm.plain
}

// writeFrames writes the frames of several prepared messages: one vectored
// write on a TCP connection, otherwise one write per frame. The caller
// holds frameLock.
func (c *Conn) writeFrames(pms []*PreparedMessage) error {
	tc, ok := c.netConn.(*net.TCPConn)
	if !ok {
		for _, pm := range pms {
			if _, err := c.rwc.Write(c.preparedFrame(pm)); err != nil {
				return err
			}
		}
		return nil
	}
	batch := c.batch[:0]
	for _, pm := range pms {
		batch = append(batch, c.preparedFrame(pm))
	}
	c.batch = batch
	bufs := batch // WriteTo consumes its receiver; keep c.batch whole
	_, err := bufs.WriteTo(tc)
	clear(c.batch) // drop the frames: they belong to their messages
	return err
}
