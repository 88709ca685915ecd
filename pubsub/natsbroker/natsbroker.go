// Package natsbroker is a pubsub.Broker on NATS JetStream, so that several
// duplex serve nodes share channels: a message published on one node
// reaches the subscribers of every node in offset order, history and
// recovery work against any node, and presence is cluster-wide.
//
// # Layout in JetStream
//
// Each channel namespace has its own stream, named PREFIX-NS, where PREFIX
// is Options.Prefix ("duplex") and NS the namespace escaped ("_" for the
// default namespace). A channel's messages are stored on the subject
// PREFIX.ch.NS.CHANNEL. Names are escaped (see escape) so that '.', the
// subject token separator, and the other bytes channel names allow but
// stream names or KV keys do not ('/', ':', '@', '=') cannot collide:
// "chat:a.b" is stored on duplex.ch.chat.chat_3Aa_2Eb in stream duplex-chat.
//
// A namespace's history options come with every publish; the stream keeps
// MaxMsgsPerSubject = max(Size, 1) messages per channel and records Size
// and TTL in its metadata, and each message carries them in the header
// Duplex-History: History applies those of the channel's last message, so
// a node that never published in the namespace applies the right ones.
// The TTL is applied when history is read (a message older than the TTL is
// not returned and cannot be recovered), not by the stream's MaxAge,
// because the latest message of a channel carries its offset and epoch
// and must outlive the TTL. The stream's MaxAge is
// Options.IdleTTL (24 h): a channel with no publish for that long loses its
// last message and starts over with a new epoch, as the in-memory broker
// forgets an idle channel. All nodes must configure a namespace alike;
// a publish with other options updates the stream.
//
// # Offsets and epochs
//
// Each message carries its channel offset and epoch in the headers
// Duplex-Offset and Duplex-Epoch. A publish reads the channel's last message
// (offset N, stream sequence S, epoch E; cached per channel after a publish
// or delivery) and publishes offset N+1 in epoch E with
// Nats-Expected-Last-Subject-Sequence S. JetStream stores it only if S is
// still the subject's last sequence, so two nodes publishing at once cannot
// both get N+1: the loser re-reads and retries. Offsets are therefore
// consecutive per channel across nodes, and a channel's stream order is its
// offset order.
//
// A channel without messages gets, when its position is first read (every
// subscribe reads it), a marker: a message with offset 0, an empty payload
// and a new random epoch, published with expected last subject sequence 0.
// So the epoch a subscriber sees before any message is the epoch of the
// first message. When a channel's messages are all gone (purged, expired
// after IdleTTL, the stream deleted) the next reader or publisher starts a
// new epoch at offset 1: clients resuming from the old epoch get
// recovered:false.
//
// # Live delivery
//
// Broker.Subscribe, counted per channel, starts an ordered consumer on the
// channel's subject from the sequence after its last message, created
// before Subscribe returns. Messages reach the handler in stream order,
// which is offset order; the ordered consumer recreates itself from the
// last sequence it delivered after a gap or a missed heartbeat. Markers
// are not delivered, and neither is a message at or below the last offset
// delivered in its epoch. One consumer per node per channel with local
// subscribers: the count of consumers is nodes × busy channels.
//
// # Presence
//
// Presence lives in the KV bucket PREFIX-presence, a key CHANNEL.CLIENT
// (both escaped) per present client, its value the ClientInfo as JSON. The
// bucket's TTL is Options.PresenceTTL (30 s): the node that added a client
// rewrites its key every third of the TTL, so the presence of a node that
// died expires, and with limit markers the expiry reaches watchers as a
// deletion. Every node watches the whole bucket: a key that appears is a
// join, a key deleted or expired is a leave, delivered to the handler for
// channels with interest on this node; rewrites of known keys are not
// joins.
//
// # Outages
//
// The connection reconnects forever. While NATS is down, Publish, History,
// Subscribe and presence calls fail with the client's error (the Hub
// answers them as internal errors); Ready reports the link down.
//
// After each reconnection the broker resumes (retrying, 50 ms doubling to
// 1 s, until JetStream answers): it opens the presence bucket, creating it
// again if NATS lost it, restarts its watcher and rewrites this node's
// keys at once; it checks the streams of the channels with local
// subscribers and restarts their consumers after the last message they
// delivered, so every message still in the stream arrives once, in order.
// Ready reports the broker unready until all of that is done and
// JetStream answers, so a node that a load balancer sends clients to again
// serves their first calls.
//
// NATS back with older data (a crash before JetStream synced its last
// writes to disk, or a store restored from a backup) keeps its streams
// and their creation times, but channels are at older offsets of the
// same epochs: every read of a channel's last message (to publish, for a
// position, to start or resume a consumer) is compared with the highest
// position the node saw of it, and a channel found below it gets a new
// epoch, once however many nodes notice, logged with both positions; the
// channel's consumers read its stream again from the start; a publish
// goes on at offset 1 of the new epoch (see rollback.go).
//
// NATS restarted without its data (a store lost or emptied, a server
// without persistence) has none of the streams: they are created again on
// first use, the first call on a new connection finding out that a stream
// is another one than the one it knew (its creation time differs). Its
// channels start new epochs at offset 1; cached positions of the old
// stream are dropped; consumers read the new stream from its start, so the
// new epoch's messages are delivered from offset 1; a consumer that sees a
// new epoch begin past offset 1 (the client library may recreate it at the
// old stream's sequence before the broker noticed) reads the stream again
// from its start too. Clients resuming from the old epoch get
// recovered:false. Presence keys lost with the bucket are written again by
// their nodes; those whose node does not (it died meanwhile) leave after
// 4/3 of the presence TTL.
package natsbroker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers carried by every message the broker stores.
const (
	// HeaderOffset carries the message's channel offset (0 for a marker).
	HeaderOffset = "Duplex-Offset"
	// HeaderEpoch carries the epoch of the channel's history.
	HeaderEpoch = "Duplex-Epoch"
	// HeaderHistory carries the history options the message was published
	// with, as "SIZE/TTL" (TTL as time.Duration writes it): History reads
	// them from the channel's last message, so every node applies the
	// options of the latest publish whatever it has cached.
	HeaderHistory = "Duplex-History"
)

// Stream metadata keys that record a namespace's history options.
const (
	metaSize = "duplex_history_size"
	metaTTL  = "duplex_history_ttl"
)

// Options configure a Broker. The zero value is usable.
type Options struct {
	// Prefix names the streams, subjects and KV bucket (letters, digits,
	// '-' and '_'; "duplex" when empty), so several deployments can share
	// a NATS account.
	Prefix string
	// Replicas is the replication of the streams and the bucket in a NATS
	// cluster (0: 1).
	Replicas int
	// MemoryStorage keeps streams in memory instead of on disk.
	MemoryStorage bool
	// IdleTTL is how long a channel's last message is kept without a new
	// publish (0: 24 h; negative: forever). It bounds the state of
	// channels nobody uses anymore.
	IdleTTL time.Duration
	// PresenceTTL is how long a client's presence outlives the node that
	// added it (0: 30 s; at least 1 s).
	PresenceTTL time.Duration
	// Log receives errors of background work (consumers, presence
	// refresh); nil means slog.Default().
	Log *slog.Logger
}

// Broker is a pubsub.Broker on NATS JetStream (see the package doc). It is
// safe for concurrent use.
type Broker struct {
	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	opts    Options
	log     *slog.Logger
	subjPre string // PREFIX.ch.
	now     func() time.Time

	handler pubsub.BrokerHandler

	mu      sync.Mutex
	streams map[string]*nsStream  // by namespace
	chans   map[string]*chanState // channels with interest (or a Subscribe in flight)
	last    map[string]lastMsg    // latest known message per channel, a publish cache

	presence *presence

	// Readiness (see Ready): how the last resume went, how many channel
	// consumers are being restarted, and the last JetStream probe.
	resumed  atomic.Pointer[resumeState]
	restarts atomic.Int64
	probeMu  sync.Mutex
	probe    probeResult
	// resumeHook, when set (by tests), runs at the start of each resume
	// attempt.
	resumeHook atomic.Pointer[func()]

	closeOnce sync.Once
	closed    bool // under mu: no more background goroutines start
	done      chan struct{}
	ctx       context.Context // ends with done, for background work
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// nsStream is the stream of one namespace.
type nsStream struct {
	mu      sync.Mutex
	name    string
	st      jetstream.Stream
	created time.Time             // st's creation time: which stream of that name it is
	gen     uint64                // the connection (see Broker.gen) on which st was last checked
	opts    pubsub.HistoryOptions // as recorded in the stream's metadata
}

// chanState is this node's interest in one channel.
type chanState struct {
	name string
	refs int // interest plus Subscribe calls in flight; under Broker.mu

	mu       sync.Mutex // held while the consumer starts or stops
	interest int
	cc       jetstream.ConsumeContext

	// deliver serializes handler calls for the channel and guards what
	// follows: where the channel's delivery stands.
	deliver sync.Mutex
	// serial names the consumer whose messages are handled; a consumer
	// being replaced is disowned by a new serial at once.
	serial    uint64
	fromStart bool      // that consumer began at the start of its stream…
	startGen  uint64    // …on the connection of this generation
	created   time.Time // the creation time of the stream it reads
	seq       uint64    // stream sequence of the last message it handled
	// epoch and offset of the last message delivered, or the channel's
	// position when the first consumer started: a message at or below it
	// in the same epoch was delivered already.
	epoch  string
	offset uint64
	// restart is what restartLoop is asked to do (restartResume or
	// restartFromStart); restarting says that one runs.
	restart    startMode
	restarting bool
}

// startMode says where a channel's consumer starts.
type startMode int

const (
	// startFirst: after the channel's last message, read when the first
	// local subscriber arrives.
	startFirst startMode = iota
	// restartResume: after the last message handled, on the same stream
	// (from the start of the stream if it was replaced).
	restartResume
	// restartFromStart: at the start of the stream, skipping what was
	// delivered already.
	restartFromStart
)

// lastMsg is what a publish or a history read needs of a channel's
// latest message.
type lastMsg struct {
	seq     uint64
	offset  uint64
	epoch   string
	opts    pubsub.HistoryOptions // from HeaderHistory; zero for a marker
	created time.Time             // the creation time of the stream seq counts in
}

// resumeState is where the resume after a reconnection stands.
type resumeState struct {
	gen  uint64 // the connection (see Broker.gen) it is for
	done bool   // it finished
	err  error  // why its last attempt failed
}

// probeResult is the outcome of a JetStream probe (see Ready).
type probeResult struct {
	at  time.Time
	gen uint64
	err error
}

// Readiness probe timing: a probe answer is reused for probeFresh (a
// failure for probeRetry), and a probe waits at most probeTimeout.
const (
	probeFresh   = time.Second
	probeRetry   = 250 * time.Millisecond
	probeTimeout = time.Second
)

// lastCacheSize bounds the publish cache; it is cleared when full.
const lastCacheSize = 4096

// Dial connects to the NATS servers at url (comma-separated nats:// URLs)
// and returns a Broker that closes the connection when closed. The
// connection reconnects forever.
func Dial(url string, opts Options) (*Broker, error) {
	nc, err := nats.Connect(url,
		nats.Name("duplex"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.PingInterval(10*time.Second),
		// No buffering while reconnecting: a publish that failed must not
		// be sent later behind the caller's back.
		nats.ReconnectBufSize(-1),
	)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: connect %s: %w", url, err)
	}
	b, err := New(nc, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.ownConn = true
	return b, nil
}

// New returns a Broker on an established connection, which the caller
// keeps and closes after the Broker. The connection should have
// nats.ReconnectBufSize(-1), as Dial's has: otherwise a publish made while
// reconnecting is buffered, reported failed when its context ends, and
// still stored once the connection is back. It creates the presence bucket if
// needed and starts watching it.
func New(nc *nats.Conn, opts Options) (*Broker, error) {
	prefix, err := pubsub.StorePrefix("natsbroker", opts.Prefix)
	if err != nil {
		return nil, err
	}
	opts.Prefix = prefix
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
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
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: %w", err)
	}
	b := &Broker{
		nc:      nc,
		js:      js,
		opts:    opts,
		log:     opts.Log.With("broker", "nats"),
		subjPre: opts.Prefix + ".ch.",
		now:     time.Now,
		streams: make(map[string]*nsStream),
		chans:   make(map[string]*chanState),
		last:    make(map[string]lastMsg),
		done:    make(chan struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	gen := b.gen()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	// Listening before the bucket is opened, so that no reconnection
	// goes unnoticed.
	status := nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING)
	if err := b.startPresence(ctx); err != nil {
		nc.RemoveStatusListener(status)
		b.cancel()
		return nil, err
	}
	b.resumed.Store(&resumeState{gen: gen, done: true})
	b.wg.Add(1)
	go b.watchConnection(status)
	return b, nil
}

// gen counts the connection's reconnections: what was read from NATS on
// an earlier connection may belong to a store that is gone (NATS
// restarted on an empty store).
func (b *Broker) gen() uint64 { return b.nc.Stats().Reconnects }

// goBackground runs f on a goroutine that Close waits for, unless the
// broker is closed.
func (b *Broker) goBackground(f func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
	return true
}

// watchConnection logs the connection's losses and, after each
// reconnection, resumes the broker's work (see resume).
func (b *Broker) watchConnection(status chan nats.Status) {
	defer b.wg.Done()
	defer b.nc.RemoveStatusListener(status)
	for {
		select {
		case <-b.done:
			return
		case st := <-status:
			switch st {
			case nats.RECONNECTING:
				b.log.Warn("NATS connection lost, reconnecting")
			case nats.CONNECTED:
				b.log.Info("NATS connection back", "server", b.nc.ConnectedUrlRedacted())
				// The client drops status events while the channel is
				// full: a reconnection during a long resume may go
				// unannounced, so resume until one finished on the
				// current connection.
				for b.resume(); b.nc.Status() == nats.CONNECTED && !b.resumedNow(); {
					select {
					case <-b.done:
						return
					default:
					}
					b.resume()
				}
			}
		}
	}
}

// resume, after a reconnection, checks the presence bucket and the
// streams of the channels with local subscribers, creating again what
// NATS lost, restarts the presence watcher, rewrites this node's presence
// and restarts the channels' consumers (see restartConsumer). It retries
// (50 ms doubling to 1 s) until JetStream answers, the connection drops
// again (the next reconnection resumes) or the broker closes. Ready
// reports the broker unready until it finished on the current connection.
func (b *Broker) resume() {
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		gen := b.gen()
		if r := b.resumed.Load(); r.gen != gen {
			b.resumed.Store(&resumeState{gen: gen})
		}
		err := b.resumeOnce()
		if err == nil {
			b.resumed.Store(&resumeState{gen: gen, done: true})
			return
		}
		b.resumed.Store(&resumeState{gen: gen, err: err})
		b.log.Warn("resuming after the NATS reconnection", "err", err, "retry_in", delay)
		select {
		case <-b.done:
			return
		case <-time.After(delay):
		}
		if b.nc.Status() != nats.CONNECTED {
			return
		}
	}
}

func (b *Broker) resumeOnce() error {
	if h := b.resumeHook.Load(); h != nil {
		(*h)()
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if err := b.presence.resume(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	chans := make([]*chanState, 0, len(b.chans))
	for _, c := range b.chans {
		chans = append(chans, c)
	}
	b.mu.Unlock()
	checked := make(map[string]bool)
	for _, c := range chans {
		ns := pubsub.Namespace(c.name)
		if checked[ns] {
			continue
		}
		checked[ns] = true
		if _, err := b.stream(ctx, ns, nil); err != nil {
			return err
		}
	}
	for _, c := range chans {
		b.restartConsumer(c, restartResume)
	}
	return nil
}

// SetHandler implements pubsub.Broker.
func (b *Broker) SetHandler(h pubsub.BrokerHandler) { b.handler = h }

// Ready reports whether the broker can serve, else why not; a readiness
// probe calls it. It is nil only when the connection to NATS is up,
// JetStream answers (an account info request, its answer reused for 1 s,
// a failure for 250 ms, waiting at most 1 s), the resume after the last
// reconnection finished (streams checked, presence bucket reopened and
// watched) and no channel consumer is being restarted: a publish, history
// read or subscribe made once Ready is nil does not fail because the
// broker is still coming back.
func (b *Broker) Ready() error {
	select {
	case <-b.done:
		return errors.New("natsbroker: closed")
	default:
	}
	if s := b.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("natsbroker: NATS connection %s", strings.ToLower(s.String()))
	}
	gen := b.gen()
	if err := b.probeJetStream(gen); err != nil {
		return fmt.Errorf("natsbroker: JetStream not answering: %w", err)
	}
	if r := b.resumed.Load(); r.gen != gen || !r.done {
		if r.gen == gen && r.err != nil {
			return fmt.Errorf("natsbroker: resuming after the NATS reconnection: %w", r.err)
		}
		return errors.New("natsbroker: resuming after the NATS reconnection")
	}
	if n := b.restarts.Load(); n > 0 {
		return fmt.Errorf("natsbroker: restarting the consumers of %d channels after the NATS reconnection", n)
	}
	return nil
}

// resumedNow reports whether the resume finished on the current
// connection.
func (b *Broker) resumedNow() bool {
	r := b.resumed.Load()
	return r.done && r.gen == b.gen()
}

// probeJetStream asks JetStream for the account's info, unless a probe on
// connection gen answered recently.
func (b *Broker) probeJetStream(gen uint64) error {
	b.probeMu.Lock()
	defer b.probeMu.Unlock()
	p := b.probe
	fresh := probeFresh
	if p.err != nil {
		fresh = probeRetry
	}
	if p.gen == gen && !p.at.IsZero() && time.Since(p.at) < fresh {
		return p.err
	}
	ctx, cancel := context.WithTimeout(b.ctx, probeTimeout)
	defer cancel()
	_, err := b.js.AccountInfo(ctx)
	if errors.Is(err, context.DeadlineExceeded) && b.ctx.Err() == nil {
		err = fmt.Errorf("no answer within %v", probeTimeout)
	}
	b.probe = probeResult{at: time.Now(), gen: gen, err: err}
	return err
}

func newEpoch() string {
	var r [8]byte
	rand.Read(r[:])
	return strconv.FormatUint(binary.LittleEndian.Uint64(r[:])>>16, 36)
}

// subject returns the subject of channel's messages.
func (b *Broker) subject(channel string) string {
	return b.subjPre + nsToken(pubsub.Namespace(channel)) + "." + escape(channel)
}

// streamName returns the stream of namespace ns.
func (b *Broker) streamName(ns string) string { return b.opts.Prefix + "-" + nsToken(ns) }

// streamConfig returns the configuration of namespace ns's stream with
// history options o, on top of base (the current one, or nil).
func (b *Broker) streamConfig(ns string, o pubsub.HistoryOptions, base *jetstream.StreamConfig) jetstream.StreamConfig {
	var cfg jetstream.StreamConfig
	if base != nil {
		cfg = *base
	} else {
		cfg = jetstream.StreamConfig{
			Name:        b.streamName(ns),
			Subjects:    []string{b.subjPre + nsToken(ns) + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxMsgs:     -1,
			MaxBytes:    -1,
			MaxMsgSize:  -1,
			Replicas:    b.opts.Replicas,
			Storage:     jetstream.FileStorage,
			Description: "duplex channels of namespace " + strconv.Quote(ns),
		}
		if b.opts.MemoryStorage {
			cfg.Storage = jetstream.MemoryStorage
		}
		if b.opts.IdleTTL > 0 {
			cfg.MaxAge = b.opts.IdleTTL
		}
	}
	cfg.MaxMsgsPerSubject = int64(max(o.Size, 1))
	cfg.Metadata = map[string]string{metaSize: strconv.Itoa(o.Size), metaTTL: o.TTL.String()}
	return cfg
}

// optionsOf reads the history options recorded in a stream's metadata.
func optionsOf(cfg jetstream.StreamConfig) pubsub.HistoryOptions {
	var o pubsub.HistoryOptions
	o.Size, _ = strconv.Atoi(cfg.Metadata[metaSize])
	o.TTL, _ = time.ParseDuration(cfg.Metadata[metaTTL])
	return o
}

// stream returns namespace ns's stream, creating it if needed; with o, it
// makes sure the stream keeps history as o says. The first call on a new
// connection checks that the stream is still the one known (NATS may have
// restarted without its data): if it was replaced or is gone, the
// channels of ns with local subscribers read the new stream from its
// start (see streamReplaced).
func (b *Broker) stream(ctx context.Context, ns string, o *pubsub.HistoryOptions) (*nsStream, error) {
	b.mu.Lock()
	s := b.streams[ns]
	if s == nil {
		s = &nsStream{name: b.streamName(ns)}
		b.streams[ns] = s
	}
	b.mu.Unlock()
	replaced, err := b.checkStream(ctx, s, ns, o)
	if replaced {
		b.streamReplaced(ns, s.name)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// checkStream does stream's work under s.mu and reports whether the
// stream turned out to be another one than the one known.
func (b *Broker) checkStream(ctx context.Context, s *nsStream, ns string, o *pubsub.HistoryOptions) (replaced bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen := b.gen()
	if s.st != nil && s.gen != gen {
		info, err := s.st.Info(ctx)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			s.st = nil
		case err != nil:
			return false, fmt.Errorf("natsbroker: stream %s: %w", s.name, err)
		case !info.Created.Equal(s.created):
			replaced = true
			s.created, s.opts, s.gen = info.Created, optionsOf(info.Config), gen
		default:
			s.gen = gen
		}
	}
	if s.st == nil {
		want := pubsub.HistoryOptions{Size: 1}
		if o != nil {
			want = *o
		}
		st, err := b.js.CreateStream(ctx, b.streamConfig(ns, want, nil))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			st, err = b.js.Stream(ctx, s.name)
		}
		if err != nil {
			return replaced, fmt.Errorf("natsbroker: stream %s: %w", s.name, err)
		}
		info := st.CachedInfo()
		if !s.created.IsZero() && !info.Created.Equal(s.created) {
			replaced = true
		}
		s.st, s.created, s.opts, s.gen = st, info.Created, optionsOf(info.Config), gen
	}
	if o != nil && *o != s.opts {
		cfg := b.streamConfig(ns, *o, &s.st.CachedInfo().Config)
		st, err := b.js.UpdateStream(ctx, cfg)
		if err != nil {
			return replaced, fmt.Errorf("natsbroker: update stream %s: %w", s.name, err)
		}
		s.st = st
		s.opts = *o
	}
	return replaced, nil
}

// streamReplaced restarts, from the start of the new stream, the
// consumers of the channels of ns with local subscribers: their history
// is lost, the channels start new epochs, and the stream's sequences
// start over.
func (b *Broker) streamReplaced(ns, name string) {
	b.log.Warn("stream lost, created again: its channels start new epochs", "stream", name)
	b.mu.Lock()
	var chans []*chanState
	for _, c := range b.chans {
		if pubsub.Namespace(c.name) == ns {
			chans = append(chans, c)
		}
	}
	b.mu.Unlock()
	for _, c := range chans {
		b.restartConsumer(c, restartFromStart)
	}
}

// forgetStream drops the cached stream of ns after an error says it is
// gone, so the next call creates it again.
func (b *Broker) forgetStream(ns string, err error) {
	if !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrNoStreamResponse) {
		return
	}
	b.mu.Lock()
	s := b.streams[ns]
	b.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		s.st = nil
		s.mu.Unlock()
	}
}

// handle returns s's stream and its creation time.
func (s *nsStream) handle() (jetstream.Stream, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st, s.created
}

// readLast reads channel's last message from st, created at created: its
// zero value (but for created) when the channel has none.
func (b *Broker) readLast(ctx context.Context, st jetstream.Stream, created time.Time, channel string) (lastMsg, error) {
	m, err := st.GetLastMsgForSubject(ctx, b.subject(channel))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return lastMsg{created: created}, nil
	}
	if err != nil {
		return lastMsg{}, err
	}
	off, epoch, err := parseHeaders(m.Header)
	if err != nil {
		return lastMsg{}, fmt.Errorf("natsbroker: channel %q, sequence %d: %w", channel, m.Sequence, err)
	}
	return lastMsg{seq: m.Sequence, offset: off, epoch: epoch, opts: parseHistory(m.Header.Get(HeaderHistory)), created: created}, nil
}

func formatHistory(o pubsub.HistoryOptions) string {
	return strconv.Itoa(o.Size) + "/" + o.TTL.String()
}

// parseHistory reads a HeaderHistory value; a bad one is no history.
func parseHistory(v string) pubsub.HistoryOptions {
	size, ttl, ok := strings.Cut(v, "/")
	if !ok {
		return pubsub.HistoryOptions{}
	}
	var o pubsub.HistoryOptions
	var err1, err2 error
	o.Size, err1 = strconv.Atoi(size)
	o.TTL, err2 = time.ParseDuration(ttl)
	if err1 != nil || err2 != nil || o.Size < 0 || o.TTL < 0 {
		return pubsub.HistoryOptions{}
	}
	return o
}

func parseHeaders(h nats.Header) (offset uint64, epoch string, err error) {
	offset, err = strconv.ParseUint(h.Get(HeaderOffset), 10, 64)
	epoch = h.Get(HeaderEpoch)
	if err != nil || epoch == "" {
		return 0, "", fmt.Errorf("message without valid %s and %s headers", HeaderOffset, HeaderEpoch)
	}
	return offset, epoch, nil
}

// isWrongLast reports a failed expected-last-subject-sequence check.
func isWrongLast(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// maxAttempts bounds the retries of a publish that lost a race.
const maxAttempts = 100

// append stores a message of channel after last (retrying on races) and
// returns where it went. With data nil it stores a marker, only if the
// channel is empty.
func (b *Broker) append(ctx context.Context, st jetstream.Stream, created time.Time, channel string, data []byte, opts pubsub.HistoryOptions, last lastMsg, haveLast bool) (lastMsg, time.Time, error) {
	subj := b.subject(channel)
	id := newEpoch() + newEpoch()
	for attempt := 0; ; attempt++ {
		if !haveLast {
			var err error
			if last, _, err = b.readLastChecked(ctx, st, created, channel); err != nil {
				return lastMsg{}, time.Time{}, err
			}
			haveLast = true
		}
		next := lastMsg{offset: last.offset + 1, epoch: last.epoch, created: created}
		if last.seq == 0 {
			next = lastMsg{offset: 1, epoch: newEpoch(), created: created}
		}
		if data == nil {
			if last.seq != 0 {
				return last, time.Time{}, nil // not empty anymore
			}
			next.offset = 0
		}
		msg := nats.NewMsg(subj)
		msg.Data = data
		msg.Header.Set(HeaderOffset, strconv.FormatUint(next.offset, 10))
		msg.Header.Set(HeaderEpoch, next.epoch)
		if data != nil {
			msg.Header.Set(HeaderHistory, formatHistory(opts))
			next.opts = opts
		}
		now := time.Now()
		ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(last.seq), jetstream.WithMsgID(id))
		if err == nil {
			next.seq = ack.Sequence
			return next, now, nil
		}
		if !isWrongLast(err) || attempt+1 >= maxAttempts {
			return lastMsg{}, time.Time{}, err
		}
		haveLast = false
	}
}

// remember records channel's latest message in the publish cache.
func (b *Broker) remember(channel string, m lastMsg) {
	b.mu.Lock()
	if old, ok := b.last[channel]; !ok || m.seq > old.seq || m.epoch != old.epoch || !m.created.Equal(old.created) {
		if !ok && len(b.last) >= lastCacheSize {
			clear(b.last)
		}
		b.last[channel] = m
	}
	b.mu.Unlock()
}

// Publish implements pubsub.Broker. It returns once JetStream stored the
// message; the handler receives it through the channel's consumer, like
// every other node, if this node has interest.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte, opts pubsub.HistoryOptions) (*pubsub.Message, error) {
	ns := pubsub.Namespace(channel)
	s, err := b.stream(ctx, ns, &opts)
	if err != nil {
		return nil, err
	}
	st, created := s.handle()
	if data == nil {
		data = []byte{} // nil means a marker to append
	}
	b.mu.Lock()
	cached, ok := b.last[channel]
	b.mu.Unlock()
	// What was read from another stream of that name (one that NATS lost)
	// says nothing of this one.
	ok = ok && cached.created.Equal(created)
	m, t, err := b.append(ctx, st, created, channel, data, opts, cached, ok)
	if err != nil {
		b.forgetStream(ns, err)
		return nil, fmt.Errorf("natsbroker: publish to %q: %w", channel, err)
	}
	b.remember(channel, m)
	return &pubsub.Message{Channel: channel, Offset: m.offset, Epoch: m.epoch, Data: data, Time: t}, nil
}

// position returns channel's last message, storing a marker with a new
// epoch if the channel has none, so that its epoch is fixed from now on.
func (b *Broker) position(ctx context.Context, st jetstream.Stream, created time.Time, channel string) (lastMsg, error) {
	last, _, err := b.readLastChecked(ctx, st, created, channel)
	if err != nil || last.seq != 0 {
		return last, err
	}
	last, _, err = b.append(ctx, st, created, channel, nil, pubsub.HistoryOptions{}, last, true)
	return last, err
}

// History implements pubsub.Broker. Messages older than the namespace's
// TTL are left out, as if evicted.
func (b *Broker) History(ctx context.Context, channel string, req pubsub.HistoryRequest) (pubsub.HistoryResult, error) {
	ns := pubsub.Namespace(channel)
	s, err := b.stream(ctx, ns, nil)
	if err != nil {
		return pubsub.HistoryResult{}, err
	}
	st, created := s.handle()
	last, err := b.position(ctx, st, created, channel)
	if err != nil {
		b.forgetStream(ns, err)
		return pubsub.HistoryResult{}, fmt.Errorf("natsbroker: history of %q: %w", channel, err)
	}
	res := pubsub.HistoryResult{Position: pubsub.Position{Offset: last.offset, Epoch: last.epoch}}
	if req.Limit < 0 {
		return res, nil
	}
	if req.Since != nil {
		since := *req.Since
		if since.Epoch != last.epoch || since.Offset > last.offset {
			return res, nil
		}
		if since.Offset == last.offset {
			res.Complete = true
			return res, nil
		}
	}
	var h []*pubsub.Message
	if last.opts.Size > 0 && last.offset > 0 {
		h, err = b.read(ctx, st, channel, last)
		if err != nil {
			b.forgetStream(ns, err)
			return pubsub.HistoryResult{}, fmt.Errorf("natsbroker: history of %q: %w", channel, err)
		}
	}
	if req.Since != nil {
		first := last.offset + 1 - uint64(len(h)) // offset of h[0] (or offset+1)
		if req.Since.Offset+1 < first {
			return res, nil
		}
		h = h[req.Since.Offset+1-first:]
		res.Complete = true
		if req.Limit > 0 && len(h) > req.Limit {
			h = h[:req.Limit]
		}
	} else if req.Limit > 0 && len(h) > req.Limit {
		h = h[len(h)-req.Limit:]
	}
	res.Messages = h
	return res, nil
}

// read returns the messages of channel's history up to last, oldest first:
// the latest run of consecutive offsets of last's epoch that ends at last,
// at most last.opts.Size of them, none older than last.opts.TTL.
func (b *Broker) read(ctx context.Context, st jetstream.Stream, channel string, last lastMsg) ([]*pubsub.Message, error) {
	o := last.opts
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{b.subject(channel)},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: 10 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	var out []*pubsub.Message
	cutoff := time.Time{}
	if o.TTL > 0 {
		cutoff = b.now().Add(-o.TTL)
	}
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return nil, err
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return nil, err
			}
			if md.Sequence.Stream > last.seq {
				done = true
				break
			}
			if md.Sequence.Stream == last.seq {
				done = true
			}
			off, epoch, err := parseHeaders(msg.Headers())
			if err != nil || off == 0 || epoch != last.epoch || md.Timestamp.Before(cutoff) {
				continue
			}
			if len(out) > 0 && out[len(out)-1].Offset+1 != off {
				out = out[:0] // a gap: only the run that ends at last counts
			}
			out = append(out, &pubsub.Message{Channel: channel, Offset: off, Epoch: epoch, Data: msg.Data(), Time: md.Timestamp})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
		if n == 0 {
			break
		}
	}
	if len(out) > 0 && out[len(out)-1].Offset != last.offset {
		out = nil // the last message itself expired: nothing is complete
	}
	if len(out) > o.Size {
		out = out[len(out)-o.Size:]
	}
	return out, nil
}

// Subscribe implements pubsub.Broker. The first Subscribe of a channel on
// this node starts its consumer and returns once the consumer exists.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	b.mu.Lock()
	c := b.chans[channel]
	if c == nil {
		c = &chanState{name: channel}
		b.chans[channel] = c
	}
	c.refs++
	b.mu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.interest == 0 {
		if err := b.startConsumer(ctx, c, startFirst); err != nil {
			b.mu.Lock()
			c.refs--
			if c.refs == 0 && b.chans[channel] == c {
				delete(b.chans, channel)
			}
			b.mu.Unlock()
			return fmt.Errorf("natsbroker: subscribe to %q: %w", channel, err)
		}
	}
	c.interest++
	return nil
}

// startConsumer starts c's ordered consumer, where mode says, and
// returns once the consumer exists. c.mu is held and c has no running
// consumer.
func (b *Broker) startConsumer(ctx context.Context, c *chanState, mode startMode) error {
	ns := pubsub.Namespace(c.name)
	s, err := b.stream(ctx, ns, nil)
	if err != nil {
		return err
	}
	st, created := s.handle()
	gen := b.gen()
	c.deliver.Lock()
	c.serial++ // disown whatever consumer ran before
	serial := c.serial
	seq := c.seq
	if mode == restartResume && !created.Equal(c.created) {
		mode = restartFromStart // the stream was replaced: its sequences start over
	}
	c.deliver.Unlock()
	if mode == restartResume {
		if mode, err = b.resumeMode(ctx, st, created, c); err != nil {
			return err
		}
	}
	var last lastMsg
	switch mode {
	case startFirst:
		if last, _, err = b.readLastChecked(ctx, st, created, c.name); err != nil {
			b.forgetStream(ns, err)
			return err
		}
		seq = last.seq
	case restartFromStart:
		seq = 0
	}
	// A stopped consumer is not deleted on the server: it goes once
	// inactive for 30 s (an active one always has a pull pending).
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{b.subject(c.name)}, DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: 30 * time.Second}
	if seq != 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	c.deliver.Lock()
	if c.serial != serial {
		c.deliver.Unlock()
		return errors.New("natsbroker: consumer replaced while starting")
	}
	c.fromStart, c.startGen, c.created, c.seq = seq == 0, gen, created, seq
	if mode == startFirst {
		c.epoch, c.offset = last.epoch, last.offset
	}
	c.deliver.Unlock()
	// Consume creates the consumer on the server, retrying without a
	// deadline: wait for it no longer than ctx allows.
	type result struct {
		cc  jetstream.ConsumeContext
		err error
	}
	resc := make(chan result, 1)
	go func() {
		// Pulls expire after 10 s, so a missed heartbeat (a link that died
		// unnoticed) recreates the consumer within about 10 s.
		cc, err := cons.Consume(func(msg jetstream.Msg) { b.consume(c, serial, msg) },
			jetstream.PullExpiry(10*time.Second),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				b.log.Warn("channel consumer", "channel", c.name, "err", err)
			}))
		resc <- result{cc, err}
	}()
	select {
	case r := <-resc:
		if r.err != nil {
			return r.err
		}
		c.cc = r.cc
		return nil
	case <-ctx.Done():
		go func() {
			if r := <-resc; r.err == nil {
				r.cc.Stop()
			}
		}()
		return ctx.Err()
	}
}

// restartConsumer asks for c's consumer to be replaced by one that starts
// as mode says, on a goroutine that retries (50 ms doubling to 1 s) until
// it succeeds, c has no local subscriber left or the broker closes. The
// old consumer is disowned only when its replacement starts, so it
// delivers meanwhile.
func (b *Broker) restartConsumer(c *chanState, mode startMode) {
	c.deliver.Lock()
	defer c.deliver.Unlock()
	b.restartLocked(c, mode)
}

// restartLocked is restartConsumer with c.deliver held.
func (b *Broker) restartLocked(c *chanState, mode startMode) {
	c.restart = max(c.restart, mode)
	if c.restarting {
		return
	}
	b.restarts.Add(1) // before the loop can end
	if b.goBackground(func() { b.restartLoop(c) }) {
		c.restarting = true
	} else {
		b.restarts.Add(-1)
	}
}

func (b *Broker) restartLoop(c *chanState) {
	for delay := 50 * time.Millisecond; ; {
		c.mu.Lock()
		c.deliver.Lock()
		mode := c.restart
		c.restart = 0
		stop := mode == 0 || c.interest == 0
		select {
		case <-b.done:
			stop = true
		default:
		}
		if stop {
			c.restarting = false
			b.restarts.Add(-1)
			c.deliver.Unlock()
			c.mu.Unlock()
			return
		}
		c.deliver.Unlock()
		if c.cc != nil {
			c.cc.Stop()
			c.cc = nil
		}
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		err := b.startConsumer(ctx, c, mode)
		cancel()
		c.mu.Unlock()
		if err == nil {
			delay = 50 * time.Millisecond
			continue
		}
		b.log.Warn("restarting channel consumer", "channel", c.name, "err", err, "retry_in", delay)
		c.deliver.Lock()
		c.restart = max(c.restart, mode)
		c.deliver.Unlock()
		select {
		case <-b.done:
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// consume hands a message of c's consumer number serial to the handler,
// unless that consumer was replaced, the message was delivered already,
// or it is a marker.
func (b *Broker) consume(c *chanState, serial uint64, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		return
	}
	off, epoch, err := parseHeaders(msg.Headers())
	c.deliver.Lock()
	defer c.deliver.Unlock()
	if serial != c.serial {
		return
	}
	if err != nil {
		c.seq = md.Sequence.Stream
		b.log.Warn("foreign message on channel subject", "channel", c.name, "seq", md.Sequence.Stream, "err", err)
		return
	}
	// A new epoch that does not begin here (at its marker or offset 1),
	// seen by a consumer that did not read the stream from its start on
	// this connection: the stream may have been created again by another
	// node after NATS lost its data, its sequences starting over, and
	// the consumer, resumed at its old sequence, skipped the new epoch's
	// first messages. Read the stream again from its start.
	if epoch != c.epoch && c.epoch != "" && off > 1 && !(c.fromStart && c.startGen == b.gen()) {
		b.log.Info("new epoch seen past its start: reading the channel's stream again from its start", "channel", c.name, "epoch", epoch, "offset", off)
		c.serial++
		b.restartLocked(c, restartFromStart)
		return
	}
	c.seq = md.Sequence.Stream
	b.remember(c.name, lastMsg{seq: md.Sequence.Stream, offset: off, epoch: epoch, created: c.created})
	if epoch == c.epoch && off <= c.offset {
		return // delivered already, or a marker
	}
	c.epoch, c.offset = epoch, off
	if off == 0 || b.handler == nil {
		return // a marker
	}
	b.handler.HandleMessage(&pubsub.Message{Channel: c.name, Offset: off, Epoch: epoch, Data: msg.Data(), Time: md.Timestamp})
}

// Unsubscribe implements pubsub.Broker. The last Unsubscribe of a channel
// on this node stops its consumer.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	b.mu.Lock()
	c := b.chans[channel]
	b.mu.Unlock()
	if c == nil {
		return nil
	}
	c.mu.Lock()
	if c.interest == 0 {
		c.mu.Unlock()
		return nil
	}
	c.interest--
	if c.interest == 0 && c.cc != nil {
		c.cc.Stop()
		c.cc = nil
	}
	c.mu.Unlock()
	b.mu.Lock()
	c.refs--
	if c.refs == 0 && b.chans[channel] == c {
		delete(b.chans, channel)
	}
	b.mu.Unlock()
	return nil
}

// interested returns this node's channel entry, if it has one.
func (b *Broker) interested(channel string) *chanState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.chans[channel]
}

// Channels implements pubsub.Broker: every channel with a message or a
// marker in a stream of this prefix, with presence, or with interest on
// this node.
func (b *Broker) Channels(ctx context.Context) ([]pubsub.ChannelInfo, error) {
	pos := make(map[string]pubsub.Position)
	names := b.js.StreamNames(ctx, jetstream.WithStreamListSubject(b.subjPre+">"))
	var streams []string
	for name := range names.Name() {
		streams = append(streams, name)
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("natsbroker: list streams: %w", err)
	}
	for _, name := range streams {
		st, err := b.js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("natsbroker: stream %s: %w", name, err)
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(b.subjPre+">"))
		if err != nil {
			return nil, fmt.Errorf("natsbroker: stream %s: %w", name, err)
		}
		for subj := range info.State.Subjects {
			tok := subj[strings.LastIndexByte(subj, '.')+1:]
			channel, err := unescape(tok)
			if err != nil {
				continue
			}
			last, err := b.readLast(ctx, st, time.Time{}, channel)
			if err != nil {
				return nil, fmt.Errorf("natsbroker: channel %q: %w", channel, err)
			}
			if last.seq != 0 {
				pos[channel] = pubsub.Position{Offset: last.offset, Epoch: last.epoch}
			}
		}
	}
	extra := b.presence.channels()
	b.mu.Lock()
	for name := range b.chans {
		extra = append(extra, name)
	}
	b.mu.Unlock()
	for _, name := range extra {
		if _, ok := pos[name]; ok {
			continue
		}
		res, err := b.History(ctx, name, pubsub.HistoryRequest{Limit: -1})
		if err != nil {
			return nil, err
		}
		pos[name] = res.Position
	}
	out := make([]pubsub.ChannelInfo, 0, len(pos))
	for name, p := range pos {
		out = append(out, pubsub.ChannelInfo{Channel: name, Position: p})
	}
	slices.SortFunc(out, func(a, b pubsub.ChannelInfo) int { return strings.Compare(a.Channel, b.Channel) })
	return out, nil
}

// Close implements pubsub.Broker: it stops the consumers and the presence
// watcher, removes the presence this node added (for at most 2 s), and
// closes the connection if Dial made it.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.done)
		b.cancel()
		b.mu.Lock()
		chans := make([]*chanState, 0, len(b.chans))
		for _, c := range b.chans {
			chans = append(chans, c)
		}
		b.mu.Unlock()
		for _, c := range chans {
			c.mu.Lock()
			if c.cc != nil {
				c.cc.Stop()
				c.cc = nil
			}
			c.mu.Unlock()
		}
		b.presence.close()
		b.wg.Wait()
		if b.ownConn {
			b.nc.Close()
		}
	})
	return nil
}
