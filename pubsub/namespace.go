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
