package server

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
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
//     by every node pointed at the same NATS. A query after the last URL
//     sets natsbroker.Options (see ParseNATSBroker):
//     "nats://a:4222,nats://b:4222?replicas=3&prefix=blue".
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
		servers, opts, err := ParseNATSBroker(url)
		if err != nil {
			return nil, err
		}
		return natsbroker.Dial(servers, opts)
	case strings.HasPrefix(url, "redis://") || strings.HasPrefix(url, "rediss://"):
		return redisbroker.Dial(url, redisbroker.Options{})
	}
	return nil, fmt.Errorf("broker %q: want memory, nats://host:port or redis://host:port", url)
}

// maxReplicas is the most replicas JetStream keeps of a stream.
const maxReplicas = 5

// ParseNATSBroker splits a broker URL of the NATS form,
// "nats://host:port[,nats://host:port…][?replicas=N&prefix=P]", into the
// servers' URLs that natsbroker.Dial takes and the options its query sets,
// so that duplex serve can check the setting before it connects:
//
//   - replicas: how many copies of the streams and the presence bucket a
//     NATS cluster keeps (natsbroker.Options.Replicas), 1 to 5;
//   - prefix: the names of the streams, subjects and bucket
//     (natsbroker.Options.Prefix), letters, digits, '-' and '_', so that
//     several deployments share one NATS account.
//
// Each option at most once; any other is an error that names it.
func ParseNATSBroker(brokerURL string) (servers string, opts natsbroker.Options, err error) {
	bad := func(format string, a ...any) (string, natsbroker.Options, error) {
		return "", natsbroker.Options{}, fmt.Errorf("broker %q: "+format, append([]any{brokerURL}, a...)...)
	}
	servers, query, _ := strings.Cut(brokerURL, "?")
	for _, u := range strings.Split(servers, ",") {
		if !strings.HasPrefix(u, "nats://") {
			return bad("every URL of a NATS cluster starts with nats://")
		}
		if _, err := url.Parse(u); err != nil {
			return bad("%q: not a URL", u)
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return bad("options %q: %v", query, err)
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		v := q[k]
		if len(v) != 1 {
			return bad("option %s given %d times", k, len(v))
		}
		switch k {
		case "replicas":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 || n > maxReplicas {
				return bad("replicas=%s: want a number from 1 to %d", v[0], maxReplicas)
			}
			opts.Replicas = n
		case "prefix":
			if v[0] == "" {
				return bad("prefix=: want letters, digits, '-' and '_'")
			}
			if _, err := pubsub.StorePrefix("natsbroker", v[0]); err != nil {
				return bad("prefix=%s: only letters, digits, '-' and '_'", v[0])
			}
			opts.Prefix = v[0]
		default:
			return bad("unknown option %q: want replicas or prefix", k)
		}
	}
	return servers, opts, nil
}
