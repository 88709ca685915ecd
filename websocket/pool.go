package websocket

import (
	"bufio"
	"sync"
)

// Buffer sizes and pools. A Conn borrows its write buffer only while it
// writes and its message buffer only while the application holds a message,
// so an idle connection holds just its read buffer (RFC 6455 leaves buffering
// to implementations; this keeps idle memory low).
const (
	readBufSize  = 4096
	writeBufSize = 4096
)

var writeBufPool = sync.Pool{New: func() any {
	b := make([]byte, writeBufSize)
	return &b
}}

// getWriteBuf returns a write buffer of writeBufSize bytes.
func getWriteBuf() *[]byte { return writeBufPool.Get().(*[]byte) }

func putWriteBuf(b *[]byte) {
	if cap(*b) >= writeBufSize {
		*b = (*b)[:writeBufSize]
		writeBufPool.Put(b)
	}
}

// donateWriter hands the buffer of a bufio.Writer that is no longer used
// (the one net/http gives at hijack) to the write buffer pool, so the
// memory net/http allocated serves our writes instead of being dropped.
func donateWriter(bw *bufio.Writer) {
	if bw == nil || bw.Buffered() != 0 || bw.Size() < writeBufSize {
		return
	}
	b := bw.AvailableBuffer()[:writeBufSize]
	putWriteBuf(&b)
}

// maskBufSize is the size of the buffers a client masks large frames
// through, so a 1 MiB message takes 16 writes rather than 256.
const maskBufSize = 64 << 10

var maskBufPool = sync.Pool{New: func() any {
	b := make([]byte, maskBufSize)
	return &b
}}

func getMaskBuf() *[]byte  { return maskBufPool.Get().(*[]byte) }
func putMaskBuf(b *[]byte) { maskBufPool.Put(b) }

// Message buffers come in size classes; larger ones are not pooled so a
// single huge message does not pin its memory in the pool.
var msgClasses = [...]int{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20}

var msgPools [len(msgClasses)]sync.Pool

// getMsgBuf returns an empty buffer with room for at least n bytes.
func getMsgBuf(n int) *[]byte {
	for i, size := range msgClasses {
		if n <= size {
			if b, ok := msgPools[i].Get().(*[]byte); ok {
				*b = (*b)[:0]
				return b
			}
			b := make([]byte, 0, size)
			return &b
		}
	}
	b := make([]byte, 0, n)
	return &b
}

// putMsgBuf returns b to its size class, if it has one.
func putMsgBuf(b *[]byte) {
	c := cap(*b)
	for i := len(msgClasses) - 1; i >= 0; i-- {
		if c == msgClasses[i] {
			msgPools[i].Put(b)
			return
		}
	}
}

// growMsgBuf returns a buffer holding b's bytes with room for n more,
// recycling b when it moved. It doubles b, but when most (if positive)
// holds what is needed it never grows past most, and goes straight to most
// once doubling again would pass it: a message that fills its bound is
// not copied one last time into a buffer twice that size.
func growMsgBuf(b *[]byte, n, most int) *[]byte {
	need := len(*b) + n
	if need <= cap(*b) {
		return b
	}
	size := max(2*cap(*b), need)
	if most >= need && 2*size > most {
		size = most
	}
	nb := getMsgBuf(size)
	*nb = append(*nb, *b...)
	putMsgBuf(b)
	return nb
}
