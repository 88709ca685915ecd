package eventloop

import (
	"fmt"

	"github.com/duplex-ws/duplex/websocket"
)

// ClosedError is what OnClose receives for a connection this side closed
// (Conn.Close, Server.Shutdown): errors.Is(err, websocket.ErrClosed) holds,
// as for a websocket.Conn that closed itself. It also says how the closing
// handshake ended, which a server counting clean goodbyes needs and which
// a blocking Conn tells by Close's result: Answer is the peer's close frame
// when the peer answered, nil when it closed TCP, broke the protocol or
// never answered in time.
//
// ClosedError does not unwrap to Answer: errors.As(err, &ce) with a
// *websocket.CloseError, and websocket.CloseStatus, still find only a close
// the peer started, so "who left" checks keep their meaning. Reach the
// answer with errors.As(err, &closed) and closed.Answer.
type ClosedError struct {
	Sent   websocket.StatusCode  // the code this side sent (1005: no code)
	Answer *websocket.CloseError // the peer's close frame, or nil
	why    string                // how it ended, for Error
}

// Error says what this side sent and how the peer answered, with the text
// of websocket.ErrClosed first.
func (e *ClosedError) Error() string {
	return fmt.Sprintf("%v (sent close %v; %s)", websocket.ErrClosed, e.Sent, e.why)
}

// Unwrap returns websocket.ErrClosed, so errors.Is finds it.
func (e *ClosedError) Unwrap() error { return websocket.ErrClosed }
