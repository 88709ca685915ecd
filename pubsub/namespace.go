package pubsub

import (
	"fmt"
	"strings"
	"time"
)

// MaxChannelLen is the longest channel name, in bytes.
const MaxChannelLen = 255

// NamespaceOptions are the rules of the channels of one namespace (the part
// of a channel name before its first ':'). The zero value keeps no history,
// has presence off and lets only the server's API publish: the safe choice
// for a namespace nobody thought about.
type NamespaceOptions struct {
	// HistorySize is how many messages each channel keeps for history and
	// recovery (0: none).
	HistorySize int
	// HistoryTTL is how long a message stays in history (0: until evicted
	// by HistorySize).
	HistoryTTL time.Duration
	// Presence turns on presence queries and join and leave events.
	Presence bool
	// ClientPublish lets clients publish; without it only the API may.
	ClientPublish bool
	// Anonymous opens the namespace to connections without a token when
	// the server authenticates clients (server.AuthConfig): they may then
	// subscribe, read presence and history, and publish if ClientPublish
	// allows, and so may every authenticated connection whatever its
	// token's channel permissions. Without it, the namespace refuses
	// anonymous connections. A server that does not authenticate ignores
	// it: everyone is anonymous there, and allowed.
	Anonymous bool
	// SlowConsumer says what a connection whose send queue is full does
	// with this namespace's messages (the zero value, SlowConsumerClose,
	// closes the connection). Transports apply it; the Hub does not.
	SlowConsumer SlowConsumerPolicy
	// ConflateKey, with SlowConsumerConflate, names a top-level field of
	// the messages' data (a JSON object) whose value, with the channel,
	// keys the conflation: a waiting message is replaced by a newer one of
	// the same channel and value. Empty: the channel alone is the key.
	ConflateKey string
}

// SlowConsumerPolicy is what a transport does with a namespace's messages
// when a subscriber's connection does not read fast enough and its send
// queue is full. Answers to commands and presence events are never dropped
// or replaced, whatever the policy.
type SlowConsumerPolicy int

// The slow-consumer policies.
const (
	// SlowConsumerClose closes the connection (WebSocket close code 1013):
	// the client reconnects and recovers what it missed from history. It
	// is the zero value, as it loses nothing silently.
	SlowConsumerClose SlowConsumerPolicy = iota
	// SlowConsumerDropOldest drops the oldest waiting messages of such
	// namespaces to make room, and tells the client which offsets it lost,
	// so that it can fetch them from history or treat them as gone.
	SlowConsumerDropOldest
	// SlowConsumerConflate keeps, of the waiting messages with the same
	// key (see NamespaceOptions.ConflateKey), only the newest: for
	// channels where only the latest value matters, such as prices.
	SlowConsumerConflate
)

// String returns the policy's name as duplex serve --namespace spells it:
// close, drop-oldest or conflate.
func (p SlowConsumerPolicy) String() string {
	switch p {
	case SlowConsumerClose:
		return "close"
	case SlowConsumerDropOldest:
		return "drop-oldest"
	case SlowConsumerConflate:
		return "conflate"
	}
	return fmt.Sprintf("SlowConsumerPolicy(%d)", int(p))
}

// ParseSlowConsumerPolicy returns the policy a name (see String) stands
// for, or an error listing the names.
func ParseSlowConsumerPolicy(name string) (SlowConsumerPolicy, error) {
	for _, p := range []SlowConsumerPolicy{SlowConsumerClose, SlowConsumerDropOldest, SlowConsumerConflate} {
		if p.String() == name {
			return p, nil
		}
	}
	return 0, fmt.Errorf("slow-consumer policy %q: want close, drop-oldest or conflate", name)
}

// DefaultNamespace is the options of the default namespace (names without
// ':') when a Config leaves it unset: 100 messages kept for 5 minutes,
// presence on, clients may publish.
var DefaultNamespace = NamespaceOptions{
	HistorySize:   100,
	HistoryTTL:    5 * time.Minute,
	Presence:      true,
	ClientPublish: true,
}

// ValidateChannel reports whether name is a valid channel name: 1 to
// MaxChannelLen bytes of ASCII letters, digits and _ - . : @ / =. The set
// leaves out spaces, wildcards (* > #) and anything a broker's subject
// syntax or a URL path would read differently.
func ValidateChannel(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidChannel)
	}
	if len(name) > MaxChannelLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidChannel, len(name), MaxChannelLen)
	}
	for i := 0; i < len(name); i++ {
		if !channelByte(name[i]) {
			return fmt.Errorf("%w %q: byte %d (%q) is not a letter, digit or one of _-.:@/=", ErrInvalidChannel, name, i, name[i])
		}
	}
	return nil
}

func channelByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("_-.:@/=", c) >= 0
}

// Namespace returns the namespace of a channel: the part before the first
// ':', or "" for the default namespace.
func Namespace(channel string) string {
	if i := strings.IndexByte(channel, ':'); i >= 0 {
		return channel[:i]
	}
	return ""
}
