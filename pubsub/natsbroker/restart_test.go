package natsbroker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/nats-io/nats.go/jetstream"
)

// hubSub is a pubsub.Subscriber of a Hub that records what it receives as
// lines: "EPOCH:OFFSET DATA" for a message, "join CLIENT" and "leave
// CLIENT" for presence, "lost EPOCH:FROM..TO after OLDEPOCH:OFFSET" for a
// loss ("after …" for a new epoch only).
type hubSub struct {
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
}

func newHubSub() *hubSub { return &hubSub{notify: make(chan struct{}, 1)} }

func (s *hubSub) Deliver(e *pubsub.Event) {
	var line string
	switch e.Kind {
	case pubsub.EventMessage:
		line = fmt.Sprintf("%s:%d %s", e.Message.Epoch, e.Message.Offset, e.Message.Data)
	case pubsub.EventLost:
		line = fmt.Sprintf("lost %s:%d..%d", e.Lost.Epoch, e.Lost.From, e.Lost.To)
		if o := e.Lost.Old; o != (pubsub.Position{}) {
			line += fmt.Sprintf(" after %s:%d", o.Epoch, o.Offset)
		}
	default:
		line = e.Kind.String() + " " + e.Client.Client
	}
	s.mu.Lock()
	s.lines = append(s.lines, line)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *hubSub) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

// wait waits until n lines were received and returns them.
func (s *hubSub) wait(t *testing.T, ctx context.Context, n int) []string {
	t.Helper()
	for {
		if got := s.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			t.Fatalf("waiting for %d deliveries: %v; got %q", n, ctx.Err(), s.snapshot())
		}
	}
}

// messages returns the message lines of lines.
func messages(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "join ") && !strings.HasPrefix(l, "leave ") {
			out = append(out, l)
		}
	}
	return out
}

// waitMessages waits until n messages were received and returns them.
func (s *hubSub) waitMessages(t *testing.T, ctx context.Context, n int) []string {
	t.Helper()
	for {
		if got := messages(s.snapshot()); len(got) >= n {
			return got
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			t.Fatalf("waiting for %d messages: %v; got %q", n, ctx.Err(), s.snapshot())
		}
	}
}

// msgLine is the hubSub line of message n at offset in epoch.
func msgLine(epoch string, offset uint64, n int) string {
	return fmt.Sprintf("%s:%d %s", epoch, offset, data(n))
}

// restartNodes are the two nodes of the restart tests: a publishes only, b
// has a subscriber (with presence) of chat:room and never publishes.
type restartNodes struct {
	a, b       *Broker
	hubA, hubB *pubsub.Hub
	sub        *hubSub
}

// restartNamespaces: chat keeps 10 messages and has presence.
var restartNamespaces = map[string]pubsub.NamespaceOptions{
	"chat": {HistorySize: 10, Presence: true, ClientPublish: true},
}

func startRestartNodes(t *testing.T, ctx context.Context, s *natsServer) *restartNodes {
	t.Helper()
	opts := Options{PresenceTTL: 3 * time.Second} // refreshed every second
	n := &restartNodes{a: dial(t, s, opts), b: dial(t, s, opts), sub: newHubSub()}
	n.hubA = pubsub.NewHub(pubsub.Config{Broker: n.a, Namespaces: restartNamespaces})
	n.hubB = pubsub.NewHub(pubsub.Config{Broker: n.b, Namespaces: restartNamespaces})
	t.Cleanup(func() { n.hubA.Close(); n.hubB.Close() })
	res, err := n.hubB.Subscribe(ctx, "chat:room", n.sub, pubsub.SubscribeOptions{Client: pubsub.ClientInfo{Client: "c1", User: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Position.Offset != 0 || res.Recovered {
		t.Fatalf("first subscribe: %+v", res)
	}
	return n
}

// publish publishes message k through a's Hub and returns its position;
// it must succeed at its first attempt (after a restart, callers wait
// until both brokers are ready first).
func (n *restartNodes) publish(t *testing.T, ctx context.Context, k int) pubsub.Position {
	t.Helper()
	p, err := n.hubA.Publish(ctx, "chat:room", data(k))
	if err != nil {
		t.Fatalf("publish %d: %v", k, err)
	}
	return p
}

// waitReady waits until both brokers are ready again: their link up,
// JetStream answering, their resume finished.
func (n *restartNodes) waitReady(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, b := range []*Broker{n.a, n.b} {
		for b.Ready() != nil {
			select {
			case <-ctx.Done():
				t.Fatalf("broker not ready: %v", b.Ready())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// waitPresence polls the Presence of chat:room on hub until it lists
// exactly clients, for at most 20 s.
func waitPresence(t *testing.T, ctx context.Context, hub *pubsub.Hub, clients ...string) {
	t.Helper()
	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var got []string
	var err error
	for {
		var list []pubsub.ClientInfo
		short, c := context.WithTimeout(wait, time.Second)
		list, err = hub.Presence(short, "chat:room")
		c()
		got = got[:0]
		for _, ci := range list {
			got = append(got, ci.Client)
		}
		if err == nil && slices.Equal(got, clients) {
			return
		}
		select {
		case <-wait.Done():
			t.Fatalf("presence of chat:room is %q (%v), want %q", got, err, clients)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// NATS restarted on an empty store (its data lost): the channel gets a new
// epoch and offsets start over; the node that only publishes publishes
// again; the subscribed node's Hub tells its subscriber, once, that the
// old epoch is gone after the last message it delivered, then delivers
// the new epoch's messages, each once, in order, from offset 1; presence
// is written again and joins flow; resuming from the old epoch is
// recovered:false.
func TestRestartEmptyStore(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	ctx := testCtx(t)
	n := startRestartNodes(t, ctx, s)
	if got := n.sub.wait(t, ctx, 1); got[0] != "join c1" {
		t.Fatalf("deliveries %q", got)
	}
	var old string
	for k := 1; k <= 3; k++ {
		p := n.publish(t, ctx, k)
		if k == 1 {
			old = p.Epoch
		}
		if p != (pubsub.Position{Offset: uint64(k), Epoch: old}) {
			t.Fatalf("publish %d at %+v", k, p)
		}
	}
	n.sub.wait(t, ctx, 4)

	s.stop()
	startNATS(t, t.TempDir(), s.port)
	n.waitReady(t, ctx)

	p1 := n.publish(t, ctx, 4)
	if p1.Offset != 1 || p1.Epoch == old || p1.Epoch == "" {
		t.Fatalf("first publish after the restart at %+v, want offset 1 in a new epoch (was %q)", p1, old)
	}
	for k := 5; k <= 6; k++ {
		if p := n.publish(t, ctx, k); p != (pubsub.Position{Offset: uint64(k - 3), Epoch: p1.Epoch}) {
			t.Fatalf("publish %d at %+v, want offset %d in %q", k, p, k-3, p1.Epoch)
		}
	}
	want := []string{"join c1", msgLine(old, 1, 1), msgLine(old, 2, 2), msgLine(old, 3, 3),
		fmt.Sprintf("lost %s:1..0 after %s:3", p1.Epoch, old),
		msgLine(p1.Epoch, 1, 4), msgLine(p1.Epoch, 2, 5), msgLine(p1.Epoch, 3, 6)}
	if got := n.sub.wait(t, ctx, len(want)); !slices.Equal(got, want) {
		t.Fatalf("subscriber on b got\n%q\nwant\n%q", got, want)
	}

	// History is the new epoch's, on both nodes.
	for _, hub := range []*pubsub.Hub{n.hubA, n.hubB} {
		res, err := hub.History(ctx, "chat:room", pubsub.HistoryRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range res.Messages {
			got = append(got, fmt.Sprintf("%s:%d %s", m.Epoch, m.Offset, m.Data))
		}
		if !slices.Equal(got, want[5:]) || res.Position != (pubsub.Position{Offset: 3, Epoch: p1.Epoch}) {
			t.Fatalf("history: %q at %+v", got, res.Position)
		}
	}

	// Presence: b writes c1 again, and a join made on a reaches b.
	waitPresence(t, ctx, n.hubA, "c1")
	other := newHubSub()
	if _, err := n.hubA.Subscribe(ctx, "chat:room", other, pubsub.SubscribeOptions{Client: pubsub.ClientInfo{Client: "c2", User: "carol"}}); err != nil {
		t.Fatal(err)
	}
	if got := n.sub.wait(t, ctx, len(want)+1); got[len(want)] != "join c2" {
		t.Fatalf("after c2 joined on a, b's subscriber got %q", got[len(want):])
	}
	waitPresence(t, ctx, n.hubB, "c1", "c2")

	// A client that resumes from the old epoch, on either node, cannot
	// recover.
	for _, hub := range []*pubsub.Hub{n.hubA, n.hubB} {
		late := newHubSub()
		res, err := hub.Subscribe(ctx, "chat:room", late, pubsub.SubscribeOptions{Since: &pubsub.Position{Offset: 3, Epoch: old}, Client: pubsub.ClientInfo{Client: "c3"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Recovered || res.Position != (pubsub.Position{Offset: 3, Epoch: p1.Epoch}) {
			t.Fatalf("resume from %q: %+v, want recovered false at 3 in %q", old, res, p1.Epoch)
		}
		if err := hub.Unsubscribe(ctx, "chat:room", late); err != nil {
			t.Fatal(err)
		}
	}
}

// NATS restarted on the same store: the epoch is kept, offsets go on, the
// subscribed node's Hub delivers every message once, in order, and a client
// resuming from before the outage recovers.
func TestRestartSameStore(t *testing.T) {
	dir := t.TempDir()
	s := startNATS(t, dir, 0)
	ctx := testCtx(t)
	n := startRestartNodes(t, ctx, s)
	var epoch string
	for k := 1; k <= 3; k++ {
		p := n.publish(t, ctx, k)
		if k == 1 {
			epoch = p.Epoch
		}
		if p != (pubsub.Position{Offset: uint64(k), Epoch: epoch}) {
			t.Fatalf("publish %d at %+v", k, p)
		}
	}
	n.sub.wait(t, ctx, 4)

	s.stop()
	startNATS(t, dir, s.port)
	n.waitReady(t, ctx)
	for k := 4; k <= 6; k++ {
		if p := n.publish(t, ctx, k); p != (pubsub.Position{Offset: uint64(k), Epoch: epoch}) {
			t.Fatalf("publish %d after the restart at %+v, want %d in %q", k, p, k, epoch)
		}
	}
	var want []string
	for k := 1; k <= 6; k++ {
		want = append(want, msgLine(epoch, uint64(k), k))
	}
	if got := n.sub.waitMessages(t, ctx, len(want)); !slices.Equal(got, want) {
		t.Fatalf("subscriber on b got\n%q\nwant\n%q", got, want)
	}
	waitPresence(t, ctx, n.hubA, "c1")

	late := newHubSub()
	res, err := n.hubA.Subscribe(ctx, "chat:room", late, pubsub.SubscribeOptions{Since: &pubsub.Position{Offset: 2, Epoch: epoch}, Client: pubsub.ClientInfo{Client: "c3"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recovered || res.Position != (pubsub.Position{Offset: 6, Epoch: epoch}) {
		t.Fatalf("resume from 2: %+v, want recovered at 6 in %q", res, epoch)
	}
	if got := late.waitMessages(t, ctx, 4); !slices.Equal(got, want[2:]) {
		t.Fatalf("recovered %q, want %q", got, want[2:])
	}

	// One more message bounds the wait for a message delivered twice.
	if p := n.publish(t, ctx, 7); p != (pubsub.Position{Offset: 7, Epoch: epoch}) {
		t.Fatalf("publish 7 at %+v", p)
	}
	want = append(want, msgLine(epoch, 7, 7))
	if got := n.sub.waitMessages(t, ctx, len(want)); !slices.Equal(got, want) {
		t.Fatalf("subscriber on b got\n%q\nwant\n%q", got, want)
	}
	if got := late.waitMessages(t, ctx, len(want)-2); !slices.Equal(got, want[2:]) {
		t.Fatalf("subscriber that resumed on a got\n%q\nwant\n%q", got, want[2:])
	}
	// Presence: nobody left, c3 joined after c1.
	if got := n.sub.wait(t, ctx, len(want)+2); !slices.Equal(got[:1], []string{"join c1"}) || !slices.Contains(got, "join c3") || len(got) != len(want)+2 {
		t.Fatalf("subscriber on b got %q", got)
	}
}

// A stream deleted and created again while the nodes stay connected: the
// subscribed node's consumer, recreated by the client library at its old
// sequence, would skip the new epoch's first messages; the node notices
// the new epoch and reads the new stream from its start, so every message
// of both epochs is delivered once, in order.
func TestStreamRecreatedWhileConnected(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	ctx := testCtx(t)
	a, b := dial(t, s, Options{}), dial(t, s, Options{})
	ev := newEvents()
	b.SetHandler(ev)
	opts := pubsub.HistoryOptions{Size: 10}
	m1, err := a.Publish(ctx, "news", data(1), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	for k := 2; k <= 5; k++ {
		if _, err := a.Publish(ctx, "news", data(k), opts); err != nil {
			t.Fatal(err)
		}
	}
	ev.waitLines(t, ctx, 4)

	js, err := jetstream.New(a.nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, "duplex-_"); err != nil {
		t.Fatal(err)
	}
	// The first publish finds no stream; the next one creates it again.
	if _, err := a.Publish(ctx, "news", data(6), opts); err == nil {
		t.Fatal("publish to a deleted stream succeeded")
	}
	var want []string
	for k := 2; k <= 5; k++ {
		want = append(want, fmt.Sprintf("message news %d %s", k, data(k)))
	}
	for k := 6; k <= 13; k++ {
		m, err := a.Publish(ctx, "news", data(k), opts)
		if err != nil {
			t.Fatal(err)
		}
		if m.Offset != uint64(k-5) || m.Epoch == m1.Epoch {
			t.Fatalf("publish %d after the stream was deleted: %v, want offset %d in a new epoch", k, m.Position(), k-5)
		}
		want = append(want, fmt.Sprintf("message news %d %s", k-5, data(k)))
	}
	if got := ev.waitLines(t, ctx, len(want)); !slices.Equal(got, want) {
		t.Fatalf("delivered\n%q\nwant\n%q", got, want)
	}
}
