package websocket

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Role says which end of the connection a Conn is; it decides the masking
// rules (RFC 6455 §5.1) and who closes the transport first (§7.1.1).
type Role int

// The two roles.
const (
	// RoleServer is the accepting end: it expects masked frames and sends
	// unmasked ones, and closes TCP first after the closing handshake.
	RoleServer Role = iota
	// RoleClient is the dialing end: it masks every frame it sends and
	// waits for the server to close TCP.
	RoleClient
)

// Conn is a WebSocket connection. One goroutine may read (Read, Reader)
// while any number of goroutines write (Write, Writer, Ping, Close):
// writes are serialized inside the Conn, and reads never wait for writes.
// See the package documentation for the full rules.
type Conn struct {
	rwc      io.ReadWriteCloser
	netConn  net.Conn              // rwc as a net.Conn, when it is one (for vectored writes)
	readDL   func(time.Time) error // the transport's SetReadDeadline, or nil
	writeDL  func(time.Time) error // the transport's SetWriteDeadline, or nil
	role     Role
	subproto string
	opts     Options
	limit    atomic.Int64
	state    atomic.Int32

	// Read half, owned by whoever holds readLock.
	readLock   connLock
	br         *bufio.Reader
	p          frameParser
	inf        *inflater   // borrowed while a compressed message is read
	recv       recvDeflate // permessage-deflate receiving state
	send       sendDeflate // permessage-deflate sending state, guarded by msgLock
	inControl  bool        // a control frame's payload is being read
	msgBuf     *[]byte     // pooled buffer of the last message returned by Read
	readResume bool        // Read was interrupted between frames; its message continues
	reader     *messageReader
	ctrl       [maxControlPayload]byte
	readGen    uint64 // guarded by dlMu; stops stale context callbacks
	readDLSet  bool

	// Write half. msgLock serializes messages; frameLock serializes frames,
	// so control frames may go out between the fragments of a message.
	msgLock    connLock
	frameLock  connLock
	hdr        [maxHeaderSize]byte
	wbuf       *[]byte // the write buffer, borrowed from writeBufPool while writing
	vec        [2][]byte
	bufs       net.Buffers
	batch      net.Buffers // frames of one WritePrepared batch, reused
	writeGen   uint64      // guarded by dlMu
	writeDLSet bool

	dlMu sync.Mutex // guards readGen and writeGen

	// A pong owed to the peer, sent by whoever next holds frameLock.
	pongMu      sync.Mutex
	pongPending atomic.Bool
	pongBuf     [maxControlPayload]byte
	pongLen     int

	// Closing.
	closeMu    sync.Mutex
	closeSent  bool
	closeRecvd bool
	closeBy    time.Time     // when Close must be done, once it started
	err        error         // the sticky error, set once
	ended      atomic.Bool   // err is set (so is closeSent, or it no longer matters); read without closeMu
	closed     chan struct{} // closed when the transport is closed
	closeOnce  sync.Once
	lingering  atomic.Bool // a failed connection is sending its close frame

	// Pings waiting for their pong, and keepalive.
	pingMu    sync.Mutex
	pings     map[uint64]chan struct{}
	pingSeq   uint64
	keepalive *keepalive
}

// NewConn makes a Conn over an established transport on which the opening
// handshake is already done: a hijacked HTTP/1.1 connection, an HTTP/2 or
// HTTP/3 stream, or an in-memory pipe in tests. If rwc has SetReadDeadline
// and SetWriteDeadline methods, contexts and timeouts use them; otherwise a
// blocking call can only be ended by closing the Conn. br, when not nil, is
// a buffered reader over rwc that may already hold the first bytes (such as
// the one net/http hands over at hijack); it is used as the Conn's read
// buffer instead of a new one.
func NewConn(rwc io.ReadWriteCloser, br *bufio.Reader, role Role, subprotocol string, opts *Options) *Conn {
	c := &Conn{
		rwc:      rwc,
		role:     role,
		subproto: subprotocol,
		closed:   make(chan struct{}),
	}
	if opts != nil {
		c.opts = *opts
	}
	c.limit.Store(c.opts.readLimit())
	if nc, ok := rwc.(net.Conn); ok {
		c.netConn = nc
	}
	if d, ok := rwc.(interface{ SetReadDeadline(time.Time) error }); ok {
		c.readDL = d.SetReadDeadline
	}
	if d, ok := rwc.(interface{ SetWriteDeadline(time.Time) error }); ok {
		c.writeDL = d.SetWriteDeadline
	}
	if br == nil {
		br = bufio.NewReaderSize(rwc, readBufSize)
	}
	c.br = br
	c.p.dec.expectMasked = role == RoleServer
	c.p.checkUTF8 = !c.opts.DisableUTF8Check
	c.state.Store(int32(StateOpen))
	if c.opts.PingInterval > 0 {
		c.startKeepalive()
	}
	return c
}

// Subprotocol returns the subprotocol chosen in the handshake, or "".
func (c *Conn) Subprotocol() string { return c.subproto }

// State returns where the connection is in its life (W3C readyState
// values). A Conn is Open when Accept, Dial or NewConn returns it;
// StateConnecting exists for code that tracks a connection before it has
// one, as the browser's readyState does.
func (c *Conn) State() State { return State(c.state.Load()) }

// SetReadLimit changes the largest message the connection accepts, from
// the next frame on. A negative n means no limit.
func (c *Conn) SetReadLimit(n int64) {
	if n < 0 {
		n = 1<<63 - 1
	}
	c.limit.Store(n)
}

// stickyErr returns the error every call reports once the connection ended.
// While the connection is open it costs one atomic load.
func (c *Conn) stickyErr() error {
	if !c.ended.Load() {
		return nil
	}
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	return c.err
}

// setErr records err as the sticky error unless one is already set, and
// returns the sticky error.
func (c *Conn) setErr(err error) error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.err == nil {
		c.err = err
		c.ended.Store(true)
	}
	return c.err
}

// closeTransport closes the transport once and marks the Conn closed.
func (c *Conn) closeTransport() {
	c.closeOnce.Do(func() {
		c.setErr(ErrClosed)
		c.state.Store(int32(StateClosed))
		c.rwc.Close()
		c.stopKeepalive()
		close(c.closed)
	})
}

// lock acquires one of the Conn's locks, giving up when ctx ends or the
// Conn closes.
func (c *Conn) lock(ctx context.Context, l *connLock) error {
	if l.tryLock() {
		return nil
	}
	err := l.lock(ctx, c.closed)
	if err == errLockClosed {
		return c.stickyErr()
	}
	return err
}

// aLongTimeAgo is a deadline in the past, to wake a blocked read or write.
var aLongTimeAgo = time.Unix(1, 0)

// watchRead applies ctx to the transport's read side and returns a function
// that undoes it. With context.Background it costs nothing.
func (c *Conn) watchRead(ctx context.Context) (done func() bool) {
	return c.watch(ctx, c.readDL, &c.readGen, &c.readDLSet)
}

// watchWrite applies ctx to the transport's write side, like watchRead.
func (c *Conn) watchWrite(ctx context.Context) (done func() bool) {
	return c.watch(ctx, c.writeDL, &c.writeGen, &c.writeDLSet)
}

func nop() bool { return false }

func (c *Conn) watch(ctx context.Context, setDL func(time.Time) error, gen *uint64, isSet *bool) func() bool {
	if setDL == nil {
		return nop
	}
	if ctx.Done() == nil { // and so no deadline either
		if *isSet { // an earlier call left a deadline behind
			c.dlMu.Lock()
			*gen++
			setDL(time.Time{})
			*isSet = false
			c.dlMu.Unlock()
		}
		return nop
	}
	deadline, hasDeadline := ctx.Deadline()
	c.dlMu.Lock()
	*gen++
	my := *gen
	if hasDeadline {
		setDL(deadline)
	} else {
		setDL(time.Time{})
	}
	*isSet = true
	c.dlMu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.dlMu.Lock()
		if *gen == my {
			setDL(aLongTimeAgo)
		}
		c.dlMu.Unlock()
	})
	return stop
}
