package pubsub

import (
	"context"
	"fmt"
	"testing"
)

// chanSubscriber is a Subscriber whose Deliver does what a transport does:
// a non-blocking send to its connection's queue.
type chanSubscriber struct{ q chan *Event }

func (s *chanSubscriber) Deliver(e *Event) {
	select {
	case s.q <- e:
	default: // a full queue is the transport's slow-consumer case
	}
}

// BenchmarkFanOut publishes one message to a channel with n local
// subscribers; ns/delivery is the cost of handing it to one of them.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			h := NewHub(Config{Namespaces: map[string]NamespaceOptions{"bench": {HistorySize: 100}}})
			defer h.Close()
			ctx := context.Background()
			const queue = 64
			subs := make([]*chanSubscriber, n)
			for i := range subs {
				subs[i] = &chanSubscriber{q: make(chan *Event, queue)}
				if _, err := h.Subscribe(ctx, "bench:x", subs[i], SubscribeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			payload := []byte(`{"text":"hello, subscribers"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := h.Publish(ctx, "bench:x", payload); err != nil {
					b.Fatal(err)
				}
				if i%queue == queue-1 {
					// Empty the queues so every send succeeds, as with
					// subscribers that keep up; not timed.
					b.StopTimer()
					for _, s := range subs {
						for len(s.q) > 0 {
							<-s.q
						}
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			for _, s := range subs {
				if len(s.q) != b.N%queue {
					b.Fatalf("a subscriber holds %d events, want %d", len(s.q), b.N%queue)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
