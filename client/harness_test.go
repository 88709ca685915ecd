package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

// trackListener keeps the connections it accepts so that a test can cut
// them (an abnormal closure, as a network failure looks to the client),
// freeze them, or refuse new ones for a while.
type trackListener struct {
	net.Listener
	mu       sync.Mutex
	conns    []*trackedConn
	accepted int
	paused   bool
}

func (l *trackListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.paused {
			l.mu.Unlock()
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, swallowed: make(chan struct{}, 1), ended: make(chan struct{}), closed: make(chan struct{})}
		l.conns = append(l.conns, tc)
		l.accepted++
		l.mu.Unlock()
		return tc, nil
	}
}

// count returns how many connections were accepted.
func (l *trackListener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted
}

// last returns the connection accepted last.
func (l *trackListener) last() *trackedConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[len(l.conns)-1]
}

// pause makes the listener close new connections at once (true) or accept
// them again (false).
func (l *trackListener) pause(p bool) {
	l.mu.Lock()
	l.paused = p
	l.mu.Unlock()
}

// kill closes every connection accepted so far, without a close frame.
func (l *trackListener) kill() {
	l.mu.Lock()
	conns := l.conns
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// trackedConn is a server-side connection a test can freeze: once frozen,
// bytes that arrive are swallowed (the server never sees them) and the
// test is told.
type trackedConn struct {
	net.Conn
	frozen    atomic.Bool
	swallowed chan struct{} // a byte arrived while frozen
	ended     chan struct{} // a Read failed: the connection ended
	endOnce   sync.Once
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.frozen.Load() {
		select {
		case c.swallowed <- struct{}{}:
		default:
		}
		<-c.closed
		return 0, net.ErrClosed
	}
	// net/http interrupts its own background read with a past deadline
	// when the handler hijacks the connection: that is not an end.
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.endOnce.Do(func() { close(c.ended) })
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// testServer is a real duplex server on a loopback port.
type testServer struct {
	*server.Server
	l    *trackListener
	addr string
	url  string
	done chan struct{}
}

// testNamespaces are the default namespaces plus some with features off.
func testNamespaces() map[string]pubsub.NamespaceOptions {
	ns := server.DefaultNamespaces()
	ns["apionly"] = pubsub.NamespaceOptions{HistorySize: 10, Presence: true}
	ns["nohistory"] = pubsub.NamespaceOptions{Presence: true, ClientPublish: true}
	ns["nopresence"] = pubsub.NamespaceOptions{HistorySize: 10, ClientPublish: true}
	return ns
}

// startServer serves a new server on addr ("127.0.0.1:0" for any port)
// until the test ends.
func startServer(t *testing.T, addr string) *testServer {
	t.Helper()
	// Tests publish as fast as the server answers: no message rate.
	return serveConfig(t, addr, server.Config{Limits: server.Limits{MessageRate: -1}})
}

// serveConfig serves a new server made from cfg on addr until the test
// ends; cfg gets the test namespaces and a silent log.
func serveConfig(t *testing.T, addr string, cfg server.Config) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Namespaces, cfg.Log = testNamespaces(), slog.New(slog.DiscardHandler)
	ts := &testServer{
		Server: server.New(cfg),
		l:      &trackListener{Listener: l},
		addr:   l.Addr().String(),
		done:   make(chan struct{}),
	}
	ts.url = "ws://" + ts.addr + "/ws"
	go func() {
		defer close(ts.done)
		ts.Serve(ts.l)
	}()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down (connections get 1001) and waits for it.
func (ts *testServer) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// A frozen connection would hold up the closing handshake.
	ts.l.mu.Lock()
	for _, c := range ts.l.conns {
		if c.frozen.Load() {
			c.Close()
		}
	}
	ts.l.mu.Unlock()
	ts.Shutdown(ctx)
	select {
	case <-ts.done:
	case <-ctx.Done():
		t.Errorf("server did not stop")
	}
}

// publish publishes through the server's hub, as the HTTP API would.
func (ts *testServer) publish(t *testing.T, channel, data string) client.Position {
	t.Helper()
	p, err := ts.Hub().Publish(context.Background(), channel, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return client.Position{Offset: p.Offset, Epoch: p.Epoch}
}

// stateEvent is one OnState report.
type stateEvent struct {
	state client.State
	err   error
}

// recorder collects what a client's callbacks see, in order.
type recorder struct {
	msgs   chan client.Message
	states chan stateEvent
	subs   chan client.SubscribedEvent
	pres   chan client.PresenceEvent
}

func newRecorder() *recorder {
	return &recorder{
		msgs:   make(chan client.Message, 10000),
		states: make(chan stateEvent, 1000),
		subs:   make(chan client.SubscribedEvent, 100),
		pres:   make(chan client.PresenceEvent, 100),
	}
}

func (r *recorder) onMessage(m client.Message)             { r.msgs <- m }
func (r *recorder) onState(s client.State, err error)      { r.states <- stateEvent{s, err} }
func (r *recorder) onSubscribed(ev client.SubscribedEvent) { r.subs <- ev }
func (r *recorder) onPresence(ev client.PresenceEvent)     { r.pres <- ev }
func (r *recorder) subOpts() *client.SubscribeOptions {
	return &client.SubscribeOptions{OnSubscribed: r.onSubscribed, OnPresence: r.onPresence}
}

// recv waits for the next value on ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitState waits for the state want and returns its error, failing on
// any Closed that was not asked for.
func (r *recorder) waitState(t *testing.T, want client.State) error {
	t.Helper()
	var seen []stateEvent
	deadline := time.After(testTimeout)
	for {
		select {
		case ev := <-r.states:
			if ev.state == want {
				return ev.err
			}
			if ev.state == client.StateClosed {
				t.Fatalf("client closed (%v) while waiting for %v", ev.err, want)
			}
			seen = append(seen, ev)
		case <-deadline:
			t.Fatalf("timed out waiting for state %v; saw %v", want, seen)
		}
	}
}

// newClient connects a client with short backoffs to ts; it is closed when
// the test ends.
func newClient(t *testing.T, url string, r *recorder, opts *client.Options) *client.Client {
	t.Helper()
	var o client.Options
	if opts != nil {
		o = *opts
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 5 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 50 * time.Millisecond
	}
	if r != nil && o.OnState == nil {
		o.OnState = r.onState
	}
	c := client.New(url, &o)
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}
