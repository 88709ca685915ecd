package natsbroker

import (
	"context"
	"strconv"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream syncs its files to disk every couple of minutes by default:
// a NATS server that crashes, or is restored from a backup, comes back
// with streams that lost their last messages but kept their creation
// time. A channel there keeps its epoch but its last offset goes back,
// and its next messages would get offsets that nodes and clients have
// already seen, and skip as duplicates. So whenever a node reads a
// channel's last message to publish, to answer a position or to start or
// resume a consumer (readLastChecked), it compares it with the highest
// position it saw of the channel: the publish cache (recent publishes and
// deliveries) and, for a channel with local subscribers, the last message
// delivered. Found below it in the same epoch, the channel gets a new
// epoch: a marker (offset 0, a new epoch) stored only if the channel's
// last message is still the one read (expected last subject sequence),
// so several nodes noticing at once make one new epoch. The node logs
// it; a publish goes on in the new epoch, at offset 1; a consumer
// resumed after a reconnection reads the channel's stream from its start
// (its sequences went back too), skipping what it delivered, and hands
// the new epoch's messages to the Hub, which tells live subscribers of
// the new epoch before its first message.
//
// What no node can tell: a node that never saw the channel (started
// after the crash) publishing to it before any node that saw the lost
// offsets read it stores its message at the first lost offset, in the
// old epoch, and nodes and clients that saw that offset skip the message
// as a duplicate; the next node that saw more still gives the channel a
// new epoch.

// seenPast returns a position this node saw of channel past last, in
// last's epoch, if it has one: proof that the store lost writes, since an
// epoch's offsets only grow.
func (b *Broker) seenPast(channel string, last lastMsg) (pubsub.Position, bool) {
	b.mu.Lock()
	cached, ok := b.last[channel]
	c := b.chans[channel]
	b.mu.Unlock()
	if ok && cached.epoch == last.epoch && cached.offset > last.offset {
		return pubsub.Position{Offset: cached.offset, Epoch: cached.epoch}, true
	}
	if c != nil {
		c.deliver.Lock()
		p := pubsub.Position{Offset: c.offset, Epoch: c.epoch}
		c.deliver.Unlock()
		if p.Epoch == last.epoch && p.Offset > last.offset {
			return p, true
		}
	}
	return pubsub.Position{}, false
}

// readLastChecked is readLast, but for a channel found below what this
// node saw of it: it gives the channel a new epoch and returns its
// marker, and true when this call made the new epoch.
func (b *Broker) readLastChecked(ctx context.Context, st jetstream.Stream, created time.Time, channel string) (lastMsg, bool, error) {
	for attempt := 1; ; attempt++ {
		last, err := b.readLast(ctx, st, created, channel)
		if err != nil || last.seq == 0 {
			return last, false, err
		}
		seen, ok := b.seenPast(channel, last)
		if !ok {
			return last, false, nil
		}
		marker, err := b.newEpochAfter(ctx, channel, last)
		if err == nil {
			b.log.Warn("NATS lost writes (it came back with older data): the channel starts a new epoch",
				"channel", channel,
				"nats_position", posString(pubsub.Position{Offset: last.offset, Epoch: last.epoch}),
				"seen_position", posString(seen),
				"new_epoch", marker.epoch)
			b.mu.Lock()
			b.last[channel] = marker
			b.mu.Unlock()
			return marker, true, nil
		}
		if !isWrongLast(err) || attempt >= maxAttempts {
			return lastMsg{}, false, err
		}
		// The channel changed meanwhile (another node gave it a new epoch,
		// or published): read it again.
	}
}

// newEpochAfter stores a marker of a new epoch for channel if last is
// still its last message, and returns it.
func (b *Broker) newEpochAfter(ctx context.Context, channel string, last lastMsg) (lastMsg, error) {
	msg := nats.NewMsg(b.subject(channel))
	msg.Data = []byte{}
	next := lastMsg{offset: 0, epoch: newEpoch(), created: last.created}
	msg.Header.Set(HeaderOffset, "0")
	msg.Header.Set(HeaderEpoch, next.epoch)
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(last.seq), jetstream.WithMsgID(newEpoch()+newEpoch()))
	if err != nil {
		return lastMsg{}, err
	}
	next.seq = ack.Sequence
	return next, nil
}

// resumeMode returns where c's consumer resumes after a reconnection:
// after the last message it handled, unless the channel's stream went
// back (its last message is older than that one, or the channel was
// found below what the node saw and given a new epoch): then from the
// start of the stream, skipping what was delivered. c.mu is held.
func (b *Broker) resumeMode(ctx context.Context, st jetstream.Stream, created time.Time, c *chanState) (startMode, error) {
	c.deliver.Lock()
	seq := c.seq
	c.deliver.Unlock()
	last, rolled, err := b.readLastChecked(ctx, st, created, c.name)
	if err != nil {
		b.forgetStream(pubsub.Namespace(c.name), err)
		return restartResume, err
	}
	if rolled || last.seq < seq {
		return restartFromStart, nil
	}
	return restartResume, nil
}

// posString writes p as EPOCH:OFFSET.
func posString(p pubsub.Position) string {
	return p.Epoch + ":" + strconv.FormatUint(p.Offset, 10)
}
