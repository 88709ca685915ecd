package client_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/websocket"
)

// expectMessage checks one delivered message field by field, data byte for
// byte.
func expectMessage(t *testing.T, got client.Message, channel string, offset uint64, epoch, data string) {
	t.Helper()
	if got.Channel != channel || got.Offset != offset || got.Epoch != epoch || string(got.Data) != data {
		t.Fatalf("got message {%s %d %s %s}, want {%s %d %s %s}", got.Channel, got.Offset, got.Epoch, got.Data, channel, offset, epoch, data)
	}
}

func TestSubscribePublishRoundTrip(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	r := newRecorder()
	c := newClient(t, ts.url, r, nil)

	sub, err := c.Subscribe(ctx, "news", r.onMessage, r.subOpts())
	if err != nil {
		t.Fatal(err)
	}
	if sub.Channel() != "news" {
		t.Fatalf("Channel() = %q", sub.Channel())
	}
	ev := recv(t, r.subs, "subscribed")
	if ev.Channel != "news" || ev.Recovered || ev.Resubscribed || ev.Err != nil || ev.Position.Offset != 0 || ev.Position.Epoch == "" {
		t.Fatalf("subscribed event %+v", ev)
	}
	epoch := ev.Position.Epoch

	cases := []struct {
		data any
		wire string
	}{
		{map[string]string{"text": "hello"}, `{"text":"hello"}`},
		{nil, `null`},
		{"é ✓ \u2028", `"é ✓ \u2028"`},
		{[]any{1, "two", map[string]any{"3": nil}}, `[1,"two",{"3":null}]`},
		{jsonRaw(`{"b":1,"a":[true,false]}`), `{"b":1,"a":[true,false]}`},
	}
	for i, tc := range cases {
		pos, err := c.Publish(ctx, "news", tc.data)
		if err != nil {
			t.Fatal(err)
		}
		if want := (client.Position{Offset: uint64(i + 1), Epoch: epoch}); pos != want {
			t.Fatalf("Publish = %+v, want %+v", pos, want)
		}
		expectMessage(t, recv(t, r.msgs, "message"), "news", uint64(i+1), epoch, tc.wire)
	}
	if p := sub.Position(); p != (client.Position{Offset: uint64(len(cases)), Epoch: epoch}) {
		t.Fatalf("Position() = %+v", p)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// Unsubscribed: the handler is not called again.
	if err := sub.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "news", 1); err != nil {
		t.Fatal(err)
	}
	sub2, err := c.Subscribe(ctx, "news2", r.onMessage, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Publish(ctx, "news2", "after")
	expectMessage(t, recv(t, r.msgs, "message"), "news2", 1, sub2.Position().Epoch, `"after"`)
}

func jsonRaw(s string) any { return rawJSON(s) }

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func TestManyMessagesInOrder(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	const n = 500
	var subs []*recorder
	for range 3 {
		r := newRecorder()
		c := newClient(t, ts.url, r, nil)
		for _, ch := range []string{"a", "b"} {
			if _, err := c.Subscribe(ctx, ch, r.onMessage, nil); err != nil {
				t.Fatal(err)
			}
		}
		subs = append(subs, r)
	}
	pub := newClient(t, ts.url, nil, nil)
	// Publish concurrently on two channels, so the streams interleave.
	errs := make(chan error, 2)
	for _, ch := range []string{"a", "b"} {
		go func() {
			for i := 1; i <= n; i++ {
				if _, err := pub.Publish(ctx, ch, map[string]any{"ch": ch, "i": i}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := recv(t, errs, "publisher"); err != nil {
			t.Fatal(err)
		}
	}
	for k, r := range subs {
		next := map[string]uint64{"a": 1, "b": 1}
		for range 2 * n {
			m := recv(t, r.msgs, "message")
			want := next[m.Channel]
			wire := fmt.Sprintf(`{"ch":%q,"i":%d}`, m.Channel, want)
			if m.Offset != want || string(m.Data) != wire {
				t.Fatalf("subscriber %d: got %s offset %d data %s, want offset %d data %s", k, m.Channel, m.Offset, m.Data, want, wire)
			}
			next[m.Channel]++
		}
	}
}

// TestRecoveryAfterDisconnect cuts the TCP connections under the client,
// publishes while it cannot reconnect, and checks that it gets exactly the
// missed messages, once, in order, then new ones.
func TestRecoveryAfterDisconnect(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	r := newRecorder()
	c := newClient(t, ts.url, r, nil)
	r.waitState(t, client.StateConnected)
	sub, err := c.Subscribe(ctx, "news", r.onMessage, r.subOpts())
	if err != nil {
		t.Fatal(err)
	}
	first := recv(t, r.subs, "subscribed")
	epoch := first.Position.Epoch
	for i := 1; i <= 5; i++ {
		ts.publish(t, "news", strconv.Itoa(i))
	}
	for i := 1; i <= 5; i++ {
		expectMessage(t, recv(t, r.msgs, "message"), "news", uint64(i), epoch, strconv.Itoa(i))
	}

	for round := range 3 {
		ts.l.pause(true)
		ts.l.kill()
		if err := r.waitState(t, client.StateDisconnected); websocket.CloseStatus(err) != websocket.StatusAbnormalClosure {
			t.Fatalf("round %d: disconnected with %v, want an abnormal closure", round, err)
		}
		base := 5 + round*10
		for i := base + 1; i <= base+10; i++ {
			ts.publish(t, "news", strconv.Itoa(i))
		}
		ts.l.pause(false)
		r.waitState(t, client.StateConnected)
		ev := recv(t, r.subs, "resubscribed")
		if !ev.Recovered || !ev.Resubscribed || ev.Err != nil || ev.Position != (client.Position{Offset: uint64(base + 10), Epoch: epoch}) {
			t.Fatalf("round %d: resubscribed event %+v", round, ev)
		}
		for i := base + 1; i <= base+10; i++ {
			expectMessage(t, recv(t, r.msgs, "recovered message"), "news", uint64(i), epoch, strconv.Itoa(i))
		}
	}
	// Nothing more came: the next message is the new one.
	ts.publish(t, "news", `"new"`)
	expectMessage(t, recv(t, r.msgs, "message"), "news", 36, epoch, `"new"`)
	if p := sub.Position(); p != (client.Position{Offset: 36, Epoch: epoch}) {
		t.Fatalf("Position() = %+v", p)
	}
}

// TestNewEpochNotRecovered restarts the server on the same address: the
// channel's history is gone, so the client is told recovered:false, and
// delivery goes on in the new epoch even though offsets start over.
func TestNewEpochNotRecovered(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	r := newRecorder()
	c := newClient(t, ts.url, r, nil)
	if _, err := c.Subscribe(ctx, "news", r.onMessage, r.subOpts()); err != nil {
		t.Fatal(err)
	}
	old := recv(t, r.subs, "subscribed").Position.Epoch
	for i := 1; i <= 3; i++ {
		ts.publish(t, "news", strconv.Itoa(i))
		expectMessage(t, recv(t, r.msgs, "message"), "news", uint64(i), old, strconv.Itoa(i))
	}

	ts.stop(t)
	if err := r.waitState(t, client.StateDisconnected); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("disconnected with %v, want 1001", err)
	}
	ts2 := startServer(t, ts.addr)
	ev := recv(t, r.subs, "resubscribed")
	if ev.Recovered || !ev.Resubscribed || ev.Err != nil || ev.Position.Offset != 0 || ev.Position.Epoch == "" || ev.Position.Epoch == old {
		t.Fatalf("resubscribed event %+v (old epoch %s)", ev, old)
	}
	// Offset 1 again, but in the new epoch: delivered.
	p := ts2.publish(t, "news", `"fresh"`)
	expectMessage(t, recv(t, r.msgs, "message"), "news", 1, ev.Position.Epoch, `"fresh"`)
	if p.Epoch != ev.Position.Epoch {
		t.Fatalf("publish epoch %s, subscribed epoch %s", p.Epoch, ev.Position.Epoch)
	}
}

func TestSubscribeSince(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	var pos client.Position
	for i := 1; i <= 4; i++ {
		pos = ts.publish(t, "news", strconv.Itoa(i))
	}
	r := newRecorder()
	c := newClient(t, ts.url, r, nil)
	since := client.Position{Offset: 2, Epoch: pos.Epoch}
	if _, err := c.Subscribe(ctx, "news", r.onMessage, &client.SubscribeOptions{Since: &since, OnSubscribed: r.onSubscribed}); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, r.subs, "subscribed"); !ev.Recovered || ev.Resubscribed || ev.Position != pos {
		t.Fatalf("subscribed event %+v", ev)
	}
	expectMessage(t, recv(t, r.msgs, "message"), "news", 3, pos.Epoch, "3")
	expectMessage(t, recv(t, r.msgs, "message"), "news", 4, pos.Epoch, "4")

	// A position from another epoch cannot be recovered.
	r2 := newRecorder()
	c2 := newClient(t, ts.url, r2, nil)
	other := client.Position{Offset: 2, Epoch: "elsewhere"}
	if _, err := c2.Subscribe(ctx, "news", r2.onMessage, &client.SubscribeOptions{Since: &other, OnSubscribed: r2.onSubscribed}); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, r2.subs, "subscribed"); ev.Recovered || ev.Position != pos {
		t.Fatalf("subscribed event %+v", ev)
	}
	ts.publish(t, "news", "5")
	expectMessage(t, recv(t, r2.msgs, "message"), "news", 5, pos.Epoch, "5")
}

func TestErrorAnswers(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	ctx := testContext(t)
	c := newClient(t, ts.url, nil, nil)
	nop := func(client.Message) {}

	check := func(what string, err error, code int, msg string) {
		t.Helper()
		var e *client.Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: error %v (%T), want *client.Error", what, err, err)
		}
		if e.Code != code || e.Message != msg {
			t.Fatalf("%s: got %d %q, want %d %q", what, e.Code, e.Message, code, msg)
		}
		if want := fmt.Sprintf("duplex: error %d: %s", code, msg); e.Error() != want {
			t.Fatalf("%s: Error() = %q, want %q", what, e.Error(), want)
		}
	}
	_, err := c.Subscribe(ctx, "a b", nop, nil)
	check("subscribe a b", err, client.CodeInvalidChannel, `invalid channel name "a b": byte 1 (' ') is not a letter, digit or one of _-.:@/=`)
	_, err = c.Subscribe(ctx, "nope:x", nop, nil)
	check("subscribe nope:x", err, client.CodeUnknownNamespace, `unknown namespace "nope" (channel "nope:x")`)
	_, err = c.Publish(ctx, "apionly:x", 1)
	check("publish apionly:x", err, client.CodePermissionDenied, `permission denied: clients may not publish in namespace "apionly"`)
	_, err = c.History(ctx, "nohistory:x", nil)
	check("history nohistory:x", err, client.CodeHistoryOff, `history is off in this namespace (channel "nohistory:x")`)
	_, err = c.Presence(ctx, "nopresence:x")
	check("presence nopresence:x", err, client.CodePresenceOff, `presence is off in this namespace (channel "nopresence:x")`)
	if _, err := c.Subscribe(ctx, "news", nop, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Subscribe(ctx, "news", nop, nil)
	check("subscribe twice", err, client.CodeAlreadySubscribed, `already subscribed to "news"`)
	// The refused subscriptions left nothing behind: the client still works.
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
