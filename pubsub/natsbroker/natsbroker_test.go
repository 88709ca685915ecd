package natsbroker

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/nats-io/nats.go"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"news", "news"},
		{"chat:lobby", "chat_3Alobby"},
		{"a.b/c@d=e_f-g", "a_2Eb_2Fc_40d_3De__f-g"},
		{"_", "__"},
		{"__.", "_____2E"},
	} {
		got := escape(tc.in)
		if got != tc.want {
			t.Errorf("escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := unescape(got)
		if err != nil || back != tc.in {
			t.Errorf("unescape(%q) = %q, %v; want %q", got, back, err, tc.in)
		}
	}
	for _, bad := range []string{"_", "_4", "_zz", "a_G0"} {
		if s, err := unescape(bad); err == nil {
			t.Errorf("unescape(%q) = %q, want an error", bad, s)
		}
	}
	if nsToken("") != "_" || nsToken("chat") != "chat" || nsToken("_") != "__" {
		t.Errorf("nsToken: %q %q %q", nsToken(""), nsToken("chat"), nsToken("_"))
	}
}

func TestNewRejectsBadPrefix(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	_, err := Dial(s.url(), Options{Prefix: "a.b"})
	if err == nil || err.Error() != `natsbroker: prefix "a.b": only letters, digits, '-' and '_'` {
		t.Fatalf("Dial with prefix a.b: %v", err)
	}
}

// The presence of a node that dies (its connection drops, nobody removes
// its clients) expires after the presence TTL and is a leave on the other
// nodes, while a live node's refreshed presence stays. What every broker
// does with presence is checked by TestContract.
func TestPresenceExpiresWhenNodeDies(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	ctx := testCtx(t)
	opts := Options{PresenceTTL: 2 * time.Second} // refreshed every 667 ms
	a, b, k := dial(t, s, opts), dial(t, s, opts), dial(t, s, opts)
	eva := newEvents()
	a.SetHandler(eva)
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
	if got := eva.waitLines(t, ctx, 2); !slices.Equal(got, []string{"join chat:room c0 bob", "join chat:room c2 carol"}) {
		t.Fatalf("events %q", got)
	}
	// k dies. Refreshes keep bob (a's) alive past the TTL while carol
	// expires.
	k.nc.Close()
	start := time.Now()
	if got := eva.waitLines(t, ctx, 3); got[2] != "leave chat:room c2 carol" {
		t.Fatalf("events %q", got)
	}
	t.Logf("presence of a dead node expired after %v", time.Since(start))
	list, err := b.Presence(ctx, "chat:room")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Client != "c0" {
		t.Fatalf("presence after carol expired = %+v", list)
	}
	if got := eva.snapshot(); len(got) != 3 {
		t.Fatalf("events %q: bob, refreshed, must not leave", got)
	}
}

// While NATS is away, calls fail and Ready says so; once it is back (same
// store), a live subscription gets the messages published since, in
// order, in the same epoch.
func TestOutage(t *testing.T) {
	dir := t.TempDir()
	s := startNATS(t, dir, 0)
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

	down := make(chan struct{})
	var once sync.Once
	a.nc.SetDisconnectErrHandler(func(*nats.Conn, error) { once.Do(func() { close(down) }) })
	s.stop()
	select {
	case <-down:
	case <-ctx.Done():
		t.Fatal("no disconnection seen")
	}
	if err := a.Ready(); err == nil || err.Error() != "natsbroker: NATS connection reconnecting" {
		t.Fatalf("Ready during the outage: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err = a.Publish(short, "news", data(2), opts)
	cancel()
	if err == nil {
		t.Fatal("Publish during the outage succeeded")
	}
	short, cancel = context.WithTimeout(ctx, time.Second)
	_, err = b.History(short, "news", pubsub.HistoryRequest{})
	cancel()
	if err == nil {
		t.Fatal("History during the outage succeeded")
	}

	startNATS(t, dir, s.port)
	// Once Ready, the first publish succeeds.
	readyWithin(t, a, "ready after the outage", isNil, notReadyWhileBack)
	m2, err := a.Publish(ctx, "news", data(2), opts)
	if err != nil {
		t.Fatalf("first Publish once ready: %v", err)
	}
	if _, err := a.Publish(ctx, "news", data(3), opts); err != nil {
		t.Fatal(err)
	}
	if m2.Offset != 2 || m2.Epoch != m1.Epoch {
		t.Fatalf("after the outage: %v, want offset 2 in %q", m2.Position(), m1.Epoch)
	}
	got := ev.waitLines(t, ctx, 3)
	want := []string{"message news 1 " + string(data(1)), "message news 2 " + string(data(2)), "message news 3 " + string(data(3))}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	readyWithin(t, b, "ready after the outage", isNil, notReadyWhileBack)
}
