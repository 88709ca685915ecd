package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// SubscribeOptions configures a subscription. The zero value (or nil) is a
// plain subscription that starts with the next message published.
type SubscribeOptions struct {
	// Since, when set, resumes from a position the application kept (for
	// example across restarts): the server replays the messages after it,
	// if it still has them (see SubscribedEvent.Recovered).
	Since *Position

	// OnSubscribed, when set, is called each time the subscription is
	// established: first, and again after every reconnection, before any
	// message that follows it; also when restoring it after a reconnection
	// failed, with Err set (Retrying says whether the client tries again).
	// See SubscribedEvent.
	OnSubscribed func(SubscribedEvent)

	// OnPresence, when set, is told who joins and leaves the channel (when
	// its namespace has presence on).
	OnPresence func(PresenceEvent)
}

// SubscribedEvent reports that a subscription was established, or, with
// Err set, that the client could not restore it after a reconnection (with
// Retrying, it tries again; otherwise the subscription is over), or, with
// Lost set, that messages were lost while it stayed subscribed.
type SubscribedEvent struct {
	Channel string
	// Position is the channel's latest position when subscribed; with
	// Lost, the position the subscription goes on from (the last offset
	// lost); with Err, the position it would resume from (the last message
	// delivered).
	Position Position
	// Resubscribed is false the first time and true after a reconnection,
	// and with Lost.
	Resubscribed bool
	// Recovered says whether the server replays every message missed since
	// the last one delivered (or since SubscribeOptions.Since). When a
	// subscription was restored with Recovered false, messages were lost
	// (the server restarted, or they left its history): reload the state
	// the channel feeds, for example with History. The first subscription
	// without Since is never Recovered: there was nothing to recover. It is
	// false with Lost too, so an application that reloads on Recovered
	// false handles both.
	Recovered bool
	// Lost, when set, says that this event is not a subscribe answer but
	// the server's report (a lost push, docs/protocol.md) that messages of
	// the live subscription will never come: the server's node lost its
	// link to the broker for longer than the channel's history keeps, or
	// the broker lost the channel's history and started a new epoch
	// (Lost.Old set). It comes before the message that follows the gap.
	Lost *Gap
	// Err is the server's answer when it did not restore the subscription
	// after a reconnection: an *Error. Unless Retrying is set, it is a
	// refusal (103 invalid channel, 104 unknown namespace, 105 permission
	// denied, ...) and the subscription is over: its handler is not called
	// again.
	Err error
	// Retrying, with Err, says that the failure was the server's own
	// (*Error 100, Error.Retryable: typically its broker is unreachable),
	// so the subscription is not over: the client keeps it, with its
	// position, and subscribes again after RetryIn (a jittered backoff
	// between Options.MinBackoff and Options.MaxBackoff that grows with
	// each failure), on the same connection or the next one, until the
	// server accepts. Meanwhile no message arrives; the event that follows
	// the success says whether the messages missed meanwhile follow
	// (Recovered), as after any reconnection.
	Retrying bool
	// RetryIn is how long the client waits before the next attempt, with
	// Retrying.
	RetryIn time.Duration
}

// Gap names messages of a channel that were lost: offsets From to To,
// both included, of Epoch (none when From > To), and, with Old, whatever
// came after Old in the epoch before.
type Gap struct {
	From, To uint64
	Epoch    string
	// Old, when set, says that the channel's history was lost (the
	// cluster's broker restarted without its data, or forgot an idle
	// channel) and Epoch is a new one: the subscription had reached Old
	// (its last message, or its subscribe position) in the old epoch, and
	// what came after that there is gone. The new epoch's offsets start
	// at 1, so From is 1 and To is 0 when nothing of it is missing.
	// Compare it with the position the application's state was built on.
	Old *Position
}

// PresenceEvent reports a join or a leave in a channel.
type PresenceEvent struct {
	Channel string
	Join    bool // true for a join, false for a leave
	Client  ClientInfo
}

// errUnsubscribed ends a Subscribe whose subscription was removed meanwhile.
var errUnsubscribed = errors.New("duplex: unsubscribed")

// Subscription is a channel subscribed by a Client. It lasts across
// reconnections until Unsubscribe or the client stops: after each
// reconnection the client subscribes again with the position of the last
// message received, so the server replays what was missed. The handler
// sees every message once, in offset order: a message already delivered is
// never delivered again, even when a replay or a race sends it twice.
// When the channel's epoch changes (its history was lost), offsets start
// over and delivery continues in the new epoch; a server that reports it
// (SubscribedEvent.Lost with Old) does so before the new epoch's first
// message. Messages the server reports lost (SubscribedEvent.Lost) never
// come: delivery goes on after them.
type Subscription struct {
	c       *Client
	channel string
	handler func(Message)
	opts    SubscribeOptions
	gone    atomic.Bool // removed: queued messages are not delivered
	first   chan struct{}

	// Guarded by c.mu.
	pos        Position // of the last message received, or of the last answer
	havePos    bool
	sent       *conn // the connection a subscribe was sent on
	live       *conn // the connection it is subscribed on (answered)
	unsubSent  *conn // the connection an unsubscribe was sent on
	removed    bool
	subscribed bool // answered once
	firstDone  bool
	firstErr   error
	retry      *time.Timer // the next attempt to restore it, after a failure of the server
	retries    int         // consecutive failures of the server to restore it
}

// Channel returns the subscription's channel.
func (s *Subscription) Channel() string { return s.channel }

// Position returns the position of the last message received (or, before
// any, of the channel when it was subscribed): what a resumption would start
// from. An application that keeps it can pass it as SubscribeOptions.Since
// after a restart.
func (s *Subscription) Position() Position {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.pos
}

// Subscribe subscribes to channel and calls handler (on the client's
// handler goroutine, see Client) with each message published to it from
// then on. It returns once the server has answered; while the client is
// not connected, it waits for the connection within ctx. Refusals are
// *Error (103 invalid channel name, 104 unknown namespace, 105 permission
// denied); a channel subscribed already on this client gets *Error 107
// without asking the server. A failure of the server (*Error 100, its
// broker unreachable: Error.Retryable) is returned too, and the
// subscription is not made: call Subscribe again later. (Once established,
// a subscription survives such failures: see SubscribedEvent.Retrying.)
// If ctx ends first, the subscription is abandoned and ctx's error
// returned. opts may be nil.
func (c *Client) Subscribe(ctx context.Context, channel string, handler func(Message), opts *SubscribeOptions) (*Subscription, error) {
	s := &Subscription{c: c, channel: channel, handler: handler, first: make(chan struct{})}
	if opts != nil {
		s.opts = *opts
		if opts.Since != nil {
			s.pos, s.havePos = *opts.Since, true
		}
	}
	c.mu.Lock()
	if c.stopped {
		err := closedError(c.stopErr)
		c.mu.Unlock()
		return nil, err
	}
	if c.subs[channel] != nil {
		c.mu.Unlock()
		return nil, &Error{Code: CodeAlreadySubscribed, Message: fmt.Sprintf("already subscribed to %q", channel)}
	}
	c.subs[channel] = s
	cn := c.conn
	c.mu.Unlock()

	// Without a connection, the next one subscribes. With one, subscribe
	// now, unless its restoration of subscriptions took this one already.
	if cn != nil && cn.lockWrite(ctx) == nil {
		c.mu.Lock()
		var cmd *command
		if c.conn == cn && !s.removed && s.sent != cn {
			cmd = s.subscribeCommand(cn)
		}
		c.mu.Unlock()
		if cmd != nil {
			c.writeSubscribe(ctx, cn, s, cmd)
		}
		cn.unlockWrite()
	}

	c.mu.Lock()
	c.waitForConn()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.waiting--
		c.mu.Unlock()
	}()
	var err error
	select {
	case <-s.first:
		if s.firstErr != nil {
			return nil, s.firstErr
		}
		return s, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-c.stopCh:
		err = c.stopError()
	}
	uctx, cancel := context.WithTimeout(context.Background(), time.Second)
	s.unsubscribe(uctx, false)
	cancel()
	return nil, err
}

// subscribeCommand marks s as being subscribed on cn and returns the
// command, with the position to recover from if there is one. c.mu is held.
func (s *Subscription) subscribeCommand(cn *conn) *command {
	s.sent = cn
	if s.retry != nil {
		s.retry.Stop() // this is the attempt it was waiting for
		s.retry = nil
	}
	cmd := &command{Op: "subscribe", Channel: s.channel}
	if s.havePos {
		p := s.pos
		cmd.Since = &p
	}
	return cmd
}

// writeSubscribe sends a subscribe made by subscribeCommand. The caller
// holds cn's write lock.
func (c *Client) writeSubscribe(ctx context.Context, cn *conn, s *Subscription, cmd *command) error {
	since := cmd.Since != nil
	_, err := cn.send(ctx, cmd, func(a answer) { c.subscribed(cn, s, since, a) })
	if err != nil {
		c.mu.Lock()
		if s.sent == cn {
			s.sent = nil
		}
		c.mu.Unlock()
	}
	return err
}

// subscribed handles the answer to a subscribe, on cn's reading goroutine,
// before any push that follows it.
func (c *Client) subscribed(cn *conn, s *Subscription, since bool, a answer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.removed {
		if a.err == nil {
			s.live = cn // subscribed on the server; an unsubscribe that fails checks it
			if s.unsubSent != cn {
				go c.unsubscribeLeftover(cn, s.channel)
			}
		}
		return
	}
	if a.err != nil {
		if s.subscribed && retryable(a.err) {
			c.retrySubscribe(cn, s, a.err)
			return
		}
		s.remove(a.err)
		if s.subscribed {
			if f := s.opts.OnSubscribed; f != nil {
				ev := SubscribedEvent{Channel: s.channel, Position: s.pos, Resubscribed: true, Err: a.err}
				c.q.push(func() { f(ev) }, false)
			}
			c.log.Warn("duplex: subscription refused on reconnection", "channel", s.channel, "err", a.err)
		}
		return
	}
	var r struct {
		Recovered bool   `json:"recovered"`
		Offset    uint64 `json:"offset"`
		Epoch     string `json:"epoch"`
	}
	json.Unmarshal(a.result, &r)
	if !since || !r.Recovered {
		// Nothing is replayed: go on from the channel's current position.
		s.pos = Position{Offset: r.Offset, Epoch: r.Epoch}
	}
	s.havePos = true
	s.live = cn
	s.retries = 0
	if f := s.opts.OnSubscribed; f != nil {
		ev := SubscribedEvent{Channel: s.channel, Position: Position{Offset: r.Offset, Epoch: r.Epoch}, Resubscribed: s.subscribed, Recovered: r.Recovered}
		c.q.push(func() {
			if !s.gone.Load() && !c.dropping.Load() {
				f(ev)
			}
		}, false)
	}
	s.subscribed = true
	if !s.firstDone {
		s.firstDone = true
		close(s.first)
	}
}

// retryable reports whether err, the answer to a subscribe, is a failure
// of the server that a later attempt may not meet.
func retryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}

// retrySubscribe handles a failure of the server to restore s on cn: s
// stays, with its position, and is subscribed again after a backoff that
// grows with each consecutive failure, unless a new connection does it
// first. OnSubscribed is told. c.mu is held.
func (c *Client) retrySubscribe(cn *conn, s *Subscription, err error) {
	if s.sent == cn {
		s.sent = nil
	}
	s.retries++
	d := backoff(s.retries, c.opts.MinBackoff, c.opts.MaxBackoff, c.rnd)
	if s.retry != nil {
		s.retry.Stop()
	}
	s.retry = time.AfterFunc(d, func() { c.resubscribe(s) })
	c.log.Warn("duplex: subscription not restored, trying again", "channel", s.channel, "err", err, "in", d)
	if f := s.opts.OnSubscribed; f != nil {
		ev := SubscribedEvent{Channel: s.channel, Position: s.pos, Resubscribed: true, Err: err, Retrying: true, RetryIn: d}
		c.q.push(func() {
			if !s.gone.Load() && !c.dropping.Load() {
				f(ev)
			}
		}, false)
	}
}

// resubscribe is the attempt retrySubscribe scheduled: it subscribes s
// again on the current connection, unless there is none (the next one
// will) or s was subscribed there already, or removed.
func (c *Client) resubscribe(s *Subscription) {
	c.mu.Lock()
	cn := c.conn
	due := cn != nil && !s.removed && s.sent != cn
	c.mu.Unlock()
	if !due || cn.lockWrite(c.ctx) != nil {
		return // a connection that failed meanwhile: the next one subscribes
	}
	defer cn.unlockWrite()
	c.mu.Lock()
	var cmd *command
	if c.conn == cn && !s.removed && s.sent != cn {
		cmd = s.subscribeCommand(cn)
	}
	c.mu.Unlock()
	if cmd != nil {
		c.writeSubscribe(c.ctx, cn, s, cmd)
	}
}

// remove takes s out of the client with reason err for a Subscribe still
// waiting. c.mu is held.
func (s *Subscription) remove(err error) {
	if s.removed {
		return
	}
	s.removed = true
	if s.retry != nil {
		s.retry.Stop()
		s.retry = nil
	}
	s.gone.Store(true)
	if s.c.subs[s.channel] == s {
		delete(s.c.subs, s.channel)
	}
	if !s.firstDone {
		s.firstDone = true
		s.firstErr = err
		close(s.first)
	}
}

// push hands a push from cn to its subscription. It runs on cn's reading
// goroutine and fails only when the handlers are too far behind.
func (c *Client) push(cn *conn, in *incoming) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[in.Channel]
	if s == nil || s.live != cn {
		return nil // unsubscribed meanwhile
	}
	switch in.Op {
	case "message":
		if in.Epoch == s.pos.Epoch && in.Offset <= s.pos.Offset {
			return nil // delivered already
		}
		if in.Epoch == s.pos.Epoch && in.Offset != s.pos.Offset+1 {
			c.log.Warn("duplex: gap in a channel's offsets", "channel", s.channel, "after", s.pos.Offset, "got", in.Offset)
		}
		if h := s.handler; h != nil {
			m := Message{Channel: in.Channel, Offset: in.Offset, Epoch: in.Epoch, Data: in.Data}
			if !c.q.push(func() {
				if !s.gone.Load() && !c.dropping.Load() {
					h(m)
				}
			}, true) {
				return ErrHandlersBehind
			}
		}
		s.pos = Position{Offset: in.Offset, Epoch: in.Epoch}
	case "lost":
		c.lost(s, in)
	case "join", "leave":
		if f := s.opts.OnPresence; f != nil && in.Client != nil {
			ev := PresenceEvent{Channel: in.Channel, Join: in.Op == "join", Client: *in.Client}
			c.q.push(func() {
				if !s.gone.Load() && !c.dropping.Load() {
					f(ev)
				}
			}, false)
		}
	default:
		c.log.Debug("duplex: unknown push ignored", "op", in.Op)
	}
	return nil
}

// lost handles a lost push: the subscription goes on from its offset and
// epoch (a new one when the channel's history was lost), so that the next
// message is not taken for a gap or a duplicate and a resumption asks only
// for what follows, and OnSubscribed is told, as after a resubscription
// that could not recover. A report of offsets already passed is ignored.
// c.mu is held.
func (c *Client) lost(s *Subscription, in *incoming) {
	if in.Epoch == s.pos.Epoch && in.Offset <= s.pos.Offset || in.Epoch == "" {
		return
	}
	g := &Gap{From: in.From, To: in.Offset, Epoch: in.Epoch}
	if in.Old != nil && in.Old.Epoch != "" {
		old := *in.Old
		g.Old = &old
		c.log.Warn("duplex: channel history lost", "channel", s.channel, "old_epoch", old.Epoch, "after", old.Offset, "epoch", in.Epoch, "from", in.From, "to", in.Offset)
	} else {
		c.log.Warn("duplex: messages lost", "channel", s.channel, "from", in.From, "to", in.Offset, "epoch", in.Epoch)
	}
	s.pos = Position{Offset: in.Offset, Epoch: in.Epoch}
	if f := s.opts.OnSubscribed; f != nil {
		ev := SubscribedEvent{Channel: s.channel, Position: s.pos, Resubscribed: true, Lost: g}
		c.q.push(func() {
			if !s.gone.Load() && !c.dropping.Load() {
				f(ev)
			}
		}, false)
	}
}

// Unsubscribe ends the subscription: its handler is not called again once
// Unsubscribe has started, even for messages already received. The server
// is told if the client is connected; a connection that drops meanwhile
// ends the subscription anyway. It returns ctx's error if ctx ends before
// the server's answer (the subscription is over locally all the same).
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	return s.unsubscribe(ctx, true)
}

func (s *Subscription) unsubscribe(ctx context.Context, wait bool) error {
	c := s.c
	for {
		c.mu.Lock()
		if s.removed {
			c.mu.Unlock()
			return nil
		}
		cn := c.conn
		if cn == nil || s.sent != cn {
			s.remove(errUnsubscribed) // nothing on the server
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		if err := cn.lockWrite(ctx); err != nil {
			if errors.Is(err, errNotSent) {
				continue // the connection is gone: so is the subscription there
			}
			c.mu.Lock()
			s.remove(errUnsubscribed)
			if s.live == cn {
				go c.unsubscribeLeftover(cn, s.channel)
			}
			c.mu.Unlock()
			return err
		}
		c.mu.Lock()
		if s.removed || c.conn != cn || s.sent != cn {
			s.remove(errUnsubscribed)
			c.mu.Unlock()
			cn.unlockWrite()
			return nil
		}
		s.remove(errUnsubscribed)
		s.unsubSent = cn
		c.mu.Unlock()
		cmd := &command{Op: "unsubscribe", Channel: s.channel}
		p, err := cn.send(ctx, cmd, nil)
		cn.unlockWrite()
		if err != nil {
			c.mu.Lock()
			s.unsubSent = nil // the subscribe's answer, if still to come, cleans up
			if s.live == cn {
				go c.unsubscribeLeftover(cn, s.channel)
			}
			c.mu.Unlock()
			if errors.Is(err, errNotSent) {
				return nil
			}
			return err
		}
		if !wait {
			return nil
		}
		_, err = cn.wait(ctx, cmd.ID, p)
		var e *Error
		if errors.As(err, &e) && e.Code == CodeNotSubscribed || errors.Is(err, ErrDisconnected) {
			return nil
		}
		return err
	}
}

// unsubscribeLeftover tells the server to drop a subscription on cn that
// the application abandoned before it was answered, unless a newer
// subscription to the channel uses it already.
func (c *Client) unsubscribeLeftover(cn *conn, channel string) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.DialTimeout)
	defer cancel()
	if cn.lockWrite(ctx) != nil {
		return
	}
	defer cn.unlockWrite()
	c.mu.Lock()
	taken := c.subs[channel] != nil && c.subs[channel].sent == cn
	c.mu.Unlock()
	if !taken {
		cn.send(ctx, &command{Op: "unsubscribe", Channel: channel}, nil)
	}
}
