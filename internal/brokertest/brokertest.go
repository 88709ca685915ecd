// Package brokertest holds the test code the NATS and Redis broker
// packages share, so both record and wait for deliveries the same way.
package brokertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
)

// Context returns a context cancelled after 60 s or when the test ends, so
// that a broker test waiting for a delivery that never comes is bounded.
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Data returns the payload of the nth test message, {"n":N}, so tests can
// name messages by their number.
func Data(n int) []byte { return fmt.Appendf(nil, `{"n":%d}`, n) }

// Events is a pubsub.Subscriber that records what a broker delivers as
// lines ("message CHANNEL OFFSET DATA", "join CHANNEL CLIENT USER",
// "leave CHANNEL CLIENT USER") and wakes waiters, so tests compare exact
// deliveries without sleeping.
type Events struct {
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
}

// NewEvents returns an empty Events, ready to be subscribed.
func NewEvents() *Events { return &Events{notify: make(chan struct{}, 1)} }

func (e *Events) add(s string) {
	e.mu.Lock()
	e.lines = append(e.lines, s)
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

// HandleMessage records m as "message CHANNEL OFFSET DATA".
func (e *Events) HandleMessage(m *pubsub.Message) {
	e.add(fmt.Sprintf("message %s %d %s", m.Channel, m.Offset, m.Data))
}

// HandleJoin records a join as "join CHANNEL CLIENT USER".
func (e *Events) HandleJoin(channel string, c pubsub.ClientInfo) {
	e.add(fmt.Sprintf("join %s %s %s", channel, c.Client, c.User))
}

// HandleLeave records a leave as "leave CHANNEL CLIENT USER".
func (e *Events) HandleLeave(channel string, c pubsub.ClientInfo) {
	e.add(fmt.Sprintf("leave %s %s %s", channel, c.Client, c.User))
}

// Lines returns a copy of the lines recorded so far, safe to keep while
// deliveries go on.
func (e *Events) Lines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.lines...)
}

// WaitLines waits until n lines were recorded and returns them; it fails
// the test if ctx ends first, showing what was recorded.
func (e *Events) WaitLines(t testing.TB, ctx context.Context, n int) []string {
	t.Helper()
	for {
		if l := e.Lines(); len(l) >= n {
			return l
		}
		select {
		case <-e.notify:
		case <-ctx.Done():
			t.Fatalf("waiting for %d events: %v; got %q", n, ctx.Err(), e.Lines())
		}
	}
}
