package pubsub

import (
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOffsetsPerChannel(t *testing.T) {
	h, _ := newTestHub(t, nil, nil)
	ctx := testCtx(t)
	next := map[string]uint64{}
	epochs := map[string]string{}
	for i, ch := range []string{"a", "b", "a", "c", "a", "b", "c", "c", "a"} {
		p, err := h.Publish(ctx, ch, data(i))
		if err != nil {
			t.Fatal(err)
		}
		next[ch]++
		if p.Offset != next[ch] {
			t.Fatalf("publish %d to %q: offset %d, want %d", i, ch, p.Offset, next[ch])
		}
		if epochs[ch] == "" {
			epochs[ch] = p.Epoch
		} else if p.Epoch != epochs[ch] {
			t.Fatalf("epoch of %q changed from %q to %q", ch, epochs[ch], p.Epoch)
		}
	}
	if epochs["a"] == "" || epochs["a"] == epochs["b"] || epochs["b"] == epochs["c"] || epochs["a"] == epochs["c"] {
		t.Errorf("epochs %v: want non-empty and distinct", epochs)
	}
}

func TestSubscriberSeesExactMessagesInOrder(t *testing.T) {
	h, _ := newTestHub(t, nil, nil)
	ctx := testCtx(t)
	r := &recorder{}
	res, err := h.Subscribe(ctx, "news", r, SubscribeOptions{OnResult: r.onResult})
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovered || res.Position.Offset != 0 || res.Position.Epoch == "" {
		t.Fatalf("Subscribe result = %+v, want offset 0 in some epoch, not recovered", res)
	}
	ps := publishN(t, h, "news", 1, 10)
	publishN(t, h, "other", 1, 3) // not subscribed
	log := r.log()
	// The default namespace has presence on: the result, then the
	// subscriber's own join (with a zero ClientInfo), then the messages.
	if len(log) != 12 || log[0].res == nil || *log[0].res != res {
		t.Fatalf("log starts with %+v (len %d), want the result, a join, then 10 messages", log[0], len(log))
	}
	if e := log[1].ev; e.Kind != EventJoin || e.Channel != "news" || e.Client.Client != "" || e.Client.User != "" || e.Client.Info != nil {
		t.Fatalf("entry 1 = %+v, want own join", e)
	}
	evs := r.events()[1:]
	for i, e := range evs {
		if e.Kind != EventMessage || e.Channel != "news" || e.Message == nil {
			t.Fatalf("event %d = %+v", i, e)
		}
		if e.Message.Position() != ps[i] {
			t.Fatalf("event %d at %+v, publish returned %+v", i, e.Message.Position(), ps[i])
		}
	}
	wantMessages(t, r.messages("news"), "news", res.Position.Epoch, 1, 10, 0)
	if evs[0].Kind.String() != "message" || EventJoin.String() != "join" || EventLeave.String() != "leave" || EventKind(0).String() != "unknown" {
		t.Errorf("EventKind names: %v %v %v %v", evs[0].Kind, EventJoin, EventLeave, EventKind(0))
	}
}

func TestSubscribeWithoutSinceStartsAtCurrentOffset(t *testing.T) {
	h, _ := newTestHub(t, nil, nil)
	ctx := testCtx(t)
	ps := publishN(t, h, "news", 1, 3)
	r := &recorder{}
	res, err := h.Subscribe(ctx, "news", r, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res != (SubscribeResult{Recovered: false, Position: ps[2]}) {
		t.Fatalf("result = %+v, want not recovered at %+v", res, ps[2])
	}
	if msgs := r.messages("news"); len(msgs) != 0 {
		t.Fatalf("got %d messages before any publish; history is not replayed without Since", len(msgs))
	}
	publishN(t, h, "news", 4, 2)
	wantMessages(t, r.messages("news"), "news", ps[0].Epoch, 4, 5, 0)
}

func TestSubscribeRecovers(t *testing.T) {
	for _, since := range []uint64{0, 1, 2, 4, 5} {
		h, _ := newTestHub(t, nil, nil)
		ctx := testCtx(t)
		ps := publishN(t, h, "news", 1, 5)
		epoch := ps[0].Epoch
		r := &recorder{}
		res, err := h.Subscribe(ctx, "news", r, SubscribeOptions{Since: &Position{Offset: since, Epoch: epoch}, OnResult: r.onResult})
		if err != nil {
			t.Fatal(err)
		}
		if res != (SubscribeResult{Recovered: true, Position: Position{5, epoch}}) {
			t.Fatalf("since %d: result %+v, want recovered at 5", since, res)
		}
		if log := r.log(); log[0].res == nil || *log[0].res != res {
			t.Fatalf("since %d: first entry %+v, want the result", since, log[0])
		}
		publishN(t, h, "news", 6, 2)
		wantMessages(t, r.messages("news"), "news", epoch, since+1, 7, 0)
	}
}

// TestSubscribeNotRecovered covers each reason recovery fails: the client
// gets Recovered=false, no old message, and then every new one.
func TestSubscribeNotRecovered(t *testing.T) {
	ns := map[string]NamespaceOptions{"small": {HistorySize: 3}, "ttl": {HistorySize: 100, HistoryTTL: time.Minute}, "none": {}}
	for _, tc := range []struct {
		name    string
		channel string
		prep    func(c *fakeClock)
		since   func(epoch string) Position
	}{
		{"other epoch", "news", nil, func(string) Position { return Position{2, "not-the-epoch"} }},
		{"empty epoch", "news", nil, func(string) Position { return Position{2, ""} }},
		{"beyond current offset", "news", nil, func(e string) Position { return Position{6, e} }},
		{"far beyond current offset", "news", nil, func(e string) Position { return Position{1 << 40, e} }},
		{"evicted by size", "small:x", nil, func(e string) Position { return Position{1, e} }},
		{"evicted by size, one short", "small:x", nil, func(e string) Position { return Position{1, e} }},
		{"evicted by TTL", "ttl:x", func(c *fakeClock) { c.Advance(time.Minute + time.Nanosecond) }, func(e string) Position { return Position{3, e} }},
		{"no history", "none:x", nil, func(e string) Position { return Position{4, e} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			h, _ := newTestHub(t, ns, clock)
			ctx := testCtx(t)
			// A first subscriber keeps a channel without history alive.
			if _, err := h.Subscribe(ctx, tc.channel, &recorder{}, SubscribeOptions{}); err != nil {
				t.Fatal(err)
			}
			ps := publishN(t, h, tc.channel, 1, 5)
			epoch := ps[0].Epoch
			if tc.prep != nil {
				tc.prep(clock)
			}
			r := &recorder{}
			since := tc.since(epoch)
			res, err := h.Subscribe(ctx, tc.channel, r, SubscribeOptions{Since: &since, OnResult: r.onResult})
			if err != nil {
				t.Fatal(err)
			}
			if res != (SubscribeResult{Recovered: false, Position: Position{5, epoch}}) {
				t.Fatalf("result %+v, want not recovered at {5 %s}", res, epoch)
			}
			if len(r.messages(tc.channel)) != 0 {
				t.Fatalf("old messages replayed without recovery: %s", offsets(r.messages(tc.channel)))
			}
			publishN(t, h, tc.channel, 6, 2)
			wantMessages(t, r.messages(tc.channel), tc.channel, epoch, 6, 7, 0)
		})
	}
}

func TestRecoveryAtHistoryEdges(t *testing.T) {
	clock := newFakeClock()
	h, _ := newTestHub(t, map[string]NamespaceOptions{"small": {HistorySize: 3}, "ttl": {HistorySize: 100, HistoryTTL: time.Minute}}, clock)
	ctx := testCtx(t)

	// Size 3 after 10 messages keeps 8, 9, 10: since 7 recovers, 6 cannot.
	epoch := publishN(t, h, "small:x", 1, 10)[0].Epoch
	for since, want := range map[uint64]bool{5: false, 6: false, 7: true, 9: true, 10: true, 11: false} {
		r := &recorder{}
		res, err := h.Subscribe(ctx, "small:x", r, SubscribeOptions{Since: &Position{since, epoch}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Recovered != want {
			t.Errorf("small: since %d: recovered %v, want %v", since, res.Recovered, want)
		}
		if want {
			wantMessages(t, r.messages("small:x"), "small:x", epoch, since+1, 10, 0)
		}
		if err := h.Unsubscribe(ctx, "small:x", r); err != nil {
			t.Fatal(err)
		}
	}

	// TTL: 1..3 published at t0, 4..5 at t0+30s. At t0+60s all are kept
	// (a message is dropped once strictly older than the TTL); just after,
	// 1..3 are gone, so since 2 fails and since 3 recovers 4 and 5.
	epoch = publishN(t, h, "ttl:x", 1, 3)[0].Epoch
	clock.Advance(30 * time.Second)
	publishN(t, h, "ttl:x", 4, 2)
	clock.Advance(30 * time.Second)
	for _, tc := range []struct {
		advance time.Duration
		since   uint64
		want    bool
	}{{0, 0, true}, {time.Nanosecond, 2, false}, {0, 3, true}} {
		clock.Advance(tc.advance)
		r := &recorder{}
		res, err := h.Subscribe(ctx, "ttl:x", r, SubscribeOptions{Since: &Position{tc.since, epoch}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Recovered != tc.want {
			t.Errorf("ttl: since %d: recovered %v, want %v", tc.since, res.Recovered, tc.want)
		}
		if tc.want {
			wantMessages(t, r.messages("ttl:x"), "ttl:x", epoch, tc.since+1, 5, 0)
		}
		h.Unsubscribe(ctx, "ttl:x", r)
	}
}

func TestOnResultComesFirst(t *testing.T) {
	h, _ := newTestHub(t, map[string]NamespaceOptions{"chat": {HistorySize: 10, Presence: true}}, nil)
	ctx := testCtx(t)
	epoch := publishN(t, h, "chat:a", 1, 3)[0].Epoch
	r := &recorder{}
	client := ClientInfo{Client: "c1", User: "alice"}
	res, err := h.Subscribe(ctx, "chat:a", r, SubscribeOptions{Since: &Position{1, epoch}, Client: client, OnResult: r.onResult})
	if err != nil || !res.Recovered {
		t.Fatalf("Subscribe = %+v, %v", res, err)
	}
	log := r.log()
	if len(log) != 4 {
		t.Fatalf("log has %d entries, want result, 2 messages, join", len(log))
	}
	if log[0].res == nil || *log[0].res != res {
		t.Fatalf("entry 0 = %+v, want the result", log[0])
	}
	if log[1].ev.Kind != EventMessage || log[1].ev.Message.Offset != 2 || log[2].ev.Kind != EventMessage || log[2].ev.Message.Offset != 3 {
		t.Fatalf("entries 1, 2 = %+v %+v, want messages 2 and 3", log[1].ev, log[2].ev)
	}
	if e := log[3].ev; e.Kind != EventJoin || e.Channel != "chat:a" || e.Client.Client != "c1" || e.Client.User != "alice" || e.Message != nil {
		t.Fatalf("entry 3 = %+v, want own join", e)
	}
}

func TestUnsubscribe(t *testing.T) {
	h, _ := newTestHub(t, nil, nil)
	ctx := testCtx(t)
	r := &recorder{}
	if _, err := h.Subscribe(ctx, "news", r, SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := h.Subscribe(ctx, "news", r, SubscribeOptions{})
	if !errors.Is(err, ErrAlreadySubscribed) || err.Error() != `already subscribed to "news"` {
		t.Fatalf("second Subscribe = %v", err)
	}
	publishN(t, h, "news", 1, 2)
	if err := h.Unsubscribe(ctx, "news", r); err != nil {
		t.Fatal(err)
	}
	publishN(t, h, "news", 3, 2)
	wantMessages(t, r.messages("news"), "news", r.messages("news")[0].Epoch, 1, 2, 0)
	err = h.Unsubscribe(ctx, "news", r)
	if !errors.Is(err, ErrNotSubscribed) || err.Error() != `not subscribed to "news"` {
		t.Fatalf("second Unsubscribe = %v", err)
	}
	if err := h.Unsubscribe(ctx, "never", r); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("Unsubscribe(never) = %v", err)
	}
	if err := h.Unsubscribe(ctx, "news", &recorder{}); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("Unsubscribe by a stranger = %v", err)
	}
	// Subscribing again works and resumes from the current offset.
	res, err := h.Subscribe(ctx, "news", r, SubscribeOptions{})
	if err != nil || res.Position.Offset != 4 {
		t.Fatalf("Subscribe again = %+v, %v", res, err)
	}
}

// TestSubscriberIdentity: subscriptions are per Subscriber value, so two
// subscribers on one channel each receive every message.
func TestTwoSubscribersOneChannel(t *testing.T) {
	h, _ := newTestHub(t, nil, nil)
	ctx := testCtx(t)
	a, b := &recorder{}, &recorder{}
	for _, r := range []*recorder{a, b} {
		if _, err := h.Subscribe(ctx, "news", r, SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ps := publishN(t, h, "news", 1, 3)
	wantMessages(t, a.messages("news"), "news", ps[0].Epoch, 1, 3, 0)
	wantMessages(t, b.messages("news"), "news", ps[0].Epoch, 1, 3, 0)
	// Both share one Event per message.
	ea, eb := a.events(), b.events()
	ea, eb = ea[len(ea)-3:], eb[len(eb)-3:]
	for i := range 3 {
		if ea[i] != eb[i] || ea[i].Kind != EventMessage {
			t.Fatalf("event %d not shared between subscribers", i)
		}
	}
}

func TestPresence(t *testing.T) {
	h, _ := newTestHub(t, map[string]NamespaceOptions{"chat": {HistorySize: 10, Presence: true, ClientPublish: true}, "quiet": {HistorySize: 10}}, nil)
	ctx := testCtx(t)
	alice := ClientInfo{Client: "c2", User: "alice", Info: json.RawMessage(`{"color":"teal"}`)}
	bob := ClientInfo{Client: "c1", User: "bob"}
	carol := ClientInfo{Client: "c3", User: "carol"}
	ra, rb, rc, other := &recorder{}, &recorder{}, &recorder{}, &recorder{}

	if _, err := h.Subscribe(ctx, "chat:x", ra, SubscribeOptions{Client: alice}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(ctx, "chat:y", other, SubscribeOptions{Client: carol}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(ctx, "chat:x", rb, SubscribeOptions{Client: bob}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(ctx, "chat:x", rc, SubscribeOptions{Client: carol}); err != nil {
		t.Fatal(err)
	}

	type ev struct {
		kind   EventKind
		client ClientInfo
	}
	check := func(name string, r *recorder, want ...ev) {
		t.Helper()
		evs := r.events()
		if len(evs) != len(want) {
			t.Fatalf("%s got %d events, want %d", name, len(evs), len(want))
		}
		for i, e := range evs {
			if e.Kind != want[i].kind || e.Channel == "" || e.Message != nil || e.Client.Client != want[i].client.Client ||
				e.Client.User != want[i].client.User || string(e.Client.Info) != string(want[i].client.Info) {
				t.Fatalf("%s event %d = %v %+v, want %v %+v", name, i, e.Kind, e.Client, want[i].kind, want[i].client)
			}
		}
	}
	check("alice", ra, ev{EventJoin, alice}, ev{EventJoin, bob}, ev{EventJoin, carol})
	check("bob", rb, ev{EventJoin, bob}, ev{EventJoin, carol})
	check("carol", rc, ev{EventJoin, carol})
	check("other channel", other, ev{EventJoin, carol})

	got, err := h.Presence(ctx, "chat:x")
	if err != nil {
		t.Fatal(err)
	}
	want := []ClientInfo{bob, alice, carol} // sorted by client id
	if len(got) != 3 {
		t.Fatalf("Presence = %+v", got)
	}
	for i := range want {
		if got[i].Client != want[i].Client || got[i].User != want[i].User || string(got[i].Info) != string(want[i].Info) {
			t.Fatalf("Presence[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}

	for _, r := range []*recorder{ra, rb, rc, other} {
		r.reset()
	}
	if err := h.Unsubscribe(ctx, "chat:x", rb); err != nil {
		t.Fatal(err)
	}
	check("alice after bob left", ra, ev{EventLeave, bob})
	check("carol after bob left", rc, ev{EventLeave, bob})
	check("bob after leaving", rb)
	check("other channel after bob left", other)
	if got, _ := h.Presence(ctx, "chat:x"); len(got) != 2 || got[0].Client != "c2" || got[1].Client != "c3" {
		t.Fatalf("Presence after leave = %+v", got)
	}
	if got, err := h.Presence(ctx, "chat:empty"); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Presence of an empty channel = %#v, %v; want an empty non-nil list", got, err)
	}

	// Presence off: no join or leave, and presence queries are refused.
	rq := &recorder{}
	if _, err := h.Subscribe(ctx, "quiet:x", rq, SubscribeOptions{Client: alice}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(ctx, "quiet:x", &recorder{}, SubscribeOptions{Client: bob}); err != nil {
		t.Fatal(err)
	}
	check("presence off", rq)
	_, err = h.Presence(ctx, "quiet:x")
	if !errors.Is(err, ErrPresenceDisabled) || err.Error() != `presence is off in this namespace (channel "quiet:x")` {
		t.Fatalf("Presence(quiet:x) = %v", err)
	}
	if got, _ := h.Broker().Presence(ctx, "quiet:x"); len(got) != 0 {
		t.Fatalf("broker presence of quiet:x = %+v, want none recorded", got)
	}
}

func TestHistory(t *testing.T) {
	h, _ := newTestHub(t, map[string]NamespaceOptions{"none": {Presence: true}}, nil)
	ctx := testCtx(t)
	ps := publishN(t, h, "news", 1, 10)
	epoch := ps[0].Epoch
	cur := Position{10, epoch}
	for _, tc := range []struct {
		name        string
		req         HistoryRequest
		first, last uint64
		complete    bool
	}{
		{"all", HistoryRequest{}, 1, 10, false},
		{"limit 3", HistoryRequest{Limit: 3}, 8, 10, false},
		{"limit 10", HistoryRequest{Limit: 10}, 1, 10, false},
		{"limit 11", HistoryRequest{Limit: 11}, 1, 10, false},
		{"limit -1", HistoryRequest{Limit: -1}, 1, 0, false},
		{"since 4", HistoryRequest{Since: &Position{4, epoch}}, 5, 10, true},
		{"since 0", HistoryRequest{Since: &Position{0, epoch}}, 1, 10, true},
		{"since 10", HistoryRequest{Since: &Position{10, epoch}}, 1, 0, true},
		{"since 4 limit 2", HistoryRequest{Since: &Position{4, epoch}, Limit: 2}, 5, 6, true},
		{"since 8 limit 5", HistoryRequest{Since: &Position{8, epoch}, Limit: 5}, 9, 10, true},
		{"since 4 limit -1", HistoryRequest{Since: &Position{4, epoch}, Limit: -1}, 1, 0, false},
		{"since other epoch", HistoryRequest{Since: &Position{4, "x"}}, 1, 0, false},
		{"since beyond", HistoryRequest{Since: &Position{11, epoch}}, 1, 0, false},
	} {
		res, err := h.History(ctx, "news", tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.Position != cur || res.Complete != tc.complete {
			t.Errorf("%s: position %+v complete %v, want %+v %v", tc.name, res.Position, res.Complete, cur, tc.complete)
		}
		wantMessages(t, res.Messages, "news", epoch, tc.first, tc.last, 0)
	}
	// The result is a copy: changing it does not change history.
	res, _ := h.History(ctx, "news", HistoryRequest{})
	res.Messages[0] = nil
	res, _ = h.History(ctx, "news", HistoryRequest{})
	wantMessages(t, res.Messages, "news", epoch, 1, 10, 0)

	_, err := h.History(ctx, "none:x", HistoryRequest{})
	if !errors.Is(err, ErrHistoryDisabled) || err.Error() != `history is off in this namespace (channel "none:x")` {
		t.Fatalf("History(none:x) = %v", err)
	}
	// A channel never published to: empty, offset 0.
	res, err = h.History(ctx, "fresh", HistoryRequest{})
	if err != nil || len(res.Messages) != 0 || res.Position.Offset != 0 || res.Position.Epoch == "" {
		t.Fatalf("History(fresh) = %+v, %v", res, err)
	}
}

func TestHistorySizeKeepsLatest(t *testing.T) {
	h, _ := newTestHub(t, map[string]NamespaceOptions{"small": {HistorySize: 3}}, nil)
	ctx := testCtx(t)
	// Enough messages to exercise the reallocation of the history array.
	ps := publishN(t, h, "small:x", 1, 200)
	res, err := h.History(ctx, "small:x", HistoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantMessages(t, res.Messages, "small:x", ps[0].Epoch, 198, 200, 0)
}

func TestChannelForgottenWhenIdle(t *testing.T) {
	clock := newFakeClock()
	h, b := newTestHub(t, map[string]NamespaceOptions{"none": {}, "ttl": {HistorySize: 10, HistoryTTL: time.Minute}}, clock)
	ctx := testCtx(t)

	// No history, no subscriber: each publish starts a new epoch at 1.
	p1, _ := h.Publish(ctx, "none:x", data(1))
	p2, _ := h.Publish(ctx, "none:x", data(2))
	if p1.Offset != 1 || p2.Offset != 1 || p1.Epoch == p2.Epoch {
		t.Fatalf("idle channel publishes = %+v %+v, want offset 1 in two epochs", p1, p2)
	}
	if list, _ := h.Channels(ctx); len(list) != 0 {
		t.Fatalf("Channels = %+v, want none", list)
	}

	// A subscriber keeps it: offsets go on in one epoch.
	r := &recorder{}
	res, err := h.Subscribe(ctx, "none:x", r, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps := publishN(t, h, "none:x", 1, 3)
	for i, p := range ps {
		if p != (Position{uint64(i + 1), res.Position.Epoch}) {
			t.Fatalf("publish %d with a subscriber = %+v, want {%d %s}", i, p, i+1, res.Position.Epoch)
		}
	}
	b.sweep()
	if p, _ := h.Publish(ctx, "none:x", data(4)); p != (Position{4, res.Position.Epoch}) {
		t.Fatalf("after a sweep, with a subscriber: %+v", p)
	}
	// Once it leaves, the channel is forgotten.
	h.Unsubscribe(ctx, "none:x", r)
	if list, _ := h.Channels(ctx); len(list) != 0 {
		t.Fatalf("Channels after the last subscriber left = %+v, want none", list)
	}
	if p, _ := h.Publish(ctx, "none:x", data(1)); p.Offset != 1 || p.Epoch == res.Position.Epoch {
		t.Fatalf("publish after forgetting = %+v", p)
	}

	// History keeps it until the messages expire and a sweep drops them.
	e1 := publishN(t, h, "ttl:x", 1, 2)[0].Epoch
	b.sweep()
	if p, _ := h.Publish(ctx, "ttl:x", data(3)); p != (Position{3, e1}) {
		t.Fatalf("publish with history kept = %+v, want {3 %s}", p, e1)
	}
	clock.Advance(time.Minute)
	b.sweep()
	if list, _ := h.Channels(ctx); len(list) != 1 || list[0].Channel != "ttl:x" || list[0].Position != (Position{3, e1}) {
		t.Fatalf("Channels before expiry = %+v", list)
	}
	clock.Advance(time.Nanosecond)
	b.sweep()
	if list, _ := h.Channels(ctx); len(list) != 0 {
		t.Fatalf("Channels after expiry and sweep = %+v, want none", list)
	}
	p, _ := h.Publish(ctx, "ttl:x", data(1))
	if p.Offset != 1 || p.Epoch == e1 {
		t.Fatalf("publish after expiry = %+v, want offset 1 in a new epoch", p)
	}
	// A resume from the old epoch fails.
	res, _ = h.Subscribe(ctx, "ttl:x", &recorder{}, SubscribeOptions{Since: &Position{3, e1}})
	if res.Recovered || res.Position != p {
		t.Fatalf("resume from a lost epoch = %+v", res)
	}
}

func TestChannelsListing(t *testing.T) {
	h, _ := newTestHub(t, map[string]NamespaceOptions{"none": {}}, nil)
	ctx := testCtx(t)
	a1, a2, b1 := &recorder{}, &recorder{}, &recorder{}
	for _, s := range []struct {
		ch string
		r  *recorder
	}{{"b", b1}, {"a", a1}, {"a", a2}, {"none:q", a1}} {
		if _, err := h.Subscribe(ctx, s.ch, s.r, SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pa := publishN(t, h, "a", 1, 2)
	pc := publishN(t, h, "c", 1, 1)
	list, err := h.Channels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bpos, _ := h.History(ctx, "b", HistoryRequest{Limit: -1})
	want := []ChannelInfo{
		{Channel: "a", Position: pa[1], Subscribers: 2},
		{Channel: "b", Position: bpos.Position, Subscribers: 1},
		{Channel: "c", Position: pc[0], Subscribers: 0},
		{Channel: "none:q", Position: list[len(list)-1].Position, Subscribers: 1},
	}
	if !slices.Equal(list, want) {
		t.Fatalf("Channels = %+v\nwant %+v", list, want)
	}
	if list[3].Position.Offset != 0 || list[3].Position.Epoch == "" {
		t.Fatalf("none:q position = %+v", list[3].Position)
	}
	js, _ := json.Marshal(list[0])
	if want := `{"channel":"a","offset":2,"epoch":"` + pa[1].Epoch + `","subscribers":2}`; string(js) != want {
		t.Fatalf("ChannelInfo JSON = %s, want %s", js, want)
	}
}

func TestEventEncodedOnce(t *testing.T) {
	e := &Event{Kind: EventMessage, Channel: "news", Message: &Message{Channel: "news", Offset: 1, Epoch: "e", Data: data(1)}}
	var builds, otherBuilds atomic.Int32
	enc := NewEncoding(func(e *Event) any {
		builds.Add(1)
		return "bytes of " + e.Channel
	})
	other := NewEncoding(func(e *Event) any {
		otherBuilds.Add(1)
		return []byte(e.Message.Data)
	})
	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]any, 64)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if i%2 == 0 {
				results[i] = e.Encoded(enc)
			} else {
				results[i] = e.Encoded(other)
			}
		}()
	}
	close(start)
	wg.Wait()
	if builds.Load() != 1 || otherBuilds.Load() != 1 {
		t.Fatalf("built %d and %d times, want once per Encoding", builds.Load(), otherBuilds.Load())
	}
	first := results[1].([]byte)
	for i, r := range results {
		if i%2 == 0 && r != "bytes of news" {
			t.Fatalf("result %d = %v", i, r)
		}
		if i%2 == 1 && &r.([]byte)[0] != &first[0] {
			t.Fatalf("result %d is not the shared value", i)
		}
	}
	// A new Encoding with the same function is another cache entry.
	if e.Encoded(NewEncoding(func(*Event) any { return 7 })) != 7 {
		t.Fatal("new Encoding not built")
	}
}

func TestUnsubscribeAll(t *testing.T) {
	h, _ := newTestHub(t, map[string]NamespaceOptions{"chat": {HistorySize: 10, Presence: true}}, nil)
	ctx := testCtx(t)
	r, watcher := &recorder{}, &recorder{}
	me := ClientInfo{Client: "me", User: "u"}
	for _, ch := range []string{"a", "b", "chat:c"} {
		if _, err := h.Subscribe(ctx, ch, r, SubscribeOptions{Client: me}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Subscribe(ctx, "chat:c", watcher, SubscribeOptions{Client: ClientInfo{Client: "w"}}); err != nil {
		t.Fatal(err)
	}
	watcher.reset()
	r.reset()
	h.UnsubscribeAll(ctx, r)
	for _, ch := range []string{"a", "b", "chat:c"} {
		publishN(t, h, ch, 100, 1)
		if err := h.Unsubscribe(ctx, ch, r); !errors.Is(err, ErrNotSubscribed) {
			t.Errorf("Unsubscribe(%q) after UnsubscribeAll = %v", ch, err)
		}
	}
	if evs := r.events(); len(evs) != 0 {
		t.Fatalf("got %d events after UnsubscribeAll", len(evs))
	}
	evs := watcher.events()
	if len(evs) != 2 || evs[0].Kind != EventLeave || evs[0].Client.Client != "me" || evs[0].Client.User != "u" || evs[1].Kind != EventMessage {
		t.Fatalf("watcher saw %+v, want the leave of me then a message", evs)
	}
	list, _ := h.Channels(ctx)
	for _, c := range list {
		if c.Channel != "chat:c" && c.Subscribers != 0 || c.Channel == "chat:c" && c.Subscribers != 1 {
			t.Fatalf("Channels after UnsubscribeAll = %+v", list)
		}
	}
	if p, _ := h.Presence(ctx, "chat:c"); len(p) != 1 || p[0].Client != "w" {
		t.Fatalf("presence = %+v, want only w", p)
	}
	h.UnsubscribeAll(ctx, r) // nothing left: a no-op
	h.UnsubscribeAll(ctx, &recorder{})
}

func TestHubClose(t *testing.T) {
	b := NewMemoryBroker()
	defer b.Close()
	h := NewHub(Config{Broker: b})
	ctx := testCtx(t)
	if _, err := h.Subscribe(ctx, "news", &recorder{}, SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(ctx, "news", &recorder{}, SubscribeOptions{}); !errors.Is(err, ErrHubClosed) || err.Error() != "pubsub: hub closed" {
		t.Fatalf("Subscribe after Close = %v", err)
	}
	if h.Broker() != b {
		t.Fatal("Broker() is not the configured broker")
	}
	// A broker the Hub did not make stays open.
	select {
	case <-b.stop:
		t.Fatal("Hub.Close closed a broker it did not make")
	default:
	}

	// A broker the Hub made is closed with it.
	h2 := NewHub(Config{})
	own, ok := h2.Broker().(*MemoryBroker)
	if !ok {
		t.Fatalf("default broker is %T", h2.Broker())
	}
	h2.Close()
	select {
	case <-own.stop:
	default:
		t.Fatal("Hub.Close left its own broker open")
	}
	if err := h2.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// sweepers counts the goroutines running a MemoryBroker's sweeper.
func sweepers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "(*MemoryBroker).sweepLoop(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitSweepers waits, at most 10 s, until n sweepers run.
func waitSweepers(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for sweepers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sweepers running after 10 s, want %d", sweepers(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMemoryBrokerCloseStopsSweeper(t *testing.T) {
	// Earlier tests closed their brokers; their sweepers end soon.
	waitSweepers(t, 0)
	before := runtime.NumGoroutine()
	brokers := make([]*MemoryBroker, 50)
	for i := range brokers {
		brokers[i] = NewMemoryBroker()
	}
	waitSweepers(t, 50)
	for _, b := range brokers {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b.Close() // twice is fine
	}
	waitSweepers(t, 0)
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines 10 s after Close, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
