package natsbroker

import (
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPresenceExpiresWithoutMarkers: on a presence bucket without limit
// markers (what a NATS server before 2.11 makes; Debian 12 ships 2.9), the
// keys of a dead node vanish silently, and the nodes still deliver their
// leave, found by age; a live node's refreshed keys stay.
func TestPresenceExpiresWithoutMarkers(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	ctx := testCtx(t)
	const ttl = 2 * time.Second // refreshed every 667 ms; a leave within 2.7 to 3.3 s

	// The bucket exists already, made as an old server would.
	nc, err := nats.Connect(s.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "duplex-presence", TTL: ttl}); err != nil {
		t.Fatal(err)
	}

	opts := Options{PresenceTTL: ttl}
	a, k := dial(t, s, opts), dial(t, s, opts)
	if a.presence.markers || k.presence.markers {
		t.Fatal("the bucket without markers was taken for one with markers")
	}
	ev := newEvents()
	a.SetHandler(ev)
	if err := a.Subscribe(ctx, "chat:room"); err != nil {
		t.Fatal(err)
	}
	bob := pubsub.ClientInfo{Client: "c0", User: "bob"}
	carol := pubsub.ClientInfo{Client: "c2", User: "carol"}
	if err := a.AddPresence(ctx, "chat:room", bob); err != nil {
		t.Fatal(err)
	}
	if err := k.AddPresence(ctx, "chat:room", carol); err != nil {
		t.Fatal(err)
	}
	ev.waitLines(t, ctx, 2)

	// k dies: nobody removes carol, and no marker tells of her expiry.
	k.nc.Close()
	start := time.Now()
	got := ev.waitLines(t, ctx, 3)
	if got[0] != "join chat:room c0 bob" || got[1] != "join chat:room c2 carol" || got[2] != "leave chat:room c2 carol" {
		t.Fatalf("events %q", got)
	}
	took := time.Since(start)
	t.Logf("presence of a dead node expired after %v", took)
	if took < ttl {
		t.Fatalf("carol left after %v, before the TTL %v", took, ttl)
	}
	list, err := a.Presence(ctx, "chat:room")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Client != "c0" {
		t.Fatalf("presence after carol expired = %+v", list)
	}
	if got := ev.snapshot(); len(got) != 3 {
		t.Fatalf("events %q: bob, refreshed, must not leave", got)
	}
}
