package eventloop

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/duplex-ws/duplex/websocket"
)

// Defaults used when a Server field is zero.
const (
	// DefaultMaxHeaderBytes bounds a handshake request when
	// Server.MaxHeaderBytes is zero. A WebSocket request is a few hundred
	// bytes; a larger one is refused with 431.
	DefaultMaxHeaderBytes = 8 << 10
	// DefaultWriteQueueLimit bounds the bytes queued for one connection when
	// Server.WriteQueueLimit is zero.
	DefaultWriteQueueLimit = 4 << 20
)

var (
	// ErrUnsupported is returned by Serve on systems without epoll.
	ErrUnsupported = errors.New("eventloop: needs Linux (epoll)")
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("eventloop: server closed")
	// ErrWriteQueueFull is returned by a Write that would pass
	// Server.WriteQueueLimit, and reported to OnClose for the connection,
	// which is failed with close code 1008: its peer does not read fast
	// enough.
	ErrWriteQueueFull = errors.New("eventloop: write queue full")
)

// Server serves WebSocket connections from epoll loops and reports them
// through its callbacks. Set its fields before Serve and do not change them
// afterwards. A Server serves one listener.
type Server struct {
	// OnOpen, when set, is called once the handshake succeeded, before any
	// message of the connection.
	OnOpen func(c *Conn)
	// OnMessage is called with each whole message. p is only valid during
	// the call (it is the loop's read buffer or a pooled one): copy it to
	// keep it. Write does not keep p, so echoing it is fine.
	OnMessage func(c *Conn, typ websocket.MessageType, p []byte)
	// OnClose, when set, is called once when an opened connection ends,
	// with why (see the package documentation). Write fails afterwards.
	OnClose func(c *Conn, err error)
	// OnHandshakeError, when set, is called for each refused handshake with
	// the peer's address and a *websocket.HandshakeError saying which check
	// failed and the status answered (for logs and metrics). A handshake
	// that times out or whose peer leaves is not reported.
	OnHandshakeError func(remote net.Addr, err error)

	// Options holds the handshake rules (Subprotocols, OriginPatterns,
	// CheckOrigin), HandshakeTimeout, and of Options: ReadLimit,
	// CloseTimeout, PingInterval and PingTimeout (keepalive, as
	// websocket.Conn does it; see the package documentation),
	// DisableUTF8Check, OnPing and OnPong (called on the loop goroutine),
	// and Compression (permessage-deflate, always without context
	// takeover; see the package documentation). Nil means the zero
	// AcceptOptions.
	Options *websocket.AcceptOptions

	// Loops is the number of epoll loops (goroutines); zero means one per
	// CPU (runtime.GOMAXPROCS).
	Loops int
	// MaxHeaderBytes bounds the handshake request (request line and
	// headers); zero means DefaultMaxHeaderBytes. A longer one gets 431.
	MaxHeaderBytes int
	// WriteQueueLimit bounds the bytes queued for one connection that its
	// socket has not taken yet; zero means DefaultWriteQueueLimit. See
	// ErrWriteQueueFull.
	WriteQueueLimit int
	// DisableIOURing makes the loops read and write each connection with
	// its own system calls instead of batching a round's reads and writes
	// through io_uring (see the package documentation, "System calls").
	// The batches are used by default when the kernel allows io_uring
	// (5.18 or later, not turned off by sysctl or seccomp); this is for
	// hosts whose policy forbids io_uring, and for comparing the two.
	DisableIOURing bool

	mu      sync.Mutex
	serving bool
	closing atomic.Bool
	impl    *serverImpl // the running server, set by Serve
}

// Subprotocol returns the subprotocol chosen in the handshake, or "".
func (c *Conn) Subprotocol() string { return c.subprotocol }

// Compression reports whether the handshake agreed permessage-deflate, so
// that an application can tell which peers get compressed messages (Write
// compresses those from CompressionOptions.Threshold up; see the package
// documentation) and, say, count them.
func (c *Conn) Compression() bool { return c.p.DeflateWindowBits() != 0 }

// Conn is one WebSocket connection of a Server. Write and Close may be
// called from any goroutine.
type Conn struct {
	fd       int32  // the socket; -1 once closed
	state    uint8  // a conn* state; guarded by mu
	flags    uint8  // flag* bits; guarded by mu
	sentCode uint16 // the code of the close frame this side sent
	loop     *loop
	mu       sync.Mutex
	out      *outQueue // bytes the socket has not taken yet; nil when none
	// deadline is when the current state times out, in unix nanoseconds
	// (0: never); for an open connection with keepalive, when its next
	// ping is due, or while one is out, its pong.
	deadline int64

	// Owned by the loop goroutine, but for what the handshake agreed
	// (subprotocol, and p's DeflateWindowBits): set before OnOpen and only
	// read after it, from any goroutine.
	p           websocket.ServerParser
	hs          *handshake // the request so far, while it spans reads
	msg         *[]byte    // the message so far, while it spans reads
	subprotocol string
}

// outQueue holds the bytes queued for a connection's socket, in order: a
// list of segments, each either a frame shared with other connections (a
// Broadcast's, never modified) or a piece of priv, the copies of this
// connection's own frames (Write, control frames, a handshake response).
// Queues are pooled: a connection holds one only while something waits.
type outQueue struct {
	segs     [][]byte // segs[head:] wait, segs[head] possibly cut by a short write
	head     int
	priv     []byte
	tailPriv bool // segs ends with a piece of priv that ends at len(priv)
	size     int  // bytes waiting, counted against Server.WriteQueueLimit
}

// handshake is a request whose head has not fully arrived.
type handshake struct {
	buf     []byte
	lineLen int // bytes of the current line so far, without CR
}
