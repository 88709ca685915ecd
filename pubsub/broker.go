package pubsub

import (
	"context"
	"fmt"
	"time"
)

// Broker is where channels live: it assigns offsets, keeps history and
// presence, and delivers messages and presence changes to every node that
// declared interest in a channel. One Broker serves one Hub per node.
// MemoryBroker serves a single node; brokers on NATS or Redis let nodes
// share channels.
//
// A Broker calls its handler's methods for a channel in the order the
// events happened, messages in offset order, and never concurrently for
// one channel. Handler methods do not block.
//
// A broker that loses a channel's history (a store purged or restarted)
// must give the channel a new epoch, whose offsets start over at 1: the
// Hub tells the channel's subscribers that the history they followed is
// lost (EventLost with Gap.Old) before the new epoch's first message, and
// delivers the new epoch's messages (see Hub.Subscribe). Losing only the
// last writes (a store back from a crash with older data, or restored
// from a backup) is losing history too, though the store keeps the epoch:
// its next offsets would be ones that nodes and clients have already
// seen, and the Hub and the SDKs would drop those messages as duplicates.
// So a broker on a shared store remembers, per channel it published to or
// delivered recently (bounded), the highest offset it saw in the
// channel's current epoch; when it finds the store's position below that
// in the same epoch (when it reads the position after a reconnection, or
// for a publish), it gives the channel a new epoch in the store with a
// compare-and-set on the old one (so nodes noticing at once make one new
// epoch), logs a warning naming the channel and both positions, and
// stores a publish that noticed in the new epoch (or fails it), never at
// a reused offset. A broker
// whose link drops fills the gap itself, in offset order, once the link
// is back, with what its store still holds: the Redis broker re-reads its
// stream after a reconnection, the NATS broker's ordered consumer
// resumes. Messages that left the store meanwhile (beyond the history's
// size or TTL) are simply not delivered: a broker never makes up for them
// and never reorders, so a delivered offset that jumps past the next one
// expected (in the same epoch, or past 1 in a new epoch) means that the
// messages in between are lost for this node. The Hub tells the
// channel's subscribers so (EventLost) before delivering the message
// after the gap.
//
// A new Broker proves itself with the contract suite that MemoryBroker and
// the NATS and Redis brokers pass: a test in its package calls
// brokertest.Run (internal/brokertest) with a function that opens n nodes
// on a fresh store, and the suite checks every promise of this interface
// (offsets, order, counted interest, history, epochs, presence, the
// channel listing, Close), across nodes when the broker has several.
// What only that broker does (outages, reconnection) gets its own tests.
type Broker interface {
	// SetHandler names who receives deliveries. It is called once, before
	// any other method.
	SetHandler(h BrokerHandler)
	// Subscribe declares this node's interest in a channel: from its return
	// on, every message published to the channel reaches the handler.
	Subscribe(ctx context.Context, channel string) error
	// Unsubscribe withdraws the interest declared by Subscribe. Calls are
	// counted: the interest lasts until there has been an Unsubscribe for
	// every Subscribe.
	Unsubscribe(ctx context.Context, channel string) error
	// Publish appends data to the channel, assigning the next offset, keeps
	// it in history as opts say, and delivers it to every interested node.
	// The returned Message is the one delivered.
	Publish(ctx context.Context, channel string, data []byte, opts HistoryOptions) (*Message, error)
	// History returns what the channel's history holds, as req asks, and
	// the channel's current position.
	History(ctx context.Context, channel string, req HistoryRequest) (HistoryResult, error)
	// AddPresence records a client in the channel's presence and delivers a
	// join to interested nodes.
	AddPresence(ctx context.Context, channel string, c ClientInfo) error
	// RemovePresence removes a client from the channel's presence and
	// delivers a leave to interested nodes; removing an absent client does
	// nothing.
	RemovePresence(ctx context.Context, channel string, c ClientInfo) error
	// Presence reports the clients present in the channel, sorted by
	// client id.
	Presence(ctx context.Context, channel string) ([]ClientInfo, error)
	// Channels lists the channels the broker holds state for (history,
	// presence or interest), sorted by name.
	Channels(ctx context.Context) ([]ChannelInfo, error)
	// Close releases the broker's resources. A broker shared by several
	// nodes also withdraws the presence this node added, so the other
	// nodes deliver the leaves at once instead of after an expiry.
	Close() error
}

// BrokerHandler receives what a Broker delivers. Its methods must return
// quickly and must not call back into the Broker.
type BrokerHandler interface {
	// HandleMessage receives a published message, in offset order per
	// channel, without gaps but for messages the broker no longer holds
	// (see Broker).
	HandleMessage(m *Message)
	// HandleJoin receives a client's arrival in a channel's presence.
	HandleJoin(channel string, c ClientInfo)
	// HandleLeave receives a client's departure from a channel's presence.
	HandleLeave(channel string, c ClientInfo)
}

// HistoryOptions say how a channel keeps its history; they come from the
// channel's namespace with every publish.
type HistoryOptions struct {
	// Size is how many messages to keep (0: none).
	Size int
	// TTL is how long a message is kept (0: until evicted by Size).
	TTL time.Duration
}

// HistoryRequest says what a History call returns.
type HistoryRequest struct {
	// Since asks for the messages after Since.Offset. Without it, History
	// returns the latest messages.
	Since *Position
	// Limit caps how many messages are returned: the latest Limit without
	// Since, the first Limit after Since. 0 means no cap; a negative Limit
	// asks only for the position.
	Limit int
}

// HistoryResult is what History returns.
type HistoryResult struct {
	// Messages are oldest first.
	Messages []*Message
	// Position is the channel's latest offset and current epoch.
	Position Position
	// Complete, for a request with Since, reports whether Messages start
	// right after Since.Offset in Since's epoch: nothing in between was lost.
	Complete bool
}

// ChannelInfo describes a channel for listings.
type ChannelInfo struct {
	Channel  string `json:"channel"`
	Position        // latest offset and current epoch
	// Subscribers counts this node's subscribers (filled in by the Hub).
	Subscribers int `json:"subscribers"`
}

// DefaultStorePrefix is the prefix brokers give the names they create in a
// shared store (NATS streams and buckets, Redis keys) when none is set.
const DefaultStorePrefix = "duplex"

// StorePrefix returns p, or DefaultStorePrefix when p is empty, and an
// error naming the broker when p has a byte other than an ASCII letter, a
// digit, '-' or '_': those need no escaping in any store, so several
// Duplex deployments can share one NATS or Redis under different prefixes.
func StorePrefix(broker, p string) (string, error) {
	if p == "" {
		return DefaultStorePrefix, nil
	}
	for _, c := range []byte(p) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", fmt.Errorf("%s: prefix %q: only letters, digits, '-' and '_'", broker, p)
		}
	}
	return p, nil
}
