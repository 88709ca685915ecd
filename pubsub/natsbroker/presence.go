package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/nats-io/nats.go/jetstream"
)

// presence is the broker's side of the presence bucket: the watcher that
// turns key changes into joins and leaves, and the refresh of the keys
// this node added.
type presence struct {
	b *Broker

	mu     sync.Mutex
	kv     jetstream.KeyValue
	w      jetstream.KeyWatcher
	cancel context.CancelFunc
	serial uint64 // of the watcher w: updates of an older one are ignored

	// markers says that the bucket leaves a marker when a key expires
	// (NATS 2.11 and later), which the watcher turns into a leave. Without
	// markers, keys expire silently and expire finds them.
	markers bool

	known map[string]knownEntry  // every key in the bucket, as watched
	local map[string]*localEntry // keys this node added
}

// knownEntry is a present client as the watcher saw it.
type knownEntry struct {
	channel string
	info    pubsub.ClientInfo
	written time.Time // when the key was last written, by the server's clock
	// missing says that the key was not in the bucket when the watcher
	// started again after a reconnection (NATS lost it): it expires by
	// age, like keys of a bucket without markers, unless written again.
	missing bool
}

// localEntry is a key this node added and refreshes.
type localEntry struct {
	value []byte
	rev   uint64
}

// presenceKey returns the KV key of client c in channel.
func presenceKey(channel, client string) string { return escape(channel) + "." + escape(client) }

// startPresence opens (or creates) the presence bucket and starts watching
// it; it returns once the watcher has read the bucket's current keys.
func (b *Broker) startPresence(ctx context.Context) error {
	p := &presence{b: b, known: make(map[string]knownEntry), local: make(map[string]*localEntry)}
	if err := p.start(ctx, false); err != nil {
		if p.cancel != nil {
			p.cancel()
		}
		return err
	}
	b.presence = p
	b.wg.Add(1)
	go p.refreshLoop()
	return nil
}

// openBucket opens the presence bucket, creating it if needed (again, if
// NATS lost it), and reports whether it has limit markers and whether it
// was created.
func (b *Broker) openBucket(ctx context.Context) (kv jetstream.KeyValue, markers, created bool, err error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:         b.opts.Prefix + "-presence",
		Description:    "duplex channel presence",
		TTL:            b.opts.PresenceTTL,
		LimitMarkerTTL: b.opts.PresenceTTL,
		Replicas:       b.opts.Replicas,
	}
	if b.opts.MemoryStorage {
		cfg.Storage = jetstream.MemoryStorage
	}
	kv, err = b.js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		created = true
		kv, err = b.js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
			// A NATS server before 2.11 (Debian 12 ships 2.9): no markers.
			cfg.LimitMarkerTTL = 0
			kv, err = b.js.CreateKeyValue(ctx, cfg)
		}
		if errors.Is(err, jetstream.ErrBucketExists) {
			created = false // another node was first
			kv, err = b.js.KeyValue(ctx, cfg.Bucket)
		}
	}
	var status jetstream.KeyValueStatus
	if err == nil {
		status, err = kv.Status(ctx)
	}
	if err != nil {
		return nil, false, false, fmt.Errorf("natsbroker: presence bucket %s: %w", cfg.Bucket, err)
	}
	return kv, status.LimitMarkerTTL() > 0, created, nil
}

// start opens the bucket and starts a watcher, which replaces the running
// one, if any; it returns once the watcher has read the bucket's current
// keys. With notify (a restart after a reconnection), the keys that
// appeared meanwhile are joins and those deleted are leaves; those
// missing expire by age unless their node writes them again.
func (p *presence) start(ctx context.Context, notify bool) error {
	kv, markers, created, err := p.b.openBucket(ctx)
	if err != nil {
		return err
	}
	if created && notify {
		p.b.log.Warn("presence bucket lost, created again: nodes write their clients again", "bucket", p.b.opts.Prefix+"-presence")
	}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return fmt.Errorf("natsbroker: watch presence: %w", err)
	}
	p.mu.Lock()
	oldW, oldCancel := p.w, p.cancel
	p.serial++
	serial := p.serial
	p.kv, p.w, p.cancel, p.markers = kv, w, cancel, markers
	p.mu.Unlock()
	if oldW != nil {
		oldW.Stop()
		oldCancel()
	}
	// The current keys, up to the nil that ends them.
	seen := make(map[string]bool)
	for initial := true; initial; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("natsbroker: presence watcher closed")
			}
			if e == nil {
				initial = false
				break
			}
			seen[e.Key()] = true
			p.apply(e, notify, serial)
		case <-ctx.Done():
			w.Stop()
			return fmt.Errorf("natsbroker: watch presence: %w", ctx.Err())
		}
	}
	if notify {
		now := p.b.now()
		p.mu.Lock()
		for k, e := range p.known {
			if !seen[k] {
				e.missing = true
				e.written = now
				p.known[k] = e
			}
		}
		p.mu.Unlock()
	}
	if !p.b.goBackground(func() { p.watch(w, serial) }) {
		w.Stop()
	}
	return nil
}

// resume, after a reconnection, restarts the watcher on the bucket
// (created again if NATS lost it) and rewrites this node's keys at once.
func (p *presence) resume(ctx context.Context) error {
	if err := p.start(ctx, true); err != nil {
		return err
	}
	p.refresh()
	return nil
}

// bucket returns the presence bucket.
func (p *presence) bucket() jetstream.KeyValue {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kv
}

// watch delivers the joins and leaves of watcher number serial until it
// stops.
func (p *presence) watch(w jetstream.KeyWatcher, serial uint64) {
	for e := range w.Updates() {
		if e != nil {
			p.apply(e, true, serial)
		}
	}
}

// apply records a key change seen by watcher number serial and, if
// notify, delivers the join or leave it means to the handler when this
// node has interest in the channel.
func (p *presence) apply(e jetstream.KeyValueEntry, notify bool, serial uint64) {
	key := e.Key()
	dot := strings.IndexByte(key, '.')
	if dot < 0 {
		return
	}
	channel, err := unescape(key[:dot])
	if err != nil {
		return
	}
	p.mu.Lock()
	if serial != p.serial {
		p.mu.Unlock()
		return // a watcher replaced since
	}
	old, had := p.known[key]
	var ev knownEntry
	join := false
	if e.Operation() == jetstream.KeyValuePut {
		var c pubsub.ClientInfo
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			p.mu.Unlock()
			return
		}
		ev = knownEntry{channel: channel, info: c, written: e.Created()}
		p.known[key] = ev
		join = !had
	} else {
		if !had {
			p.mu.Unlock()
			return
		}
		delete(p.known, key)
		ev = old
	}
	p.mu.Unlock()
	leave := e.Operation() != jetstream.KeyValuePut
	if !notify || !join && !leave { // !join && !leave: a refresh
		return
	}
	p.notify(ev, join)
}

// notify delivers a join or a leave of ev to the handler when this node
// has interest in its channel.
func (p *presence) notify(ev knownEntry, join bool) {
	h := p.b.handler
	if h == nil {
		return
	}
	c := p.b.interested(ev.channel)
	if c == nil {
		return
	}
	c.deliver.Lock()
	if join {
		h.HandleJoin(ev.channel, ev.info)
	} else {
		h.HandleLeave(ev.channel, ev.info)
	}
	c.deliver.Unlock()
}

// expire, on a bucket without markers, forgets the keys not rewritten for
// longer than the TTL (the server has dropped them without a word) and
// delivers their leaves; so it does, on any bucket, with the keys missing
// after a reconnection, counting from the reconnection. A third of the TTL more is allowed for a node's
// clock that is ahead of the server's, so a leave comes between 4/3 and
// 5/3 of the TTL after its node died.
func (p *presence) expire() {
	ttl := p.b.opts.PresenceTTL
	cutoff := p.b.now().Add(-ttl - ttl/3)
	var gone []knownEntry
	p.mu.Lock()
	for k, e := range p.known {
		if (!p.markers || e.missing) && e.written.Before(cutoff) {
			delete(p.known, k)
			gone = append(gone, e)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(gone, func(a, b knownEntry) int { return strings.Compare(a.info.Client, b.info.Client) })
	for _, e := range gone {
		p.notify(e, false)
	}
}

// refreshLoop rewrites this node's keys every third of the TTL.
func (p *presence) refreshLoop() {
	defer p.b.wg.Done()
	t := time.NewTicker(p.b.opts.PresenceTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-p.b.done:
			return
		case <-t.C:
			p.refresh()
			p.expire()
		}
	}
}

// refresh rewrites this node's keys. An update checks the key's revision,
// so a key removed meanwhile is not brought back; a key that expired (NATS
// was away longer than the TTL) is written again.
func (p *presence) refresh() {
	p.mu.Lock()
	keys := make(map[string]localEntry, len(p.local))
	for k, e := range p.local {
		keys[k] = *e
	}
	p.mu.Unlock()
	for k, e := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), p.b.opts.PresenceTTL/3)
		kv := p.bucket()
		rev, err := kv.Update(ctx, k, e.value, e.rev)
		if err != nil && isWrongLast(err) {
			p.mu.Lock()
			cur := p.local[k]
			still := cur != nil && cur.rev == e.rev
			p.mu.Unlock()
			if still {
				rev, err = kv.Put(ctx, k, e.value)
			}
		}
		cancel()
		if err != nil {
			p.b.log.Warn("presence refresh", "key", k, "err", err)
			continue
		}
		p.mu.Lock()
		if cur := p.local[k]; cur != nil && cur.rev == e.rev {
			cur.rev = rev
		}
		p.mu.Unlock()
	}
}

// AddPresence implements pubsub.Broker: it writes the client's key; every
// node with interest in the channel receives the join from its watcher.
func (b *Broker) AddPresence(ctx context.Context, channel string, c pubsub.ClientInfo) error {
	p := b.presence
	value, err := json.Marshal(c)
	if err != nil {
		return err
	}
	key := presenceKey(channel, c.Client)
	// Registered before the write, so that a refresh racing with it writes
	// the same value at worst.
	p.mu.Lock()
	p.local[key] = &localEntry{value: value}
	p.mu.Unlock()
	rev, err := p.bucket().Put(ctx, key, value)
	if err != nil {
		p.mu.Lock()
		delete(p.local, key)
		p.mu.Unlock()
		return fmt.Errorf("natsbroker: presence in %q: %w", channel, err)
	}
	p.mu.Lock()
	if e := p.local[key]; e != nil && e.rev < rev {
		e.rev = rev
	}
	p.mu.Unlock()
	return nil
}

// RemovePresence implements pubsub.Broker: it deletes the client's key;
// nodes that knew the key receive the leave.
func (b *Broker) RemovePresence(ctx context.Context, channel string, c pubsub.ClientInfo) error {
	p := b.presence
	key := presenceKey(channel, c.Client)
	p.mu.Lock()
	_, mine := p.local[key]
	delete(p.local, key)
	_, known := p.known[key]
	p.mu.Unlock()
	if !mine && !known {
		return nil
	}
	if err := p.bucket().Delete(ctx, key); err != nil {
		return fmt.Errorf("natsbroker: presence in %q: %w", channel, err)
	}
	return nil
}

// Presence implements pubsub.Broker. It reads the bucket (not this node's
// view of it), so a client added on any node is listed as soon as its
// AddPresence returned.
func (b *Broker) Presence(ctx context.Context, channel string) ([]pubsub.ClientInfo, error) {
	w, err := b.presence.bucket().Watch(ctx, escape(channel)+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("natsbroker: presence of %q: %w", channel, err)
	}
	defer w.Stop()
	out := []pubsub.ClientInfo{}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("natsbroker: presence of %q: watcher closed", channel)
			}
			if e == nil {
				slices.SortFunc(out, func(a, b pubsub.ClientInfo) int { return strings.Compare(a.Client, b.Client) })
				return out, nil
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var c pubsub.ClientInfo
			if err := json.Unmarshal(e.Value(), &c); err == nil {
				out = append(out, c)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("natsbroker: presence of %q: %w", channel, ctx.Err())
		}
	}
}

// channels returns the channels with present clients, as watched.
func (p *presence) channels() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.known {
		if !slices.Contains(out, e.channel) {
			out = append(out, e.channel)
		}
	}
	return out
}

// close deletes this node's keys (for at most 2 s) and stops the watcher.
func (p *presence) close() {
	p.mu.Lock()
	keys := make([]string, 0, len(p.local))
	for k := range p.local {
		keys = append(keys, k)
	}
	clear(p.local)
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	kv := p.bucket()
	for _, k := range keys {
		if err := kv.Delete(ctx, k); err != nil {
			break
		}
	}
	cancel()
	p.mu.Lock()
	p.serial++
	w, wcancel := p.w, p.cancel
	p.mu.Unlock()
	w.Stop()
	wcancel()
}
