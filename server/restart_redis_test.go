package server_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/internal/redistest"
)

// sdkSubscriber is a Go SDK client subscribed to one channel, recording
// what its application sees, in order: subscribed events and messages as
// lines, connection states apart. Its dials can be held back and its
// connection cut, to make it reconnect at a chosen moment.
type sdkSubscriber struct {
	c *client.Client

	mu      sync.Mutex
	lines   []string // "subscribed OFFSET EPOCH resubscribed=… recovered=… err=…", "lost FROM..TO EPOCH" (with " after OFFSET OLDEPOCH" for a new epoch), "message OFFSET EPOCH DATA"
	states  []client.State
	changed chan struct{} // closed and replaced at each record
	hold    chan struct{} // when set, dials wait until it is closed
	conn    net.Conn      // the TCP connection of the last dial
}

// subscribe subscribes s's client to channel, recording what it sees.
func (s *sdkSubscriber) subscribe(t *testing.T, ctx context.Context, channel string) *sdkSubscriber {
	t.Helper()
	onMessage := func(m client.Message) {
		s.record(fmt.Sprintf("message %d %s %s", m.Offset, m.Epoch, m.Data))
	}
	onSubscribed := func(ev client.SubscribedEvent) {
		if g := ev.Lost; g != nil {
			line := fmt.Sprintf("lost %d..%d %s", g.From, g.To, g.Epoch)
			if g.Old != nil {
				line += fmt.Sprintf(" after %d %s", g.Old.Offset, g.Old.Epoch)
			}
			if ev.Recovered || !ev.Resubscribed || ev.Position != (client.Position{Offset: g.To, Epoch: g.Epoch}) {
				line += fmt.Sprintf(" with recovered=%t resubscribed=%t at %d %s", ev.Recovered, ev.Resubscribed, ev.Position.Offset, ev.Position.Epoch)
			}
			s.record(line)
			return
		}
		s.record(fmt.Sprintf("subscribed %d %s resubscribed=%t recovered=%t err=%v", ev.Position.Offset, ev.Position.Epoch, ev.Resubscribed, ev.Recovered, ev.Err))
	}
	if _, err := s.c.Subscribe(ctx, channel, onMessage, &client.SubscribeOptions{OnSubscribed: onSubscribed}); err != nil {
		t.Fatalf("subscribe to %s: %v", channel, err)
	}
	return s
}

// dial is the client's NetDialContext: it waits while dials are held,
// then dials and remembers the connection.
func (s *sdkSubscriber) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		s.mu.Lock()
		s.conn = c
		s.mu.Unlock()
	}
	return c, err
}

// cut holds the next dials back and closes the client's TCP connection
// without a closing handshake, as a network failure would.
func (s *sdkSubscriber) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = make(chan struct{})
	s.conn.Close()
}

// release lets the held dials through.
func (s *sdkSubscriber) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.hold)
	s.hold = nil
}

func (s *sdkSubscriber) record(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	s.signalLocked()
}

func (s *sdkSubscriber) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait waits, within d, until cond holds on the lines and states seen;
// it fails the test with what was seen otherwise.
func (s *sdkSubscriber) wait(t *testing.T, d time.Duration, what string, cond func(lines []string, states []client.State) bool) {
	t.Helper()
	timeout := time.After(d)
	for {
		s.mu.Lock()
		ok, changed := cond(s.lines, s.states), s.changed
		lines, states := slices.Clone(s.lines), slices.Clone(s.states)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("not %s within %v; states %v, seen:\n%s", what, d, states, strings.Join(lines, "\n"))
		}
	}
}

// waitLines waits until n lines were recorded.
func (s *sdkSubscriber) waitLines(t *testing.T, d time.Duration, n int) {
	t.Helper()
	s.wait(t, d, fmt.Sprintf("%d lines", n), func(lines []string, _ []client.State) bool { return len(lines) >= n })
}

// waitState waits until st was reported.
func (s *sdkSubscriber) waitState(t *testing.T, d time.Duration, st client.State) {
	t.Helper()
	s.wait(t, d, "in state "+st.String(), func(_ []string, states []client.State) bool { return slices.Contains(states, st) })
}

// check compares the lines and states seen with the expected ones.
func (s *sdkSubscriber) check(t *testing.T, name string, lines []string, states []client.State) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Equal(s.lines, lines) {
		t.Errorf("%s saw:\n%s\nwant:\n%s", name, strings.Join(s.lines, "\n"), strings.Join(lines, "\n"))
	}
	if !slices.Equal(s.states, states) {
		t.Errorf("%s went through states %v, want %v", name, s.states, states)
	}
}

// newCuttableSubscriber connects a Go SDK client to ts, its dials going
// through s.dial, and subscribes it to channel.
func newCuttableSubscriber(t *testing.T, ctx context.Context, ts *testServer, channel string) *sdkSubscriber {
	t.Helper()
	s := &sdkSubscriber{changed: make(chan struct{})}
	opts := &client.Options{
		OnState: func(st client.State, _ error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.states = append(s.states, st)
			s.signalLocked()
		},
	}
	opts.Dial.Proxy = noProxy
	opts.Dial.NetDialContext = s.dial
	s.c = client.New(ts.ws+"/ws", opts)
	t.Cleanup(func() { s.c.Close() })
	return s.subscribe(t, ctx, channel)
}

// subscribedLine and messageLine are the lines sdkSubscriber records.
func subscribedLine(offset uint64, epoch string, resubscribed, recovered bool) string {
	return fmt.Sprintf("subscribed %d %s resubscribed=%t recovered=%t err=<nil>", offset, epoch, resubscribed, recovered)
}

func messageLine(offset uint64, epoch string, n int) string {
	return fmt.Sprintf(`message %d %s {"n":%d}`, offset, epoch, n)
}

// publishN publishes {"n":k} for k in from..to through ts's API and
// checks that each got offset k-shift in epoch.
func publishN(t *testing.T, ts *testServer, channel string, from, to int, shift int, epoch string) {
	t.Helper()
	for k := from; k <= to; k++ {
		p := ts.publishAPI(t, channel, fmt.Sprintf(`{"n":%d}`, k))
		if p.Offset != uint64(k-shift) || p.Epoch != epoch {
			t.Fatalf("publish of %d at %+v, want offset %d in epoch %s", k, p, k-shift, epoch)
		}
	}
}

// Redis crashes (SIGKILL) and restarts with its append-only file
// (appendfsync always): nothing is lost, at the level of Go SDK
// applications. A subscriber whose connection stayed open gets every
// message once, in order, in the one epoch, and is never told anything
// about a resubscription; a subscriber whose connection dropped during the
// outage reconnects once Redis is back, is told recovered:true, and gets
// the messages it missed, once each, before the newer ones.
func TestRedisRestartPersistentClients(t *testing.T) {
	rs := redistest.Start(t, redistest.Persistent())
	a, b := startRedisNode(t, rs.URL()), startRedisNode(t, rs.URL())
	ctx := testContext(t)
	const channel = "live:feed"

	stay := newCuttableSubscriber(t, ctx, b, channel)
	moved := newCuttableSubscriber(t, ctx, b, channel)
	p := a.publishAPI(t, channel, `{"n":1}`)
	epoch := p.Epoch
	publishN(t, a, channel, 2, 5, 0, epoch)
	stay.waitLines(t, 10*time.Second, 6)
	moved.waitLines(t, 10*time.Second, 6)

	moved.cut()
	moved.waitState(t, 10*time.Second, client.StateDisconnected)
	rs.Kill()
	if _, err := a.tryPublishAPI(channel, `{"n":6}`); err == nil || !strings.Contains(err.Error(), ": 500 ") {
		t.Fatalf("publish while Redis is down: %v, want a 500", err)
	}
	rs.Restart()
	publishN(t, a, channel, 6, 10, 0, epoch)
	moved.release()
	moved.waitLines(t, 15*time.Second, 7)
	publishN(t, a, channel, 11, 15, 0, epoch)
	stay.waitLines(t, 15*time.Second, 16)
	moved.waitLines(t, 15*time.Second, 17)

	want := []string{subscribedLine(0, epoch, false, false)}
	for k := 1; k <= 15; k++ {
		want = append(want, messageLine(uint64(k), epoch, k))
	}
	stay.check(t, "the subscriber that stayed connected", want, []client.State{client.StateConnecting, client.StateConnected})
	want = slices.Insert(slices.Clone(want), 6, subscribedLine(10, epoch, true, true))
	moved.check(t, "the subscriber that reconnected", want, []client.State{
		client.StateConnecting, client.StateConnected, client.StateDisconnected, client.StateConnecting, client.StateConnected,
	})
}

// Redis restarts empty (no persistence): the channel's history is lost.
// A subscriber whose connection stayed open is told once, before the new
// epoch's first message, that the old epoch is gone after its offset 3
// (a subscribed event with recovered:false and Lost.Old), then gets the
// new epoch's messages, offsets from 1. A subscriber whose connection
// dropped during the outage resubscribes from the old epoch and is told
// recovered:false with the new epoch, then gets the new messages.
func TestRedisRestartEmptyClients(t *testing.T) {
	rs := redistest.Start(t)
	a, b := startRedisNode(t, rs.URL()), startRedisNode(t, rs.URL())
	ctx := testContext(t)
	const channel = "live:feed"

	stay := newCuttableSubscriber(t, ctx, b, channel)
	moved := newCuttableSubscriber(t, ctx, b, channel)
	p := a.publishAPI(t, channel, `{"n":1}`)
	old := p.Epoch
	publishN(t, a, channel, 2, 3, 0, old)
	stay.waitLines(t, 10*time.Second, 4)
	moved.waitLines(t, 10*time.Second, 4)

	moved.cut()
	moved.waitState(t, 10*time.Second, client.StateDisconnected)
	rs.Stop()
	rs.Restart()
	moved.release()
	moved.waitLines(t, 15*time.Second, 5)
	moved.mu.Lock()
	line := moved.lines[4]
	moved.mu.Unlock()
	var fresh string
	if _, err := fmt.Sscanf(line, "subscribed 0 %s resubscribed=true recovered=false err=<nil>", &fresh); err != nil || fresh == old {
		t.Fatalf("resubscribed after Redis restarted empty: %q, want offset 0 in a new epoch, recovered=false", line)
	}
	p = a.publishAPI(t, channel, `{"n":4}`)
	if p.Offset != 1 || p.Epoch != fresh {
		t.Fatalf("first publish after the restart at %+v, want offset 1 in epoch %s", p, fresh)
	}
	publishN(t, a, channel, 5, 6, 3, fresh)
	stay.waitLines(t, 15*time.Second, 8)
	moved.waitLines(t, 15*time.Second, 8)

	want := []string{subscribedLine(0, old, false, false)}
	for k := 1; k <= 3; k++ {
		want = append(want, messageLine(uint64(k), old, k))
	}
	movedWant := append(slices.Clone(want), subscribedLine(0, fresh, true, false))
	want = append(want, fmt.Sprintf("lost 1..0 %s after 3 %s", fresh, old))
	for k := 4; k <= 6; k++ {
		want = append(want, messageLine(uint64(k-3), fresh, k))
		movedWant = append(movedWant, messageLine(uint64(k-3), fresh, k))
	}
	stay.check(t, "the subscriber that stayed connected", want, []client.State{client.StateConnecting, client.StateConnected})
	moved.check(t, "the subscriber that reconnected", movedWant, []client.State{
		client.StateConnecting, client.StateConnected, client.StateDisconnected, client.StateConnecting, client.StateConnected,
	})
}
