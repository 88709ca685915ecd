package redisbroker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/brokertest"
	"github.com/duplex-ws/duplex/internal/redistest"
	"github.com/duplex-ws/duplex/pubsub"
	"github.com/redis/go-redis/v9"
)

// rollbackNamespaces: chat keeps 20 messages.
var rollbackNamespaces = map[string]pubsub.NamespaceOptions{"chat": {HistorySize: 20, ClientPublish: true}}

// rollbackWarning is the line a node logs when it finds channel back at
// offset from of epoch after it saw offset seen.
func rollbackWarning(channel, epoch string, from, seen int, newEpoch string) string {
	return fmt.Sprintf(`level=WARN msg="Redis lost writes (it came back from a crash with older data): the channel starts a new epoch" broker=redis channel=%s redis_position=%s:%d seen_position=%s:%d new_epoch=%s`,
		channel, epoch, from, epoch, seen, newEpoch)
}

// publishHub publishes message k to channel through hub, retrying for at
// most 20 s while Redis is not (yet) back, and returns its position.
func publishHub(t *testing.T, ctx context.Context, hub *pubsub.Hub, channel string, k int) pubsub.Position {
	t.Helper()
	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		p, err := hub.Publish(wait, channel, data(k))
		if err == nil {
			return p
		}
		select {
		case <-wait.Done():
			t.Fatalf("publish %d: %v", k, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// storedEpoch polls Redis until the channel's stored epoch is not old and
// returns it.
func storedEpoch(t *testing.T, ctx context.Context, s *redistest.Server, channel, old string) string {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DisableIdentity: true})
	defer rdb.Close()
	for {
		e, err := rdb.HGet(ctx, "duplex:{"+channel+"}:meta", "epoch").Result()
		if err == nil && e != old {
			return e
		}
		select {
		case <-ctx.Done():
			t.Fatalf("epoch of %s still %q (%v)", channel, e, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Redis comes back from a crash with older data (restored from a copy
// taken after message 5, while node b's subscriber had received 10): b,
// catching up after the reconnection, finds the channel at offset 5 of
// the epoch it delivered 10 of, gives the channel a new epoch and logs
// it, once. The subscriber is told, before the new epoch's first message,
// that the old epoch is gone after its offset 10; the next publish is at
// offset 1 of the new epoch and delivered; a client resuming from the old
// epoch, on either node, is told recovered:false.
func TestRollbackSeenBySubscriber(t *testing.T) {
	ctx := testCtx(t)
	s := redistest.Start(t, redistest.Persistent())
	var logs brokertest.Logs
	a, b := dial(t, s, Options{Log: logs.Logger()}), dial(t, s, Options{Log: logs.Logger()})
	hubA := pubsub.NewHub(pubsub.Config{Broker: a, Namespaces: rollbackNamespaces})
	hubB := pubsub.NewHub(pubsub.Config{Broker: b, Namespaces: rollbackNamespaces})
	t.Cleanup(func() { hubA.Close(); hubB.Close() })
	const channel = "chat:room"
	sub := brokertest.NewHubSubscriber()
	if _, err := hubB.Subscribe(ctx, channel, sub, pubsub.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	var old, saved string
	var want []string
	for k := 1; k <= 10; k++ {
		p := publishHub(t, ctx, hubA, channel, k)
		if k == 1 {
			old = p.Epoch
		}
		if p != (pubsub.Position{Offset: uint64(k), Epoch: old}) {
			t.Fatalf("publish %d at %+v", k, p)
		}
		want = append(want, brokertest.MessageLine(p, data(k)))
		if k == 5 {
			saved = s.CopyData()
		}
	}
	if got := sub.Wait(t, ctx, 10); !slices.Equal(got, want) {
		t.Fatalf("before the crash, the subscriber got\n%q\nwant\n%q", got, want)
	}

	s.Stop()
	s.RestoreData(saved)
	s.Restart()
	epoch := storedEpoch(t, ctx, s, channel, old)
	if got, w := logs.Wait(t, ctx, "Redis lost writes", 1), []string{rollbackWarning(channel, old, 5, 10, epoch)}; !slices.Equal(got, w) {
		t.Fatalf("logged\n%q\nwant\n%q", got, w)
	}

	p := publishHub(t, ctx, hubA, channel, 11)
	if p != (pubsub.Position{Offset: 1, Epoch: epoch}) {
		t.Fatalf("first publish after the crash at %+v, want offset 1 in %q", p, epoch)
	}
	want = append(want, fmt.Sprintf("lost %s:1..0 after %s:10", epoch, old), brokertest.MessageLine(p, data(11)))
	if got := sub.Wait(t, ctx, len(want)); !slices.Equal(got, want) {
		t.Fatalf("the subscriber got\n%q\nwant\n%q", got, want)
	}

	// Resuming from the old epoch, before or at the restored offset or
	// past it, on either node, cannot recover.
	for _, hub := range []*pubsub.Hub{hubA, hubB} {
		for _, since := range []uint64{3, 5, 10} {
			late := brokertest.NewHubSubscriber()
			res, err := hub.Subscribe(ctx, channel, late, pubsub.SubscribeOptions{Since: &pubsub.Position{Offset: since, Epoch: old}})
			if err != nil {
				t.Fatal(err)
			}
			if res != (pubsub.SubscribeResult{Position: p}) {
				t.Fatalf("resume from %s:%d: %+v, want recovered false at %+v", old, since, res, p)
			}
			if err := hub.Unsubscribe(ctx, channel, late); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One more message bounds the wait for anything delivered twice.
	p = publishHub(t, ctx, hubA, channel, 12)
	want = append(want, brokertest.MessageLine(p, data(12)))
	if got := sub.Wait(t, ctx, len(want)); !slices.Equal(got, want) {
		t.Fatalf("the subscriber got\n%q\nwant\n%q", got, want)
	}
	if got := logs.Lines("Redis lost writes"); len(got) != 1 {
		t.Fatalf("logged %q, want one line", got)
	}
}

// Redis comes back from a crash with older data and no node has interest
// in the channel: the next publish of a node that saw the lost offsets
// goes to a new epoch, at offset 1, instead of reusing offset 6; the
// node logs it. Two nodes that saw them and read the channel at once
// make one new epoch between them.
func TestRollbackSeenByPublisher(t *testing.T) {
	ctx := testCtx(t)
	s := redistest.Start(t, redistest.Persistent())
	var logs brokertest.Logs
	a, c := dial(t, s, Options{Log: logs.Logger()}), dial(t, s, Options{Log: logs.Logger()})
	opts := pubsub.HistoryOptions{Size: 20}
	var old, saved string
	for k := 1; k <= 10; k++ {
		m, err := a.Publish(ctx, "news", data(k), opts)
		if err != nil {
			t.Fatal(err)
		}
		if k == 1 {
			old = m.Epoch
		}
		if k == 5 {
			saved = s.CopyData()
		}
		if _, err := c.Publish(ctx, "other", data(k), opts); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.History(ctx, "other", pubsub.HistoryRequest{Limit: -1}); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	s.RestoreData(saved)
	s.Restart()

	m := publishBroker(t, ctx, a, "news", 11, opts)
	if m.Offset != 1 || m.Epoch == old || m.Epoch == "" {
		t.Fatalf("publish after the crash at %+v, want offset 1 in a new epoch (was %q)", m.Position(), old)
	}
	if got, w := logs.Lines("Redis lost writes"), []string{rollbackWarning("news", old, 5, 10, m.Epoch)}; !slices.Equal(got, w) {
		t.Fatalf("logged\n%q\nwant\n%q", got, w)
	}
	res, err := c.History(ctx, "news", pubsub.HistoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 1 || string(res.Messages[0].Data) != string(data(11)) || res.Position != m.Position() {
		t.Fatalf("history after the crash: %d messages at %+v, want message 11 at %+v", len(res.Messages), res.Position, m.Position())
	}

	// "other": both nodes saw its offset 10 (c published, a read it).
	nodes := []*Broker{a, c}
	var wg sync.WaitGroup
	pos := make([]pubsub.Position, len(nodes))
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() {
			r, err := n.History(ctx, "other", pubsub.HistoryRequest{Limit: -1})
			pos[i], errs[i] = r.Position, err
		})
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if pos[0] != pos[1] || pos[0].Offset != 0 || pos[0].Epoch == "" {
		t.Fatalf("two nodes reading at once: %+v and %+v, want one new epoch at offset 0", pos[0], pos[1])
	}
	if got := logs.Lines("channel=other"); len(got) != 1 {
		t.Fatalf("logged for other %q, want one line", got)
	}
}

// publishBroker publishes message k to channel through b, retrying for
// at most 20 s while Redis is not (yet) back.
func publishBroker(t *testing.T, ctx context.Context, b *Broker, channel string, k int, opts pubsub.HistoryOptions) *pubsub.Message {
	t.Helper()
	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		m, err := b.Publish(wait, channel, data(k), opts)
		if err == nil {
			return m
		}
		select {
		case <-wait.Done():
			t.Fatalf("publish %d: %v", k, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
