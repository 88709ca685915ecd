package redisbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/redis/go-redis/v9"
)

// Subscribe implements pubsub.Broker. The first Subscribe of a channel on
// this node subscribes to its Pub/Sub channel, waits for Redis to confirm,
// and reads the channel's position.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	b.mu.Lock()
	c := b.chans[channel]
	if c == nil {
		c = &chanState{name: channel, pubsub: b.eventsChannel(channel)}
		b.chans[channel] = c
	}
	c.refs++
	b.mu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.interest == 0 {
		if err := b.start(ctx, c); err != nil {
			b.release(c)
			return fmt.Errorf("redisbroker: subscribe to %q: %w", channel, err)
		}
	}
	c.interest++
	return nil
}

// subscribeTimeout bounds how long Subscribe waits for Redis to confirm a
// subscription and answer the position read that follows: a Redis that
// hangs, or a link that drops packets without resetting the connection,
// gets an error in bounded time rather than a caller blocked until it
// recovers. Tests shorten it.
var subscribeTimeout = 5 * time.Second

// start subscribes to c's Pub/Sub channel and reads its position, within
// subscribeTimeout. c.mu is held.
func (b *Broker) start(ctx context.Context, c *chanState) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	defer cancel()
	c.deliver.Lock()
	c.active, c.ready, c.catching, c.pending = true, false, false, nil
	c.gen++
	delivered := pubsub.Position{Offset: c.last, Epoch: c.epoch}
	c.deliver.Unlock()
	confirmed := make(chan struct{}, 1)
	b.mu.Lock()
	b.waiters[c.pubsub] = append(b.waiters[c.pubsub], confirmed)
	b.mu.Unlock()
	err := b.ps.Subscribe(ctx, c.pubsub)
	if err == nil {
		select {
		case <-confirmed:
		case <-ctx.Done():
			err = ctx.Err()
			if parent.Err() == nil {
				err = fmt.Errorf("no confirmation from Redis within %v", subscribeTimeout)
			}
		case <-b.done:
			err = fmt.Errorf("broker closed")
		}
	}
	var s state
	if err == nil {
		s, err = b.read(ctx, c.name, "position", 0, 0, "", delivered)
	}
	if err != nil {
		b.mu.Lock()
		w := b.waiters[c.pubsub]
		for i, ch := range w {
			if ch == confirmed {
				b.waiters[c.pubsub] = append(w[:i:i], w[i+1:]...)
				break
			}
		}
		if len(b.waiters[c.pubsub]) == 0 {
			delete(b.waiters, c.pubsub)
		}
		b.mu.Unlock()
		b.stop(c)
		return err
	}
	// Messages that arrived since the confirmation are at or before the
	// position, or after it and delivered now.
	c.deliver.Lock()
	c.last, c.epoch, c.ready = s.pos.Offset, s.pos.Epoch, true
	b.drainLocked(c)
	c.deliver.Unlock()
	return nil
}

// stop unsubscribes from c's Pub/Sub channel. c.mu is held.
func (b *Broker) stop(c *chanState) {
	c.deliver.Lock()
	c.active, c.ready, c.catching, c.pending = false, false, false, nil
	c.gen++
	c.deliver.Unlock()
	// Unsubscribe forgets the channel even if Redis is unreachable: it is
	// not subscribed again on reconnection.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.ps.Unsubscribe(ctx, c.pubsub); err != nil {
		b.log.Debug("unsubscribe", "channel", c.name, "err", err)
	}
}

// release drops a reference to c, forgetting it with the last one.
func (b *Broker) release(c *chanState) {
	b.mu.Lock()
	c.refs--
	if c.refs == 0 && b.chans[c.name] == c {
		delete(b.chans, c.name)
	}
	b.mu.Unlock()
}

// Unsubscribe implements pubsub.Broker. The last Unsubscribe of a channel
// on this node unsubscribes from its Pub/Sub channel.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	c := b.interested(channel)
	if c == nil {
		return nil
	}
	c.mu.Lock()
	if c.interest == 0 {
		c.mu.Unlock()
		return nil
	}
	c.interest--
	if c.interest == 0 {
		b.stop(c)
	}
	c.mu.Unlock()
	b.release(c)
	return nil
}

// interested returns this node's channel entry, if it has one.
func (b *Broker) interested(channel string) *chanState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.chans[channel]
}

// receiveLoop handles what the Pub/Sub connection receives until it is
// closed.
func (b *Broker) receiveLoop() {
	defer b.wg.Done()
	for v := range b.events {
		switch v := v.(type) {
		case *redis.Subscription:
			if v.Kind == "subscribe" {
				b.subscribed(v.Channel)
			}
		case *redis.Message:
			channel, ok := b.channelOf(v.Channel)
			if !ok {
				continue
			}
			if c := b.interested(channel); c != nil {
				c.deliver.Lock()
				if c.active && (!c.ready || c.catching) {
					c.pending = append(c.pending, v.Payload)
				} else if c.active {
					b.receiveLocked(c, v.Payload)
				}
				c.deliver.Unlock()
			}
		}
	}
}

// subscribed handles Redis's confirmation of a subscription: it wakes
// the Subscribe calls waiting for it, or, after a reconnection, starts
// delivering what the node missed while the link was down.
func (b *Broker) subscribed(name string) {
	b.mu.Lock()
	w := b.waiters[name]
	delete(b.waiters, name)
	b.mu.Unlock()
	for _, ch := range w {
		ch <- struct{}{}
	}
	channel, ok := b.channelOf(name)
	if !ok {
		return
	}
	c := b.interested(channel)
	if c == nil {
		return
	}
	c.deliver.Lock()
	defer c.deliver.Unlock()
	// A catchUp already running reads the position after this
	// confirmation: it sees what was missed.
	if c.active && c.ready && !c.catching {
		b.startCatchUp(c)
	}
}

// Catch-up retries pause catchUpMinPause, doubling up to catchUpMaxPause.
const (
	catchUpMinPause = 50 * time.Millisecond
	catchUpMaxPause = time.Second
)

// catchUpFault, when set (by tests), runs before each catch-up attempt;
// an error fails the attempt.
var catchUpFault func(channel string) error

// startCatchUp marks c as catching up, so that what Pub/Sub delivers for
// it is buffered, and starts catchUp unless the broker is closing.
// c.deliver is held.
func (b *Broker) startCatchUp(c *chanState) {
	c.catching = true
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.done:
		return
	default:
	}
	b.wg.Add(1)
	go b.catchUp(c, c.gen)
}

// catchUp delivers from the stream what c missed up to its current
// position, then what Pub/Sub delivered meanwhile, in offset order. A
// failed attempt is retried after a growing pause until one succeeds, c
// is stopped or started again (gen changes), or the broker closes: a
// message is never held back waiting for a newer one to show the gap.
func (b *Broker) catchUp(c *chanState, gen uint64) {
	defer b.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-b.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	pause := catchUpMinPause
	for attempt := 1; ; attempt++ {
		var err error
		if catchUpFault != nil {
			err = catchUpFault(c.name)
		}
		c.deliver.Lock()
		if !c.active || c.gen != gen {
			c.deliver.Unlock()
			return
		}
		if err == nil {
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			err = b.catchUpLocked(actx, c)
			acancel()
		}
		if err == nil {
			c.catching = false
			b.drainLocked(c)
			c.deliver.Unlock()
			if attempt > 1 {
				b.log.Info("caught up after a reconnection", "channel", c.name, "attempts", attempt)
			}
			return
		}
		c.deliver.Unlock()
		b.log.Warn("catching up after a reconnection", "channel", c.name, "attempt", attempt, "retry_in", pause, "err", err)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return
		}
		pause = min(2*pause, catchUpMaxPause)
	}
}

// catchUpLocked reads c's position and delivers the messages from the
// stream up to it. c.deliver is held.
func (b *Broker) catchUpLocked(ctx context.Context, c *chanState) error {
	s, err := b.read(ctx, c.name, "position", 0, 0, "", pubsub.Position{Offset: c.last, Epoch: c.epoch})
	if err != nil {
		return err
	}
	switch {
	case s.pos.Epoch != c.epoch:
		// Redis lost the channel (restarted, keys expired): a new
		// history, from its first message.
		if err := b.fill(ctx, c, 1, s.pos.Offset, s.pos.Epoch); err != nil {
			return err
		}
		c.last, c.epoch = s.pos.Offset, s.pos.Epoch
	case s.pos.Offset > c.last:
		return b.fill(ctx, c, c.last+1, s.pos.Offset, s.pos.Epoch)
	}
	return nil
}

// drainLocked delivers the buffered payloads, oldest first, until none is
// left or one shows a gap that cannot be filled now (receiveLocked then
// keeps it and the rest buffered and starts a catch-up). c.deliver is
// held.
func (b *Broker) drainLocked(c *chanState) {
	for len(c.pending) > 0 && !c.catching {
		p := c.pending[0]
		c.pending = c.pending[1:]
		b.receiveLocked(c, p)
	}
	if len(c.pending) == 0 {
		c.pending = nil
	}
}

// receiveLocked delivers a payload of c's Pub/Sub channel: a message
// (filling any gap before it from the stream) or a presence change. If
// the gap cannot be read now, the message is buffered, first, and a
// catch-up started. c.deliver is held and c is not catching up.
func (b *Broker) receiveLocked(c *chanState, payload string) {
	kind, rest, _ := strings.Cut(payload, " ")
	switch kind {
	case "j", "l":
		var ci pubsub.ClientInfo
		if err := json.Unmarshal([]byte(rest), &ci); err != nil || b.handler == nil {
			return
		}
		if kind == "j" {
			b.handler.HandleJoin(c.name, ci)
		} else {
			b.handler.HandleLeave(c.name, ci)
		}
	case "m":
		m, err := parseMessage(c.name, rest)
		if err != nil {
			b.log.Warn("bad message on Pub/Sub", "channel", c.name, "err", err)
			return
		}
		if m.Epoch == c.epoch && m.Offset <= c.last {
			return // already delivered (by a fill)
		}
		first := c.last + 1
		if m.Epoch != c.epoch {
			first = 1
		}
		if m.Offset > first {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := b.fill(ctx, c, first, m.Offset-1, m.Epoch)
			cancel()
			if err != nil {
				b.log.Warn("filling a gap from the stream", "channel", c.name, "from", first, "to", m.Offset-1, "err", err)
				c.pending = append([]string{payload}, c.pending...)
				b.startCatchUp(c)
				return
			}
		}
		c.last, c.epoch = m.Offset, m.Epoch
		b.seen.note(c.name, m.Position())
		if b.handler != nil {
			b.handler.HandleMessage(m)
		}
	}
}

// fill delivers the messages from..to of epoch from the stream, those it
// still holds, and records the last one delivered. It fails, delivering
// nothing, if the stream cannot be read. c.deliver is held.
func (b *Broker) fill(ctx context.Context, c *chanState, from, to uint64, epoch string) error {
	if from > to {
		return nil
	}
	s, err := b.read(ctx, c.name, "since", int(min(to-from+1, 10000)), from, epoch, pubsub.Position{Offset: c.last, Epoch: c.epoch})
	if err != nil {
		return err
	}
	n := 0
	for _, m := range s.entries {
		if m.Epoch != epoch || m.Offset < from || m.Offset > to {
			continue
		}
		n++
		c.last, c.epoch = m.Offset, m.Epoch
		if b.handler != nil {
			b.handler.HandleMessage(m)
		}
	}
	if missed := int(to-from+1) - n; missed > 0 {
		b.log.Warn("messages missed while the link to Redis was down are not in history anymore", "channel", c.name, "from", from, "to", to, "missed", missed)
	}
	return nil
}

// parseMessage reads a message payload: "OFFSET EPOCH TIME DATA".
func parseMessage(channel, s string) (*pubsub.Message, error) {
	f := strings.SplitN(s, " ", 4)
	if len(f) != 4 {
		return nil, fmt.Errorf("payload %.40q: want offset, epoch, time and data", s)
	}
	off, err1 := strconv.ParseUint(f[0], 10, 64)
	ms, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || f[1] == "" {
		return nil, fmt.Errorf("payload %.40q: bad offset, epoch or time", s)
	}
	return &pubsub.Message{Channel: channel, Offset: off, Epoch: f[1], Data: []byte(f[3]), Time: time.UnixMilli(ms)}, nil
}
