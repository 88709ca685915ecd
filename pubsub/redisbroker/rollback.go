package redisbroker

import (
	"strconv"
	"sync"

	"github.com/duplex-ws/duplex/pubsub"
)

// A Redis persisted with RDB snapshots or appendfsync everysec comes back
// from a crash with older data: a channel keeps its epoch but its offset
// goes back, and its next messages would get offsets that nodes and
// clients have already seen, and skip as duplicates. So every node
// remembers the highest position it saw of each channel it published to,
// delivered or read recently (seen), and passes it to the scripts that
// read or append: a script that finds the channel in that epoch at a
// lower offset gives it a new epoch at offset 0, atomically (the check is
// on the epoch, so several nodes noticing at once make one new epoch),
// and reports the offset it found. A publish that notices goes to the new
// epoch, at offset 1; the Hub tells live subscribers of the new epoch
// before its first message. What no node can tell: a node that never saw
// the channel (started after the crash) publishing to it before any node
// that saw the lost offsets touched it stores its message at the first
// lost offset, in the old epoch, and nodes and clients that saw that
// offset skip the message as a duplicate; the next node that saw more
// still gives the channel a new epoch.

// seenSize bounds how many channels seen remembers: two generations of
// up to seenSize/2 each.
const seenSize = 8192

// seen remembers, per channel, the highest position this node saw in the
// channel's latest epoch it saw. Any position read from Redis is proof:
// an epoch's offsets only grow, so Redis holding a lower one in that
// epoch later means it lost writes. Forgetting a channel only loses that
// proof. It is safe for concurrent use.
type seen struct {
	mu       sync.Mutex
	cur, old map[string]pubsub.Position
}

// note records p as seen for channel, unless it is below what was seen
// in its epoch.
func (s *seen) note(channel string, p pubsub.Position) {
	if p.Epoch == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.cur[channel]; ok {
		s.cur[channel] = higher(p, q)
		return
	}
	if q, ok := s.old[channel]; ok {
		p = higher(p, q)
	}
	if s.cur == nil || len(s.cur) >= seenSize/2 {
		s.old, s.cur = s.cur, make(map[string]pubsub.Position)
	}
	s.cur[channel] = p
}

// get returns what was seen of channel.
func (s *seen) get(channel string) (pubsub.Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getLocked(channel)
}

func (s *seen) getLocked(channel string) (pubsub.Position, bool) {
	if p, ok := s.cur[channel]; ok {
		return p, true
	}
	p, ok := s.old[channel]
	return p, ok
}

// higher returns b when it is in a's epoch past a, else a: a position of
// another epoch replaces the one seen (it is newer, or, if not, only
// proves less).
func higher(a, b pubsub.Position) pubsub.Position {
	if a.Epoch == b.Epoch && b.Offset > a.Offset {
		return b
	}
	return a
}

// rolledBack handles a script's report that it found channel at an
// offset (from, as text) below the one this node saw (known) in that
// epoch and started epoch: it logs it. from "" means nothing happened.
func (b *Broker) rolledBack(channel, from string, known pubsub.Position, epoch string) {
	if from == "" {
		return
	}
	off, _ := strconv.ParseUint(from, 10, 64)
	b.log.Warn("Redis lost writes (it came back from a crash with older data): the channel starts a new epoch",
		"channel", channel,
		"redis_position", posString(pubsub.Position{Offset: off, Epoch: known.Epoch}),
		"seen_position", posString(known),
		"new_epoch", epoch)
}

// posString writes p as EPOCH:OFFSET.
func posString(p pubsub.Position) string {
	return p.Epoch + ":" + strconv.FormatUint(p.Offset, 10)
}
