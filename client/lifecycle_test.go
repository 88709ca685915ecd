package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/websocket"
)

// TestPolicyCloseStopsClient: more than 10 bad commands make the server
// close with 1008, after which reconnecting cannot help: the client stops.
func TestPolicyCloseStopsClient(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	r := newRecorder()
	c := newClient(t, ts.url, r, nil)
	// Many bad commands at once, faster than the budget refills.
	errc := make(chan error, 40)
	for i := range 40 {
		go func() {
			_, err := c.Subscribe(ctx, "a b"+strconv.Itoa(i), func(client.Message) {}, nil)
			errc <- err
		}()
	}
	refused, cut := 0, 0
	for range 40 {
		err := recv(t, errc, "Subscribe")
		var e *client.Error
		switch {
		case errors.As(err, &e) && e.Code == client.CodeInvalidChannel:
			refused++
		case errors.Is(err, client.ErrClosed) || errors.Is(err, client.ErrDisconnected):
			cut++
		default:
			t.Fatalf("Subscribe: %v", err)
		}
	}
	if refused < 10 || cut == 0 {
		t.Fatalf("%d refused, %d cut off", refused, cut)
	}
	err := r.waitState(t, client.StateClosed)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("closed with %v, want 1008", err)
	}
	if c.State() != client.StateClosed {
		t.Fatalf("State() = %v", c.State())
	}
	_, err = c.Publish(ctx, "news", 1)
	if !errors.Is(err, client.ErrClosed) || websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("Publish after the stop: %v", err)
	}
	if n := ts.l.count(); n != 1 {
		t.Fatalf("%d connections, want 1: the client reconnected", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCloseStopsReconnecting closes a client while it waits to reconnect.
func TestCloseStopsReconnecting(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	r := newRecorder()
	c := newClient(t, ts.url, r, &client.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	r.waitState(t, client.StateConnected)
	ts.l.pause(true)
	ts.l.kill()
	r.waitState(t, client.StateDisconnected)
	r.waitState(t, client.StateDisconnected) // a refused attempt: it keeps trying
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.waitState(t, client.StateClosed); err != nil {
		t.Fatalf("closed with %v, want nil after Close", err)
	}
	ts.l.pause(false)
	if _, err := c.Publish(ctx, "news", 1); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if _, err := c.Subscribe(ctx, "news", func(client.Message) {}, nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := ts.l.count(); n != 1 {
		t.Fatalf("%d connections accepted, want 1", n)
	}
	// Close returned after the reconnect loop ended: no report comes after
	// Closed.
	select {
	case ev := <-r.states:
		t.Fatalf("state %v after Closed", ev.state)
	default:
	}
}

// TestCloseWhileConnected: Close ends the connection with 1000 and fails
// a call waiting for an answer with ErrClosed.
func TestCloseWhileConnected(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	r := newRecorder()
	c := newClient(t, ts.url, r, nil)
	r.waitState(t, client.StateConnected)
	sc := ts.l.last()
	sc.frozen.Store(true) // the server will not answer
	errc := make(chan error, 1)
	go func() {
		errc <- c.Ping(ctx)
	}()
	recv(t, sc.swallowed, "the ping on the wire")
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	if err := recv(t, errc, "Ping"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Ping during Close: %v", err)
	}
	// The frozen server never answers the close frame; cut it, and Close
	// returns.
	sc.Close()
	if err := recv(t, closed, "Close"); err != nil {
		t.Fatal(err)
	}
	if err := r.waitState(t, client.StateClosed); err != nil {
		t.Fatalf("closed with %v", err)
	}

	// With a server that answers, Close runs the closing handshake: the
	// server closes its end.
	r2 := newRecorder()
	c2 := newClient(t, ts.url, r2, nil)
	r2.waitState(t, client.StateConnected)
	sc2 := ts.l.last()
	c2.Close()
	recv(t, sc2.closed, "the server closing the connection")
	if c2.State() != client.StateClosed {
		t.Fatalf("State() = %v", c2.State())
	}
}

// TestInFlightPublishNotRetried: a publish whose answer is lost with the
// connection fails with ErrDisconnected and is not sent again.
func TestInFlightPublishNotRetried(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	r := newRecorder()
	c := newClient(t, ts.url, r, nil)
	r.waitState(t, client.StateConnected)
	sc := ts.l.last()
	sc.frozen.Store(true) // the publish reaches the server's socket, not the server
	errc := make(chan error, 1)
	go func() {
		_, err := c.Publish(ctx, "news", "lost")
		errc <- err
	}()
	recv(t, sc.swallowed, "the publish on the wire")
	ts.l.kill()
	err := recv(t, errc, "Publish")
	if !errors.Is(err, client.ErrDisconnected) || websocket.CloseStatus(err) != websocket.StatusAbnormalClosure {
		t.Fatalf("Publish: %v, want ErrDisconnected with 1006", err)
	}
	r.waitState(t, client.StateConnected)
	pos, err := c.Publish(ctx, "news", "kept")
	if err != nil {
		t.Fatal(err)
	}
	if pos.Offset != 1 {
		t.Fatalf("offset %d: the lost publish was sent again", pos.Offset)
	}
	h, err := c.History(ctx, "news", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 1 || string(h.Messages[0].Data) != `"kept"` {
		t.Fatalf("history %+v", h.Messages)
	}

	// A call whose context ends before the answer returns the context's
	// error; the connection goes on.
	sc = ts.l.last()
	sc.frozen.Store(true)
	defer sc.Close() // or closing the client would wait for the frozen server
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := c.Ping(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping: %v", err)
	}
}

// TestSlowHandler: handlers that fall more than QueueSize messages behind
// make the client drop the connection instead of buffering without bound
// or blocking the reader; once they catch up it reconnects and recovers,
// and every message is still handled once, in order.
func TestSlowHandler(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	r := newRecorder()
	c := newClient(t, ts.url, r, &client.Options{QueueSize: 4})
	entered := make(chan struct{})
	release := make(chan struct{})
	published := make(chan error, 1)
	handler := func(m client.Message) {
		if m.Offset == 1 {
			close(entered)
			<-release
			// A handler may wait for the connection that its own
			// slowness cost: the client reconnects for it rather than
			// wait for the handler. (The replay may overflow the queue
			// again and cost that connection too: the publish then fails
			// with ErrDisconnected, but it returns.)
			_, err := c.Publish(ctx, "other", "from a handler")
			published <- err
		}
		r.msgs <- m
	}
	if _, err := c.Subscribe(ctx, "news", handler, nil); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, client.StateConnected)
	sc := ts.l.last()
	var epoch string
	for i := 1; i <= 30; i++ {
		epoch = ts.publish(t, "news", strconv.Itoa(i)).Epoch
		if i == 1 {
			recv(t, entered, "the first handler call")
		}
	}
	recv(t, sc.ended, "the client dropping its connection")
	if n := ts.l.count(); n != 1 {
		t.Fatalf("%d connections: reconnected before the handlers caught up", n)
	}
	close(release)
	if err := recv(t, published, "the handler's publish"); err != nil && !errors.Is(err, client.ErrDisconnected) {
		t.Fatalf("publish from a handler: %v", err)
	}
	for i := 1; i <= 30; i++ {
		expectMessage(t, recv(t, r.msgs, "message"), "news", uint64(i), epoch, strconv.Itoa(i))
	}
	if err := r.waitState(t, client.StateDisconnected); !errors.Is(err, client.ErrHandlersBehind) {
		t.Fatalf("disconnected with %v", err)
	}
	r.waitState(t, client.StateConnected)
	ts.publish(t, "news", "31")
	expectMessage(t, recv(t, r.msgs, "message"), "news", 31, epoch, "31")
}

// TestSubscribeWhileDisconnected: a subscription made without a connection
// is sent when one comes up, and Subscribe returns then.
func TestSubscribeWhileDisconnected(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	ts.l.pause(true)
	r := newRecorder()
	c := newClient(t, ts.url, r, nil)
	r.waitState(t, client.StateDisconnected)

	// A context that ends first abandons the subscription.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := c.Subscribe(short, "news", r.onMessage, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe: %v", err)
	}
	type result struct {
		sub *client.Subscription
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := c.Subscribe(ctx, "news", r.onMessage, r.subOpts())
		done <- result{s, err}
	}()
	ts.l.pause(false)
	res := recv(t, done, "Subscribe")
	if res.err != nil {
		t.Fatal(res.err)
	}
	ev := recv(t, r.subs, "subscribed")
	if ev.Resubscribed || ev.Recovered {
		t.Fatalf("subscribed event %+v", ev)
	}
	ts.publish(t, "news", "1")
	expectMessage(t, recv(t, r.msgs, "message"), "news", 1, ev.Position.Epoch, "1")
}

func TestPresenceAndHistory(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	ra, rb := newRecorder(), newRecorder()
	alice := newClient(t, ts.url, ra, &client.Options{User: "alice", Info: map[string]string{"color": "teal"}})
	bob := newClient(t, ts.url, rb, &client.Options{User: "bob"})
	if _, err := alice.Subscribe(ctx, "chat:lobby", ra.onMessage, ra.subOpts()); err != nil {
		t.Fatal(err)
	}
	aliceInfo := client.ClientInfo{Client: alice.ClientID(), User: "alice", Info: json.RawMessage(`{"color":"teal"}`)}
	expectPresence(t, recv(t, ra.pres, "join"), true, aliceInfo)
	bsub, err := bob.Subscribe(ctx, "chat:lobby", rb.onMessage, rb.subOpts())
	if err != nil {
		t.Fatal(err)
	}
	bobInfo := client.ClientInfo{Client: bob.ClientID(), User: "bob"}
	expectPresence(t, recv(t, ra.pres, "join"), true, bobInfo)
	expectPresence(t, recv(t, rb.pres, "join"), true, bobInfo)

	who, err := bob.Presence(ctx, "chat:lobby")
	if err != nil {
		t.Fatal(err)
	}
	want := []client.ClientInfo{aliceInfo, bobInfo}
	if want[0].Client > want[1].Client {
		want[0], want[1] = want[1], want[0]
	}
	if len(who) != 2 || !sameClient(who[0], want[0]) || !sameClient(who[1], want[1]) {
		t.Fatalf("presence %+v, want %+v", who, want)
	}
	if err := bsub.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	expectPresence(t, recv(t, ra.pres, "leave"), false, bobInfo)

	var epoch string
	for i := 1; i <= 3; i++ {
		p, err := bob.Publish(ctx, "chat:lobby", i*10)
		if err != nil {
			t.Fatal(err)
		}
		epoch = p.Epoch
	}
	h, err := bob.History(ctx, "chat:lobby", &client.HistoryOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if h.Position != (client.Position{Offset: 3, Epoch: epoch}) || len(h.Messages) != 2 || !h.Recovered {
		t.Fatalf("history %+v", h)
	}
	expectMessage(t, h.Messages[0], "chat:lobby", 2, epoch, "20")
	expectMessage(t, h.Messages[1], "chat:lobby", 3, epoch, "30")

	h, err = bob.History(ctx, "chat:lobby", &client.HistoryOptions{Since: &client.Position{Offset: 1, Epoch: epoch}})
	if err != nil {
		t.Fatal(err)
	}
	if !h.Recovered || len(h.Messages) != 2 || h.Messages[0].Offset != 2 || h.Messages[1].Offset != 3 {
		t.Fatalf("history since 1: %+v", h)
	}
	h, err = bob.History(ctx, "chat:lobby", &client.HistoryOptions{Since: &client.Position{Offset: 1, Epoch: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	if h.Recovered || len(h.Messages) != 0 || h.Position != (client.Position{Offset: 3, Epoch: epoch}) {
		t.Fatalf("history since another epoch: %+v", h)
	}
}

func expectPresence(t *testing.T, ev client.PresenceEvent, join bool, who client.ClientInfo) {
	t.Helper()
	if ev.Channel != "chat:lobby" || ev.Join != join || !sameClient(ev.Client, who) {
		t.Fatalf("presence event %+v, want join=%v %+v", ev, join, who)
	}
}

func sameClient(a, b client.ClientInfo) bool {
	return a.Client == b.Client && a.User == b.User && string(a.Info) == string(b.Info) && a.Client != ""
}
