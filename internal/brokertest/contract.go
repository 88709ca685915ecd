package brokertest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
)

// Setup tells Run how to get the brokers under test and what it may
// check beyond the pubsub.Broker interface.
type Setup struct {
	// New returns n nodes of the broker that share channels through one
	// store of their own (nothing left by another call), closed when t
	// ends. n is never above Nodes.
	New func(t *testing.T, n int) []pubsub.Broker
	// Nodes is how many nodes New can return: 1 for a broker that serves
	// a single node (MemoryBroker), which then plays the part of every
	// node of a scenario, so what is checked across nodes elsewhere is
	// checked within one node.
	Nodes int
	// Skew makes b read the clock d later than it is (0 puts it back), so
	// that history TTLs pass without waiting.
	Skew func(b pubsub.Broker, d time.Duration)
	// Interested, when set, reports whether b holds interest in channel
	// (its own state, not visible through the interface); Run then checks
	// that the last Unsubscribe releases it.
	Interested func(b pubsub.Broker, channel string) bool
	// DeliversWithoutInterest says that the broker hands every message and
	// presence change to its handler, interested or not (MemoryBroker:
	// the Hub filters). Otherwise Run checks that nothing arrives for a
	// channel without interest.
	DeliversWithoutInterest bool
	// ForgetsIdleChannels says that a channel with no interest, presence
	// or history left is forgotten and gets a new epoch when next used
	// (MemoryBroker). Otherwise Run checks that an idle empty channel
	// keeps its epoch until its first message.
	ForgetsIdleChannels bool
}

// Run checks the promises of pubsub.Broker's documentation, one sub-test
// each, on brokers made by s.New: offsets from 1 without gaps under
// concurrent publishers, delivery in offset order per channel to other
// nodes, counted Unsubscribe, history size, TTL, Since, Limit and
// Complete, epochs, presence (listed sorted, joins and leaves delivered),
// the channel listing, and Close. A new broker proves itself by passing
// it (see pubsub.Broker).
func Run(t *testing.T, s Setup) {
	if s.New == nil || s.Nodes < 1 || s.Skew == nil {
		t.Fatal("brokertest.Run: Setup needs New, Nodes (1 or more) and Skew")
	}
	t.Run("OffsetsFromOne", s.offsetsFromOne)
	t.Run("DeliveryOrder", s.deliveryOrder)
	t.Run("CountedUnsubscribe", s.countedUnsubscribe)
	t.Run("GapsOnlyBeyondHistory", s.gapsOnlyBeyondHistory)
	t.Run("History", s.history)
	t.Run("Epoch", s.epoch)
	t.Run("Presence", s.presence)
	t.Run("Channels", s.channels)
	t.Run("Close", s.close)
}

// node is one broker of a scenario with the recorder it delivers to.
type node struct {
	pubsub.Broker
	ev *Events
}

// nodes returns n nodes for a scenario: as many distinct brokers as the
// broker allows, the i-th node being broker i modulo that number, each
// with its handler set first, as the interface asks.
func (s Setup) nodes(t *testing.T, n int) []node {
	t.Helper()
	m := min(n, s.Nodes)
	bs := s.New(t, m)
	if len(bs) != m {
		t.Fatalf("Setup.New(%d) returned %d brokers", m, len(bs))
	}
	distinct := make([]node, m)
	for i, b := range bs {
		distinct[i] = node{b, NewEvents()}
		b.SetHandler(distinct[i].ev)
	}
	t.Cleanup(func() {
		for i, d := range distinct {
			if o := d.ev.Overlaps(); len(o) > 0 {
				t.Errorf("node %d: handler called for a channel while another call for it was running: %q", i, o)
			}
		}
	})
	out := make([]node, n)
	for i := range out {
		out[i] = distinct[i%m]
	}
	return out
}

// offsetsOf returns the offsets of msgs, never nil.
func offsetsOf(msgs []*pubsub.Message) []uint64 {
	out := []uint64{}
	for _, m := range msgs {
		out = append(out, m.Offset)
	}
	return out
}

// line is how Events records m.
func line(m *pubsub.Message) string {
	return fmt.Sprintf("message %s %d %s", m.Channel, m.Offset, m.Data)
}

// only returns the lines of lines about channel.
func only(lines []string, channel string) []string {
	var out []string
	for _, l := range lines {
		var kind, ch string
		fmt.Sscan(l, &kind, &ch)
		if ch == channel {
			out = append(out, l)
		}
	}
	return out
}

// publish publishes data to channel on b and fails the test on an error.
func publish(t *testing.T, b pubsub.Broker, channel string, data []byte, opts pubsub.HistoryOptions) *pubsub.Message {
	t.Helper()
	m, err := b.Publish(Context(t), channel, data, opts)
	if err != nil {
		t.Fatalf("Publish(%q, %s): %v", channel, data, err)
	}
	return m
}

// history calls History on b and fails the test on an error.
func history(t *testing.T, b pubsub.Broker, channel string, req pubsub.HistoryRequest) pubsub.HistoryResult {
	t.Helper()
	res, err := b.History(Context(t), channel, req)
	if err != nil {
		t.Fatalf("History(%q, %+v): %v", channel, req, err)
	}
	return res
}

// must fails the test on err, naming what was called.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Two nodes publishing to one channel at once get consecutive offsets from
// 1, without a gap or a duplicate, in one epoch; history holds them in
// offset order with each publisher's payload, and a third node subscribed
// beforehand receives them all in that order. Another channel counts on
// its own, from 1, in its own epoch.
func (s Setup) offsetsFromOne(t *testing.T) {
	ctx := Context(t)
	n := s.nodes(t, 3)
	pubs, watcher := n[:2], n[2]
	must(t, "Subscribe", watcher.Subscribe(ctx, "news"))
	mark := len(watcher.ev.Lines())
	opts := pubsub.HistoryOptions{Size: 100}
	const per = 25
	var mu sync.Mutex
	sent := map[uint64]*pubsub.Message{}
	var wg sync.WaitGroup
	errc := make(chan error, len(pubs))
	for i, b := range pubs {
		wg.Go(func() {
			for k := range per {
				d := Data(i*per + k)
				m, err := b.Publish(ctx, "news", d, opts)
				if err != nil {
					errc <- err
					return
				}
				if m.Channel != "news" || string(m.Data) != string(d) || m.Time.IsZero() || m.Epoch == "" {
					errc <- fmt.Errorf("Publish(news, %s) returned %+v", d, m)
					return
				}
				mu.Lock()
				if sent[m.Offset] != nil {
					errc <- fmt.Errorf("offset %d given twice: to %s and %s", m.Offset, sent[m.Offset].Data, d)
				}
				sent[m.Offset] = m
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	epoch := sent[1].Epoch
	var want []string
	for off := uint64(1); off <= 2*per; off++ {
		m := sent[off]
		if m == nil || m.Epoch != epoch {
			t.Fatalf("offsets given: want 1..%d in one epoch; offset %d is %+v", 2*per, off, m)
		}
		want = append(want, line(m))
	}
	res := history(t, pubs[1], "news", pubsub.HistoryRequest{})
	if got := offsetsOf(res.Messages); len(got) != 2*per || res.Position != sent[2*per].Position() {
		t.Fatalf("history: offsets %v, position %v; want 1..%d at %v", got, res.Position, 2*per, sent[2*per].Position())
	}
	for i, m := range res.Messages {
		if m.Offset != uint64(i+1) || m.Epoch != epoch || m.Channel != "news" || string(m.Data) != string(sent[m.Offset].Data) {
			t.Fatalf("history message %d: %+v, want %+v", i, m, sent[uint64(i+1)])
		}
	}
	if got := watcher.ev.WaitLines(t, ctx, mark+2*per)[mark:]; !slices.Equal(got, want) {
		t.Fatalf("the watching node received %q\nwant %q", got, want)
	}

	other := publish(t, pubs[0], "chat:a.b", Data(1), opts)
	if other.Offset != 1 || other.Epoch == "" || other.Epoch == epoch || other.Channel != "chat:a.b" || string(other.Data) != `{"n":1}` {
		t.Fatalf("first message of chat:a.b: %+v (news is in epoch %q)", other, epoch)
	}
}

// A node subscribed to two channels receives the messages another node
// publishes to them, each channel's in offset order, each message as
// Publish returned it, one handler call at a time per channel.
func (s Setup) deliveryOrder(t *testing.T) {
	ctx := Context(t)
	n := s.nodes(t, 2)
	pub, sub := n[0], n[1]
	channels := []string{"news", "chat:room"}
	for _, ch := range channels {
		must(t, "Subscribe", sub.Subscribe(ctx, ch))
	}
	mark := len(sub.ev.Messages())
	opts := pubsub.HistoryOptions{Size: 50}
	const per = 20
	sent := map[string][]*pubsub.Message{}
	for k := 1; k <= per; k++ {
		for _, ch := range channels {
			sent[ch] = append(sent[ch], publish(t, pub, ch, Data(k), opts))
		}
	}
	sub.ev.WaitLines(t, ctx, mark+len(channels)*per)
	got := sub.ev.Messages()[mark:]
	for _, ch := range channels {
		var recv []*pubsub.Message
		for _, m := range got {
			if m.Channel == ch {
				recv = append(recv, m)
			}
		}
		if len(recv) != per {
			t.Fatalf("%s: received offsets %v, want 1..%d", ch, offsetsOf(recv), per)
		}
		for i, m := range recv {
			w := sent[ch][i]
			if m.Offset != uint64(i+1) || m.Offset != w.Offset || m.Epoch != w.Epoch || m.Channel != w.Channel || string(m.Data) != string(w.Data) || m.Time.IsZero() {
				t.Fatalf("%s: message %d received as %+v, published as %+v", ch, i, m, w)
			}
		}
	}
}

// Subscribe delivers every message published on any node from its return
// on, in offset order. Interest is counted: after two Subscribes and one
// Unsubscribe it holds; the second Unsubscribe ends it.
func (s Setup) countedUnsubscribe(t *testing.T) {
	ctx := Context(t)
	n := s.nodes(t, 2)
	a, b := n[0], n[1]
	// History keeps every message of the test: a node that falls behind
	// may lose what left the store (see gapsOnlyBeyondHistory), not these.
	opts := pubsub.HistoryOptions{Size: 100}
	publish(t, a, "news", Data(1), opts)
	for range 2 {
		must(t, "Subscribe", b.Subscribe(ctx, "news"))
	}
	must(t, "Unsubscribe", b.Unsubscribe(ctx, "news"))
	if s.Interested != nil && !s.Interested(b.Broker, "news") {
		t.Fatal("no interest left after two Subscribes and one Unsubscribe")
	}
	mark := len(b.ev.Lines())
	var want []string
	for k := 2; k <= 21; k++ {
		want = append(want, line(publish(t, a, "news", Data(k), opts)))
	}
	if got := b.ev.WaitLines(t, ctx, mark+20)[mark:]; !slices.Equal(got, want) {
		t.Fatalf("delivered %q\nwant %q", got, want)
	}
	must(t, "Unsubscribe", b.Unsubscribe(ctx, "news"))
	if s.Interested != nil && s.Interested(b.Broker, "news") {
		t.Fatal("interest left after the last Unsubscribe")
	}
	if s.DeliversWithoutInterest {
		return
	}
	// Without interest nothing is delivered: a publish to news, then one
	// to a channel b subscribes to; only the second arrives.
	must(t, "Subscribe", b.Subscribe(ctx, "other"))
	publish(t, a, "news", Data(22), opts)
	o := publish(t, a, "other", Data(1), opts)
	if got := b.ev.WaitLines(t, ctx, mark+21); len(got) != mark+21 || got[mark+20] != line(o) {
		t.Fatalf("after the last Unsubscribe of news: %q, want only %q", got[mark+20:], line(o))
	}
}

// A node that falls behind a burst may miss messages, but only those that
// left the store (beyond the history's size) before it read them: it
// delivers the others in offset order, the last one included. (Live
// delivery is read from the store by some brokers.)
func (s Setup) gapsOnlyBeyondHistory(t *testing.T) {
	ctx := Context(t)
	n := s.nodes(t, 2)
	pub, sub := n[0], n[1]
	must(t, "Subscribe", sub.Subscribe(ctx, "burst"))
	mark := len(sub.ev.Messages())
	const total, size = 60, 5
	var last *pubsub.Message
	for k := 1; k <= total; k++ {
		last = publish(t, pub, "burst", Data(k), pubsub.HistoryOptions{Size: size})
	}
	for {
		got := sub.ev.Messages()[mark:]
		if len(got) > 0 && got[len(got)-1].Offset == total {
			prev := uint64(0)
			for _, m := range got {
				if m.Offset <= prev || m.Epoch != last.Epoch || string(m.Data) != string(Data(int(m.Offset))) {
					t.Fatalf("delivered %v: want increasing offsets in %q, each with its payload", offsetsOf(got), last.Epoch)
				}
				for missed := prev + 1; missed < m.Offset; missed++ {
					if missed > total-size {
						t.Fatalf("delivered %v: %d is missing though the history (size %d) still held it", offsetsOf(got), missed, size)
					}
				}
				prev = m.Offset
			}
			t.Logf("%d of %d delivered", len(got), total)
			return
		}
		select {
		case <-sub.ev.notify:
		case <-ctx.Done():
			t.Fatalf("waiting for offset %d: %v; delivered %v", total, ctx.Err(), offsetsOf(sub.ev.Messages()[mark:]))
		}
	}
}

// History keeps what the publishes' options say (size, TTL), read from
// another node than the publisher's: the latest messages, or those after
// Since, capped by Limit, with the position, Complete exactly when every
// message after Since is still kept. A broker that keeps idle channels
// keeps their position without interest too.
func (s Setup) history(t *testing.T) {
	n := s.nodes(t, 2)
	pub, reader := n[0], n[1]
	if s.ForgetsIdleChannels {
		// Hold interest, as the Hub's subscribers do: an idle channel
		// whose history expired would be forgotten, position and all.
		for _, ch := range []string{"news", "nohist:x"} {
			must(t, "Subscribe", reader.Subscribe(Context(t), ch))
		}
	}
	opts := pubsub.HistoryOptions{Size: 3, TTL: time.Minute}
	var last *pubsub.Message
	for k := 1; k <= 5; k++ {
		last = publish(t, pub, "news", Data(k), opts)
	}
	epoch := last.Epoch
	at := func(off uint64) *pubsub.Position { return &pubsub.Position{Offset: off, Epoch: epoch} }

	t.Run("SizeSinceLimit", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			req      pubsub.HistoryRequest
			want     []uint64
			complete bool
		}{
			{"latest", pubsub.HistoryRequest{}, []uint64{3, 4, 5}, false},
			{"latest 2", pubsub.HistoryRequest{Limit: 2}, []uint64{4, 5}, false},
			{"latest 9", pubsub.HistoryRequest{Limit: 9}, []uint64{3, 4, 5}, false},
			{"position only", pubsub.HistoryRequest{Limit: -1}, []uint64{}, false},
			{"since 2", pubsub.HistoryRequest{Since: at(2)}, []uint64{3, 4, 5}, true},
			{"since 2 limit 1", pubsub.HistoryRequest{Since: at(2), Limit: 1}, []uint64{3}, true},
			{"since 3 limit 5", pubsub.HistoryRequest{Since: at(3), Limit: 5}, []uint64{4, 5}, true},
			{"since 1 (4 missed, 3 kept)", pubsub.HistoryRequest{Since: at(1)}, []uint64{}, false},
			{"since 5", pubsub.HistoryRequest{Since: at(5)}, []uint64{}, true},
			{"since 6", pubsub.HistoryRequest{Since: at(6)}, []uint64{}, false},
			{"other epoch", pubsub.HistoryRequest{Since: &pubsub.Position{Offset: 4, Epoch: "other"}}, []uint64{}, false},
		} {
			res := history(t, reader, "news", tc.req)
			if got := offsetsOf(res.Messages); !slices.Equal(got, tc.want) || res.Complete != tc.complete || res.Position != *at(5) {
				t.Errorf("%s: offsets %v complete %v position %v; want %v %v %v", tc.name, got, res.Complete, res.Position, tc.want, tc.complete, *at(5))
			}
			for _, m := range res.Messages {
				if m.Channel != "news" || string(m.Data) != string(Data(int(m.Offset))) || m.Epoch != epoch || m.Time.IsZero() || time.Since(m.Time) > time.Minute {
					t.Errorf("%s: message %+v", tc.name, m)
				}
			}
		}
	})

	// A larger size takes effect with the next publish.
	t.Run("SizeGrows", func(t *testing.T) {
		opts := opts
		opts.Size = 10
		publish(t, pub, "news", Data(6), opts)
		publish(t, pub, "news", Data(7), opts)
		if got := offsetsOf(history(t, reader, "news", pubsub.HistoryRequest{}).Messages); !slices.Equal(got, []uint64{3, 4, 5, 6, 7}) {
			t.Fatalf("after growing to 10: offsets %v, want [3 4 5 6 7]", got)
		}
	})

	// Past the TTL nothing is returned and nothing can be recovered, but
	// the position stays. (Last: a broker may drop what expired for good.)
	t.Run("TTL", func(t *testing.T) {
		s.Skew(reader.Broker, 2*time.Minute)
		defer s.Skew(reader.Broker, 0)
		for _, req := range []pubsub.HistoryRequest{{Since: at(4)}, {}, {Limit: 1}} {
			res := history(t, reader, "news", req)
			if len(res.Messages) != 0 || res.Complete || res.Position != *at(7) {
				t.Errorf("after the TTL, %+v: offsets %v complete %v position %v; want none, incomplete, %v", req, offsetsOf(res.Messages), res.Complete, res.Position, *at(7))
			}
		}
	})

	// A channel without history still counts offsets and recovers nothing
	// but "nothing missed".
	t.Run("SizeZero", func(t *testing.T) {
		for k := 1; k <= 3; k++ {
			publish(t, pub, "nohist:x", Data(k), pubsub.HistoryOptions{})
		}
		res := history(t, reader, "nohist:x", pubsub.HistoryRequest{})
		if len(res.Messages) != 0 || res.Position.Offset != 3 || res.Position.Epoch == "" {
			t.Fatalf("size 0: offsets %v at %v; want none at offset 3", offsetsOf(res.Messages), res.Position)
		}
		for _, since := range []uint64{3, 2} {
			res := history(t, reader, "nohist:x", pubsub.HistoryRequest{Since: &pubsub.Position{Offset: since, Epoch: res.Position.Epoch}})
			if res.Complete != (since == 3) || len(res.Messages) != 0 {
				t.Fatalf("size 0, since %d: complete %v, %d messages; want complete %v, none", since, res.Complete, len(res.Messages), since == 3)
			}
		}
	})
}

// The epoch a subscriber sees on an empty channel is the epoch of its
// first message, whichever node reads or publishes, and recovery from
// that empty position is complete. The Hub looks at a channel after
// subscribing, so that is checked on every broker; a broker that keeps
// idle channels must also keep the epoch without interest.
func (s Setup) epoch(t *testing.T) {
	variants := []string{"WithInterest"}
	if !s.ForgetsIdleChannels {
		variants = append(variants, "WithoutInterest")
	}
	for _, v := range variants {
		t.Run(v, func(t *testing.T) {
			ctx := Context(t)
			n := s.nodes(t, 2)
			a, b := n[0], n[1]
			if v == "WithInterest" {
				must(t, "Subscribe", a.Subscribe(ctx, "fresh"))
			}
			ra := history(t, a, "fresh", pubsub.HistoryRequest{Limit: -1})
			rb := history(t, b, "fresh", pubsub.HistoryRequest{})
			if ra.Position.Offset != 0 || ra.Position.Epoch == "" || rb.Position != ra.Position || len(rb.Messages) != 0 || ra.Complete || rb.Complete {
				t.Fatalf("positions %v and %v (%d messages): want offset 0 in one epoch, no message", ra.Position, rb.Position, len(rb.Messages))
			}
			m := publish(t, b, "fresh", Data(1), pubsub.HistoryOptions{Size: 10})
			if m.Position() != (pubsub.Position{Offset: 1, Epoch: ra.Position.Epoch}) {
				t.Fatalf("first message at %v, want offset 1 in %q", m.Position(), ra.Position.Epoch)
			}
			publish(t, b, "fresh", Data(2), pubsub.HistoryOptions{Size: 10})
			res := history(t, a, "fresh", pubsub.HistoryRequest{Since: &ra.Position})
			if got := offsetsOf(res.Messages); !res.Complete || !slices.Equal(got, []uint64{1, 2}) || string(res.Messages[1].Data) != `{"n":2}` {
				t.Fatalf("history since the empty position: complete %v, offsets %v; want complete, [1 2]", res.Complete, got)
			}
		})
	}
}

// Presence is shared: a client added on one node is listed, sorted by
// client id with its user and info, by every node, and every node with
// interest receives its join; a removal is a leave; removing an absent
// client does nothing.
func (s Setup) presence(t *testing.T) {
	ctx := Context(t)
	n := s.nodes(t, 2)
	a, b := n[0], n[1]
	for _, x := range n {
		must(t, "Subscribe", x.Subscribe(ctx, "chat:room"))
	}
	alice := pubsub.ClientInfo{Client: "c1", User: "alice", Info: []byte(`{"color":"teal"}`)}
	bob := pubsub.ClientInfo{Client: "c0", User: "bob"}
	carol := pubsub.ClientInfo{Client: "c2", User: "carol"}
	must(t, "AddPresence", b.AddPresence(ctx, "chat:room", alice))
	must(t, "AddPresence", a.AddPresence(ctx, "chat:room", bob))
	if !s.DeliversWithoutInterest {
		must(t, "AddPresence", a.AddPresence(ctx, "chat:other", bob)) // no interest: no event
	}
	for i, x := range n {
		list, err := x.Presence(ctx, "chat:room")
		must(t, "Presence", err)
		if len(list) != 2 || list[0].Client != "c0" || list[0].User != "bob" || list[0].Info != nil ||
			list[1].Client != "c1" || list[1].User != "alice" || string(list[1].Info) != `{"color":"teal"}` {
			t.Fatalf("presence on node %d = %+v, want bob (c0) then alice (c1) with her info", i, list)
		}
	}
	want := []string{"join chat:room c1 alice", "join chat:room c0 bob"}
	for i, x := range n {
		if got := x.ev.WaitLines(t, ctx, 2); !slices.Equal(got, want) {
			t.Fatalf("node %d: events %q, want %q", i, got, want)
		}
	}
	must(t, "RemovePresence", b.RemovePresence(ctx, "chat:room", alice))
	must(t, "RemovePresence", b.RemovePresence(ctx, "chat:room", pubsub.ClientInfo{Client: "nobody"}))
	must(t, "RemovePresence", a.RemovePresence(ctx, "chat:room", alice)) // gone already
	must(t, "AddPresence", a.AddPresence(ctx, "chat:room", carol))
	want = append(want, "leave chat:room c1 alice", "join chat:room c2 carol")
	for i, x := range n {
		if got := x.ev.WaitLines(t, ctx, 4); !slices.Equal(got, want) {
			t.Fatalf("node %d: events %q, want %q", i, got, want)
		}
		list, err := x.Presence(ctx, "chat:room")
		must(t, "Presence", err)
		if len(list) != 2 || list[0].Client != "c0" || list[1].Client != "c2" || list[1].User != "carol" {
			t.Fatalf("presence on node %d = %+v, want bob (c0) then carol (c2)", i, list)
		}
	}
	list, err := b.Presence(ctx, "chat:nobody")
	if err != nil || len(list) != 0 {
		t.Fatalf("presence of an unknown channel: %+v, %v; want none", list, err)
	}
}

// Channels lists, sorted by name, every channel with history, presence or
// interest, with its position; another node lists the same.
func (s Setup) channels(t *testing.T) {
	ctx := Context(t)
	n := s.nodes(t, 2)
	a, b := n[0], n[1]
	list, err := a.Channels(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("channels of an empty store: %+v, %v", list, err)
	}
	opts := pubsub.HistoryOptions{Size: 5}
	publish(t, a, "news", Data(1), opts)
	pa := publish(t, a, "news", Data(2), opts)
	pc := publish(t, b, "chat:x.y", Data(1), opts)
	// a sees the presence once it delivers the join: it may list the
	// channel from what it was told.
	must(t, "Subscribe", a.Subscribe(ctx, "chat:present"))
	mark := len(a.ev.Lines())
	must(t, "AddPresence", b.AddPresence(ctx, "chat:present", pubsub.ClientInfo{Client: "c1"}))
	a.ev.WaitLines(t, ctx, mark+1)
	must(t, "Unsubscribe", a.Unsubscribe(ctx, "chat:present"))
	must(t, "Subscribe", a.Subscribe(ctx, "chat:watched"))
	list, err = a.Channels(ctx)
	must(t, "Channels", err)
	if len(list) != 4 || list[0].Channel != "chat:present" || list[0].Offset != 0 || list[0].Epoch == "" ||
		list[1].Channel != "chat:watched" || list[1].Offset != 0 || list[1].Epoch == "" ||
		list[2].Channel != "chat:x.y" || list[2].Position != pc.Position() ||
		list[3].Channel != "news" || list[3].Position != pa.Position() {
		t.Fatalf("channels = %+v\nwant chat:present and chat:watched at offset 0, chat:x.y at %v, news at %v", list, pc.Position(), pa.Position())
	}
	for _, c := range list {
		if c.Subscribers != 0 {
			t.Fatalf("channels = %+v: Subscribers is the Hub's to fill", list)
		}
	}
	other, err := b.Channels(ctx)
	must(t, "Channels", err)
	if !slices.Equal(other, list) {
		t.Fatalf("channels on b = %+v, on a %+v", other, list)
	}
}

// Close returns nil, also a second time. On a broker shared by several
// nodes, a node that closes withdraws the presence it added (the others
// receive the leave), receives nothing more, and the others go on with
// the channels, what it published included.
func (s Setup) close(t *testing.T) {
	ctx := Context(t)
	n := s.nodes(t, 3)
	a, b, c := n[0], n[1], n[2]
	if s.Nodes < 3 {
		must(t, "Close", a.Close())
		must(t, "second Close", a.Close())
		return
	}
	for _, x := range n {
		must(t, "Subscribe", x.Subscribe(ctx, "news"))
	}
	must(t, "Subscribe", b.Subscribe(ctx, "chat:room"))
	carol := pubsub.ClientInfo{Client: "c2", User: "carol"}
	must(t, "AddPresence", a.AddPresence(ctx, "chat:room", carol))
	m1 := publish(t, a, "news", Data(1), pubsub.HistoryOptions{Size: 10})
	for _, x := range n {
		x.ev.WaitLines(t, ctx, 1)
	}
	b.ev.WaitLines(t, ctx, 2)
	before := a.ev.Lines()

	must(t, "Close", a.Close())
	must(t, "second Close", a.Close())
	if got := only(b.ev.WaitLines(t, ctx, 3), "chat:room"); !slices.Equal(got, []string{"join chat:room c2 carol", "leave chat:room c2 carol"}) {
		t.Fatalf("presence events on another node: %q, want carol's join and leave", got)
	}
	list, err := c.Presence(ctx, "chat:room")
	if err != nil || len(list) != 0 {
		t.Fatalf("presence after the closed node's Close: %+v, %v; want none", list, err)
	}
	m2 := publish(t, b, "news", Data(2), pubsub.HistoryOptions{Size: 10})
	if got := c.ev.WaitLines(t, ctx, 2); !slices.Equal(got, []string{line(m1), line(m2)}) {
		t.Fatalf("delivered on a node still open: %q", got)
	}
	if got := offsetsOf(history(t, c, "news", pubsub.HistoryRequest{}).Messages); !slices.Equal(got, []uint64{1, 2}) || m2.Offset != 2 || m2.Epoch != m1.Epoch {
		t.Fatalf("history after a node closed: %v (second message at %v); want [1 2] in %q", got, m2.Position(), m1.Epoch)
	}
	if got := a.ev.Lines(); !slices.Equal(got, before) {
		t.Fatalf("the closed node received %q after Close", got[len(before):])
	}
}
