package pubsub

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// faultyBroker is a MemoryBroker whose Subscribe, History and AddPresence
// fail on demand.
type faultyBroker struct {
	*MemoryBroker
	failSubscribe, failHistory, failPresence atomic.Bool
}

var errInjected = errors.New("injected broker failure")

func (f *faultyBroker) Subscribe(ctx context.Context, channel string) error {
	if f.failSubscribe.Load() {
		return errInjected
	}
	return f.MemoryBroker.Subscribe(ctx, channel)
}

func (f *faultyBroker) History(ctx context.Context, channel string, req HistoryRequest) (HistoryResult, error) {
	if f.failHistory.Load() {
		return HistoryResult{}, errInjected
	}
	return f.MemoryBroker.History(ctx, channel, req)
}

func (f *faultyBroker) AddPresence(ctx context.Context, channel string, c ClientInfo) error {
	if f.failPresence.Load() {
		return errInjected
	}
	return f.MemoryBroker.AddPresence(ctx, channel, c)
}

// interest returns the interest count the broker holds for channel (-1:
// the channel is forgotten).
func interest(b *MemoryBroker, channel string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.channels[channel]
	if ch == nil {
		return -1
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.interest
}

// TestBrokerInterestBalanced: the node's interest in a channel is one
// while it has local subscribers and none after, whatever the order of
// subscribes and unsubscribes.
func TestBrokerInterestBalanced(t *testing.T) {
	h, b := newTestHub(t, map[string]NamespaceOptions{"none": {}}, nil)
	ctx := testCtx(t)
	const ch = "none:x"
	rs := []*recorder{{}, {}, {}}
	for _, r := range rs {
		if _, err := h.Subscribe(ctx, ch, r, SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		if n := interest(b, ch); n != 1 {
			t.Fatalf("interest with subscribers = %d, want 1", n)
		}
	}
	if _, err := h.Subscribe(ctx, ch, rs[1], SubscribeOptions{}); !errors.Is(err, ErrAlreadySubscribed) {
		t.Fatalf("duplicate Subscribe = %v", err)
	}
	if n := interest(b, ch); n != 1 {
		t.Fatalf("interest after a refused duplicate = %d, want 1", n)
	}
	for i, r := range []*recorder{rs[0], rs[2]} {
		if err := h.Unsubscribe(ctx, ch, r); err != nil {
			t.Fatal(err)
		}
		if n := interest(b, ch); n != 1 {
			t.Fatalf("interest after %d of 3 left = %d, want 1", i+1, n)
		}
	}
	h.Unsubscribe(ctx, ch, rs[1])
	if n := interest(b, ch); n != -1 {
		t.Fatalf("interest after all left = %d, want the channel forgotten", n)
	}
	h.Close()
	if _, err := h.Subscribe(ctx, ch, rs[0], SubscribeOptions{}); !errors.Is(err, ErrHubClosed) {
		t.Fatalf("Subscribe after Close = %v", err)
	}
	if n := interest(b, ch); n != -1 {
		t.Fatalf("interest after a refused Subscribe on a closed hub = %d, want the channel forgotten", n)
	}
}

// TestSubscribeBrokerFailures: when the broker fails, Subscribe returns
// its error and leaves nothing behind: no subscription, no interest, no
// presence; the other subscribers go on.
func TestSubscribeBrokerFailures(t *testing.T) {
	f := &faultyBroker{MemoryBroker: NewMemoryBroker()}
	defer f.Close()
	h := NewHub(Config{Broker: f, Namespaces: map[string]NamespaceOptions{"p": {Presence: true}}})
	defer h.Close()
	ctx := testCtx(t)
	const ch = "p:x"

	for _, tc := range []struct {
		name string
		flag *atomic.Bool
	}{{"subscribe", &f.failSubscribe}, {"history", &f.failHistory}, {"presence", &f.failPresence}} {
		// Alone on the channel, then with another subscriber present.
		for _, withOther := range []bool{false, true} {
			other := &recorder{}
			if withOther {
				if _, err := h.Subscribe(ctx, ch, other, SubscribeOptions{Client: ClientInfo{Client: "other"}}); err != nil {
					t.Fatal(err)
				}
				other.reset()
			}
			r := &recorder{}
			tc.flag.Store(true)
			answered := false
			_, err := h.Subscribe(ctx, ch, r, SubscribeOptions{Client: ClientInfo{Client: "me"}, OnResult: func(SubscribeResult) { answered = true }})
			tc.flag.Store(false)
			if !errors.Is(err, errInjected) {
				t.Fatalf("%s failing, other %v: Subscribe = %v", tc.name, withOther, err)
			}
			if answered {
				// A transport answers in OnResult: a failure after it would
				// answer the same command twice.
				t.Fatalf("%s failing, other %v: OnResult was called although Subscribe failed", tc.name, withOther)
			}
			if err := h.Unsubscribe(ctx, ch, r); !errors.Is(err, ErrNotSubscribed) {
				t.Fatalf("%s failing, other %v: the failed subscription is still there (%v)", tc.name, withOther, err)
			}
			if p, _ := h.Presence(ctx, ch); len(p) != 0 && !withOther || withOther && (len(p) != 1 || p[0].Client != "other") {
				t.Fatalf("%s failing, other %v: presence %+v", tc.name, withOther, p)
			}
			pos, _ := h.Publish(ctx, ch, data(1))
			if n := len(r.messages(ch)); n != 0 {
				t.Fatalf("%s failing, other %v: the failed subscriber got %d messages", tc.name, withOther, n)
			}
			if withOther {
				if m := other.messages(ch); len(m) != 1 || m[0].Position() != pos {
					t.Fatalf("%s failing: the other subscriber got %s, want %+v", tc.name, offsets(m), pos)
				}
				if n := interest(f.MemoryBroker, ch); n != 1 {
					t.Fatalf("%s failing, with another subscriber: interest %d, want 1", tc.name, n)
				}
				h.Unsubscribe(ctx, ch, other)
			}
			if n := interest(f.MemoryBroker, ch); n != -1 {
				t.Fatalf("%s failing, other %v: interest %d after everyone left, want the channel forgotten", tc.name, withOther, n)
			}
		}
	}
}
