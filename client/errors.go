package client

import (
	"errors"
	"fmt"
)

// Error is an error answer from the server: the command was understood as
// far as the server could and refused. Code is one of the Code constants
// (docs/protocol.md lists them); Message says why, for people.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Error formats the code and the server's message.
func (e *Error) Error() string {
	return fmt.Sprintf("duplex: error %d: %s", e.Code, e.Message)
}

// Retryable reports whether the error is the server's own failure
// (CodeInternal), typically its broker (NATS, Redis) unreachable or slow,
// rather than a refusal of the command: the same command may succeed
// later, so it is worth sending again after a while. Every other code
// would be answered again to the same command. The client itself retries
// the subscriptions it restores after a reconnection (see
// SubscribedEvent.Retrying); calls leave the decision to the caller.
func (e *Error) Retryable() bool { return e.Code == CodeInternal }

// The error codes of the duplex.v1 protocol, so callers can test
// err.(*Error).Code without magic numbers.
const (
	CodeInternal          = 100 // internal error on the server
	CodeBadRequest        = 101 // not JSON, or a field missing or of the wrong type
	CodeUnknownOp         = 102 // unknown op
	CodeInvalidChannel    = 103 // invalid channel name
	CodeUnknownNamespace  = 104 // the channel's namespace is not configured
	CodePermissionDenied  = 105 // for example, clients may not publish there
	CodeConnectNotAllowed = 106 // connect sent twice, late, or with an invalid user or info
	CodeAlreadySubscribed = 107 // the channel is already subscribed on this connection
	CodeNotSubscribed     = 108 // unsubscribe of a channel that is not subscribed
	CodeHistoryOff        = 109 // the namespace keeps no history
	CodePresenceOff       = 110 // the namespace has presence off
	CodeUnauthorized      = 111 // the token was refused (connect, refresh)
)

var (
	// ErrClosed is returned (possibly wrapped with the cause) by every call
	// once the client has stopped: after Close, or after the server ended
	// the session in a way that forbids reconnecting (see Client).
	ErrClosed = errors.New("duplex: client closed")

	// ErrDisconnected is returned (wrapped with the cause) by a call whose
	// command was sent but whose answer was lost because the connection
	// dropped. The command may or may not have taken effect on the server:
	// a publish that fails this way may have been published. The SDK never
	// sends such a command again on its own.
	ErrDisconnected = errors.New("duplex: connection lost before the answer")

	// ErrHandlersBehind is the cause reported (through Options.OnState) when
	// the client drops its connection because more than Options.QueueSize
	// messages wait for the handlers. It reconnects once the handlers have
	// caught up and recovers the messages it did not take.
	ErrHandlersBehind = errors.New("duplex: handlers fell behind, too many messages waiting")
)

// closedError wraps ErrClosed with the reason the client stopped, if any.
func closedError(cause error) error {
	if cause == nil {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, cause)
}
