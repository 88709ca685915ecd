package redisbroker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/redistest"
	"github.com/duplex-ws/duplex/pubsub"
)

// A Subscribe while Redis hangs (its process paused: connections stay
// open, nothing is answered) fails within subscribeTimeout, even with a
// context that has no deadline, instead of blocking its caller until Redis
// answers again; once Redis is back, Subscribe works and delivers.
func TestSubscribeWhileRedisHangs(t *testing.T) {
	old := subscribeTimeout
	subscribeTimeout = 300 * time.Millisecond
	t.Cleanup(func() { subscribeTimeout = old }) // after the brokers close

	ctx := testCtx(t)
	s := redistest.Start(t)
	a, b := dial(t, s, Options{}), dial(t, s, Options{})
	ev := newEvents()
	b.SetHandler(ev)
	if err := b.Subscribe(ctx, "warm"); err != nil { // the Pub/Sub connection is up
		t.Fatal(err)
	}

	s.Pause()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- b.Subscribe(context.Background(), "news") }()
	select {
	case err := <-done:
		want := `redisbroker: subscribe to "news": no confirmation from Redis within 300ms`
		if err == nil || err.Error() != want {
			t.Fatalf("Subscribe while Redis hangs: %v, want %q", err, want)
		}
		t.Logf("Subscribe failed after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		s.Resume()
		t.Fatal("Subscribe while Redis hangs did not return in 5s")
	}
	if c := b.interested("news"); c != nil {
		t.Fatalf("a failed Subscribe left interest in the channel: %+v", c)
	}
	s.Resume()

	if err := b.Subscribe(ctx, "news"); err != nil {
		t.Fatalf("Subscribe once Redis answers again: %v", err)
	}
	opts := pubsub.HistoryOptions{Size: 10}
	for k := 1; k <= 2; k++ {
		if _, err := a.Publish(ctx, "news", data(k), opts); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{fmt.Sprintf("message news 1 %s", data(1)), fmt.Sprintf("message news 2 %s", data(2))}
	if got := ev.waitLines(t, ctx, 2); !slices.Equal(got, want) {
		t.Fatalf("delivered %q\nwant %q", got, want)
	}
}
