package websocket

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// closeRecorder is a net.Conn that records whether it was closed.
type closeRecorder struct {
	net.Conn
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return c.Conn.Close() }

// pipeHijacker is a ResponseWriter whose Hijack hands over one end of a
// net.Pipe, so a test decides what happens to the bytes Accept writes.
type pipeHijacker struct {
	http.ResponseWriter
	conn *closeRecorder
}

func (h *pipeHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

// When the client is gone before the 101 response is written, the fault is
// the transport's: Accept closes the hijacked connection and returns
// CheckTransport with the write error, never a Conn and never
// CheckHijack (the hijack worked).
func TestAcceptResponseWriteFails(t *testing.T) {
	pipe, theirs := net.Pipe()
	theirs.Close() // the client went away: every write fails
	ours := &closeRecorder{Conn: pipe}
	req := httptest.NewRequest("GET", "http://example.com/ws", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	c, err := Accept(&pipeHijacker{httptest.NewRecorder(), ours}, req, nil)
	var he *HandshakeError
	if c != nil || !errors.As(err, &he) || he.Check != CheckTransport ||
		he.Reason != "writing the 101 response failed" || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Accept = %v, %#v; want no Conn and a CheckTransport HandshakeError wrapping io.ErrClosedPipe", c, err)
	}
	if !ours.closed {
		t.Fatal("Accept left the hijacked connection open after the failed write")
	}
}
