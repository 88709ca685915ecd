package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	coder "github.com/coder/websocket"
	"github.com/duplex-ws/duplex/websocket"
	"github.com/duplex-ws/duplex/websocket/eventloop"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	gorilla "github.com/gorilla/websocket"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/lxzan/gws"
)

// The broadcast endpoint of every server, beside its echo: a connection to
// subPath is a subscriber, one to pubPath a publisher, and every message a
// publisher sends goes to every current subscriber, with its type, through
// the fan-out path each library offers for it (see the comment on each
// library's type below). Subscribers send nothing but their close; the
// server tells each one "subscribed" (a text message) once it is on the
// list, so that a load generator knows when a publish will reach it.
//
// duplex-eventloop cannot see the request path (its Conn keeps no request,
// to stay small), so every broadcast client also offers the subprotocol
// subProto or pubProto, which that server routes on; the other libraries
// ignore the offer.
//
// Flow control: where the fan-out goes through a per-subscriber queue of
// ours (duplex, gorilla, coder, gobwas) the queue holds bcastQueue messages
// and a publisher that finds one full waits until that subscriber's writer
// takes one (or the subscriber leaves): a slow subscriber slows the
// publisher, nothing is dropped. gws and nbio queue writes inside the
// library without a bound, and duplex-eventloop's Server.Broadcast queues
// up to its WriteQueueLimit (4 MiB) and then fails the subscriber with
// 1008; the load generator keeps at most a window of messages (16 by
// default) undelivered, so no queue of any library grows past that window.
const (
	subPath  = "/sub"
	pubPath  = "/pub"
	subProto = "bench.sub"
	pubProto = "bench.pub"
	greeting = "subscribed"

	// bcastQueue is the length of a subscriber's queue where the server
	// keeps one.
	bcastQueue = 128
	// bcastBatch is how many queued messages duplex's writer sends in one
	// WritePrepared (one vectored write), as server/ does.
	bcastBatch = 64
)

// roster is the set of current subscribers of one server, kept in a slice
// so that a publish walks it without hashing.
type roster[S comparable] struct {
	mu   sync.RWMutex
	subs []S
	pos  map[S]int
}

// add puts s on the list and, still holding the lock, calls greet, so that
// the greeting reaches s before any publish does.
func (r *roster[S]) add(s S, greet func(S)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pos == nil {
		r.pos = make(map[S]int)
	}
	r.pos[s] = len(r.subs)
	r.subs = append(r.subs, s)
	greet(s)
}

// remove takes s off the list; it is a no-op for one not on it.
func (r *roster[S]) remove(s S) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.pos[s]
	if !ok {
		return
	}
	last := len(r.subs) - 1
	r.subs[i] = r.subs[last]
	r.pos[r.subs[i]] = i
	var zero S
	r.subs[last] = zero
	r.subs = r.subs[:last]
	delete(r.pos, s)
}

// each calls f for every subscriber, holding the read lock (a subscriber
// that arrives meanwhile waits for the publish to finish).
func (r *roster[S]) each(f func(S)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, s := range r.subs {
		f(s)
	}
}

// bcastPath returns the path of a request URI without its query.
func bcastPath(uri string) string {
	p, _, _ := strings.Cut(uri, "?")
	return p
}

// routeBcast serves r with subscriber or publisher when its path is
// subPath or pubPath, and reports whether it was either (the net/http
// servers serve echo otherwise).
func routeBcast(w http.ResponseWriter, r *http.Request, subscriber, publisher http.HandlerFunc) bool {
	switch r.URL.Path {
	case subPath:
		subscriber(w, r)
	case pubPath:
		publisher(w, r)
	default:
		return false
	}
	return true
}

// queued is a subscriber of the servers that keep a queue per subscriber:
// q holds what the writer goroutine has yet to send, done is closed when
// the subscriber leaves (so a publisher never waits on a queue nobody
// drains).
type queued[M any] struct {
	q    chan M
	done chan struct{}
}

func newQueued[M any]() *queued[M] {
	return &queued[M]{q: make(chan M, bcastQueue), done: make(chan struct{})}
}

// send queues m, waiting while the queue is full (flow control), unless
// the subscriber left.
func (s *queued[M]) send(m M) {
	select {
	case s.q <- m:
	case <-s.done:
	}
}

// duplexBcast: websocket.NewPreparedMessage frames each message once; every
// subscriber has a writer goroutine that takes up to bcastBatch queued
// messages at a time and sends them with one WritePrepared (one vectored
// write), as the duplex.v1 server does with its subscribers.
type duplexBcast struct {
	subs  roster[*duplexSub]
	greet *websocket.PreparedMessage
}

type duplexSub struct {
	*queued[*websocket.PreparedMessage]
	c *websocket.Conn
}

func newDuplexBcast() *duplexBcast {
	g, _ := websocket.NewPreparedMessage(websocket.MessageText, []byte(greeting))
	return &duplexBcast{greet: g}
}

// serve handles r when it is a broadcast request and reports whether it
// was.
func (b *duplexBcast) serve(w http.ResponseWriter, r *http.Request) bool {
	return routeBcast(w, r, b.subscriber, b.publisher)
}

func (b *duplexBcast) subscriber(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	s := &duplexSub{newQueued[*websocket.PreparedMessage](), c}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		s.writer()
	}()
	b.subs.add(s, func(s *duplexSub) { s.q <- b.greet })
	ctx := context.Background()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			break
		}
	}
	close(s.done)
	b.subs.remove(s)
	<-wrote
}

func (s *duplexSub) writer() {
	var batch [bcastBatch]*websocket.PreparedMessage
	ctx := context.Background()
	for {
		var n int
		select {
		case batch[0] = <-s.q:
			n = 1
		case <-s.done:
			return
		}
	drain:
		for n < len(batch) {
			select {
			case batch[n] = <-s.q:
				n++
			default:
				break drain
			}
		}
		err := s.c.WritePrepared(ctx, batch[:n]...)
		clear(batch[:n])
		if err != nil {
			s.c.CloseNow() // ends the reader, which ends the subscriber
			return
		}
	}
}

func (b *duplexBcast) publisher(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := context.Background()
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			return
		}
		pm, err := websocket.NewPreparedMessage(typ, p) // copies p
		if err != nil {
			return
		}
		b.subs.each(func(s *duplexSub) { s.send(pm) })
	}
}

// gorillaBcast: gorilla.NewPreparedMessage frames each message once (per
// compression setting); every subscriber has a writer goroutine sending
// each with WritePreparedMessage (one write per message: gorilla has no
// call that writes several).
type gorillaBcast struct {
	up    gorilla.Upgrader
	subs  roster[*gorillaSub]
	greet *gorilla.PreparedMessage
}

type gorillaSub struct {
	*queued[*gorilla.PreparedMessage]
	c *gorilla.Conn
}

func newGorillaBcast(up gorilla.Upgrader) *gorillaBcast {
	g, _ := gorilla.NewPreparedMessage(gorilla.TextMessage, []byte(greeting))
	return &gorillaBcast{up: up, greet: g}
}

// serve handles r when it is a broadcast request and reports whether it
// was.
func (b *gorillaBcast) serve(w http.ResponseWriter, r *http.Request) bool {
	return routeBcast(w, r, b.subscriber, b.publisher)
}

func (b *gorillaBcast) subscriber(w http.ResponseWriter, r *http.Request) {
	c, err := b.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	s := &gorillaSub{newQueued[*gorilla.PreparedMessage](), c}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for {
			select {
			case pm := <-s.q:
				if err := c.WritePreparedMessage(pm); err != nil {
					c.Close()
					return
				}
			case <-s.done:
				return
			}
		}
	}()
	b.subs.add(s, func(s *gorillaSub) { s.q <- b.greet })
	for {
		if _, _, err := c.NextReader(); err != nil {
			break
		}
	}
	close(s.done)
	b.subs.remove(s)
	<-wrote
}

func (b *gorillaBcast) publisher(w http.ResponseWriter, r *http.Request) {
	c, err := b.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	for {
		typ, p, err := c.ReadMessage() // a new slice each time: the prepared message keeps it
		if err != nil {
			return
		}
		pm, err := gorilla.NewPreparedMessage(typ, p)
		if err != nil {
			return
		}
		b.subs.each(func(s *gorillaSub) { s.send(pm) })
	}
}

// coderBcast: coder/websocket has no prepared message; every subscriber has
// a writer goroutine that sends each message with Write (one frame, one
// flush), and CloseRead reads for it (coder's way for a connection that
// only writes).
type coderBcast struct {
	subs roster[*coderSub]
}

type coderMsg struct {
	typ coder.MessageType
	p   []byte
}

type coderSub struct{ *queued[coderMsg] }

// serve handles r when it is a broadcast request and reports whether it
// was.
func (b *coderBcast) serve(w http.ResponseWriter, r *http.Request) bool {
	return routeBcast(w, r, b.subscriber, b.publisher)
}

func (b *coderBcast) subscriber(w http.ResponseWriter, r *http.Request) {
	c, err := coder.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := c.CloseRead(context.Background())
	s := &coderSub{newQueued[coderMsg]()}
	b.subs.add(s, func(s *coderSub) { s.q <- coderMsg{coder.MessageText, []byte(greeting)} })
	defer func() {
		close(s.done)
		b.subs.remove(s)
	}()
	for {
		select {
		case m := <-s.q:
			if err := c.Write(ctx, m.typ, m.p); err != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (b *coderBcast) publisher(w http.ResponseWriter, r *http.Request) {
	c, err := coder.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)
	ctx := context.Background()
	for {
		typ, p, err := c.Read(ctx) // a new slice each time, shared by the subscribers
		if err != nil {
			return
		}
		b.subs.each(func(s *coderSub) { s.send(coderMsg{typ, p}) })
	}
}

// gobwasBcast: the frame is built once per message (ws.CompileFrame);
// every subscriber has a writer goroutine that copies frames into a 4 KiB
// bufio.Writer and flushes when its queue is empty, so that frames queued
// together leave in one write.
type gobwasBcast struct {
	subs  roster[*gobwasSub]
	greet []byte
}

type gobwasSub struct{ *queued[[]byte] }

func newGobwasBcast() *gobwasBcast {
	return &gobwasBcast{greet: ws.MustCompileFrame(ws.NewTextFrame([]byte(greeting)))}
}

// conn upgrades conn and serves it as a subscriber, a publisher, or an
// echo connection by its path.
func (b *gobwasBcast) conn(conn net.Conn) {
	defer conn.Close()
	var path string
	u := ws.Upgrader{OnRequest: func(uri []byte) error {
		path = bcastPath(string(uri))
		return nil
	}}
	if _, err := u.Upgrade(conn); err != nil {
		return
	}
	switch path {
	case subPath:
		b.subscriber(conn)
	case pubPath:
		b.publisher(conn)
	default:
		gobwasConn(conn)
	}
}

func (b *gobwasBcast) subscriber(conn net.Conn) {
	s := &gobwasSub{newQueued[[]byte]()}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		bw := bufio.NewWriterSize(conn, 4096)
		for {
			select {
			case f := <-s.q:
				_, err := bw.Write(f)
				if err == nil && len(s.q) == 0 {
					err = bw.Flush()
				}
				if err != nil {
					conn.Close()
					return
				}
			case <-s.done:
				return
			}
		}
	}()
	b.subs.add(s, func(s *gobwasSub) { s.q <- b.greet })
	// Read until the close frame (or an error), discarding anything else.
	br := bufio.NewReaderSize(conn, 512)
	closed := false
	for !closed {
		h, err := ws.ReadHeader(br)
		if err != nil {
			break
		}
		if _, err := io.CopyN(io.Discard, br, h.Length); err != nil {
			break
		}
		closed = h.OpCode == ws.OpClose
	}
	close(s.done)
	b.subs.remove(s)
	<-wrote
	if closed {
		conn.Write(ws.CompiledCloseNormalClosure)
	}
}

func (b *gobwasBcast) publisher(conn net.Conn) {
	rw := struct {
		io.Reader
		io.Writer
	}{bufio.NewReaderSize(conn, 4096), conn}
	for {
		// ReadClientData answers pings and the close, and returns whole
		// data messages in a new slice, which the frame then copies.
		p, op, err := wsutil.ReadClientData(rw)
		if err != nil {
			return
		}
		f, err := ws.CompileFrame(ws.NewFrame(op, true, p))
		if err != nil {
			return
		}
		b.subs.each(func(s *gobwasSub) { s.send(f) })
	}
}

// gwsBcast: each message becomes a gws.Broadcaster, which frames it once
// and queues the frame on every subscriber's own write queue (gws runs a
// goroutine per connection while its queue is not empty); the queue has
// no bound. The path is kept in the connection's session by Authorize.
type gwsBcast struct {
	gws.Event // the echo handler, for the other connections
	subs      roster[*gws.Conn]
}

// gwsPath is a gws session that holds only the request path: a lookup is
// a field read, where the default session is a locked map.
type gwsPath struct{ path string }

// Len, Load, Delete, Store and Range implement gws.SessionStorage for
// the one key "path": Authorize stores it, and the handlers load it on
// every event, so it must cost a field read.
func (s *gwsPath) Len() int { return 1 }
func (s *gwsPath) Load(key string) (any, bool) {
	if key == "path" {
		return s.path, true
	}
	return nil, false
}
func (s *gwsPath) Delete(string) {}
func (s *gwsPath) Store(key string, v any) {
	if p, ok := v.(string); ok && key == "path" {
		s.path = p
	}
}
func (s *gwsPath) Range(f func(key string, v any) bool) { f("path", s.path) }

func gwsConnPath(c *gws.Conn) string { return c.Session().(*gwsPath).path }

// gwsOption returns the server options with which Authorize records the
// path in the session.
func (b *gwsBcast) option() *gws.ServerOption {
	return &gws.ServerOption{
		NewSession: func() gws.SessionStorage { return new(gwsPath) },
		Authorize: func(r *http.Request, s gws.SessionStorage) bool {
			s.Store("path", r.URL.Path)
			return true
		},
	}
}

// OnOpen, OnClose and OnMessage implement gws.Event: subscribers join and
// leave the roster and their input is dropped, the publisher's messages
// are broadcast, and every other connection gets the echo handler.
func (b *gwsBcast) OnOpen(c *gws.Conn) {
	switch gwsConnPath(c) {
	case subPath:
		b.subs.add(c, func(c *gws.Conn) { _ = c.WriteMessage(gws.OpcodeText, []byte(greeting)) })
	case pubPath:
	default:
		b.Event.OnOpen(c)
	}
}

func (b *gwsBcast) OnClose(c *gws.Conn, err error) {
	switch gwsConnPath(c) {
	case subPath:
		b.subs.remove(c)
	case pubPath:
	default:
		b.Event.OnClose(c, err)
	}
}

func (b *gwsBcast) OnMessage(c *gws.Conn, m *gws.Message) {
	switch gwsConnPath(c) {
	case subPath:
		m.Close()
	case pubPath:
		// The Broadcaster keeps the payload until the last queued write;
		// m's buffer goes back to gws's pool now, so copy it.
		p := append([]byte(nil), m.Bytes()...)
		op := m.Opcode
		m.Close()
		bc := gws.NewBroadcaster(op, p)
		b.subs.each(func(s *gws.Conn) { _ = bc.Broadcast(s) })
		bc.Close()
	default:
		b.Event.OnMessage(c, m)
	}
}

// nbioBcast: nbio's WriteMessage on every subscriber's Conn; nbio writes
// at once what the socket takes and queues the rest for its event loop
// (no bound), so the publisher never waits on a subscriber. Subscribers
// and publishers have their own Upgrader, chosen by path.
type nbioBcast struct {
	sub, pub *nbws.Upgrader
	subs     roster[*nbws.Conn]
}

func newNbioBcast() *nbioBcast {
	b := &nbioBcast{sub: nbws.NewUpgrader(), pub: nbws.NewUpgrader()}
	for _, u := range []*nbws.Upgrader{b.sub, b.pub} {
		u.KeepaliveTime = 0
		u.CheckOrigin = func(*http.Request) bool { return true }
	}
	b.sub.OnOpen(func(c *nbws.Conn) {
		b.subs.add(c, func(c *nbws.Conn) { _ = c.WriteMessage(nbws.TextMessage, []byte(greeting)) })
	})
	b.sub.OnClose(func(c *nbws.Conn, _ error) { b.subs.remove(c) })
	b.sub.OnMessage(func(*nbws.Conn, nbws.MessageType, []byte) {})
	b.pub.OnMessage(func(_ *nbws.Conn, typ nbws.MessageType, p []byte) {
		b.subs.each(func(s *nbws.Conn) { _ = s.WriteMessage(typ, p) })
	})
	return b
}

// upgrade upgrades r with the Upgrader its path calls for, echo's up for
// any other path.
func (b *nbioBcast) upgrade(up *nbws.Upgrader, w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case subPath:
		up = b.sub
	case pubPath:
		up = b.pub
	}
	_, _ = up.Upgrade(w, r, nil)
}

// elBcast: Server.Broadcast from the publisher's OnMessage, with the
// whole list of subscribers: the frame is built once and queued (by
// reference) on every subscriber, and each loop then writes everything
// queued for a connection since its last write with one writev, so the
// system calls are per connection and loop round, not per message. It
// never blocks; a subscriber whose queue would pass WriteQueueLimit
// (4 MiB) is failed with 1008. The connection's role is its subprotocol,
// since the event loop's Conn does not keep the path.
type elBcast struct {
	subs roster[*eventloop.Conn]
}

// wrap adds the broadcast endpoint to s, an echo server: it offers the
// two subprotocols, keeps subscribers on the list and sends a publisher's
// messages to them; other connections keep s's callbacks.
func (b *elBcast) wrap(s *eventloop.Server) {
	opts := websocket.AcceptOptions{}
	if s.Options != nil {
		opts = *s.Options
	}
	opts.Subprotocols = append(opts.Subprotocols, pubProto, subProto)
	s.Options = &opts
	open, msg, closed := s.OnOpen, s.OnMessage, s.OnClose
	s.OnOpen = func(c *eventloop.Conn) {
		if c.Subprotocol() == subProto {
			b.subs.add(c, func(c *eventloop.Conn) { _ = c.Write(websocket.MessageText, []byte(greeting)) })
			return
		}
		if open != nil {
			open(c)
		}
	}
	s.OnClose = func(c *eventloop.Conn, err error) {
		if c.Subprotocol() == subProto {
			b.subs.remove(c)
			return
		}
		if closed != nil {
			closed(c, err)
		}
	}
	s.OnMessage = func(c *eventloop.Conn, typ websocket.MessageType, p []byte) {
		switch c.Subprotocol() {
		case subProto:
		case pubProto:
			b.subs.mu.RLock()
			_ = s.Broadcast(typ, p, b.subs.subs) // keeps neither p nor the slice
			b.subs.mu.RUnlock()
		default:
			msg(c, typ, p)
		}
	}
}
