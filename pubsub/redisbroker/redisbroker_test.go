package redisbroker

import (
	"context"
	"fmt"
	"slices"
	"strings"
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

// Adding a client that is present already changes nothing and delivers
// no second join. What every broker does with presence is checked by
// TestContract.
func TestAddPresenceTwiceOneJoin(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	a, b := dial(t, s, Options{}), dial(t, s, Options{})
	ev := newEvents()
	b.SetHandler(ev)
	if err := b.Subscribe(ctx, "chat:room"); err != nil {
		t.Fatal(err)
	}
	bob := pubsub.ClientInfo{Client: "c0", User: "bob"}
	for range 2 {
		if err := a.AddPresence(ctx, "chat:room", bob); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.RemovePresence(ctx, "chat:room", bob); err != nil {
		t.Fatal(err)
	}
	want := []string{"join chat:room c0 bob", "leave chat:room c0 bob"}
	if got := ev.waitLines(t, ctx, 2); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

// The presence of a node that dies (its connections drop, nobody removes
// its clients) expires after the presence TTL and is a leave on every
// other node, published once though every node sweeps, while a live
// node's refreshed presence stays.
func TestPresenceExpiresWhenNodeDies(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	opts := Options{PresenceTTL: 2 * time.Second} // refreshed every 667 ms
	a, b, k := dial(t, s, opts), dial(t, s, opts), dial(t, s, opts)
	eva, evb := newEvents(), newEvents()
	a.SetHandler(eva)
	b.SetHandler(evb)
	for _, n := range []*Broker{a, b} {
		if err := n.Subscribe(ctx, "chat:room"); err != nil {
			t.Fatal(err)
		}
	}
	bob := pubsub.ClientInfo{Client: "c0", User: "bob"}
	carol := pubsub.ClientInfo{Client: "c2", User: "carol"}
	if err := a.AddPresence(ctx, "chat:room", bob); err != nil {
		t.Fatal(err)
	}
	if err := k.AddPresence(ctx, "chat:room", carol); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []*events{eva, evb} {
		if got := ev.waitLines(t, ctx, 2); !slices.Equal(got, []string{"join chat:room c0 bob", "join chat:room c2 carol"}) {
			t.Fatalf("events %q", got)
		}
	}
	// k dies. Refreshes keep bob (a's) alive past the TTL while carol
	// expires.
	k.ps.Close()
	k.rdb.Close()
	start := time.Now()
	for _, ev := range []*events{eva, evb} {
		if got := ev.waitLines(t, ctx, 3); got[2] != "leave chat:room c2 carol" {
			t.Fatalf("events %q", got)
		}
	}
	t.Logf("presence of a dead node expired after %v", time.Since(start))
	list, err := b.Presence(ctx, "chat:room")
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
		if got := ev.waitLines(t, ctx, 4); len(got) != 4 || got[3] != "message chat:room 1 "+string(data(1)) {
			t.Fatalf("events %q", got)
		}
	}
}

// A channel's keys expire after the idle TTL (24 h), which every publish
// refreshes; a channel whose keys expired is dropped from the listing and
// from the index of channels. What every broker lists is checked by
// TestContract.
func TestKeysExpireWhenIdle(t *testing.T) {
	s := redistest.Start(t)
	ctx := testCtx(t)
	b := dial(t, s, Options{})
	opts := pubsub.HistoryOptions{Size: 5}
	for k := 1; k <= 2; k++ {
		if _, err := b.Publish(ctx, "news", data(k), opts); err != nil {
			t.Fatal(err)
		}
	}
	ttl, err := b.rdb.PTTL(ctx, b.key("news", "stream")).Result()
	if err != nil || ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("TTL of the stream: %v, %v; want about 24h", ttl, err)
	}
	if _, err := b.Publish(ctx, "gone", data(1), opts); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.Del(ctx, b.key("gone", "meta"), b.key("gone", "stream")).Err(); err != nil {
		t.Fatal(err)
	}
	list, err := b.Channels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Channel != "news" || list[0].Offset != 2 {
		t.Fatalf("channels = %+v, want news alone", list)
	}
	if n, err := b.rdb.ZScore(ctx, b.channelsKey(), "gone").Result(); err == nil {
		t.Fatalf("gone still indexed (%v)", n)
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
