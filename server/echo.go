package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"

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
	// Log receives one line per connection that ends abnormally; nil is quiet.
	Log *slog.Logger

	// track, when set, registers live connections for shutdown and drain.
	track func(*websocket.Conn, *connRecord) (untrack func())
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
	err = echo(context.Background(), c, rec)
	rec.end(err)
	if h.Log != nil && !expectedEnd(err) {
		h.Log.Info("echo connection ended", "remote", r.RemoteAddr, "err", err)
	}
}

// Echo sends every message read from c back to it, streaming, until the
// connection ends, and returns the error that ended it.
func Echo(ctx context.Context, c *websocket.Conn) error { return echo(ctx, c, nil) }

// echo is Echo counting the messages in rec.
func echo(ctx context.Context, c *websocket.Conn, rec *connRecord) error {
	for {
		typ, r, err := c.Reader(ctx)
		if err != nil {
			return err
		}
		rec.read()
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
	}
}

// onlyReader hides any WriterTo or ReaderFrom so io.CopyBuffer uses the
// given buffer.
type onlyReader struct{ io.Reader }
