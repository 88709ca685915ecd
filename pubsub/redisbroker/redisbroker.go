// Package redisbroker is a pubsub.Broker on Redis, so that several duplex
// serve nodes share channels: a message published on one node reaches the
// subscribers of every node in offset order, history and recovery work
// against any node, and presence is cluster-wide. It needs a standalone
// Redis (tested with 7.0): its scripts touch keys of several channels,
// which Redis Cluster does not allow.
//
// # Layout in Redis
//
// All keys start with Options.Prefix ("duplex"); a channel's keys carry
// its name in braces (channel names never contain braces or spaces):
//
//	PREFIX:{CHANNEL}:meta      hash: epoch, offset, size, ttl (of the last publish)
//	PREFIX:{CHANNEL}:stream    stream: the history, entry ID OFFSET-0, fields d (data) and t (ms)
//	PREFIX:{CHANNEL}:presence  hash: client id → ClientInfo as JSON
//	PREFIX:{CHANNEL}:events    Pub/Sub channel: messages, joins and leaves
//	PREFIX:presence            sorted set: "CHANNEL CLIENT" scored by expiry (ms)
//	PREFIX:channels            sorted set: channel names, for Channels
//
// # Offsets and epochs
//
// Every change is a Lua script, which Redis runs atomically. A publish
// reads the channel's offset N and epoch from its meta hash, XADDs the
// message to the stream with ID N+1-0 (trimmed with MAXLEN to the
// namespace's history size; the stream is deleted when the size is 0),
// writes N+1 and the history options back, and PUBLISHes the message on
// the channel's Pub/Sub channel, all in one script: offsets are
// consecutive per channel across nodes, and Pub/Sub delivers messages in
// the order the scripts ran, which is offset order.
//
// The epoch is a random id stored in the meta hash when the channel has
// none: at its first publish, or when its position is first read (every
// subscribe reads it), so the epoch a subscriber sees before any message
// is the epoch of the first message. The meta hash and the stream expire
// after Options.IdleTTL (24 h) without a publish; a channel whose keys are
// gone (expired, deleted, or lost by a Redis restarted without
// persistence) gets a new epoch at offset 0 when next touched, so clients
// resuming from the old epoch get recovered:false.
//
// The history TTL is applied when history is read, with Redis's clock:
// entries older than the TTL of the channel's last publish are not
// returned and cannot be recovered. History applies the size and TTL of
// the channel's last publish, recorded in its meta hash, so every node
// applies the same options.
//
// # Live delivery
//
// Each node has one Pub/Sub connection. Broker.Subscribe, counted per
// channel, SUBSCRIBEs to the channel's Pub/Sub channel, waits for Redis to
// confirm it, then reads the channel's position: every message after it
// reaches the handler. The node remembers the last offset it delivered per
// channel. Pub/Sub loses what is published while a node's link is down,
// so the node fills gaps from the stream: when a message arrives whose
// offset is not the next one, it first reads the missing ones from the
// stream and delivers them; when the Pub/Sub connection comes back (Redis
// confirms the subscriptions again), it reads each channel's position and
// delivers what it missed. Messages no longer in the stream (history size
// 0, trimmed, expired) cannot be filled: subscribers see the jump in
// offsets. A message of another epoch is delivered as it comes (the Hub
// starts counting again).
//
// # Presence
//
// A present client is a field of the channel's presence hash and a member
// of PREFIX:presence scored by its expiry, Options.PresenceTTL (30 s)
// ahead. The node that added a client pushes its expiry back every third
// of the TTL. Every node, every third of the TTL, removes the clients
// whose expiry passed, so the presence of a node that died expires; the
// script that removes a client (on RemovePresence or on expiry) publishes
// the leave on the channel's Pub/Sub channel, once, and the script that
// adds a client not present publishes the join. Nodes deliver joins and
// leaves of channels they have interest in, in order with the messages.
//
// # Outages
//
// The client reconnects on its own, with no retries of failed commands (a
// retried publish could be stored twice). While Redis is down, Publish,
// History, Subscribe and presence calls fail with the client's error (the
// Hub answers them as internal errors); while it hangs (connections open,
// no answer), they fail after the client's read timeout (3 s by default),
// and Subscribe when Redis has not confirmed it within 5 s, whatever
// the caller's context. Subscribers stay connected and,
// once Redis is back, get what the stream still holds of what they missed.
// A Redis restarted without persistence comes back empty: every channel
// starts a new epoch. A Redis that comes back having lost only its last
// writes (RDB snapshots, or AOF with appendfsync everysec, after a crash)
// holds channels at older offsets of the same epochs. Every node
// remembers the highest position it saw of the channels it delivers,
// publishes to or read recently, and the scripts that read or append
// compare it with Redis's: a channel found below it gets a new epoch at
// offset 0 (one, however many nodes notice at once: the check is on the
// epoch, in the script), the node logs a warning naming both positions,
// and a publish that noticed is stored at offset 1 of the new epoch. A
// node with local subscribers notices when it catches up after the
// reconnection; its Hub tells them of the new epoch before its first
// message, and clients resuming from the old epoch get recovered:false.
// Only a publish by a node that knew nothing of the channel, before any
// node that did noticed, can reuse a lost offset (see rollback.go).
// Ready reports whether Redis answers.
package redisbroker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/redis/go-redis/v9"
)

// Options configure a Broker. The zero value is usable.
type Options struct {
	// Prefix starts every key and Pub/Sub channel name (letters, digits,
	// '-' and '_'; "duplex" when empty), so several deployments can share
	// a Redis database.
	Prefix string
	// IdleTTL is how long a channel's offset, epoch and history are kept
	// without a new publish (0: 24 h; negative: forever). It bounds the
	// state of channels nobody uses anymore.
	IdleTTL time.Duration
	// PresenceTTL is how long a client's presence outlives the node that
	// added it (0: 30 s; at least 1 s).
	PresenceTTL time.Duration
	// Log receives errors of background work (gap filling, presence
	// refresh and expiry); nil means slog.Default().
	Log *slog.Logger
}

// Broker is a pubsub.Broker on Redis (see the package doc). It is safe for
// concurrent use.
type Broker struct {
	rdb       *redis.Client
	ownClient bool
	opts      Options
	log       *slog.Logger
	idleMS    int64
	handler   pubsub.BrokerHandler

	// clockShift is added to Redis's clock when the history TTL is
	// applied (tests move time forward with it).
	clockShift atomic.Int64

	ps     *redis.PubSub
	events <-chan any

	seen seen // the highest position seen per channel (see rollback.go)

	mu      sync.Mutex
	chans   map[string]*chanState        // channels with interest (or a Subscribe in flight)
	waiters map[string][]chan struct{}   // Subscribe calls waiting for Redis's confirmation, by Pub/Sub channel
	local   map[presenceKey]localPresent // clients this node added, refreshed

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
}

// chanState is this node's interest in one channel.
type chanState struct {
	name   string
	pubsub string // its Pub/Sub channel
	refs   int    // interest plus Subscribe calls in flight; under Broker.mu

	mu       sync.Mutex // held while the subscription starts or stops
	interest int

	// Under deliver, which also serializes handler calls for the channel.
	deliver  sync.Mutex
	active   bool     // subscribed (or subscribing) on Pub/Sub
	ready    bool     // last is known: deliver (else buffer in pending)
	catching bool     // a gap is being filled by catchUp: buffer in pending
	gen      uint64   // counts starts and stops; a catchUp of an older one gives up
	pending  []string // payloads received before ready, or while catching up, oldest first
	last     uint64   // offset of the last message delivered (or of the position read)
	epoch    string   // epoch of last
}

// Dial connects to the Redis at rawURL (redis://[user:password@]host:port[/db],
// or rediss:// for TLS) and returns a Broker that closes the connection
// when closed. It fails if Redis does not answer within 5 s.
func Dial(rawURL string, opts Options) (*Broker, error) {
	shown := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		shown = u.Redacted()
	}
	ro, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: %s: %w", shown, err)
	}
	ro.MaxRetries = -1 // a retried publish could be stored twice
	ro.ContextTimeoutEnabled = true
	ro.DisableIdentity = true
	rdb := redis.NewClient(ro)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redisbroker: connect %s: %w", shown, err)
	}
	b, err := New(rdb, opts)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	b.ownClient = true
	return b, nil
}

// New returns a Broker on a client, which the caller keeps and closes
// after the Broker. The client should not retry commands (MaxRetries -1,
// as Dial's): a publish whose answer was lost would be stored twice. New
// opens the broker's Pub/Sub connection and starts its background work.
func New(rdb *redis.Client, opts Options) (*Broker, error) {
	prefix, err := pubsub.StorePrefix("redisbroker", opts.Prefix)
	if err != nil {
		return nil, err
	}
	opts.Prefix = prefix
	if opts.IdleTTL == 0 {
		opts.IdleTTL = 24 * time.Hour
	}
	if opts.PresenceTTL == 0 {
		opts.PresenceTTL = 30 * time.Second
	}
	opts.PresenceTTL = max(opts.PresenceTTL, time.Second)
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	b := &Broker{
		rdb:     rdb,
		opts:    opts,
		log:     opts.Log.With("broker", "redis"),
		idleMS:  max(opts.IdleTTL.Milliseconds(), 0),
		chans:   make(map[string]*chanState),
		waiters: make(map[string][]chan struct{}),
		local:   make(map[presenceKey]localPresent),
		done:    make(chan struct{}),
	}
	b.ps = rdb.Subscribe(context.Background())
	b.events = b.ps.ChannelWithSubscriptions(
		redis.WithChannelSize(1024),
		redis.WithChannelHealthCheckInterval(time.Second),
		redis.WithChannelPingTimeout(2*time.Second),
		redis.WithChannelReconnectTimeout(2*time.Second),
		redis.WithChannelSendTimeout(time.Hour), // a missed message would be filled anyway
	)
	b.wg.Add(2)
	go b.receiveLoop()
	go b.presenceLoop()
	return b, nil
}

// SetHandler implements pubsub.Broker.
func (b *Broker) SetHandler(h pubsub.BrokerHandler) { b.handler = h }

// Ready reports whether the broker can serve: nil when Redis answers a
// PING within a second, else why not. A readiness probe calls it.
func (b *Broker) Ready() error {
	select {
	case <-b.done:
		return errors.New("redisbroker: closed")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbroker: redis unreachable: %w", err)
	}
	return nil
}

func newEpoch() string {
	var r [8]byte
	rand.Read(r[:])
	return strconv.FormatUint(binary.LittleEndian.Uint64(r[:])>>16, 36)
}

// Key names (see the package doc).
func (b *Broker) key(channel, what string) string {
	return b.opts.Prefix + ":{" + channel + "}:" + what
}
func (b *Broker) eventsChannel(channel string) string { return b.key(channel, "events") }
func (b *Broker) channelsKey() string                 { return b.opts.Prefix + ":channels" }
func (b *Broker) presenceKey() string                 { return b.opts.Prefix + ":presence" }

// channelOf returns the channel whose Pub/Sub channel is name.
func (b *Broker) channelOf(name string) (string, bool) {
	s, ok := strings.CutPrefix(name, b.opts.Prefix+":{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(s, "}:events")
}

// Publish implements pubsub.Broker. It returns once Redis stored the
// message; the handler receives it through Pub/Sub, like every other
// node, if this node has interest.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte, opts pubsub.HistoryOptions) (*pubsub.Message, error) {
	if data == nil {
		data = []byte{}
	}
	known, _ := b.seen.get(channel)
	res, err := publishScript.Run(ctx, b.rdb,
		[]string{b.key(channel, "meta"), b.key(channel, "stream"), b.channelsKey()},
		data, opts.Size, max(opts.TTL.Milliseconds(), 0), b.idleMS, b.eventsChannel(channel), newEpoch(), channel,
		known.Epoch, known.Offset,
	).StringSlice()
	if err == nil && len(res) != 4 {
		err = fmt.Errorf("unexpected script answer %q", res)
	}
	if err != nil {
		return nil, fmt.Errorf("redisbroker: publish to %q: %w", channel, err)
	}
	off, err1 := strconv.ParseUint(res[0], 10, 64)
	ms, err2 := strconv.ParseInt(res[2], 10, 64)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("redisbroker: publish to %q: unexpected script answer %q", channel, res)
	}
	b.rolledBack(channel, res[3], known, res[1])
	b.seen.note(channel, pubsub.Position{Offset: off, Epoch: res[1]})
	return &pubsub.Message{Channel: channel, Offset: off, Epoch: res[1], Data: data, Time: time.UnixMilli(ms)}, nil
}

// state is what historyScript returns.
type state struct {
	pos     pubsub.Position
	opts    pubsub.HistoryOptions
	now     time.Time // Redis's clock
	entries []*pubsub.Message
}

// read runs historyScript: mode "position", "latest" (limit 0: all) or
// "since" (from: the first offset wanted, in epoch). delivered is the
// position of the last message the node delivered of the channel, if the
// caller knows it (zero otherwise): with what the node saw otherwise, it
// is checked against Redis's (see rollback.go).
func (b *Broker) read(ctx context.Context, channel, mode string, limit int, from uint64, epoch string, delivered pubsub.Position) (state, error) {
	known, _ := b.seen.get(channel)
	if delivered.Epoch != "" {
		known = higher(delivered, known)
	}
	res, err := historyScript.Run(ctx, b.rdb,
		[]string{b.key(channel, "meta"), b.key(channel, "stream"), b.channelsKey()},
		newEpoch(), b.idleMS, channel, mode, limit, from, epoch, known.Epoch, known.Offset,
	).StringSlice()
	if err != nil {
		return state{}, err
	}
	if len(res) < 6 || (len(res)-6)%3 != 0 {
		return state{}, fmt.Errorf("unexpected script answer of %d values", len(res))
	}
	var s state
	var errs [4]error
	s.pos.Epoch = res[0]
	s.pos.Offset, errs[0] = strconv.ParseUint(res[1], 10, 64)
	s.opts.Size, errs[1] = strconv.Atoi(res[2])
	ttl, err3 := strconv.ParseInt(res[3], 10, 64)
	now, err4 := strconv.ParseInt(res[4], 10, 64)
	errs[2], errs[3] = err3, err4
	if err := errors.Join(errs[:]...); err != nil {
		return state{}, fmt.Errorf("unexpected script answer: %w", err)
	}
	s.opts.TTL = time.Duration(ttl) * time.Millisecond
	s.now = time.UnixMilli(now).Add(time.Duration(b.clockShift.Load()))
	b.rolledBack(channel, res[5], known, s.pos.Epoch)
	b.seen.note(channel, s.pos)
	for i := 6; i < len(res); i += 3 {
		id, _, _ := strings.Cut(res[i], "-")
		off, err1 := strconv.ParseUint(id, 10, 64)
		ms, err2 := strconv.ParseInt(res[i+1], 10, 64)
		if err1 != nil || err2 != nil {
			return state{}, fmt.Errorf("stream entry %q: bad id or time %q", res[i], res[i+1])
		}
		s.entries = append(s.entries, &pubsub.Message{Channel: channel, Offset: off, Epoch: s.pos.Epoch, Data: []byte(res[i+2]), Time: time.UnixMilli(ms)})
	}
	return s, nil
}

// live drops the entries older than the history TTL; entries are oldest
// first.
func (s *state) live(entries []*pubsub.Message) []*pubsub.Message {
	if s.opts.TTL <= 0 {
		return entries
	}
	cutoff := s.now.Add(-s.opts.TTL)
	i := 0
	for i < len(entries) && entries[i].Time.Before(cutoff) {
		i++
	}
	return entries[i:]
}

// History implements pubsub.Broker. Messages older than the TTL of the
// channel's last publish are left out, as if evicted.
func (b *Broker) History(ctx context.Context, channel string, req pubsub.HistoryRequest) (pubsub.HistoryResult, error) {
	mode, from, epoch := "latest", uint64(0), ""
	switch {
	case req.Limit < 0:
		mode = "position"
	case req.Since != nil:
		mode, from, epoch = "since", req.Since.Offset+1, req.Since.Epoch
	}
	s, err := b.read(ctx, channel, mode, max(req.Limit, 0), from, epoch, pubsub.Position{})
	if err != nil {
		return pubsub.HistoryResult{}, fmt.Errorf("redisbroker: history of %q: %w", channel, err)
	}
	res := pubsub.HistoryResult{Position: s.pos}
	if req.Limit < 0 {
		return res, nil
	}
	var h []*pubsub.Message
	if s.opts.Size > 0 {
		h = s.entries
	}
	if req.Since == nil {
		slices.Reverse(h)
		res.Messages = s.live(h)
		return res, nil
	}
	since := *req.Since
	if since.Epoch != s.pos.Epoch || since.Offset > s.pos.Offset {
		return res, nil
	}
	if since.Offset == s.pos.Offset {
		res.Complete = true
		return res, nil
	}
	h = s.live(h)
	if len(h) == 0 || h[0].Offset != since.Offset+1 {
		return res, nil // the next message is gone: trimmed, expired or never kept
	}
	res.Messages = h
	res.Complete = true
	return res, nil
}

// Channels implements pubsub.Broker: every channel of this prefix whose
// offset and epoch Redis keeps, with presence, or with interest on this
// node. Channels whose keys expired are dropped from the index.
func (b *Broker) Channels(ctx context.Context) ([]pubsub.ChannelInfo, error) {
	names, err := b.rdb.ZRange(ctx, b.channelsKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: channels: %w", err)
	}
	b.mu.Lock()
	for name := range b.chans {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	b.mu.Unlock()
	pipe := b.rdb.Pipeline()
	metas := make([]*redis.SliceCmd, len(names))
	pres := make([]*redis.IntCmd, len(names))
	for i, name := range names {
		metas[i] = pipe.HMGet(ctx, b.key(name, "meta"), "epoch", "offset")
		pres[i] = pipe.HLen(ctx, b.key(name, "presence"))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisbroker: channels: %w", err)
	}
	out := make([]pubsub.ChannelInfo, 0, len(names))
	for i, name := range names {
		v := metas[i].Val()
		epoch, _ := v[0].(string)
		offStr, _ := v[1].(string)
		off, err := strconv.ParseUint(offStr, 10, 64)
		if epoch != "" && err == nil {
			out = append(out, pubsub.ChannelInfo{Channel: name, Position: pubsub.Position{Offset: off, Epoch: epoch}})
			continue
		}
		if pres[i].Val() == 0 && b.interested(name) == nil {
			err := pruneScript.Run(ctx, b.rdb, []string{b.key(name, "meta"), b.key(name, "presence"), b.channelsKey()}, name).Err()
			if err != nil {
				return nil, fmt.Errorf("redisbroker: channels: %w", err)
			}
			continue
		}
		res, err := b.History(ctx, name, pubsub.HistoryRequest{Limit: -1})
		if err != nil {
			return nil, err
		}
		out = append(out, pubsub.ChannelInfo{Channel: name, Position: res.Position})
	}
	slices.SortFunc(out, func(a, b pubsub.ChannelInfo) int { return strings.Compare(a.Channel, b.Channel) })
	return out, nil
}

// Close implements pubsub.Broker: it stops the Pub/Sub connection and the
// background work, removes the presence this node added (for at most
// 2 s), and closes the client if Dial made it.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock() // no catchUp starts after this (see startCatchUp)
		close(b.done)
		b.mu.Unlock()
		b.ps.Close()
		b.wg.Wait()
		b.removeLocalPresence()
		if b.ownClient {
			b.rdb.Close()
		}
	})
	return nil
}
