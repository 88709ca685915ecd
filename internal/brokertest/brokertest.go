// Package brokertest holds the test code the broker packages share: the
// contract suite every pubsub.Broker must pass (Run), and the recording of
// deliveries the NATS and Redis broker tests use, so all brokers are held
// to the same checks.
package brokertest

import (
	"context"
	"fmt"
	"runtime"
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
//
// It also keeps the delivered messages themselves (Messages) and notes a
// handler call that overlaps another one for the same channel (Overlaps),
// which pubsub.Broker forbids.
type Events struct {
	mu       sync.Mutex
	lines    []string
	msgs     []*pubsub.Message
	inside   map[string]int // handler calls running, by channel
	overlaps []string
	notify   chan struct{}
}

// NewEvents returns an empty Events, ready to be subscribed.
func NewEvents() *Events {
	return &Events{inside: make(map[string]int), notify: make(chan struct{}, 1)}
}

// enter notes a handler call for channel and records one that overlaps
// another; leave must follow.
func (e *Events) enter(channel, what string) {
	e.mu.Lock()
	e.inside[channel]++
	if e.inside[channel] > 1 {
		e.overlaps = append(e.overlaps, what)
	}
	e.mu.Unlock()
	// Give another call for the channel, if the broker makes one now, the
	// chance to run while this one is inside.
	runtime.Gosched()
}

func (e *Events) leave(channel, line string, m *pubsub.Message) {
	e.mu.Lock()
	e.inside[channel]--
	e.lines = append(e.lines, line)
	if m != nil {
		e.msgs = append(e.msgs, m)
	}
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

// HandleMessage records m as "message CHANNEL OFFSET DATA".
func (e *Events) HandleMessage(m *pubsub.Message) {
	line := fmt.Sprintf("message %s %d %s", m.Channel, m.Offset, m.Data)
	e.enter(m.Channel, line)
	e.leave(m.Channel, line, m)
}

// HandleJoin records a join as "join CHANNEL CLIENT USER".
func (e *Events) HandleJoin(channel string, c pubsub.ClientInfo) {
	line := fmt.Sprintf("join %s %s %s", channel, c.Client, c.User)
	e.enter(channel, line)
	e.leave(channel, line, nil)
}

// HandleLeave records a leave as "leave CHANNEL CLIENT USER".
func (e *Events) HandleLeave(channel string, c pubsub.ClientInfo) {
	line := fmt.Sprintf("leave %s %s %s", channel, c.Client, c.User)
	e.enter(channel, line)
	e.leave(channel, line, nil)
}

// Messages returns the messages delivered so far, in delivery order, as
// the broker handed them over.
func (e *Events) Messages() []*pubsub.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*pubsub.Message(nil), e.msgs...)
}

// Overlaps returns the lines of the handler calls that started while
// another call for the same channel was running: a broker must call its
// handler for one channel one call at a time.
func (e *Events) Overlaps() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.overlaps...)
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
