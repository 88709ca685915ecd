package websocket

import "fmt"

// MessageType says whether a message carries UTF-8 text or arbitrary bytes
// (RFC 6455 §5.6). Text messages are validated as UTF-8 on receipt.
type MessageType int

// The two data message types. Their values are the frame opcodes.
const (
	// MessageText is a message of UTF-8 text (opcode 0x1).
	MessageText MessageType = 1
	// MessageBinary is a message of arbitrary bytes (opcode 0x2).
	MessageBinary MessageType = 2
)

// String names the message type for logs and errors.
func (t MessageType) String() string {
	switch t {
	case MessageText:
		return "text"
	case MessageBinary:
		return "binary"
	}
	return fmt.Sprintf("MessageType(%d)", int(t))
}

// StatusCode is a close status code (RFC 6455 §7.4). It tells the peer why a
// connection ends, so both sides can tell a normal goodbye from a failure.
type StatusCode int

// Status codes registered with IANA (RFC 6455 §7.4.1 and the IANA registry).
// Codes 1005, 1006 and 1015 are reserved for reporting and are never sent.
const (
	StatusNormalClosure           StatusCode = 1000
	StatusGoingAway               StatusCode = 1001
	StatusProtocolError           StatusCode = 1002
	StatusUnsupportedData         StatusCode = 1003
	StatusNoStatusRcvd            StatusCode = 1005 // reported when a close frame had no code; never sent
	StatusAbnormalClosure         StatusCode = 1006 // reported when TCP ended without a close frame; never sent
	StatusInvalidFramePayloadData StatusCode = 1007
	StatusPolicyViolation         StatusCode = 1008
	StatusMessageTooBig           StatusCode = 1009
	StatusMandatoryExtension      StatusCode = 1010
	StatusInternalError           StatusCode = 1011
	StatusServiceRestart          StatusCode = 1012
	StatusTryAgainLater           StatusCode = 1013
	StatusBadGateway              StatusCode = 1014
	StatusTLSHandshake            StatusCode = 1015 // reported for a failed TLS handshake; never sent
)

// Sendable reports whether code may appear in a close frame on the wire: the
// registered codes 1000–1003 and 1007–1014, and the ranges 3000–4999 left to
// libraries, frameworks and applications. A received close frame whose code
// is not sendable is a protocol error (1002).
func (code StatusCode) Sendable() bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// String names the well-known codes, for logs.
func (code StatusCode) String() string {
	names := map[StatusCode]string{
		1000: "normal closure", 1001: "going away", 1002: "protocol error",
		1003: "unsupported data", 1005: "no status received", 1006: "abnormal closure",
		1007: "invalid frame payload data", 1008: "policy violation", 1009: "message too big",
		1010: "mandatory extension", 1011: "internal error", 1012: "service restart",
		1013: "try again later", 1014: "bad gateway", 1015: "TLS handshake",
	}
	if n, ok := names[code]; ok {
		return fmt.Sprintf("%d (%s)", int(code), n)
	}
	return fmt.Sprintf("%d", int(code))
}

// State is the connection's place in its life, with the values of the W3C
// WebSocket readyState, so server code and browser code speak alike.
type State int32

// The four connection states.
const (
	StateConnecting State = 0 // handshake not finished
	StateOpen       State = 1 // messages flow both ways
	StateClosing    State = 2 // a close frame was sent or received
	StateClosed     State = 3 // the transport is closed
)

// String names the state.
func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateOpen:
		return "open"
	case StateClosing:
		return "closing"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}
