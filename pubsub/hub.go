package pubsub

import (
	"context"
	"fmt"
	"sync"
)

// Subscriber receives a subscription's events from a Hub. Deliver is called
// in the channel's order and must not block or call back into the Hub: a
// transport appends the event to its connection's bounded queue and, when
// the queue is full, applies its slow-consumer policy (for example, closing
// the connection from another goroutine).
type Subscriber interface {
	// Deliver receives one event of one of the subscriber's channels.
	Deliver(e *Event)
}

// Config configures a Hub. The zero value is a single node with an
// in-memory broker and the default namespace only.
type Config struct {
	// Broker holds the channels; nil means a new MemoryBroker, closed with
	// the Hub.
	Broker Broker
	// Namespaces maps a namespace name to its options. The key "" is the
	// default namespace (names without ':'); when absent it gets
	// DefaultNamespace. Channels of a namespace missing here are refused
	// with ErrUnknownNamespace.
	Namespaces map[string]NamespaceOptions
}

// Hub is one node's channel engine: it validates channel names, applies
// namespace options, keeps this node's subscribers of each channel, and
// fans out what the Broker delivers. It is safe for concurrent use.
type Hub struct {
	broker     Broker
	ownBroker  bool
	namespaces map[string]NamespaceOptions

	mu       sync.RWMutex
	channels map[string]map[Subscriber]*subscription
	bySub    map[Subscriber]map[string]*subscription
	closed   bool
}

// subscription is one subscriber's membership of one channel.
type subscription struct {
	sub      Subscriber
	channel  string
	client   ClientInfo
	presence bool

	mu      sync.Mutex
	live    bool     // recovery done: deliver directly
	pending []*Event // events that arrived during recovery
	last    uint64   // highest offset delivered
	epoch   string   // the epoch last is counted in
	gone    bool     // unsubscribed: deliver nothing more
}

// NewHub returns a Hub configured by cfg.
func NewHub(cfg Config) *Hub {
	h := &Hub{
		broker:     cfg.Broker,
		namespaces: make(map[string]NamespaceOptions, len(cfg.Namespaces)+1),
		channels:   make(map[string]map[Subscriber]*subscription),
		bySub:      make(map[Subscriber]map[string]*subscription),
	}
	if h.broker == nil {
		h.broker = NewMemoryBroker()
		h.ownBroker = true
	}
	h.namespaces[""] = DefaultNamespace
	for name, o := range cfg.Namespaces {
		h.namespaces[name] = o
	}
	h.broker.SetHandler(hubHandler{h})
	return h
}

// Broker returns the Hub's broker.
func (h *Hub) Broker() Broker { return h.broker }

// Options validates a channel name and returns its namespace's options.
func (h *Hub) Options(channel string) (NamespaceOptions, error) {
	if err := ValidateChannel(channel); err != nil {
		return NamespaceOptions{}, err
	}
	ns := Namespace(channel)
	o, ok := h.namespaces[ns]
	if !ok {
		return NamespaceOptions{}, fmt.Errorf("%w %q (channel %q)", ErrUnknownNamespace, ns, channel)
	}
	return o, nil
}

// SubscribeOptions qualify a Subscribe call.
type SubscribeOptions struct {
	// Since asks to recover the messages published after it.
	Since *Position
	// Client is what presence shows of the subscriber.
	Client ClientInfo
	// OnResult, if set, is called with the result before any event of the
	// subscription is delivered, so a transport can answer the subscribe
	// command before the recovered messages follow it. It must not block.
	OnResult func(SubscribeResult)
}

// SubscribeResult is the outcome of Subscribe.
type SubscribeResult struct {
	// Recovered reports that every message after SubscribeOptions.Since is
	// delivered (always false without Since).
	Recovered bool
	// Position is the channel's latest offset and its epoch when the
	// subscription began.
	Position Position
}

// Subscribe adds s to channel. From OnResult on, s receives the channel's
// messages in offset order, each once: first, when recovering, the missed
// messages; then every new one. Should the broker later skip offsets it no
// longer holds, or lose the channel's history and start a new epoch, s
// receives an EventLost before the message after the gap.
// With presence on, the channel's subscribers (s included) receive a join.
func (h *Hub) Subscribe(ctx context.Context, channel string, s Subscriber, opts SubscribeOptions) (SubscribeResult, error) {
	o, err := h.Options(channel)
	if err != nil {
		return SubscribeResult{}, err
	}
	sn := &subscription{sub: s, channel: channel, client: opts.Client, presence: o.Presence}

	// Declare interest before registering sn: from then on the broker keeps
	// the channel and its epoch, so no message of an epoch that is lost
	// meanwhile reaches sn, and History below reads the epoch sn lives in.
	// The first local subscriber's interest stays for as long as the
	// channel has local subscribers; any other one's is withdrawn once sn
	// is registered.
	if err := h.broker.Subscribe(ctx, channel); err != nil {
		return SubscribeResult{}, err
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.broker.Unsubscribe(ctx, channel)
		return SubscribeResult{}, ErrHubClosed
	}
	if _, dup := h.bySub[s][channel]; dup {
		h.mu.Unlock()
		h.broker.Unsubscribe(ctx, channel)
		return SubscribeResult{}, fmt.Errorf("%w to %q", ErrAlreadySubscribed, channel)
	}
	local := h.channels[channel]
	first := local == nil
	if first {
		local = make(map[Subscriber]*subscription)
		h.channels[channel] = local
	}
	local[s] = sn
	if h.bySub[s] == nil {
		h.bySub[s] = make(map[string]*subscription)
	}
	h.bySub[s][channel] = sn
	h.mu.Unlock()

	if !first {
		h.broker.Unsubscribe(ctx, channel)
	}
	// Registration first, then history: a message published in between is
	// both in history and buffered in pending, and the offset check keeps
	// one.
	req := HistoryRequest{Limit: -1}
	if opts.Since != nil {
		req = HistoryRequest{Since: opts.Since}
	}
	hist, err := h.broker.History(ctx, channel, req)
	if err != nil {
		h.remove(ctx, sn)
		return SubscribeResult{}, err
	}
	res := SubscribeResult{Position: hist.Position, Recovered: opts.Since != nil && hist.Complete}

	// Presence before the result, so that a broker failure here is the
	// only answer; the join reaches s through pending, after the result.
	if o.Presence {
		if err := h.broker.AddPresence(ctx, channel, opts.Client); err != nil {
			h.remove(ctx, sn)
			return SubscribeResult{}, err
		}
	}

	sn.mu.Lock()
	if opts.OnResult != nil {
		opts.OnResult(res)
	}
	sn.last, sn.epoch = hist.Position.Offset, hist.Position.Epoch
	if res.Recovered {
		sn.last = opts.Since.Offset
		for _, m := range hist.Messages {
			sn.deliverLocked(&Event{Kind: EventMessage, Channel: channel, Message: m})
		}
	}
	for _, e := range sn.pending {
		sn.deliverLocked(e)
	}
	sn.pending = nil
	sn.live = true
	sn.mu.Unlock()
	return res, nil
}

// deliverLocked hands e to the subscriber unless it is a message at or
// below the last offset delivered in its epoch. A message past the next
// offset expected (last+1) means the broker no longer held the ones in
// between (see Broker): an EventLost naming them goes first. A message of
// another epoch means the broker lost the channel's history and started a
// new one, whose offsets start over at 1: an EventLost goes first, saying
// that what followed the subscription's position in its epoch is gone
// (Gap.Old) and naming the new epoch's offsets before the message, if any;
// then the message is delivered and counting restarts from it. A
// subscription that knows no message of its epoch (its position is offset
// 0: the channel was empty when it subscribed, and nothing came since) had
// nothing to lose there, so a new epoch that starts at 1 is no loss to
// it; nor is anything to one without a position (a broker that gave no
// epoch). sn.mu is held.
func (sn *subscription) deliverLocked(e *Event) {
	if sn.gone {
		return
	}
	if e.Kind == EventMessage {
		m := e.Message
		if lost, ok := sn.gapBefore(m); ok {
			sn.sub.Deliver(&Event{Kind: EventLost, Channel: sn.channel, Lost: lost})
		} else if m.Epoch == sn.epoch && m.Offset <= sn.last {
			return // delivered already
		}
		sn.last, sn.epoch = m.Offset, m.Epoch
	}
	sn.sub.Deliver(e)
}

// gapBefore returns what the subscription loses before m, if anything
// (see deliverLocked). sn.mu is held.
func (sn *subscription) gapBefore(m *Message) (Gap, bool) {
	switch {
	case sn.epoch == "":
		return Gap{}, false
	case m.Epoch == sn.epoch:
		if m.Offset <= sn.last+1 {
			return Gap{}, false
		}
		return Gap{Epoch: m.Epoch, From: sn.last + 1, To: m.Offset - 1}, true
	case sn.last == 0 && m.Offset <= 1:
		return Gap{}, false
	}
	return Gap{Epoch: m.Epoch, From: 1, To: max(m.Offset, 1) - 1, Old: Position{Offset: sn.last, Epoch: sn.epoch}}, true
}

// deliver hands e to the subscription, or buffers it during recovery.
func (sn *subscription) deliver(e *Event) {
	sn.mu.Lock()
	if sn.live {
		sn.deliverLocked(e)
	} else if !sn.gone {
		sn.pending = append(sn.pending, e)
	}
	sn.mu.Unlock()
}

// Unsubscribe removes s from channel; s receives nothing more from it once
// Unsubscribe returns. With presence on, the others receive a leave.
func (h *Hub) Unsubscribe(ctx context.Context, channel string, s Subscriber) error {
	h.mu.RLock()
	sn := h.bySub[s][channel]
	h.mu.RUnlock()
	if sn == nil {
		return fmt.Errorf("%w to %q", ErrNotSubscribed, channel)
	}
	h.remove(ctx, sn)
	return nil
}

// UnsubscribeAll removes s from every channel it is in, as when its
// connection ends.
func (h *Hub) UnsubscribeAll(ctx context.Context, s Subscriber) {
	h.mu.RLock()
	subs := make([]*subscription, 0, len(h.bySub[s]))
	for _, sn := range h.bySub[s] {
		subs = append(subs, sn)
	}
	h.mu.RUnlock()
	for _, sn := range subs {
		h.remove(ctx, sn)
	}
}

// remove ends a subscription: no more deliveries, the broker interest and
// presence withdrawn.
func (h *Hub) remove(ctx context.Context, sn *subscription) {
	last, dropped := h.drop(sn)
	if !dropped {
		return
	}
	if sn.presence {
		h.broker.RemovePresence(ctx, sn.channel, sn.client)
	}
	if last {
		h.broker.Unsubscribe(ctx, sn.channel)
	}
}

// drop removes sn from the Hub's maps and stops its deliveries; it reports
// whether sn was the channel's last local subscriber; dropped is false if
// sn was already gone.
func (h *Hub) drop(sn *subscription) (last, dropped bool) {
	sn.mu.Lock()
	sn.gone = true
	sn.pending = nil
	sn.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	local := h.channels[sn.channel]
	if local[sn.sub] != sn {
		return false, false
	}
	delete(local, sn.sub)
	if len(local) == 0 {
		delete(h.channels, sn.channel)
		last = true
	}
	if m := h.bySub[sn.sub]; m != nil {
		delete(m, sn.channel)
		if len(m) == 0 {
			delete(h.bySub, sn.sub)
		}
	}
	return last, true
}

// Publish publishes data (a JSON value) to channel and returns its position.
// It is the trusted path (the server's API): it does not check whether
// clients may publish in the namespace; see CheckClientPublish.
func (h *Hub) Publish(ctx context.Context, channel string, data []byte) (Position, error) {
	o, err := h.Options(channel)
	if err != nil {
		return Position{}, err
	}
	m, err := h.broker.Publish(ctx, channel, data, HistoryOptions{Size: o.HistorySize, TTL: o.HistoryTTL})
	if err != nil {
		return Position{}, err
	}
	return m.Position(), nil
}

// CheckClientPublish reports whether a client may publish to channel.
func (h *Hub) CheckClientPublish(channel string) error {
	o, err := h.Options(channel)
	if err != nil {
		return err
	}
	if !o.ClientPublish {
		return fmt.Errorf("%w: clients may not publish in namespace %q", ErrPermissionDenied, Namespace(channel))
	}
	return nil
}

// History returns the channel's history as req asks.
func (h *Hub) History(ctx context.Context, channel string, req HistoryRequest) (HistoryResult, error) {
	o, err := h.Options(channel)
	if err != nil {
		return HistoryResult{}, err
	}
	if o.HistorySize == 0 {
		return HistoryResult{}, fmt.Errorf("%w (channel %q)", ErrHistoryDisabled, channel)
	}
	return h.broker.History(ctx, channel, req)
}

// Presence returns who is subscribed to channel, sorted by client id.
func (h *Hub) Presence(ctx context.Context, channel string) ([]ClientInfo, error) {
	o, err := h.Options(channel)
	if err != nil {
		return nil, err
	}
	if !o.Presence {
		return nil, fmt.Errorf("%w (channel %q)", ErrPresenceDisabled, channel)
	}
	return h.broker.Presence(ctx, channel)
}

// Channels lists the channels the broker holds state for, with this
// node's subscriber counts, sorted by name.
func (h *Hub) Channels(ctx context.Context) ([]ChannelInfo, error) {
	list, err := h.broker.Channels(ctx)
	if err != nil {
		return nil, err
	}
	h.mu.RLock()
	for i := range list {
		list[i].Subscribers = len(h.channels[list[i].Channel])
	}
	h.mu.RUnlock()
	return list, nil
}

// Close refuses new subscriptions and closes the broker if the Hub made it.
// Existing subscribers should be disconnected by their transport first.
func (h *Hub) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	if h.ownBroker {
		return h.broker.Close()
	}
	return nil
}

// hubHandler receives the broker's deliveries for a Hub.
type hubHandler struct{ h *Hub }

func (hh hubHandler) HandleMessage(m *Message) {
	hh.fanOut(&Event{Kind: EventMessage, Channel: m.Channel, Message: m})
}

func (hh hubHandler) HandleJoin(channel string, c ClientInfo) {
	hh.fanOut(&Event{Kind: EventJoin, Channel: channel, Client: c})
}

func (hh hubHandler) HandleLeave(channel string, c ClientInfo) {
	hh.fanOut(&Event{Kind: EventLeave, Channel: channel, Client: c})
}

// fanOut hands e to every local subscriber of its channel.
func (hh hubHandler) fanOut(e *Event) {
	h := hh.h
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, sn := range h.channels[e.Channel] {
		sn.deliver(e)
	}
}
