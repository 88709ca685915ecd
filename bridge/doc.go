// Package bridge connects WebSocket clients to programs that do not speak
// WebSocket: TCPHandler carries a TCP byte stream in binary messages (as
// websockify and Kaazing's gateway do), and ExecHandler runs one process
// per connection and carries its stdin and stdout (as websocketd does).
//
// Both are http.Handlers, so a server mounts them on any route. Neither
// lets a client choose where it goes: a TCPHandler's Target and an
// ExecHandler's Command are fixed by configuration, so a bridge is never an
// open proxy and never runs a program a client names.
//
// # Streams and backpressure
//
// Both directions stream through fixed buffers (BufferSize bytes each, 32
// KiB by default) and never queue: a bridge reads the next chunk from one
// side only after the previous one was written to the other. A TCP target
// or a process that stops reading therefore stops the bridge from reading
// the WebSocket, TCP flow control fills the client's send window, and the
// client's writes block; a client that stops reading blocks the bridge's
// WebSocket writes, which stops it reading the target. Memory per
// connection is two buffers, whatever the traffic.
//
// # Close codes
//
// The codes a bridge sends when it ends a connection, and why:
//
//	1000 normal closure    the target closed its side (TCP EOF), or the process exited with status 0
//	1003 unsupported data  a text message reached a TCPHandler with RefuseText set
//	1011 internal error    the process exited with a non-zero status or was killed by a signal
//	                       (the reason says which, e.g. "exit status 3"), or could not be started
//	1014 bad gateway       the target could not be reached (dial, TLS handshake) or its
//	                       connection failed (reset, write error)
//	1001 going away        the server is shutting down (when the server tracks the connection)
//
// When the client ends the connection (a close frame with any code, or a
// dropped transport), a TCPHandler shuts down the target connection's
// write side (FIN, so the target sees EOF) and then closes it; an
// ExecHandler closes the process's stdin, sends SIGTERM to its process
// group, then SIGKILL after KillTimeout, and reaps it.
package bridge
