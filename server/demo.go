package server

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
)

// TickerNamespace is the namespace of the demo stock ticker (Config.Demo):
// the quotes of symbol S go to the channel ticker:S. It keeps one message
// per channel (the latest quote, so a page that arrives sees a price at
// once), has no presence, only the server publishes there, and a
// subscriber that falls behind gets only the latest quote of each symbol
// (conflation) rather than being disconnected.
const TickerNamespace = "ticker"

// TickerNamespaceOptions are the options Config.Demo gives the ticker
// namespace unless Config.Namespaces sets it already: the latest quote of
// each symbol, no presence, fed by the server only, open to anonymous
// connections, so the ticker page works on a server that authenticates
// clients too (the quotes are public), and conflating, so a page that
// falls behind gets the latest quote of each symbol instead of being
// disconnected.
var TickerNamespaceOptions = pubsub.NamespaceOptions{HistorySize: 1, Presence: false, ClientPublish: false, Anonymous: true, SlowConsumer: pubsub.SlowConsumerConflate}

// TickerSymbols are the symbols the demo publisher quotes; the ticker page
// shows the same list.
var TickerSymbols = []string{"ACME", "GLOBEX", "INITECH", "UMBRELLA", "WAYNE", "STARK"}

// tickerInterval is how often the demo publisher sends a batch of quotes
// (one to three symbols each time, about 20 messages per second).
const tickerInterval = 100 * time.Millisecond

// Quote is what the demo publisher sends to ticker:{Symbol}. TS is the
// publish time in milliseconds since the Unix epoch (with a fractional
// part), so a page on the same clock can show publish-to-screen latency.
type Quote struct {
	Symbol string  `json:"symbol"`
	Price  float64 `json:"price"`
	Open   float64 `json:"open"`
	Seq    int64   `json:"seq"`
	TS     float64 `json:"ts"`
}

// demo is the publisher Config.Demo runs while the server serves.
type demo struct {
	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// withTicker returns a copy of ns with the ticker namespace added when ns
// has none, so that the caller's map is left alone.
func withTicker(ns map[string]pubsub.NamespaceOptions) map[string]pubsub.NamespaceOptions {
	out := make(map[string]pubsub.NamespaceOptions, len(ns)+1)
	for k, v := range ns {
		out[k] = v
	}
	if _, ok := out[TickerNamespace]; !ok {
		out[TickerNamespace] = TickerNamespaceOptions
	}
	return out
}

// startDemo starts the demo publisher once, when Config.Demo is set and
// Shutdown has not run.
func (s *Server) startDemo() {
	if !s.cfg.Demo {
		return
	}
	d := &s.demo
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || d.stopped {
		return
	}
	d.started = true
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.done = make(chan struct{})
	go func() {
		defer close(d.done)
		runTicker(ctx, s.hub, TickerSymbols, tickerInterval)
	}()
}

// stopDemo stops the demo publisher and waits for it to return.
func (s *Server) stopDemo() {
	d := &s.demo
	d.mu.Lock()
	d.stopped = true
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// runTicker publishes random-walk quotes for symbols through hub, as a
// backend would with POST /api/publish, until ctx ends.
func runTicker(ctx context.Context, hub *pubsub.Hub, symbols []string, every time.Duration) {
	open := make([]float64, len(symbols))
	price := make([]float64, len(symbols))
	for i := range symbols {
		open[i] = float64(20 + rand.IntN(480))
		price[i] = open[i]
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var seq int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for range 1 + rand.IntN(3) {
			i := rand.IntN(len(symbols))
			// A step of up to ±0.6 %, rounded to cents, never below 1.
			p := price[i] * (1 + (rand.Float64()-0.5)*0.012)
			price[i] = math.Max(1, math.Round(p*100)/100)
			seq++
			q := Quote{Symbol: symbols[i], Price: price[i], Open: open[i], Seq: seq,
				TS: float64(time.Now().UnixMicro()) / 1000}
			data, _ := json.Marshal(q)
			if _, err := hub.Publish(ctx, TickerNamespace+":"+symbols[i], data); err != nil && ctx.Err() != nil {
				return
			}
		}
	}
}
