package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MemoryBroker is the Broker of a single node, with no external service:
// history and presence live in this process's memory and are lost when it
// stops (which the epoch tells clients). It is the default of duplex serve.
//
// A channel's state is forgotten once it has no interest, no presence and
// no message left in history; publishing to it again starts a new epoch.
type MemoryBroker struct {
	mu       sync.Mutex
	channels map[string]*memChannel
	handler  BrokerHandler
	now      func() time.Time

	stop     chan struct{}
	stopOnce sync.Once
}

type memChannel struct {
	mu       sync.Mutex
	name     string
	epoch    string
	offset   uint64
	history  []*Message // oldest first
	opts     HistoryOptions
	presence map[string]ClientInfo
	interest int
}

// memorySweepInterval is how often a MemoryBroker drops expired history and
// forgets idle channels.
const memorySweepInterval = 30 * time.Second

// NewMemoryBroker returns a MemoryBroker with a background sweeper that
// drops expired messages; Close stops it.
func NewMemoryBroker() *MemoryBroker {
	b := &MemoryBroker{channels: make(map[string]*memChannel), now: time.Now, stop: make(chan struct{})}
	go b.sweepLoop()
	return b
}

// newEpoch returns a random, short, opaque epoch name.
func newEpoch() string {
	var r [8]byte
	rand.Read(r[:])
	return strconv.FormatUint(binary.LittleEndian.Uint64(r[:])>>16, 36)
}

// SetHandler implements Broker.
func (b *MemoryBroker) SetHandler(h BrokerHandler) { b.handler = h }

// channel returns the channel's state, creating it if create is set, with
// its lock held; nil if it does not exist and create is false.
func (b *MemoryBroker) channel(name string, create bool) *memChannel {
	b.mu.Lock()
	ch := b.channels[name]
	if ch == nil && create {
		ch = &memChannel{name: name, epoch: newEpoch()}
		b.channels[name] = ch
	}
	if ch != nil {
		ch.mu.Lock()
	}
	b.mu.Unlock()
	return ch
}

// release unlocks ch and forgets it if it holds nothing anymore.
func (b *MemoryBroker) release(ch *memChannel) {
	idle := ch.interest == 0 && len(ch.presence) == 0 && len(ch.history) == 0
	ch.mu.Unlock()
	if !idle {
		return
	}
	b.mu.Lock()
	ch.mu.Lock()
	// Check again: someone may have used it between the two locks.
	if ch.interest == 0 && len(ch.presence) == 0 && len(ch.history) == 0 && b.channels[ch.name] == ch {
		delete(b.channels, ch.name)
	}
	ch.mu.Unlock()
	b.mu.Unlock()
}

// Subscribe implements Broker.
func (b *MemoryBroker) Subscribe(ctx context.Context, channel string) error {
	ch := b.channel(channel, true)
	ch.interest++
	ch.mu.Unlock()
	return nil
}

// Unsubscribe implements Broker.
func (b *MemoryBroker) Unsubscribe(ctx context.Context, channel string) error {
	if ch := b.channel(channel, false); ch != nil {
		if ch.interest > 0 {
			ch.interest--
		}
		b.release(ch)
	}
	return nil
}

// Publish implements Broker. The handler receives the message before
// Publish returns, under the channel's lock, so deliveries are in offset
// order.
func (b *MemoryBroker) Publish(ctx context.Context, channel string, data []byte, opts HistoryOptions) (*Message, error) {
	ch := b.channel(channel, true)
	now := b.now()
	ch.offset++
	m := &Message{Channel: channel, Offset: ch.offset, Epoch: ch.epoch, Data: data, Time: now}
	ch.opts = opts
	if opts.Size > 0 {
		ch.history = append(ch.history, m)
	}
	ch.trim(now)
	if b.handler != nil {
		b.handler.HandleMessage(m)
	}
	b.release(ch)
	return m, nil
}

// trim drops messages beyond the size or older than the TTL.
func (ch *memChannel) trim(now time.Time) {
	drop := max(len(ch.history)-ch.opts.Size, 0)
	if ch.opts.TTL > 0 {
		for drop < len(ch.history) && now.Sub(ch.history[drop].Time) > ch.opts.TTL {
			drop++
		}
	}
	if drop > 0 {
		clear(ch.history[:drop])
		ch.history = ch.history[drop:]
		if cap(ch.history) > 2*ch.opts.Size+16 {
			ch.history = slices.Clone(ch.history) // let the old array go
		}
	}
}

// History implements Broker.
func (b *MemoryBroker) History(ctx context.Context, channel string, req HistoryRequest) (HistoryResult, error) {
	ch := b.channel(channel, true)
	defer b.release(ch)
	ch.trim(b.now())
	res := HistoryResult{Position: Position{Offset: ch.offset, Epoch: ch.epoch}}
	if req.Limit < 0 {
		return res, nil
	}
	h := ch.history
	if req.Since != nil {
		since := *req.Since
		if since.Epoch != ch.epoch || since.Offset > ch.offset {
			return res, nil
		}
		// Messages after since.Offset: the first kept one must be at most
		// since.Offset+1, or some were lost.
		first := ch.offset + 1 - uint64(len(h)) // offset of h[0] (or offset+1)
		if since.Offset+1 < first {
			return res, nil
		}
		h = h[since.Offset+1-first:]
		res.Complete = true
		if req.Limit > 0 && len(h) > req.Limit {
			h = h[:req.Limit]
		}
	} else if req.Limit > 0 && len(h) > req.Limit {
		h = h[len(h)-req.Limit:]
	}
	res.Messages = slices.Clone(h)
	return res, nil
}

// AddPresence implements Broker.
func (b *MemoryBroker) AddPresence(ctx context.Context, channel string, c ClientInfo) error {
	ch := b.channel(channel, true)
	if ch.presence == nil {
		ch.presence = make(map[string]ClientInfo)
	}
	ch.presence[c.Client] = c
	if b.handler != nil {
		b.handler.HandleJoin(channel, c)
	}
	b.release(ch)
	return nil
}

// RemovePresence implements Broker.
func (b *MemoryBroker) RemovePresence(ctx context.Context, channel string, c ClientInfo) error {
	ch := b.channel(channel, false)
	if ch == nil {
		return nil
	}
	if _, ok := ch.presence[c.Client]; ok {
		delete(ch.presence, c.Client)
		if b.handler != nil {
			b.handler.HandleLeave(channel, c)
		}
	}
	b.release(ch)
	return nil
}

// Presence implements Broker.
func (b *MemoryBroker) Presence(ctx context.Context, channel string) ([]ClientInfo, error) {
	ch := b.channel(channel, false)
	if ch == nil {
		return []ClientInfo{}, nil
	}
	out := make([]ClientInfo, 0, len(ch.presence))
	for _, c := range ch.presence {
		out = append(out, c)
	}
	ch.mu.Unlock()
	slices.SortFunc(out, func(a, b ClientInfo) int { return strings.Compare(a.Client, b.Client) })
	return out, nil
}

// Channels implements Broker.
func (b *MemoryBroker) Channels(ctx context.Context) ([]ChannelInfo, error) {
	b.mu.Lock()
	chans := make([]*memChannel, 0, len(b.channels))
	for _, ch := range b.channels {
		chans = append(chans, ch)
	}
	b.mu.Unlock()
	out := make([]ChannelInfo, 0, len(chans))
	for _, ch := range chans {
		ch.mu.Lock()
		out = append(out, ChannelInfo{Channel: ch.name, Position: Position{Offset: ch.offset, Epoch: ch.epoch}})
		ch.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b ChannelInfo) int { return strings.Compare(a.Channel, b.Channel) })
	return out, nil
}

// sweepLoop drops expired history and forgets idle channels.
func (b *MemoryBroker) sweepLoop() {
	t := time.NewTicker(memorySweepInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.sweep()
		}
	}
}

func (b *MemoryBroker) sweep() {
	b.mu.Lock()
	names := make([]string, 0, len(b.channels))
	for name := range b.channels {
		names = append(names, name)
	}
	b.mu.Unlock()
	for _, name := range names {
		if ch := b.channel(name, false); ch != nil {
			ch.trim(b.now())
			b.release(ch)
		}
	}
}

// Close implements Broker: it stops the sweeper.
func (b *MemoryBroker) Close() error {
	b.stopOnce.Do(func() { close(b.stop) })
	return nil
}
