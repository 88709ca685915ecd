package pubsub

import (
	"fmt"
	"sync"
	"testing"
)

// published records what publishers got back, to check deliveries against.
type published struct {
	mu   sync.Mutex
	data map[string]map[Position]string // channel → position → data
}

func (p *published) add(channel string, pos Position, d []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.data == nil {
		p.data = make(map[string]map[Position]string)
	}
	if p.data[channel] == nil {
		p.data[channel] = make(map[Position]string)
	}
	if _, dup := p.data[channel][pos]; dup {
		panic(fmt.Sprintf("position %+v of %q returned twice", pos, channel))
	}
	p.data[channel][pos] = string(d)
}

// last returns the highest offset published to channel in epoch.
func (p *published) last(channel, epoch string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n uint64
	for pos := range p.data[channel] {
		if pos.Epoch == epoch && pos.Offset > n {
			n = pos.Offset
		}
	}
	return n
}

// check verifies that msgs are exactly the messages of channel in epoch
// with offsets first..last, in order, each with the data its publisher sent.
func (p *published) check(t *testing.T, who string, msgs []*Message, channel, epoch string, first, last uint64) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	want := 0
	if last >= first {
		want = int(last - first + 1)
	}
	if len(msgs) != want {
		t.Fatalf("%s: %d messages on %q, want offsets %d..%d in %s: %s", who, len(msgs), channel, first, last, epoch, offsets(msgs))
	}
	for i, m := range msgs {
		pos := Position{first + uint64(i), epoch}
		d, ok := p.data[channel][pos]
		if m.Channel != channel || m.Position() != pos || !ok || string(m.Data) != d {
			t.Fatalf("%s: message %d of %q = {%d %s %s}, want {%d %s %s}", who, i, channel, m.Offset, m.Epoch, m.Data, pos.Offset, pos.Epoch, d)
		}
	}
}

// TestConcurrentFanOut: many subscribers on several channels, several
// publishers per channel at once; every subscriber gets exactly its
// channels' messages, in offset order, once each.
func TestConcurrentFanOut(t *testing.T) {
	const (
		nChannels   = 5
		nSubs       = 60
		nPublishers = 3 // per channel
		perPub      = 150
	)
	h, _ := newTestHub(t, map[string]NamespaceOptions{"fan": {HistorySize: 10, ClientPublish: true}}, nil)
	ctx := testCtx(t)
	channel := func(c int) string { return fmt.Sprintf("fan:c%d", c) }
	member := func(s, c int) bool { return (s+c)%3 != 0 || s%7 == 0 }

	subs := make([]*recorder, nSubs)
	epochs := make([]string, nChannels)
	for s := range subs {
		subs[s] = &recorder{}
		for c := range nChannels {
			if !member(s, c) {
				continue
			}
			res, err := h.Subscribe(ctx, channel(c), subs[s], SubscribeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Position.Offset != 0 || epochs[c] != "" && res.Position.Epoch != epochs[c] {
				t.Fatalf("subscriber %d of %q: %+v", s, channel(c), res)
			}
			epochs[c] = res.Position.Epoch
		}
	}

	var pub published
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, nChannels*nPublishers)
	for c := range nChannels {
		for p := range nPublishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				var prev uint64
				for k := range perPub {
					d := fmt.Appendf(nil, `{"c":%d,"p":%d,"k":%d}`, c, p, k)
					pos, err := h.Publish(ctx, channel(c), d)
					if err != nil {
						errs <- err
						return
					}
					if pos.Offset <= prev || pos.Epoch != epochs[c] {
						errs <- fmt.Errorf("publisher %d/%d: position %+v after offset %d", c, p, pos, prev)
						return
					}
					prev = pos.Offset
					pub.add(channel(c), pos, d)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	const total = nPublishers * perPub
	for s, r := range subs {
		n := 0
		for c := range nChannels {
			msgs := r.messages(channel(c))
			if !member(s, c) {
				if len(msgs) != 0 {
					t.Fatalf("subscriber %d got %d messages of %q, which it did not subscribe to", s, len(msgs), channel(c))
				}
				continue
			}
			pub.check(t, fmt.Sprintf("subscriber %d", s), msgs, channel(c), epochs[c], 1, total)
			n += len(msgs)
		}
		if evs := r.events(); len(evs) != n {
			t.Fatalf("subscriber %d: %d events, %d of them expected messages", s, len(evs), n)
		}
	}
}

// TestRecoveringSubscribeRacesPublish runs many times a subscribe that
// recovers from an offset while messages are being published: the
// subscriber gets every message after its offset exactly once, in order,
// after the subscribe result.
func TestRecoveringSubscribeRacesPublish(t *testing.T) {
	const (
		iterations = 300
		before     = 5
		during     = 20
	)
	for it := range iterations {
		h, _ := newTestHub(t, map[string]NamespaceOptions{"h": {HistorySize: 100}}, nil)
		ctx := testCtx(t)
		var pub published
		const ch = "h:x"
		for i := range before {
			d := data(i)
			pos, err := h.Publish(ctx, ch, d)
			if err != nil {
				t.Fatal(err)
			}
			pub.add(ch, pos, d)
		}
		epoch := pub.lastEpoch(ch)
		since := uint64(it % (before + 1))

		rec, plain := &recorder{}, &recorder{}
		var recRes, plainRes SubscribeResult
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(3)
		go func() {
			defer wg.Done()
			<-start
			for i := range during {
				d := data(before + i)
				pos, err := h.Publish(ctx, ch, d)
				if err != nil {
					t.Error(err)
					return
				}
				pub.add(ch, pos, d)
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			var err error
			recRes, err = h.Subscribe(ctx, ch, rec, SubscribeOptions{Since: &Position{since, epoch}, OnResult: rec.onResult})
			if err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			var err error
			plainRes, err = h.Subscribe(ctx, ch, plain, SubscribeOptions{OnResult: plain.onResult})
			if err != nil {
				t.Error(err)
			}
		}()
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		last := uint64(before + during)
		if !recRes.Recovered || recRes.Position.Epoch != epoch || recRes.Position.Offset < before {
			t.Fatalf("iteration %d: recovering result %+v", it, recRes)
		}
		if plainRes.Recovered || plainRes.Position.Epoch != epoch {
			t.Fatalf("iteration %d: plain result %+v", it, plainRes)
		}
		for _, r := range []*recorder{rec, plain} {
			if log := r.log(); log[0].res == nil {
				t.Fatalf("iteration %d: an event came before the subscribe result", it)
			}
		}
		pub.check(t, fmt.Sprintf("iteration %d, recovering from %d", it, since), rec.messages(ch), ch, epoch, since+1, last)
		pub.check(t, fmt.Sprintf("iteration %d, plain", it), plain.messages(ch), ch, epoch, plainRes.Position.Offset+1, last)
		noLost(t, fmt.Sprintf("iteration %d, recovering", it), rec)
		noLost(t, fmt.Sprintf("iteration %d, plain", it), plain)
	}
}

// lastEpoch returns the epoch of the latest message published to channel.
func (p *published) lastEpoch(channel string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best Position
	for pos := range p.data[channel] {
		if pos.Offset >= best.Offset {
			best = pos
		}
	}
	return best.Epoch
}

// TestFirstSubscribeRacesPublish: on a channel without history, nothing
// keeps the channel between publishes until a subscriber comes, so each
// publish may start a new epoch. Subscribers that arrive while messages are
// published must each receive, in the epoch of their subscribe result,
// every message after its offset, once, in order, and nothing from an
// epoch that was lost.
func TestFirstSubscribeRacesPublish(t *testing.T) {
	const (
		iterations = 500
		during     = 20
	)
	for it := range iterations {
		h, _ := newTestHub(t, map[string]NamespaceOptions{"none": {ClientPublish: true}}, nil)
		ctx := testCtx(t)
		var pub published
		const ch = "none:x"
		subs := []*recorder{{}, {}}
		results := make([]SubscribeResult, len(subs))
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1 + len(subs))
		go func() {
			defer wg.Done()
			<-start
			for i := range during {
				d := data(i)
				pos, err := h.Publish(ctx, ch, d)
				if err != nil {
					t.Error(err)
					return
				}
				pub.add(ch, pos, d)
			}
		}()
		for i, r := range subs {
			go func() {
				defer wg.Done()
				<-start
				var err error
				results[i], err = h.Subscribe(ctx, ch, r, SubscribeOptions{})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		// Once both subscribed, the channel is kept: one more publish
		// lands in the epoch both subscribers are in.
		d := data(during)
		final, err := h.Publish(ctx, ch, d)
		if err != nil {
			t.Fatal(err)
		}
		pub.add(ch, final, d)
		for i, r := range subs {
			res := results[i]
			if res.Position.Epoch != final.Epoch {
				t.Fatalf("iteration %d: subscriber %d is in epoch %q (%+v), but the channel went on in %q", it, i, res.Position.Epoch, res, final.Epoch)
			}
			pub.check(t, fmt.Sprintf("iteration %d, subscriber %d", it, i), r.messages(ch), ch, res.Position.Epoch, res.Position.Offset+1, final.Offset)
			noLost(t, fmt.Sprintf("iteration %d, subscriber %d", it, i), r)
		}
	}
}

// TestSubscribeUnsubscribeChurn: subscribers come and go while messages
// are published; a steady subscriber still receives every message once,
// in order, and the channel keeps its epoch.
func TestSubscribeUnsubscribeChurn(t *testing.T) {
	h, _ := newTestHub(t, map[string]NamespaceOptions{"none": {Presence: true}}, nil)
	ctx := testCtx(t)
	const ch = "none:x"
	steady := &recorder{}
	res, err := h.Subscribe(ctx, ch, steady, SubscribeOptions{Client: ClientInfo{Client: "steady"}})
	if err != nil {
		t.Fatal(err)
	}
	var pub published
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				r := &recorder{}
				c := ClientInfo{Client: fmt.Sprintf("w%d-%d", w, k)}
				if _, err := h.Subscribe(ctx, ch, r, SubscribeOptions{Client: c}); err != nil {
					t.Error(err)
					return
				}
				if err := h.Unsubscribe(ctx, ch, r); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range 500 {
		d := data(i)
		pos, err := h.Publish(ctx, ch, d)
		if err != nil {
			t.Fatal(err)
		}
		pub.add(ch, pos, d)
	}
	close(stop)
	wg.Wait()
	pub.check(t, "steady", steady.messages(ch), ch, res.Position.Epoch, 1, 500)
	// Every churning client left again: presence holds only steady, and
	// each join the steady subscriber saw has its leave.
	p, err := h.Presence(ctx, ch)
	if err != nil || len(p) != 1 || p[0].Client != "steady" {
		t.Fatalf("presence after churn = %+v, %v", p, err)
	}
	joins := map[string]int{}
	for _, e := range steady.events() {
		switch e.Kind {
		case EventJoin:
			joins[e.Client.Client]++
		case EventLeave:
			joins[e.Client.Client]--
		}
	}
	for c, n := range joins {
		if c == "steady" && n != 1 || c != "steady" && n != 0 {
			t.Fatalf("client %s: joins minus leaves = %d", c, n)
		}
	}
}

// noLost fails if r received an EventLost: a broker that delivers every
// message (as the MemoryBroker does) never shows a gap, however
// subscriptions race publishes.
func noLost(t *testing.T, who string, r *recorder) {
	t.Helper()
	for _, e := range r.events() {
		if e.Kind == EventLost {
			t.Fatalf("%s: lost %d..%d@%s, but nothing was lost", who, e.Lost.From, e.Lost.To, e.Lost.Epoch)
		}
	}
}
