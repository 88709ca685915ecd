package pubsub

import "time"

// SetMemoryClock makes b read the time from now: the contract suite
// (package pubsub_test) skews it to expire history without waiting.
func SetMemoryClock(b *MemoryBroker, now func() time.Time) { b.now = now }

// MemoryInterest reports whether b holds interest in channel.
func MemoryInterest(b *MemoryBroker, channel string) bool {
	ch := b.channel(channel, false)
	if ch == nil {
		return false
	}
	defer ch.mu.Unlock()
	return ch.interest > 0
}
