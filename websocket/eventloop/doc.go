// Package eventloop serves WebSocket connections from a few epoll loops
// instead of a goroutine per connection, so that an idle connection costs
// about 250 bytes of user-space memory (its Conn and its share of the
// loops' tables): no goroutine, no buffer, no net.Conn. It is the event-loop driver of the frame parser that
// websocket.Conn uses (websocket.ServerParser), with the same handshake
// checks as websocket.Accept (websocket.AnswerUpgrade), so both answer bad
// input with the same HTTP statuses and the same close codes.
//
//	s := &eventloop.Server{
//		OnMessage: func(c *eventloop.Conn, typ websocket.MessageType, p []byte) {
//			c.Write(typ, p) // echo; p is only valid during the call
//		},
//	}
//	ln, _ := net.Listen("tcp", ":8080")
//	go s.Serve(ln)
//	...
//	s.Shutdown(ctx) // every open connection gets a close frame with 1001
//
// It runs on Linux only; elsewhere Serve returns ErrUnsupported.
//
// # What an idle connection holds
//
// A Conn is one struct of about 208 bytes: its file descriptor, its state,
// a lock, the parser's position (websocket.ServerParser, about 136 bytes,
// which includes the 14-byte header buffer and 4-byte UTF-8 carry), and
// nil pointers for the things a busy connection borrows: the bytes of a
// handshake request or of a message that has only partly arrived, and the
// bytes of its write queue that the socket did not take at once. A server
// also keeps one 8-byte slot per file descriptor to find a Conn from an
// epoll event. Reads go into one buffer per loop (1 MiB with io_uring,
// 256 KiB without; see "System calls"); a message that
// arrives whole in one read is handed to OnMessage in place, without a
// copy, and only a message split across reads is gathered in a buffer of
// its own, returned to a pool once delivered. That buffer gets room for the
// rest of the frame when the frame's first bytes arrive (up to 1 MiB more),
// and while at least 16 KiB of the frame are still to come and fit, the
// loop reads them straight into it (up to the frame's end, never past it)
// instead of into its read buffer: mostly, only the bytes that came in the
// same read as the frame's header are copied. The kernel's socket buffers
// are not user-space memory and are not counted here.
//
// # Events and concurrency
//
// Loops (Server.Loops, one per CPU by default) each own a share of the
// connections. OnOpen, OnMessage and OnClose run on the loop goroutine of
// their connection, one at a time for that loop: a callback that blocks
// stalls every connection of its loop, so hand long work to another
// goroutine. Sockets are non-blocking and every read is parsed
// incrementally, so a peer that sends a byte at a time, or stops reading,
// holds up no one. A loop never waits in the kernel for a peer: reads,
// writes, io_uring_enter (whose operations are all non-blocking) and
// epoll_wait are raw system calls that return at once, and an idle loop
// parks in the Go runtime's poller, so the scheduler never has to take its
// processor back (see sys_linux.go).
//
// Conn.Write and Conn.Close may be called from any goroutine, at any time.
// Write writes at once what the socket takes (when nothing is queued) and
// queues the rest, which the loop sends when the socket is writable; whole
// messages go out one after another, never interleaved. While a loop runs
// a connection's callbacks in a batched read (see "System calls"), its
// Writes to that connection are queued instead, up to 8 KiB of frames,
// and the loop writes them with the round's other writes as soon as the
// round's callbacks are done; a Write that would pass 8 KiB writes them
// at once. The queue of a
// connection is bounded
// (Server.WriteQueueLimit, default 4 MiB): a Write that would pass the
// bound returns ErrWriteQueueFull, and the connection is then failed with
// close code 1008 ("write queue full") and reported to OnClose with
// ErrWriteQueueFull, because a peer that does not read its messages must
// not hold the server's memory.
//
// # System calls
//
// On a busy server most of the cost of a small message is the kernel's: a
// read and a write per message, plus a share of an epoll_wait. When the
// kernel allows io_uring (Linux 5.18 or later, not turned off by the
// kernel.io_uring_disabled sysctl or a seccomp policy), each loop reads all
// the connections that one epoll_wait reported readable with one
// io_uring_enter, each into its own slot of the loop's read buffer (at
// least 4 KiB; a connection that fills its slot is read again at once with
// the whole buffer), runs their callbacks, and then writes every queue
// those callbacks filled with one more (and Broadcast's queues with one
// per 256 connections). A round with a single connection reads and writes
// it directly. The
// operations are submitted non-blocking (MSG_DONTWAIT): each one completes,
// or fails with EAGAIN, inside the call that submits it, so the ring never
// holds an operation between two calls and the kernel never touches a
// buffer after the call returned; epoll stays in charge of readiness.
// Without io_uring, with Server.DisableIOURing, and in the build with the
// tag eventloop_safe (which leaves out the ring code, written with unsafe
// pointers into memory shared with the kernel), every read and write is a
// system call of its own; the behaviour is otherwise the same.
//
// # Broadcast
//
// Server.Broadcast sends one message to many connections for much less
// than a Write to each: one write per connection per loop round instead
// of one per message (with io_uring, one system call for up to 256 such
// writes), and no copy per connection.
//
//	s.Broadcast(websocket.MessageText, p, subscribers)
//
// The frame is built once into a buffer that the connections share; each
// connection's queue gets a reference to it (with an offset, when a short
// write took part of it), never a copy. Broadcast only queues: the loop
// that owns a connection writes everything queued for it since its last
// write with one write (a writev, or a sendmsg in an io_uring batch),
// after the events at hand (so a Broadcast from a
// callback needs no wake-up of its own loop), and a connection whose
// socket is full waits for EPOLLOUT like any other. A round writes at most
// 256 connections, in the order they got something to write, then the
// loop reads its sockets again: messages published meanwhile (by a
// publisher this loop reads) join the queues not yet written. When
// messages are broadcast faster than a loop writes, each connection gets
// several per write. The loop releases the connection's lock during the
// write, so that Write and Broadcast calls from other goroutines do not
// wait for the system call.
//
// Order: Broadcast queues the message on every connection before it
// returns, exactly where a Write would queue it, and a Write finds it
// queued and goes behind it; so the messages of one connection keep the
// order of the Write and Broadcast calls that made them. Closing and
// closed connections are skipped; a connection whose queue would pass
// Server.WriteQueueLimit (the shared bytes count as if copied) is failed
// with 1008 as a Write would fail it, while the others get the message.
// In steady state Broadcast allocates its shared frame and nothing per
// connection; Write and the read path allocate nothing.
//
// # Limits and errors
//
// The handshake request may be at most Server.MaxHeaderBytes (default
// 8 KiB; larger: 431) and must be complete within
// AcceptOptions.HandshakeTimeout (default 10 s; then the connection is
// closed without an answer). A malformed request gets 400. The checks of
// websocket.Accept (method, version, Upgrade, Connection, key, origin)
// answer with the same statuses, headers and one-line bodies as Accept.
//
// After the handshake, the rules and close codes are those of
// websocket.Conn: 1002 for a protocol error (unmasked frame, RSV bits,
// reserved opcode, bad control frame, bad fragmentation, bad close frame),
// 1007 for invalid UTF-8 in text, checked as it arrives, and 1009 for a
// message over Options.ReadLimit (default 32 MiB), refused from its frame
// header. On a failure the server sends its close frame, shuts down its
// side, drains the peer's input for at most a second and closes. When the
// peer sends a close frame, its code is echoed and the server closes TCP
// first (RFC 6455 §7.1.1). OnClose receives the error a websocket.Conn
// would return: *websocket.CloseError (the peer closed; 1006 when TCP
// ended without a close frame), *websocket.ProtocolError (this side failed
// the connection, with the code it sent), websocket.ErrClosed wrapped
// (this side closed with Conn.Close or Server.Shutdown),
// ErrWriteQueueFull, or websocket.ErrKeepaliveTimeout (below). A close this
// side started is a *ClosedError, which wraps websocket.ErrClosed and
// carries the peer's answer (its close frame, or nil when the peer closed
// TCP, broke the protocol or never answered), so a server can count
// completed closing handshakes without reading error text; it does not
// unwrap to a *websocket.CloseError, so websocket.CloseStatus stays -1 for
// it, as for a websocket.Conn that closed itself.
//
// # Keepalive
//
// A peer that vanished without closing (a dead host, a cable pulled, a NAT
// that forgot the flow) leaves a connection that looks idle for ever, and a
// server meant to hold many idle connections must find those. With
// Options.PingInterval set, keepalive works as on a websocket.Conn: a ping
// (empty payload) PingInterval after the connection opened or after its
// last ping was answered, and when no pong comes within Options.PingTimeout
// (default websocket.DefaultPingTimeout) the socket is closed without a
// close frame, since the peer is not answering, and OnClose receives
// websocket.ErrKeepaliveTimeout. Any pong answers the ping that is out.
// There is no timer per connection: each loop walks its open connections
// every quarter of the shorter of the two durations (at least 50 ms, at
// most 1 s), so a ping or a drop may come that much late; keepalive adds
// 8 bytes per open connection (its place in that list; up to 32 with the
// room the list keeps after many connections left) and nothing while it
// is off. The ping is never refused for the write queue's bound: a peer
// that reads nothing ends with ErrKeepaliveTimeout, as on a websocket.Conn.
// Pings from the peer are answered either way.
//
// # Compression
//
// With Options.Compression.Enabled, permessage-deflate (RFC 7692) is
// negotiated as Accept negotiates it, except that context takeover is
// always off both ways: the answer always carries
// server_no_context_takeover and client_no_context_takeover (§7.1.1 lets a
// server impose both). So a connection keeps no compression window
// between messages, and an idle connection costs the same with
// compression as without; Conn.Compression tells which connections agreed.
// A compressed message is gathered whole, then inflated into a pooled
// buffer by a decompressor borrowed for it
// (websocket.ServerParser.Inflate): the read limit applies to the inflated
// size (1009 as soon as it is passed, so a small message that inflates to
// gigabytes costs about the limit, at most twice it with the buffer's
// growth), text is checked for UTF-8 after inflating (1007), and bad
// DEFLATE data is 1007. Inflating runs on the loop goroutine: a message
// that inflates to the limit (32 MiB by default) holds every connection
// of its loop for as long as that takes, tens of milliseconds, and a peer
// can send such messages one after another at a thousandth of their size.
// A server that takes compressed messages from untrusted peers should set
// a ReadLimit near its largest real message; with no limit (negative), a
// small message can inflate to any size. Write compresses a
// message of at least CompressionOptions.Threshold bytes (0:
// websocket.DefaultCompressionThreshold; negative: every message) at
// CompressionOptions.Level with a pooled compressor and sends it as one
// frame with RSV1 set; a steady compressed echo allocates nothing.
// Broadcast sends its one frame uncompressed to every connection, which is
// always allowed (a message with RSV1 clear is not compressed): compressing
// it for each connection would undo what sharing the frame saves. The
// other CompressionOptions fields work as on Accept (window bits, level);
// invalid ones make Serve return an error.
//
// # Not supported
//
// TLS is not handled: the listener must give connections with a
// file descriptor (TCP or Unix sockets; terminate TLS in front). Messages
// are delivered whole to OnMessage; there is no streaming of a message
// larger than memory.
package eventloop
