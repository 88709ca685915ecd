package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// echoBufPool holds the copy buffers of echo connections; a connection
// borrows one only while a message passes through, so idle echo
// connections hold none.
var echoBufPool = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

// EchoHandler serves the echo service, in the spirit of the old
// websocket.org echo: every message comes back unchanged, with the same
// type. Messages are streamed through a fixed buffer rather than held
// whole, so any size up to the read limit costs the same memory.
type EchoHandler struct {
	// Accept configures the upgrade (origins, limits).
	Accept websocket.AcceptOptions
	// Limits: MessageRate and MessageBurst (a message beyond the bucket
	// closes the connection with 1008 "message rate exceeded") and
	// IdleTimeout (1001 "idle timeout") apply here; zero fields take the
	// defaults.
	Limits Limits
	// Log receives one line per connection that ends abnormally; nil is quiet.
	Log *slog.Logger

	// track, when set, registers live connections for shutdown and drain.
	track func(*websocket.Conn, *connRecord) (untrack func())
	obs   *observer // refusals by limit; nil counts nothing
}

// ServeHTTP upgrades the request and echoes until the peer closes.
func (h *EchoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &h.Accept)
	if err != nil {
		return // Accept has answered with the status and reason
	}
	defer c.CloseNow()
	rec := recordOf(r)
	if h.track != nil {
		defer h.track(c, rec)()
	}
	cl := newConnLimits(h.Limits, h.obs)
	closeWith := func(code websocket.StatusCode, reason string) {
		rec.sent(code, reason)
		c.Close(code, reason)
	}
	cl.idle = startIdleWatch(c, cl.lim.IdleTimeout, func() {
		h.obs.refused(limitIdleTimeout)
		closeWith(websocket.StatusGoingAway, closeReasonIdle)
	})
	defer cl.end()
	err = echo(context.Background(), c, rec, cl)
	if errors.Is(err, errEchoRate) {
		closeWith(websocket.StatusPolicyViolation, closeReasonRate)
	}
	rec.end(err)
	if h.Log != nil && !expectedEnd(err) {
		h.Log.Info("echo connection ended", "remote", r.RemoteAddr, "err", err)
	}
}

// Echo sends every message read from c back to it, streaming, until the
// connection ends, and returns the error that ended it.
func Echo(ctx context.Context, c *websocket.Conn) error { return echo(ctx, c, nil, nil) }

// errEchoRate ends an echo connection whose client sent a message beyond
// its message rate.
var errEchoRate = errors.New("echo: message rate exceeded")

// echo is Echo counting the messages in rec and, when cl is not nil,
// holding them to its message rate (errEchoRate) and telling its idle
// watch about each message both ways.
func echo(ctx context.Context, c *websocket.Conn, rec *connRecord, cl *connLimits) error {
	for {
		typ, r, err := c.Reader(ctx)
		if err != nil {
			return err
		}
		rec.read()
		if cl != nil {
			cl.idle.heard()
			if cl.allowMessage(time.Now()) != nil {
				return errEchoRate
			}
		}
		w, err := c.Writer(ctx, typ)
		if err != nil {
			return err
		}
		buf := echoBufPool.Get().(*[]byte)
		_, err = io.CopyBuffer(w, onlyReader{r}, *buf)
		echoBufPool.Put(buf)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		rec.wrote(1)
		if cl != nil {
			cl.idle.heard()
		}
	}
}

// onlyReader hides any WriterTo or ReaderFrom so io.CopyBuffer uses the
// given buffer.
type onlyReader struct{ io.Reader }
