package natsbroker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/brokertest"
	"github.com/duplex-ws/duplex/pubsub"
)

// rollbackNamespaces: chat keeps 20 messages.
var rollbackNamespaces = map[string]pubsub.NamespaceOptions{"chat": {HistorySize: 20, ClientPublish: true}}

// rollbackWarning is the line a node logs when it finds channel back at
// offset from of epoch after it saw offset seen.
func rollbackWarning(channel, epoch string, from, seen int, newEpoch string) string {
	return fmt.Sprintf(`level=WARN msg="NATS lost writes (it came back with older data): the channel starts a new epoch" broker=nats channel=%s nats_position=%s:%d seen_position=%s:%d new_epoch=%s`,
		channel, epoch, from, epoch, seen, newEpoch)
}

// copyStore copies the store directory of a stopped server to a new
// directory and returns it.
func copyStore(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "store")
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// restartWith stops s and starts a server on its port with the store in
// dir, and waits until every broker is connected again.
func restartWith(t *testing.T, ctx context.Context, s *natsServer, dir string, brokers ...*Broker) *natsServer {
	t.Helper()
	s.stop()
	s = startNATS(t, dir, s.port)
	for _, b := range brokers {
		for b.Ready() != nil {
			select {
			case <-ctx.Done():
				t.Fatalf("broker not ready: %v", b.Ready())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return s
}

// publishHub publishes message k to channel through hub, retrying for at
// most 20 s while NATS is not (yet) back, and returns its position.
func publishHub(t *testing.T, ctx context.Context, hub *pubsub.Hub, channel string, k int) pubsub.Position {
	t.Helper()
	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		short, c := context.WithTimeout(wait, time.Second)
		p, err := hub.Publish(short, channel, data(k))
		c()
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

// NATS comes back with older data (its store restored from a copy taken
// after message 5, while node b's subscriber had received 10): the
// channel gets a new epoch, once, logged with both positions, by b as it
// resumes its consumer after the reconnection. The
// subscriber is told, before the new epoch's first message, that the old
// epoch is gone after its offset 10; the next publish is at offset 1 of
// the new epoch and delivered; a client resuming from the old epoch, on
// either node, is told recovered:false.
func TestRollbackStoreRestored(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	s := startNATS(t, dir, 0)
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
			sub.Wait(t, ctx, 5)
			s.stop()
			saved = copyStore(t, dir)
			s = restartWith(t, ctx, s, dir, a, b)
		}
	}
	if got := sub.Wait(t, ctx, 10); !slices.Equal(got, want) {
		t.Fatalf("before the restore, the subscriber got\n%q\nwant\n%q", got, want)
	}

	// b notices when it resumes its consumer; a publishes only then.
	s = restartWith(t, ctx, s, saved, a, b)
	logged := logs.Wait(t, ctx, "NATS lost writes", 1)
	p := publishHub(t, ctx, hubA, channel, 11)
	if p.Offset != 1 || p.Epoch == old || p.Epoch == "" {
		t.Fatalf("first publish after the restore at %+v, want offset 1 in a new epoch (was %q)", p, old)
	}
	if got, w := logged, []string{rollbackWarning(channel, old, 5, 10, p.Epoch)}; !slices.Equal(got, w) {
		t.Fatalf("logged\n%q\nwant\n%q", got, w)
	}
	want = append(want, fmt.Sprintf("lost %s:1..0 after %s:10", p.Epoch, old), brokertest.MessageLine(p, data(11)))
	if got := sub.Wait(t, ctx, len(want)); !slices.Equal(got, want) {
		t.Fatalf("the subscriber got\n%q\nwant\n%q", got, want)
	}

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
	if got := logs.Lines("NATS lost writes"); len(got) != 1 {
		t.Fatalf("logged %q, want one line", got)
	}
}

// NATS comes back with older data and no node has interest in the
// channel: the next publish of a node that saw the lost offsets goes to
// a new epoch, at offset 1, instead of reusing offset 6; the node logs
// it. Two nodes that saw them and read the channel at once make one new
// epoch between them.
func TestRollbackSeenByPublisher(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	s := startNATS(t, dir, 0)
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
		if _, err := c.Publish(ctx, "other", data(k), opts); err != nil {
			t.Fatal(err)
		}
		if k == 5 {
			s.stop()
			saved = copyStore(t, dir)
			s = restartWith(t, ctx, s, dir, a, c)
		}
	}
	// Both nodes saw offsets of other past 5 (c 10, a 11).
	if _, err := a.Publish(ctx, "other", data(11), opts); err != nil {
		t.Fatal(err)
	}
	s = restartWith(t, ctx, s, saved, a, c)

	var m *pubsub.Message
	for {
		var err error
		short, cancel := context.WithTimeout(ctx, time.Second)
		m, err = a.Publish(short, "news", data(11), opts)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("publish after the restore: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if m.Offset != 1 || m.Epoch == old || m.Epoch == "" {
		t.Fatalf("publish after the restore at %+v, want offset 1 in a new epoch (was %q)", m.Position(), old)
	}
	if got, w := logs.Lines("channel=news"), []string{rollbackWarning("news", old, 5, 10, m.Epoch)}; !slices.Equal(got, w) {
		t.Fatalf("logged\n%q\nwant\n%q", got, w)
	}
	res, err := c.History(ctx, "news", pubsub.HistoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 1 || string(res.Messages[0].Data) != string(data(11)) || res.Position != m.Position() {
		t.Fatalf("history after the restore: %d messages at %+v, want message 11 at %+v", len(res.Messages), res.Position, m.Position())
	}

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
