package redisbroker

import (
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/brokertest"
	"github.com/duplex-ws/duplex/internal/redistest"
	"github.com/duplex-ws/duplex/pubsub"
)

// TestContract holds the Redis broker to the promises every pubsub.Broker
// keeps (internal/brokertest), with up to three nodes on one redis-server
// (a new, empty one per scenario).
func TestContract(t *testing.T) {
	brokertest.Run(t, brokertest.Setup{
		New: func(t *testing.T, n int) []pubsub.Broker {
			s := redistest.Start(t)
			out := make([]pubsub.Broker, n)
			for i := range out {
				out[i] = dial(t, s, Options{})
			}
			return out
		},
		Nodes:      3,
		Skew:       func(b pubsub.Broker, d time.Duration) { b.(*Broker).clockShift.Store(int64(d)) },
		Interested: func(b pubsub.Broker, channel string) bool { return b.(*Broker).interested(channel) != nil },
	})
}
