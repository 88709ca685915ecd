package natsbroker

import (
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/brokertest"
	"github.com/duplex-ws/duplex/pubsub"
)

// TestContract holds the NATS broker to the promises every pubsub.Broker
// keeps (internal/brokertest), with up to three nodes on one embedded
// nats-server (a new one, with an empty JetStream store, per scenario).
func TestContract(t *testing.T) {
	brokertest.Run(t, brokertest.Setup{
		New: func(t *testing.T, n int) []pubsub.Broker {
			s := startNATS(t, t.TempDir(), 0)
			out := make([]pubsub.Broker, n)
			for i := range out {
				out[i] = dial(t, s, Options{})
			}
			return out
		},
		Nodes: 3,
		Skew: func(b pubsub.Broker, d time.Duration) {
			b.(*Broker).now = func() time.Time { return time.Now().Add(d) }
		},
		Interested: func(b pubsub.Broker, channel string) bool { return b.(*Broker).interested(channel) != nil },
	})
}
