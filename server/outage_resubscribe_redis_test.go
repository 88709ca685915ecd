package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/internal/redistest"
)

// A Go SDK subscriber whose connection drops while Redis is down
// reconnects to its node, which is up but cannot subscribe it: the
// resubscription is answered with error 100, again at each attempt, and
// the client keeps the subscription and tries again with its backoff (the
// application is told each time, Retrying). Once Redis is back (restarted
// with its append-only file), an attempt succeeds with recovered:true from
// the position of the last message delivered: the application gets every
// message, those published before the outage while it was away and those
// published after, exactly once, in order, and the connection was never
// closed for its failed commands.
func TestRedisOutageResubscribeRetries(t *testing.T) {
	rs := redistest.Start(t, redistest.Persistent())
	a := startRedisNode(t, rs.URL())
	ctx := testContext(t)
	const channel = "live:feed"
	const minBackoff, maxBackoff = 50 * time.Millisecond, 400 * time.Millisecond

	s := &sdkSubscriber{changed: make(chan struct{})}
	opts := &client.Options{
		MinBackoff: minBackoff,
		MaxBackoff: maxBackoff,
		OnState: func(st client.State, _ error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.states = append(s.states, st)
			s.signalLocked()
		},
	}
	opts.Dial.Proxy = noProxy
	opts.Dial.NetDialContext = s.dial
	s.c = client.New(a.ws+"/ws", opts)
	t.Cleanup(func() { s.c.Close() })
	_, err := s.c.Subscribe(ctx, channel, func(m client.Message) {
		s.record(fmt.Sprintf("message %d %s %s", m.Offset, m.Epoch, m.Data))
	}, &client.SubscribeOptions{OnSubscribed: func(ev client.SubscribedEvent) {
		if ev.Retrying {
			if ev.RetryIn < minBackoff || ev.RetryIn > maxBackoff {
				t.Errorf("RetryIn %v, want %v..%v", ev.RetryIn, minBackoff, maxBackoff)
			}
			s.record(fmt.Sprintf("retrying %d %s err=%v", ev.Position.Offset, ev.Position.Epoch, ev.Err))
			return
		}
		s.record(fmt.Sprintf("subscribed %d %s resubscribed=%t recovered=%t err=%v", ev.Position.Offset, ev.Position.Epoch, ev.Resubscribed, ev.Recovered, ev.Err))
	}})
	if err != nil {
		t.Fatal(err)
	}
	epoch := a.publishAPI(t, channel, `{"n":1}`).Epoch
	publishN(t, a, channel, 2, 5, 0, epoch)
	s.waitLines(t, 10*time.Second, 6)

	// Away while 6..8 are published, then Redis stops.
	s.cut()
	s.waitState(t, 10*time.Second, client.StateDisconnected)
	publishN(t, a, channel, 6, 8, 0, epoch)
	rs.Stop()
	refused := "dial tcp " + rs.Addr() + ": connect: connection refused"
	waitReadyz(t, a, 503, notReadyBody("redisbroker: redis unreachable: "+refused), is(200, readyBody))

	// Back on the node, which cannot subscribe it: error 100, twice at
	// least, on the one connection.
	s.release()
	s.waitLines(t, 10*time.Second, 8)
	s.mu.Lock()
	beforeRestart := len(s.lines)
	s.mu.Unlock()
	rs.Restart()
	recovered := fmt.Sprintf("subscribed 8 %s resubscribed=true recovered=true err=<nil>", epoch)
	s.wait(t, 15*time.Second, "resubscribed with the missed messages", func(lines []string, _ []client.State) bool {
		i := slices.Index(lines, recovered)
		return i >= 0 && len(lines) >= i+4
	})
	publishN(t, a, channel, 9, 10, 0, epoch)
	s.wait(t, 10*time.Second, "given the new messages", func(lines []string, _ []client.State) bool {
		return len(lines) >= slices.Index(lines, recovered)+6
	})

	s.mu.Lock()
	lines := slices.Clone(s.lines)
	s.mu.Unlock()
	want := []string{subscribedLine(0, epoch, false, false)}
	for k := 1; k <= 5; k++ {
		want = append(want, messageLine(uint64(k), epoch, k))
	}
	// The attempts while Redis was down failed on the refused dial; one
	// made while it was starting again may fail otherwise.
	failed := fmt.Sprintf(`retrying 5 %s err=duplex: error 100: redisbroker: `, epoch)
	down := failed + `subscribe to "live:feed": ` + refused
	i := len(want)
	for ; i < len(lines) && strings.HasPrefix(lines[i], failed); i++ {
		if i < beforeRestart && lines[i] != down {
			t.Errorf("attempt %d while Redis was down:\n%s\nwant\n%s", i-len(want)+1, lines[i], down)
		}
	}
	attempts := i - len(want)
	t.Logf("%d attempts failed before the resubscription:\n%s", attempts, strings.Join(lines[len(want):i], "\n"))
	want = append(want, lines[len(want):i]...)
	want = append(want, recovered)
	for k := 6; k <= 10; k++ {
		want = append(want, messageLine(uint64(k), epoch, k))
	}
	if attempts < 2 {
		t.Errorf("%d failed attempts, want 2 or more", attempts)
	}
	s.check(t, "the subscriber", want, []client.State{
		client.StateConnecting, client.StateConnected, client.StateDisconnected, client.StateConnecting, client.StateConnected,
	})
}
