package redisbroker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/redistest"
	"github.com/duplex-ws/duplex/pubsub"
	"github.com/redis/go-redis/v9"
)

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// When the catch-up read after a reconnection fails, it is retried: the
// missed messages are delivered without waiting for a newer one to show
// the gap, each once, and before a message that arrived live while the
// catch-up was pending.
func TestCatchUpRetried(t *testing.T) {
	ctx := testCtx(t)
	var calls atomic.Int32
	second, release := make(chan struct{}), make(chan struct{})
	catchUpFault = func(channel string) error {
		switch calls.Add(1) {
		case 1:
			return errors.New("injected")
		case 2:
			close(second)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	}
	t.Cleanup(func() { catchUpFault = nil }) // after the brokers close

	s := redistest.Start(t)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	a, b := dial(t, s, Options{}), dial(t, s, Options{Log: log})
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

	// The first attempt failed; during the second, 4 is published and
	// received live: it waits behind 2 and 3.
	select {
	case <-second:
	case <-ctx.Done():
		t.Fatalf("no second catch-up attempt: %v; log:\n%s", ctx.Err(), logs.String())
	}
	if got := ev.snapshot(); len(got) != 1 {
		t.Fatalf("delivered before the catch-up: %q", got)
	}
	if _, err := a.Publish(ctx, "news", data(4), opts); err != nil {
		t.Fatal(err)
	}
	c := b.interested("news")
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for buffered := 0; buffered == 0; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("4 not received while catching up: %v", ctx.Err())
		}
		c.deliver.Lock()
		buffered = len(c.pending)
		c.deliver.Unlock()
	}
	close(release)

	ev.waitLines(t, ctx, 4)
	if _, err := a.Publish(ctx, "news", data(5), opts); err != nil {
		t.Fatal(err)
	}
	got := ev.waitLines(t, ctx, 5)
	var want []string
	for k := 1; k <= 5; k++ {
		want = append(want, fmt.Sprintf("message news %d %s", k, data(k)))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %q\nwant %q", got, want)
	}
	b.Close()
	if got := ev.snapshot(); !slices.Equal(got, want) {
		t.Fatalf("delivered %q after close\nwant %q", got, want)
	}
	wantLog := "level=WARN msg=\"catching up after a reconnection\" broker=redis channel=news attempt=1 retry_in=50ms err=injected\n" +
		"level=INFO msg=\"caught up after a reconnection\" broker=redis channel=news attempts=2\n"
	if got := logs.String(); got != wantLog {
		t.Fatalf("log:\n%s\nwant:\n%s", got, wantLog)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d catch-up attempts, want 2", n)
	}
}
