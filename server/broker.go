package server

import (
	"fmt"
	"strings"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/pubsub/natsbroker"
	"github.com/duplex-ws/duplex/pubsub/redisbroker"
)

// The NATS and Redis brokers take part in GET /readyz.
var (
	_ ReadyChecker = (*natsbroker.Broker)(nil)
	_ ReadyChecker = (*redisbroker.Broker)(nil)
)

// OpenBroker returns the broker `duplex serve --broker` names, so that the
// command and embedders choose it the same way:
//
//   - "" or "memory": the in-memory broker of a single node
//     (pubsub.MemoryBroker), the default.
//   - "nats://host:port", or several such URLs separated by commas for a
//     NATS cluster: the NATS JetStream broker (package natsbroker), shared
//     by every node pointed at the same NATS.
//   - "redis://host:port[/db]" (or rediss:// for TLS): the Redis broker
//     (package redisbroker), shared by every node pointed at the same
//     Redis database.
//
// The caller closes the broker after the server's Shutdown (Config.Broker
// is not closed by the server).
func OpenBroker(url string) (pubsub.Broker, error) {
	switch {
	case url == "" || url == "memory":
		return pubsub.NewMemoryBroker(), nil
	case strings.HasPrefix(url, "nats://"):
		for _, u := range strings.Split(url, ",") {
			if !strings.HasPrefix(u, "nats://") {
				return nil, fmt.Errorf("broker %q: every URL of a NATS cluster starts with nats://", url)
			}
		}
		return natsbroker.Dial(url, natsbroker.Options{})
	case strings.HasPrefix(url, "redis://") || strings.HasPrefix(url, "rediss://"):
		return redisbroker.Dial(url, redisbroker.Options{})
	}
	return nil, fmt.Errorf("broker %q: want memory, nats://host:port or redis://host:port", url)
}
