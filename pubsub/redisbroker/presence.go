package redisbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
)

// presenceKey names a client in a channel.
type presenceKey struct{ channel, client string }

// localPresent is a client this node added: it refreshes its expiry, and
// adds it again if it expired meanwhile (Redis was away longer than the
// presence TTL, or restarted).
type localPresent struct {
	value []byte // the ClientInfo as JSON
}

// sweepBatch is how many expired clients one sweep script removes.
const sweepBatch = 100

// AddPresence implements pubsub.Broker: it records the client; if it was
// not present, every node with interest in the channel receives the join.
func (b *Broker) AddPresence(ctx context.Context, channel string, c pubsub.ClientInfo) error {
	value, err := json.Marshal(c)
	if err != nil {
		return err
	}
	k := presenceKey{channel, c.Client}
	// Registered before the write: a refresh racing with it finds the
	// client present or adds it with the same value.
	b.mu.Lock()
	b.local[k] = localPresent{value: value}
	b.mu.Unlock()
	if err := b.addPresence(ctx, k, value); err != nil {
		b.mu.Lock()
		delete(b.local, k)
		b.mu.Unlock()
		return fmt.Errorf("redisbroker: presence in %q: %w", channel, err)
	}
	return nil
}

func (b *Broker) addPresence(ctx context.Context, k presenceKey, value []byte) error {
	return addPresenceScript.Run(ctx, b.rdb,
		[]string{b.key(k.channel, "presence"), b.presenceKey(), b.channelsKey()},
		k.client, value, b.opts.PresenceTTL.Milliseconds(), b.idleMS, b.eventsChannel(k.channel), k.channel,
	).Err()
}

// RemovePresence implements pubsub.Broker: it removes the client; if it
// was present, every node with interest in the channel receives the leave.
func (b *Broker) RemovePresence(ctx context.Context, channel string, c pubsub.ClientInfo) error {
	k := presenceKey{channel, c.Client}
	b.mu.Lock()
	delete(b.local, k)
	b.mu.Unlock()
	if err := b.removePresence(ctx, k); err != nil {
		return fmt.Errorf("redisbroker: presence in %q: %w", channel, err)
	}
	return nil
}

func (b *Broker) removePresence(ctx context.Context, k presenceKey) error {
	return removePresenceScript.Run(ctx, b.rdb,
		[]string{b.key(k.channel, "presence"), b.presenceKey()},
		k.client, b.eventsChannel(k.channel), k.channel,
	).Err()
}

// Presence implements pubsub.Broker. It reads Redis, so a client added on
// any node is listed as soon as its AddPresence returned; a client whose
// expiry passed is not listed, even before a sweep removes it.
func (b *Broker) Presence(ctx context.Context, channel string) ([]pubsub.ClientInfo, error) {
	vals, err := presenceScript.Run(ctx, b.rdb,
		[]string{b.key(channel, "presence"), b.presenceKey()}, channel,
	).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: presence of %q: %w", channel, err)
	}
	out := make([]pubsub.ClientInfo, 0, len(vals))
	for _, v := range vals {
		var c pubsub.ClientInfo
		if err := json.Unmarshal([]byte(v), &c); err == nil {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b pubsub.ClientInfo) int { return strings.Compare(a.Client, b.Client) })
	return out, nil
}

// presenceLoop refreshes this node's clients and sweeps expired ones every
// third of the presence TTL.
func (b *Broker) presenceLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.opts.PresenceTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), b.opts.PresenceTTL/3)
			b.refreshPresence(ctx)
			b.sweepPresence(ctx)
			cancel()
		}
	}
}

// refreshPresence pushes back the expiry of this node's clients, and adds
// again those that are gone but still this node's.
func (b *Broker) refreshPresence(ctx context.Context) {
	b.mu.Lock()
	keys := make([]presenceKey, 0, len(b.local))
	for k := range b.local {
		keys = append(keys, k)
	}
	b.mu.Unlock()
	for batch := range slices.Chunk(keys, 500) {
		args := []any{b.opts.PresenceTTL.Milliseconds(), b.idleMS, b.opts.Prefix}
		for _, k := range batch {
			args = append(args, k.channel, k.client)
		}
		found, err := refreshPresenceScript.Run(ctx, b.rdb, []string{b.presenceKey()}, args...).Int64Slice()
		if err == nil && len(found) != len(batch) {
			err = fmt.Errorf("unexpected script answer %v", found)
		}
		if err != nil {
			b.log.Warn("presence refresh", "err", err)
			return
		}
		for i, k := range batch {
			if found[i] == 1 {
				continue
			}
			b.mu.Lock()
			lp, still := b.local[k]
			b.mu.Unlock()
			if !still {
				continue
			}
			if err := b.addPresence(ctx, k, lp.value); err != nil {
				b.log.Warn("presence refresh", "channel", k.channel, "client", k.client, "err", err)
			}
		}
	}
}

// sweepPresence removes the clients whose expiry passed, publishing their
// leaves.
func (b *Broker) sweepPresence(ctx context.Context) {
	for {
		n, err := sweepPresenceScript.Run(ctx, b.rdb, []string{b.presenceKey()}, b.opts.Prefix, sweepBatch).Int()
		if err != nil {
			b.log.Warn("presence expiry", "err", err)
			return
		}
		if n < sweepBatch {
			return
		}
	}
}

// removeLocalPresence removes this node's clients (for at most 2 s), as
// when it shuts down.
func (b *Broker) removeLocalPresence() {
	b.mu.Lock()
	keys := make([]presenceKey, 0, len(b.local))
	for k := range b.local {
		keys = append(keys, k)
	}
	clear(b.local)
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, k := range keys {
		if err := b.removePresence(ctx, k); err != nil {
			return
		}
	}
}
