package redisbroker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/redistest"
	"github.com/duplex-ws/duplex/pubsub"
)

// testCtx bounds a test in time.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial returns a Broker on its own client of s, closed when the test ends.
func dial(t testing.TB, s *redistest.Server, opts Options) *Broker {
	t.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	b, err := Dial(s.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// events records what a broker delivers, as lines, and wakes waiters.
type events struct {
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
}

func newEvents() *events { return &events{notify: make(chan struct{}, 1)} }

func (e *events) add(s string) {
	e.mu.Lock()
	e.lines = append(e.lines, s)
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

func (e *events) HandleMessage(m *pubsub.Message) {
	e.add(fmt.Sprintf("message %s %d %s", m.Channel, m.Offset, m.Data))
}

func (e *events) HandleJoin(channel string, c pubsub.ClientInfo) {
	e.add(fmt.Sprintf("join %s %s %s", channel, c.Client, c.User))
}

func (e *events) HandleLeave(channel string, c pubsub.ClientInfo) {
	e.add(fmt.Sprintf("leave %s %s %s", channel, c.Client, c.User))
}

func (e *events) snapshot() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.lines...)
}

// waitLines waits until n lines were recorded and returns them.
func (e *events) waitLines(t testing.TB, ctx context.Context, n int) []string {
	t.Helper()
	for {
		if l := e.snapshot(); len(l) >= n {
			return l
		}
		select {
		case <-e.notify:
		case <-ctx.Done():
			t.Fatalf("waiting for %d events: %v; got %q", n, ctx.Err(), e.snapshot())
		}
	}
}

// data returns the payload of the nth test message.
func data(n int) []byte { return fmt.Appendf(nil, `{"n":%d}`, n) }

func offsetsOf(msgs []*pubsub.Message) []uint64 {
	out := []uint64{}
	for _, m := range msgs {
		out = append(out, m.Offset)
	}
	return out
}
