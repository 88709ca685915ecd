package websocket

import (
	"errors"
	"fmt"
)

// ErrClosed is returned (wrapped) by every call after this side closed the
// connection with Close or CloseNow, so callers can tell their own goodbye
// from the peer's (*CloseError) or from a failure (*ProtocolError).
var ErrClosed = errors.New("websocket: connection closed")

// CloseError is how the peer ended the connection: the status code and
// reason of the close frame it sent (RFC 6455 §7.1.5, §7.1.6). When the
// close frame had no payload, Code is StatusNoStatusRcvd (1005); when the
// transport ended without a close frame, Code is StatusAbnormalClosure (1006).
type CloseError struct {
	Code   StatusCode // the peer's status code, or 1005 / 1006 as above
	Reason string     // the peer's reason, UTF-8, at most 123 bytes
}

// Error describes the close.
func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("websocket: closed by peer: %v", e.Code)
	}
	return fmt.Sprintf("websocket: closed by peer: %v: %q", e.Code, e.Reason)
}

// CloseStatus returns the code of the *CloseError in err's chain, or -1 when
// err does not come from the peer's close. It saves a type assertion in the
// common "did the peer leave normally?" check.
func CloseStatus(err error) StatusCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// ProtocolError reports that this endpoint failed the connection because the
// peer broke RFC 6455 or a limit (RFC 6455 §7.1.7). Code is the status code
// sent to the peer in the close frame (1002 protocol error, 1007 invalid
// UTF-8, 1009 message too big), and Reason says what was wrong.
type ProtocolError struct {
	Code   StatusCode // the status code sent to the peer
	Reason string     // what the peer did wrong, for logs
}

// Error describes the failure.
func (e *ProtocolError) Error() string {
	return fmt.Sprintf("websocket: peer broke the protocol: %v: %s", e.Code, e.Reason)
}

func protocolErrorf(code StatusCode, format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// HandshakeCheck names the handshake check that failed, so servers can count
// refusals by cause and clients can tell a bad server from a bad network.
type HandshakeCheck int

// The handshake checks. The values are stable: a new check is added at the end.
const (
	CheckMethod      HandshakeCheck = iota + 1 // server: request method is not GET
	CheckHTTPVersion                           // server: request is older than HTTP/1.1
	CheckUpgrade                               // both: Upgrade header lacks the "websocket" token
	CheckConnection                            // both: Connection header lacks the "upgrade" token
	CheckVersion                               // server: Sec-WebSocket-Version is not 13
	CheckKey                                   // server: Sec-WebSocket-Key is not 16 bytes in base64
	CheckOrigin                                // server: Origin not allowed (cross-site WebSocket hijacking)
	CheckHijack                                // server: the ResponseWriter cannot be hijacked
	CheckStatus                                // client: the response status is not 101
	CheckAccept                                // client: Sec-WebSocket-Accept is wrong
	CheckSubprotocol                           // client: the server chose a subprotocol that was not offered
	CheckExtension                             // client: the server answered with an extension that was not offered
	CheckTransport                             // both: the connection or HTTP exchange failed (server: writing the 101 response)
	CheckOptions                               // server: the server's own options are invalid (500; a misconfiguration, not the client's fault)
)

var checkNames = map[HandshakeCheck]string{
	CheckMethod: "method", CheckHTTPVersion: "http version", CheckUpgrade: "upgrade header",
	CheckConnection: "connection header", CheckVersion: "websocket version", CheckKey: "websocket key",
	CheckOrigin: "origin", CheckHijack: "hijack", CheckStatus: "status", CheckAccept: "accept key",
	CheckSubprotocol: "subprotocol", CheckExtension: "extension", CheckTransport: "transport",
	CheckOptions: "options",
}

// String names the check.
func (c HandshakeCheck) String() string {
	if n, ok := checkNames[c]; ok {
		return n
	}
	return fmt.Sprintf("HandshakeCheck(%d)", int(c))
}

// HandshakeError reports a refused or failed opening handshake. On the
// server, Status is the HTTP status Accept answered with (0 when writing
// the 101 response failed: the client never got an answer); on the client,
// it is the status the server answered (0 when no response arrived).
type HandshakeError struct {
	Check  HandshakeCheck // the rule that failed
	Status int            // the HTTP status answered (server) or received (client)
	Reason string         // one line, also the body of a server's refusal
	Err    error          // the cause, if any: a transport error, or the options' (CheckOptions)
}

// Error describes the refusal.
func (e *HandshakeError) Error() string {
	s := fmt.Sprintf("websocket: handshake failed (%v): %s", e.Check, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause: the transport's error, or for CheckOptions
// the error of CompressionOptions.Validate.
func (e *HandshakeError) Unwrap() error { return e.Err }
