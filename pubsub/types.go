package pubsub

import (
	"encoding/json"
	"errors"
	"sync"
	"time"
)

// Position names a point in a channel's history: the offset of a message and
// the epoch of the history it belongs to. A client keeps the Position of the
// last message it processed to resume from it after a reconnect.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Message is one published message, as kept in history and as delivered.
type Message struct {
	Channel string
	Offset  uint64
	Epoch   string
	// Data is the message's payload, a JSON value; it is never modified
	// after publication and is shared by every delivery.
	Data json.RawMessage
	// Time is when the broker accepted the message.
	Time time.Time
}

// Position returns the message's place in its channel's history.
func (m *Message) Position() Position { return Position{Offset: m.Offset, Epoch: m.Epoch} }

// ClientInfo is what a channel's presence shows of a subscriber.
type ClientInfo struct {
	// Client identifies the connection, unique among the nodes.
	Client string `json:"client"`
	// User is who the connection says (or, with auth, proves) it is.
	User string `json:"user"`
	// Info is optional application data (a JSON value) shown to others.
	Info json.RawMessage `json:"info,omitempty"`
}

// EventKind tells what an Event carries.
type EventKind int

// The kinds of events a subscriber receives.
const (
	// EventMessage carries a published message.
	EventMessage EventKind = iota + 1
	// EventJoin reports that a client subscribed to a channel with presence.
	EventJoin
	// EventLeave reports that a client left a channel with presence.
	EventLeave
	// EventLost reports that messages of a channel will never reach the
	// subscriber: the broker delivered a message whose offset jumps past
	// the next one expected (its link was down longer than the channel's
	// history keeps), or a message of a new epoch (the broker lost the
	// history the subscription followed; see Gap.Old). It comes right
	// before that message, so a client learns of the loss before it sees
	// anything newer and can reload its state, as after a resubscription
	// that could not recover.
	EventLost
)

// String returns the kind's name as the channel protocol spells it.
func (k EventKind) String() string {
	switch k {
	case EventMessage:
		return "message"
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventLost:
		return "lost"
	}
	return "unknown"
}

// Gap names messages of a channel that a subscriber will never receive:
// offsets From to To, both included, of Epoch (none when From > To), and,
// when Old.Epoch is set, whatever came after Old in the epoch before.
type Gap struct {
	Epoch    string
	From, To uint64
	// Old, when its Epoch is set, says that the broker lost the history
	// the subscription followed and started a new one, Epoch: the
	// subscription had reached Old.Offset of Old.Epoch (the last message
	// it received, or its subscribe position), and whatever that epoch
	// held after it is gone, unknown to the broker. Epoch's offsets start
	// at 1, so From is 1, and To is 0 when the new epoch's first message
	// is its offset 1 (nothing of it is missing). Old is the zero Position
	// for a gap within one epoch.
	Old Position
}

// Event is what a Hub delivers to a subscriber: a message, a presence
// change, or a loss. One Event value is shared by every subscriber it
// reaches, so a transport can encode it once (see Encoded); it must be
// treated as read-only. (An EventLost is made for each subscription that
// lost messages, as each counts its own offsets.)
type Event struct {
	Kind    EventKind
	Channel string
	// Message is set for EventMessage.
	Message *Message
	// Client is set for EventJoin and EventLeave.
	Client ClientInfo
	// Lost is set for EventLost: the offsets that will never come. The
	// subscriber's position is then Lost.To in Lost.Epoch, and the next
	// message has offset Lost.To+1.
	Lost Gap

	mu      sync.Mutex
	encoded []encodedAs // usually one entry, two when plain and protocol clients share a channel
}

type encodedAs struct {
	enc *Encoding
	v   any
}

// Encoding is one way of turning events into bytes (a JSON push, a prepared
// WebSocket frame) for one kind of subscriber. Create one per kind with
// NewEncoding and keep it: Event.Encoded caches by Encoding.
type Encoding struct {
	build func(*Event) any
}

// NewEncoding returns an Encoding that builds with build.
func NewEncoding(build func(*Event) any) *Encoding { return &Encoding{build: build} }

// Encoded returns the event encoded by enc, building it only the first time
// for this event and this Encoding: every subscriber of a fan-out shares
// the result, so a message is turned into bytes (and compressed) once
// however many receive it.
func (e *Event) Encoded(enc *Encoding) any {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.encoded {
		if p.enc == enc {
			return p.v
		}
	}
	v := enc.build(e)
	e.encoded = append(e.encoded, encodedAs{enc, v})
	return v
}

// Errors returned by the Hub. The channel protocol maps each to an error
// code (docs/protocol.md); they are compared with errors.Is.
var (
	// ErrInvalidChannel: the channel name is empty, too long, or has a
	// character outside the allowed set.
	ErrInvalidChannel = errors.New("invalid channel name")
	// ErrUnknownNamespace: the channel's namespace is not configured.
	ErrUnknownNamespace = errors.New("unknown namespace")
	// ErrPermissionDenied: the namespace does not allow the action (for
	// example, clients may not publish).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrAlreadySubscribed: the subscriber already has this channel.
	ErrAlreadySubscribed = errors.New("already subscribed")
	// ErrNotSubscribed: the subscriber does not have this channel.
	ErrNotSubscribed = errors.New("not subscribed")
	// ErrHistoryDisabled: the namespace keeps no history.
	ErrHistoryDisabled = errors.New("history is off in this namespace")
	// ErrPresenceDisabled: the namespace has presence off.
	ErrPresenceDisabled = errors.New("presence is off in this namespace")
	// ErrHubClosed: the Hub was closed.
	ErrHubClosed = errors.New("pubsub: hub closed")
)
