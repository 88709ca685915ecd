package pubsub_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/brokertest"
	"github.com/duplex-ws/duplex/pubsub"
)

// TestMemoryBrokerContract holds MemoryBroker to the promises every
// pubsub.Broker keeps (internal/brokertest), as a single node.
func TestMemoryBrokerContract(t *testing.T) {
	var mu sync.Mutex
	skews := map[pubsub.Broker]*atomic.Int64{}
	brokertest.Run(t, brokertest.Setup{
		New: func(t *testing.T, n int) []pubsub.Broker {
			b := pubsub.NewMemoryBroker()
			skew := new(atomic.Int64)
			pubsub.SetMemoryClock(b, func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
			mu.Lock()
			skews[b] = skew
			mu.Unlock()
			t.Cleanup(func() { b.Close() })
			return []pubsub.Broker{b}
		},
		Nodes: 1,
		Skew: func(b pubsub.Broker, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			skews[b].Store(int64(d))
		},
		Interested: func(b pubsub.Broker, channel string) bool {
			return pubsub.MemoryInterest(b.(*pubsub.MemoryBroker), channel)
		},
		DeliversWithoutInterest: true,
		ForgetsIdleChannels:     true,
	})
}
