// Package websocket implements the WebSocket protocol (RFC 6455), server
// and client, with no dependency outside the standard library.
//
// # Opening a connection
//
// A server upgrades an HTTP request with Accept; a client connects with
// Dial. Both check the opening handshake strictly (RFC 6455 §4): a refused
// handshake answers with an HTTP status and a one-line reason, and returns a
// *HandshakeError whose Check names the rule that failed.
//
//	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
//		c, err := websocket.Accept(w, r, nil)
//		if err != nil {
//			return // Accept has answered the request
//		}
//		defer c.CloseNow()
//		for {
//			typ, p, err := c.Read(r.Context())
//			if err != nil {
//				return
//			}
//			if err := c.Write(r.Context(), typ, p); err != nil {
//				return
//			}
//		}
//	})
//
// By default Accept refuses a request whose Origin header names another
// host than the request's Host (403): browsers attach cookies to WebSocket
// handshakes from any site, so accepting them would let any page act as the
// user (cross-site WebSocket hijacking). AcceptOptions.OriginPatterns or
// AcceptOptions.CheckOrigin widen that.
//
// Everything after the handshake runs over an io.ReadWriteCloser (see
// NewConn), so a hijacked HTTP/1.1 connection, an HTTP/2 stream and an
// in-memory pipe in a test share one code path.
//
// # Messages
//
// There is one way to do each thing. Read and Write move whole messages;
// Reader and Writer stream them, so a message of any size needs only a
// small buffer. Text messages are checked as UTF-8 as their bytes arrive,
// across frame boundaries, and an invalid byte fails the connection with
// 1007 at once, without waiting for the rest of the message (§8.1).
//
// # Buffers
//
// The slice Read returns is only valid until the next Read or Reader call:
// the Conn reuses pooled buffers so that steady-state reads allocate
// nothing. Write does not keep p. On the server, the buffered reader that
// net/http hands over at hijack becomes the connection's read buffer (no
// double buffering), and its write buffer joins the pool. A connection
// borrows a write buffer only while it writes and a message buffer only
// from a Read until the next, so an idle connection holds only its 4 KiB
// read buffer. Large server frames are sent with a vectored write of header
// and payload, without a copy. Masked payloads are unmasked in place, on
// amd64 in 32-byte AVX2 or 16-byte SSE2 blocks from 128 bytes on (plain Go
// with the purego build tag and on other platforms).
//
// # Concurrency
//
// One goroutine may read (Read, Reader and the reader it returns) while any
// number of goroutines write (Write, Writer, Ping, Close, CloseNow). Writes
// are serialized inside the Conn: whole messages go out one after another,
// never interleaved, and there is no "concurrent write" panic. The read and
// write halves have separate locks, as in crypto/tls: reads never block
// writes, and the reader never waits for another goroutine's write. It
// answers a ping by queueing a pong, which goes out as soon as the frame
// being written is done, even between the fragments of a message a Writer
// holds open (§5.4 lets control frames go between fragments); only when no
// write is in progress does the reader send the pong itself, bounded by
// Options.CloseTimeout.
//
// A message Writer holds the message lock until Close: a Writer that is
// never closed blocks every other message. If a Writer cannot send the
// next fragment of a message it began, the connection fails, since nothing
// else may be sent until that message ends. OnPing and OnPong run on the
// reading goroutine and must not block or call Close (which waits for the
// reader).
//
// # Contexts and timeouts
//
// Every blocking call takes a context.Context. The rule for reads: if the
// context ends while the Conn waits between frames, the call returns
// ctx.Err() and the connection stays usable (a whole-message Read continues
// its message on the next call). If the context ends in the middle of a
// frame, the connection fails, because the rest of the frame could no
// longer be told apart from the next one. For writes: if the context ends
// while the call waits for its turn, nothing was sent and the connection
// stays usable; if it ends while a frame is being written, the connection
// fails. Contexts act through the transport's deadlines; a transport
// without deadlines can only be interrupted by closing the Conn.
//
// # Limits
//
// Options.ReadLimit (default 32 MiB, settable per connection with
// SetReadLimit) bounds a message; a frame header announcing more fails the
// connection with 1009 before its payload is read. Control frames are at
// most 125 bytes (§5.5). A 64-bit length with its top bit set is a protocol
// error (§5.2). The server-side handshake is bounded by the HTTP server's
// ReadHeaderTimeout and AcceptOptions.HandshakeTimeout; closing is bounded
// by Options.CloseTimeout.
//
// # Pings and keepalive
//
// Pings are answered automatically with the same payload (§5.5.2); OnPing
// and OnPong observe them. Ping sends a ping and waits for its pong, which
// the reading goroutine sees, so Ping needs a goroutine in Read. With
// Options.PingInterval set, the Conn pings on a timer and fails with
// ErrKeepaliveTimeout when no pong comes back within Options.PingTimeout;
// it then closes the transport without a close frame, since the peer is
// not answering.
//
// # Closing and errors
//
// Close runs the closing handshake of §7: it sends a close frame, waits for
// the peer's, and closes the transport; the server closes TCP first
// (§7.1.1), the client waits for it, all within Options.CloseTimeout.
// CloseNow drops the connection.
// Close codes are checked: 1005, 1006, 1015 and codes outside the
// registered ranges (1000–1003, 1007–1014, 3000–4999) are never sent, and
// receiving one fails the connection with 1002; a reason must be valid UTF-8
// of at most 123 bytes.
//
// Once a connection has ended, every call returns the same sticky error:
//   - *CloseError: the peer closed (its code and reason; 1006 when the
//     transport ended without a close frame);
//   - *ProtocolError: the peer broke the protocol or a limit and this side
//     failed the connection, sending Code (1002, 1007 or 1009);
//   - ErrClosed (wrapped): this side called Close or CloseNow;
//   - ErrKeepaliveTimeout, or a wrapped context or transport error.
//
// Nothing panics on bad input from the peer.
//
// # Event loop
//
// Package websocket/eventloop serves connections from a few epoll loops
// instead of a goroutine each, so that an idle connection holds about 200
// bytes and no buffer. It drives the same frame parser as Conn
// (ServerParser) and answers handshakes with the same checks as Accept
// (AnswerUpgrade, RefusalResponse): one parser and one set of rules, two
// drivers, and the same HTTP statuses and close codes from both. Such a
// server gets permessage-deflate without context takeover from
// AnswerUpgrade's Agreement, ServerParser.SetAgreement and Inflate, and
// AppendCompressed.
//
// # Compression
//
// With Options.Compression.Enabled, Dial offers and Accept accepts the
// permessage-deflate extension (RFC 7692), with every parameter: context
// takeover on either side or not, and windows from 2^8 to 2^15 bytes. The
// receiving half checks what it receives: RSV1 only on the first frame of a
// message (else 1002), valid DEFLATE data (else 1007), and the read limit
// and the UTF-8 check apply to the inflated bytes as they are produced, so
// a small frame that would inflate to gigabytes is stopped at the limit
// with 1009 while memory stays bounded by the limit.
//
// The sending half uses its own DEFLATE encoder (package internal/deflate)
// because compress/flate cannot keep back-references inside a window
// smaller than 32 KiB, and sends short messages as literals, so they gain
// nothing from context takeover. Ours keeps to the agreed window exactly
// and compresses a short message against the ones before it.
//
// Memory per connection, by mode:
//   - no context takeover either way: nothing between messages; encoders
//     and decompressors are pooled and borrowed for one message;
//   - this side keeps context (it sends with takeover): its encoder, about
//     72 KiB at a 15-bit window and level 1, 12 KiB at 12 bits;
//   - the peer keeps context: the peer's window, 2^bits bytes, in a buffer
//     of twice that (64 KiB at 15 bits).
//
// With takeover both ways at 15 bits, an endpoint holds about 147 KiB in
// all (BenchmarkMemoryPerConn). A stock compress/flate Writer at BestSpeed
// costs about 1.2 MB on its own.
//
// PreparedMessage frames and compresses a message once for many server
// connections, which is how a server fans one message out to many
// subscribers. It pays on connections without server context takeover:
// the shared compressed frame is all they need. On a connection with
// takeover the shared frame is still valid but, compressed without that
// connection's history, larger (about 3 times the bytes of Write on a
// stream of similar JSON messages), and the connection must still add the
// message to its history, so it saves no CPU either (docs/benchmarks.md).
// A server that fans out should negotiate ServerNoContextTakeover.
//
// A context that ends in the middle of a compressed message fails the
// connection even between frames: the decompressor's state cannot be
// resumed.
//
// No other extension is negotiated: Dial offers none other and fails a
// handshake whose answer names one it did not offer; RSV bits an extension
// did not negotiate are a protocol error (RFC 6455 §5.2).
package websocket
