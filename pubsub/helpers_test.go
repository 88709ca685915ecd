package pubsub

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testCtx returns a context that bounds a test in time.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeClock replaces MemoryBroker.now so tests control history TTLs.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestHub returns a Hub on its own MemoryBroker whose clock is clock (if
// not nil), closed when the test ends.
func newTestHub(t testing.TB, ns map[string]NamespaceOptions, clock *fakeClock) (*Hub, *MemoryBroker) {
	t.Helper()
	b := NewMemoryBroker()
	if clock != nil {
		b.now = clock.Now
	}
	h := NewHub(Config{Broker: b, Namespaces: ns})
	t.Cleanup(func() {
		h.Close()
		b.Close()
	})
	return h, b
}

// entry is one thing a recorder saw: the subscribe result (from OnResult)
// or an event.
type entry struct {
	res *SubscribeResult
	ev  *Event
}

// recorder is a Subscriber that keeps what it receives, in order.
type recorder struct {
	mu      sync.Mutex
	entries []entry
}

func (r *recorder) Deliver(e *Event) {
	r.mu.Lock()
	r.entries = append(r.entries, entry{ev: e})
	r.mu.Unlock()
}

// onResult records the subscribe result in the same log as the events.
func (r *recorder) onResult(res SubscribeResult) {
	r.mu.Lock()
	r.entries = append(r.entries, entry{res: &res})
	r.mu.Unlock()
}

func (r *recorder) log() []entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]entry(nil), r.entries...)
}

// events returns the events received (results left out).
func (r *recorder) events() []*Event {
	var out []*Event
	for _, e := range r.log() {
		if e.ev != nil {
			out = append(out, e.ev)
		}
	}
	return out
}

// messages returns the messages received on channel, in order.
func (r *recorder) messages(channel string) []*Message {
	var out []*Message
	for _, e := range r.events() {
		if e.Kind == EventMessage && e.Channel == channel {
			out = append(out, e.Message)
		}
	}
	return out
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.entries = nil
	r.mu.Unlock()
}

// data returns the payload of the nth test message.
func data(n int) []byte { return fmt.Appendf(nil, `{"n":%d}`, n) }

// publishN publishes data(from)..data(from+n-1) to channel and returns
// their positions.
func publishN(t testing.TB, h *Hub, channel string, from, n int) []Position {
	t.Helper()
	ps := make([]Position, 0, n)
	for i := from; i < from+n; i++ {
		p, err := h.Publish(testCtx(t), channel, data(i))
		if err != nil {
			t.Fatalf("Publish(%q, %d): %v", channel, i, err)
		}
		ps = append(ps, p)
	}
	return ps
}

// wantMessages checks that msgs are exactly the messages of channel with
// offsets first..last, in epoch, in order, where offset k carries
// data(k+shift).
func wantMessages(t testing.TB, msgs []*Message, channel, epoch string, first, last uint64, shift int) {
	t.Helper()
	want := 0
	if last >= first {
		want = int(last - first + 1)
	}
	if len(msgs) != want {
		t.Fatalf("got %d messages on %q (%s), want %d (offsets %d..%d)", len(msgs), channel, offsets(msgs), want, first, last)
	}
	for i, m := range msgs {
		off := first + uint64(i)
		if m.Channel != channel || m.Offset != off || m.Epoch != epoch || string(m.Data) != string(data(int(off)+shift)) {
			t.Fatalf("message %d = {%q %d %q %s}, want {%q %d %q %s}", i, m.Channel, m.Offset, m.Epoch, m.Data, channel, off, epoch, data(int(off)+shift))
		}
	}
}

func offsets(msgs []*Message) string {
	s := "["
	for i, m := range msgs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%d@%s", m.Offset, m.Epoch)
	}
	return s + "]"
}
