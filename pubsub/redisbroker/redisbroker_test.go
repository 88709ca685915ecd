package redisbroker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/redistest"
	"github.com/duplex-ws/duplex/pubsub"
	"github.com/redis/go-redis/v9"
)

func TestDialErrors(t *testing.T) {
	s := redistest.Start(t)
	_, err := Dial(s.URL(), Options{Prefix: "a:b"})
	if err == nil || err.Error() != `redisbroker: prefix "a:b": only letters, digits, '-' and '_'` {
		t.Fatalf("Dial with prefix a:b: %v", err)
	}
	_, err = Dial("http://127.0.0.1:1", Options{})
	if err == nil || err.Error() != `redisbroker: http://127.0.0.1:1: redis: invalid URL scheme: http` {
		t.Fatalf("Dial http://: %v", err)
	}
	_, err = Dial("redis://user:secret@127.0.0.1:1/0", Options{})
	if err == nil || err.Error() != `redisbroker: connect redis://user:xxxxx@127.0.0.1:1/0: dial tcp 127.0.0.1:1: connect: connection refused` {
		t.Fatalf("Dial to a closed port: %v", err)
	}
}

// Two nodes publishing to one channel at once get consecutive offsets from
// 1, without a gap or a duplicate, in one epoch; a third node subscribed
// to it receives them all in offset order. Other channels count on their
// own, each in its own epoch.
func TestOffsetsConsecutiveAcrossNodes(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	nodes := []*Broker{dial(t, s, Options{}), dial(t, s, Options{})}
	watcher := dial(t, s, Options{})
	ev := newEvents()
	watcher.SetHandler(ev)
	if err := watcher.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	opts := pubsub.HistoryOptions{Size: 100}
	const per = 25
	var mu sync.Mutex
	var got []pubsub.Position
	var wg sync.WaitGroup
	errc := make(chan error, len(nodes))
	for i, b := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range per {
				m, err := b.Publish(ctx, "news", data(i*per+k), opts)
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				got = append(got, m.Position())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b pubsub.Position) int { return int(a.Offset) - int(b.Offset) })
	for i, p := range got {
		if p.Offset != uint64(i+1) || p.Epoch != got[0].Epoch || p.Epoch == "" {
			t.Fatalf("positions %v: want offsets 1..%d in one epoch", got, 2*per)
		}
	}
	// History holds them in offset order, each with the payload its
	// publisher sent; the watcher received the same, in the same order.
	res, err := nodes[1].History(ctx, "news", pubsub.HistoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 2*per || res.Position != got[len(got)-1] {
		t.Fatalf("history: %d messages, position %v", len(res.Messages), res.Position)
	}
	var want []string
	for i, m := range res.Messages {
		if m.Offset != uint64(i+1) || m.Epoch != got[0].Epoch || m.Channel != "news" {
			t.Fatalf("history message %d: %+v", i, m)
		}
		want = append(want, fmt.Sprintf("message news %d %s", m.Offset, m.Data))
	}
	if lines := ev.waitLines(t, ctx, 2*per); !slices.Equal(lines, want) {
		t.Fatalf("delivered %q\nwant %q", lines, want)
	}

	other, err := nodes[0].Publish(ctx, "chat:a.b", data(1), opts)
	if err != nil {
		t.Fatal(err)
	}
	if other.Offset != 1 || other.Epoch == got[0].Epoch || other.Channel != "chat:a.b" || string(other.Data) != `{"n":1}` {
		t.Fatalf("first message of chat:a.b: %+v (news epoch %q)", other, got[0].Epoch)
	}
}

// The epoch a subscriber sees on an empty channel is the epoch of its
// first message, whichever node reads or publishes.
func TestEmptyChannelEpoch(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	a, b := dial(t, s, Options{}), dial(t, s, Options{})
	ra, err := a.History(ctx, "fresh", pubsub.HistoryRequest{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.History(ctx, "fresh", pubsub.HistoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if ra.Position.Offset != 0 || ra.Position.Epoch == "" || rb.Position != ra.Position || len(rb.Messages) != 0 {
		t.Fatalf("positions %v and %v (%d messages): want offset 0 in one epoch, no message", ra.Position, rb.Position, len(rb.Messages))
	}
	m, err := b.Publish(ctx, "fresh", data(1), pubsub.HistoryOptions{Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if m.Position() != (pubsub.Position{Offset: 1, Epoch: ra.Position.Epoch}) {
		t.Fatalf("first message at %v, want offset 1 in %q", m.Position(), ra.Position.Epoch)
	}
	if _, err := b.Publish(ctx, "fresh", data(2), pubsub.HistoryOptions{Size: 10}); err != nil {
		t.Fatal(err)
	}
	res, err := a.History(ctx, "fresh", pubsub.HistoryRequest{Since: &ra.Position})
	if err != nil {
		t.Fatal(err)
	}
	if got := offsetsOf(res.Messages); !res.Complete || !slices.Equal(got, []uint64{1, 2}) || string(res.Messages[1].Data) != `{"n":2}` {
		t.Fatalf("history since the empty position: complete %v, offsets %v", res.Complete, got)
	}
}

// History keeps the namespace's size and TTL, and recovery with Since is
// complete exactly when every message after it is still kept.
func TestHistorySizeTTLAndSince(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	b := dial(t, s, Options{})
	opts := pubsub.HistoryOptions{Size: 3, TTL: time.Minute}
	var epoch string
	for k := 1; k <= 5; k++ {
		m, err := b.Publish(ctx, "news", data(k), opts)
		if err != nil {
			t.Fatal(err)
		}
		epoch = m.Epoch
	}
	at := func(off uint64) *pubsub.Position { return &pubsub.Position{Offset: off, Epoch: epoch} }
	for _, tc := range []struct {
		name     string
		req      pubsub.HistoryRequest
		want     []uint64
		complete bool
	}{
		{"latest", pubsub.HistoryRequest{}, []uint64{3, 4, 5}, false},
		{"latest 2", pubsub.HistoryRequest{Limit: 2}, []uint64{4, 5}, false},
		{"position only", pubsub.HistoryRequest{Limit: -1}, []uint64{}, false},
		{"since 2", pubsub.HistoryRequest{Since: at(2)}, []uint64{3, 4, 5}, true},
		{"since 2 limit 1", pubsub.HistoryRequest{Since: at(2), Limit: 1}, []uint64{3}, true},
		{"since 1 (4 missed, 3 kept)", pubsub.HistoryRequest{Since: at(1)}, []uint64{}, false},
		{"since 5", pubsub.HistoryRequest{Since: at(5)}, []uint64{}, true},
		{"since 6", pubsub.HistoryRequest{Since: at(6)}, []uint64{}, false},
		{"other epoch", pubsub.HistoryRequest{Since: &pubsub.Position{Offset: 4, Epoch: "other"}}, []uint64{}, false},
	} {
		res, err := b.History(ctx, "news", tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := offsetsOf(res.Messages); !slices.Equal(got, tc.want) || res.Complete != tc.complete || res.Position != *at(5) {
			t.Errorf("%s: offsets %v complete %v position %v; want %v %v %v", tc.name, got, res.Complete, res.Position, tc.want, tc.complete, *at(5))
		}
		for _, m := range res.Messages {
			if string(m.Data) != string(data(int(m.Offset))) || m.Epoch != epoch || m.Time.IsZero() || time.Since(m.Time) > time.Minute {
				t.Errorf("%s: message %+v", tc.name, m)
			}
		}
	}

	// Past the TTL nothing is returned and nothing can be recovered, but
	// the position stays.
	b.clockShift.Store(int64(2 * time.Minute))
	for _, req := range []pubsub.HistoryRequest{{Since: at(4)}, {}} {
		res, err := b.History(ctx, "news", req)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) != 0 || res.Complete || res.Position != *at(5) {
			t.Fatalf("after the TTL, %+v: %v complete %v position %v", req, offsetsOf(res.Messages), res.Complete, res.Position)
		}
	}
	b.clockShift.Store(0)

	// A larger size takes effect with the next publish.
	opts.Size = 10
	if _, err := b.Publish(ctx, "news", data(6), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, "news", data(7), opts); err != nil {
		t.Fatal(err)
	}
	res, err := b.History(ctx, "news", pubsub.HistoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := offsetsOf(res.Messages); !slices.Equal(got, []uint64{3, 4, 5, 6, 7}) {
		t.Fatalf("after growing to 10: %v", got)
	}

	// A namespace without history still counts offsets and recovers
	// nothing but "nothing missed".
	for k := 1; k <= 3; k++ {
		if _, err := b.Publish(ctx, "nohist:x", data(k), pubsub.HistoryOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	res, err = b.History(ctx, "nohist:x", pubsub.HistoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	e := res.Position.Epoch
	if len(res.Messages) != 0 || res.Position.Offset != 3 {
		t.Fatalf("size 0: %v at %v", offsetsOf(res.Messages), res.Position)
	}
	for since, complete := range map[uint64]bool{3: true, 2: false} {
		res, err = b.History(ctx, "nohist:x", pubsub.HistoryRequest{Since: &pubsub.Position{Offset: since, Epoch: e}})
		if err != nil || res.Complete != complete || len(res.Messages) != 0 {
			t.Fatalf("size 0, since %d: complete %v, %d messages, %v", since, res.Complete, len(res.Messages), err)
		}
	}
	// The keys expire after the idle TTL, refreshed by every publish.
	ttl, err := b.rdb.PTTL(ctx, b.key("news", "stream")).Result()
	if err != nil || ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("TTL of the stream: %v, %v; want about 24h", ttl, err)
	}
}

// Subscribe delivers every message published on any node from its return
// on, in offset order; interest is counted.
func TestLiveDeliveryCounted(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	a, b := dial(t, s, Options{}), dial(t, s, Options{})
	ev := newEvents()
	b.SetHandler(ev)
	opts := pubsub.HistoryOptions{Size: 10}
	if _, err := a.Publish(ctx, "news", data(1), opts); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.Subscribe(ctx, "news"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Unsubscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	for k := 2; k <= 21; k++ {
		if _, err := a.Publish(ctx, "news", data(k), opts); err != nil {
			t.Fatal(err)
		}
	}
	got := ev.waitLines(t, ctx, 20)
	var want []string
	for k := 2; k <= 21; k++ {
		want = append(want, fmt.Sprintf("message news %d %s", k, data(k)))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %q\nwant %q", got, want)
	}
	if err := b.Unsubscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	if c := b.interested("news"); c != nil {
		t.Fatalf("interest left after the last Unsubscribe: %+v", c)
	}
	// Without interest nothing is delivered: a publish to news, then one
	// to a channel b subscribes to, arrive in that order on Redis.
	if err := b.Subscribe(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, "news", data(22), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, "other", data(1), opts); err != nil {
		t.Fatal(err)
	}
	if got := ev.waitLines(t, ctx, 21); len(got) != 21 || got[20] != "message other 1 "+string(data(1)) {
		t.Fatalf("after the last Unsubscribe of news: %q", got[20:])
	}
}

// A message missed on Pub/Sub (published while the node's link was down)
// is read from the stream when the next one shows the gap, and delivered
// first.
func TestGapFilledFromStream(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	a, b := dial(t, s, Options{}), dial(t, s, Options{})
	ev := newEvents()
	b.SetHandler(ev)
	if err := b.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	opts := pubsub.HistoryOptions{Size: 10}
	if _, err := a.Publish(ctx, "news", data(1), opts); err != nil {
		t.Fatal(err)
	}
	// 2 and 3 are stored but announced on a Pub/Sub channel nobody
	// listens to, as if b had missed them.
	for k := 2; k <= 3; k++ {
		err := publishScript.Run(ctx, a.rdb,
			[]string{a.key("news", "meta"), a.key("news", "stream"), a.channelsKey()},
			data(k), 10, 0, a.idleMS, "nobody", "unused", "news").Err()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Publish(ctx, "news", data(4), opts); err != nil {
		t.Fatal(err)
	}
	got := ev.waitLines(t, ctx, 4)
	var want []string
	for k := 1; k <= 4; k++ {
		want = append(want, fmt.Sprintf("message news %d %s", k, data(k)))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %q\nwant %q", got, want)
	}
}

// Presence is shared: a client added on one node is listed and joins on
// every node with interest; a removal is a leave; the presence of a node
// that dies expires and is a leave too, published once.
func TestPresenceAcrossNodes(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	opts := Options{PresenceTTL: 2 * time.Second} // refreshed every 667 ms
	a, b := dial(t, s, opts), dial(t, s, opts)
	eva, evb := newEvents(), newEvents()
	a.SetHandler(eva)
	b.SetHandler(evb)
	for _, n := range []*Broker{a, b} {
		if err := n.Subscribe(ctx, "chat:room"); err != nil {
			t.Fatal(err)
		}
	}
	alice := pubsub.ClientInfo{Client: "c1", User: "alice", Info: []byte(`{"color":"teal"}`)}
	bob := pubsub.ClientInfo{Client: "c0", User: "bob"}
	if err := b.AddPresence(ctx, "chat:room", alice); err != nil {
		t.Fatal(err)
	}
	if err := a.AddPresence(ctx, "chat:room", bob); err != nil {
		t.Fatal(err)
	}
	if err := a.AddPresence(ctx, "chat:room", bob); err != nil { // again: no second join
		t.Fatal(err)
	}
	if err := a.AddPresence(ctx, "chat:other", bob); err != nil { // no interest: no event
		t.Fatal(err)
	}
	list, err := a.Presence(ctx, "chat:room")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Client != "c0" || list[0].User != "bob" || list[0].Info != nil ||
		list[1].Client != "c1" || list[1].User != "alice" || string(list[1].Info) != `{"color":"teal"}` {
		t.Fatalf("presence = %+v", list)
	}
	for _, ev := range []*events{eva, evb} {
		got := ev.waitLines(t, ctx, 2)
		if !slices.Equal(got, []string{"join chat:room c1 alice", "join chat:room c0 bob"}) {
			t.Fatalf("events %q", got)
		}
	}
	if err := b.RemovePresence(ctx, "chat:room", alice); err != nil {
		t.Fatal(err)
	}
	if err := b.RemovePresence(ctx, "chat:room", pubsub.ClientInfo{Client: "nobody"}); err != nil {
		t.Fatal(err)
	}
	if got := eva.waitLines(t, ctx, 3); got[2] != "leave chat:room c1 alice" {
		t.Fatalf("events %q", got)
	}

	// A node dies: its connections drop, nobody removes its clients.
	k := dial(t, s, opts)
	carol := pubsub.ClientInfo{Client: "c2", User: "carol"}
	if err := k.AddPresence(ctx, "chat:room", carol); err != nil {
		t.Fatal(err)
	}
	if got := eva.waitLines(t, ctx, 4); got[3] != "join chat:room c2 carol" {
		t.Fatalf("events %q", got)
	}
	// Refreshes keep bob (a's) alive past the TTL while carol expires.
	k.ps.Close()
	k.rdb.Close()
	start := time.Now()
	for _, ev := range []*events{eva, evb} {
		got := ev.waitLines(t, ctx, 5)
		if got[4] != "leave chat:room c2 carol" {
			t.Fatalf("events %q", got)
		}
	}
	t.Logf("presence of a dead node expired after %v", time.Since(start))
	list, err = b.Presence(ctx, "chat:room")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Client != "c0" {
		t.Fatalf("presence after carol expired = %+v", list)
	}
	// One leave only, though both nodes sweep: a publish after it comes
	// right after it.
	if _, err := a.Publish(ctx, "chat:room", data(1), pubsub.HistoryOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []*events{eva, evb} {
		if got := ev.waitLines(t, ctx, 6); len(got) != 6 || got[5] != "message chat:room 1 "+string(data(1)) {
			t.Fatalf("events %q", got)
		}
	}
}

func TestChannels(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	a, b := dial(t, s, Options{}), dial(t, s, Options{})
	opts := pubsub.HistoryOptions{Size: 5}
	pa, err := a.Publish(ctx, "news", data(1), opts)
	if err != nil {
		t.Fatal(err)
	}
	pa, err = a.Publish(ctx, "news", data(2), opts)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := b.Publish(ctx, "chat:x.y", data(1), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddPresence(ctx, "chat:present", pubsub.ClientInfo{Client: "c1"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Subscribe(ctx, "chat:watched"); err != nil {
		t.Fatal(err)
	}
	// A channel whose keys expired is dropped from the listing.
	if _, err := a.Publish(ctx, "gone", data(1), opts); err != nil {
		t.Fatal(err)
	}
	if err := a.rdb.Del(ctx, a.key("gone", "meta"), a.key("gone", "stream")).Err(); err != nil {
		t.Fatal(err)
	}
	list, err := a.Channels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 4 || list[0].Channel != "chat:present" || list[0].Offset != 0 || list[0].Epoch == "" ||
		list[1].Channel != "chat:watched" || list[1].Offset != 0 || list[1].Epoch == "" ||
		list[2].Channel != "chat:x.y" || list[2].Position != pc.Position() ||
		list[3].Channel != "news" || list[3].Position != pa.Position() {
		t.Fatalf("channels = %+v", list)
	}
	if n, err := a.rdb.ZScore(ctx, a.channelsKey(), "gone").Result(); err == nil {
		t.Fatalf("gone still indexed (%v)", n)
	}
	// The other node lists the same, the empty channels in the same epochs.
	other, err := b.Channels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(other, list) {
		t.Fatalf("channels on b = %+v, on a %+v", other, list)
	}
}

// While Redis is away, calls fail with the client's error and Ready says
// so. Redis comes back empty (no persistence): the channel starts a new
// epoch, which a live subscription receives, and recovery from the old
// epoch is incomplete.
func TestOutage(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	a, b := dial(t, s, Options{}), dial(t, s, Options{})
	ev := newEvents()
	b.SetHandler(ev)
	if err := b.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	opts := pubsub.HistoryOptions{Size: 10}
	m1, err := a.Publish(ctx, "news", data(1), opts)
	if err != nil {
		t.Fatal(err)
	}
	ev.waitLines(t, ctx, 1)
	if err := a.Ready(); err != nil {
		t.Fatalf("Ready before the outage: %v", err)
	}

	s.Stop()
	refused := fmt.Sprintf("dial tcp %s: connect: connection refused", s.Addr())
	if err := a.Ready(); err == nil || err.Error() != "redisbroker: redis unreachable: "+refused {
		t.Fatalf("Ready during the outage: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := a.Publish(short, "news", data(2), opts); err == nil || !strings.HasPrefix(err.Error(), `redisbroker: publish to "news": `) {
		t.Fatalf("Publish during the outage: %v", err)
	}
	if _, err := b.History(short, "news", pubsub.HistoryRequest{}); err == nil || !strings.HasPrefix(err.Error(), `redisbroker: history of "news": `) {
		t.Fatalf("History during the outage: %v", err)
	}
	if err := a.Subscribe(short, "other"); err == nil || !strings.HasPrefix(err.Error(), `redisbroker: subscribe to "other": `) {
		t.Fatalf("Subscribe during the outage: %v", err)
	}
	if c := a.interested("other"); c != nil {
		t.Fatalf("interest left after a failed Subscribe: %+v", c)
	}
	if err := a.AddPresence(short, "news", pubsub.ClientInfo{Client: "c1"}); err == nil || !strings.HasPrefix(err.Error(), `redisbroker: presence in "news": `) {
		t.Fatalf("AddPresence during the outage: %v", err)
	}

	s.Restart()
	m2, err := a.Publish(ctx, "news", data(2), opts)
	if err != nil {
		t.Fatalf("Publish after the outage: %v", err)
	}
	if m2.Offset != 1 || m2.Epoch == m1.Epoch {
		t.Fatalf("after the outage: %v, want offset 1 in a new epoch (was %q)", m2.Position(), m1.Epoch)
	}
	got := ev.waitLines(t, ctx, 2)
	want := []string{"message news 1 " + string(data(1)), "message news 1 " + string(data(2))}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	res, err := b.History(ctx, "news", pubsub.HistoryRequest{Since: &pubsub.Position{Offset: 1, Epoch: m1.Epoch}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Complete || len(res.Messages) != 0 || res.Position != m2.Position() {
		t.Fatalf("recovery from the old epoch: complete %v, %d messages, position %v", res.Complete, len(res.Messages), res.Position)
	}
	if err := b.Ready(); err != nil {
		t.Fatalf("Ready after the outage: %v", err)
	}
}

// When the Pub/Sub connection drops and comes back, the node reads what
// was published meanwhile from the stream, without waiting for a newer
// message to show the gap.
func TestCatchUpAfterReconnection(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	a, b := dial(t, s, Options{}), dial(t, s, Options{})
	ev := newEvents()
	b.SetHandler(ev)
	if err := b.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	opts := pubsub.HistoryOptions{Size: 10}
	if _, err := a.Publish(ctx, "news", data(1), opts); err != nil {
		t.Fatal(err)
	}
	ev.waitLines(t, ctx, 1)
	// In one transaction: drop b's Pub/Sub connection, then publish 2 and
	// 3, which it cannot receive live.
	_, err := a.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ClientKillByFilter(ctx, "TYPE", "pubsub")
		for k := 2; k <= 3; k++ {
			publishScript.Eval(ctx, p,
				[]string{a.key("news", "meta"), a.key("news", "stream"), a.channelsKey()},
				data(k), 10, 0, a.idleMS, a.eventsChannel("news"), "unused", "news")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := ev.waitLines(t, ctx, 3)
	want := []string{"message news 1 " + string(data(1)), "message news 2 " + string(data(2)), "message news 3 " + string(data(3))}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	// Live delivery goes on on the new connection.
	if _, err := a.Publish(ctx, "news", data(4), opts); err != nil {
		t.Fatal(err)
	}
	if got := ev.waitLines(t, ctx, 4); len(got) != 4 || got[3] != "message news 4 "+string(data(4)) {
		t.Fatalf("delivered %q", got)
	}
}
