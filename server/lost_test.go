package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/internal/redistest"
)

// linkProxy relays TCP connections to a target, so that a test can cut a
// node's link to its broker: cut closes every relayed connection and
// makes the proxy close new ones at once, until restore.
type linkProxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// startLinkProxy relays a loopback port to target until the test ends.
func startLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{l: l, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// addr returns the proxy's host:port.
func (p *linkProxy) addr() string { return p.l.Addr().String() }

func (p *linkProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			in.Close()
			out.Close()
			continue
		}
		p.conns[in], p.conns[out] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.relay(out, in)
		go p.relay(in, out)
	}
}

// relay copies from src to dst until either ends, then closes both.
func (p *linkProxy) relay(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut closes the relayed connections and refuses new ones.
func (p *linkProxy) cut() {
	p.mu.Lock()
	p.down = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// restore relays new connections again.
func (p *linkProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// sdkLog is what a Go SDK subscription hands its application, one line per
// callback, in the order the callbacks ran.
type sdkLog struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
}

func newSDKLog() *sdkLog { return &sdkLog{added: make(chan struct{}, 1)} }

func (l *sdkLog) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
}

func (l *sdkLog) onMessage(m client.Message) {
	l.add(fmt.Sprintf("message %d %s", m.Offset, m.Data))
}

func (l *sdkLog) onSubscribed(ev client.SubscribedEvent) {
	s := fmt.Sprintf("subscribed resubscribed=%t recovered=%t offset=%d", ev.Resubscribed, ev.Recovered, ev.Position.Offset)
	if ev.Lost != nil {
		s += fmt.Sprintf(" lost=%d..%d", ev.Lost.From, ev.Lost.To)
		if ev.Lost.Epoch != ev.Position.Epoch {
			s += " in another epoch"
		}
	}
	l.add(s)
}

// waitFor waits within ctx until the log's last line is last, and returns
// every line.
func (l *sdkLog) waitFor(ctx context.Context, t *testing.T, last string) []string {
	t.Helper()
	for {
		l.mu.Lock()
		lines := slices.Clone(l.lines)
		l.mu.Unlock()
		if len(lines) > 0 && lines[len(lines)-1] == last {
			return lines
		}
		select {
		case <-l.added:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %q; the subscription saw:\n\t%s", last, strings.Join(lines, "\n\t"))
		}
	}
}

// sdkSubscribe subscribes a new Go SDK client of node to channel, logging
// what its application sees.
func sdkSubscribe(ctx context.Context, t *testing.T, node *testServer, channel string) (*client.Subscription, *sdkLog) {
	t.Helper()
	c := client.New(node.ws+"/ws", &client.Options{Dial: *dialOptions(new(net.Conn), 0)})
	t.Cleanup(func() { c.Close() })
	log := newSDKLog()
	sub, err := c.Subscribe(ctx, channel, log.onMessage, &client.SubscribeOptions{OnSubscribed: log.onSubscribed})
	if err != nil {
		t.Fatal(err)
	}
	return sub, log
}

// linkOutage says what differs, from one broker to another, in the
// lostDuringLinkOutage scenario.
type linkOutage struct {
	// whileCut returns once the cut node reports, on /readyz, that its
	// link is down.
	whileCut func()
	// restored, when set, returns once the node says it is ready again.
	restored func()
	// publish12 publishes message 12 ({"n":12}) in epoch and checks its
	// answer.
	publish12 func(epoch string)
}

// lostDuringLinkOutage runs the scenario of the TestLostDuringLinkOutage
// tests: node b reaches the broker through proxy; while the proxy is cut,
// node a publishes more than the channel's history keeps (3 in namespace
// small); once the link is back, b delivers what the broker still holds,
// and its subscribers are told, once, which messages are lost (a lost
// push; the Go SDK's OnSubscribed with Recovered false), before the
// messages after the gap, each exactly once and in order; subscribers of
// a got everything.
func lostDuringLinkOutage(t *testing.T, a, b *testServer, proxy *linkProxy, o linkOutage) {
	ctx := testContext(t)
	const ch = "small:lost"

	subA, logA := sdkSubscribe(ctx, t, a, ch)
	subB, logB := sdkSubscribe(ctx, t, b, ch)
	raw := b.dial(ctx, t)
	r := raw.subscribe(1, ch)
	if r.Offset != 0 || r.Recovered {
		t.Fatalf("subscribed at %+v, want offset 0", r)
	}
	epoch := r.Epoch
	a.publishAPI(t, ch, `{"n":1}`)
	raw.expect(push(ch, 1, epoch, `{"n":1}`))
	logB.waitFor(ctx, t, `message 1 {"n":1}`)

	proxy.cut()
	o.whileCut()
	// Each publish waits until a's subscriber has it: with a history of 3,
	// a node whose broker consumer fell behind a burst would itself lose
	// what left the history (and say so with a lost push), which is not
	// what this test is about (seen once under CI load on NATS).
	for k := 2; k <= 11; k++ {
		a.publishAPI(t, ch, fmt.Sprintf(`{"n":%d}`, k))
		logA.waitFor(ctx, t, fmt.Sprintf(`message %d {"n":%d}`, k, k))
	}

	proxy.restore()
	if o.restored != nil {
		o.restored()
	}
	// B resumes after offset 1: 9..11 are still in the broker's history,
	// 2..8 are not.
	wait, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	bounded := *raw
	bounded.ctx = wait
	bounded.expect(fmt.Sprintf(`{"op":"lost","channel":%q,"from":2,"offset":8,"epoch":%q}`, ch, epoch))
	for k := 9; k <= 11; k++ {
		bounded.expect(push(ch, uint64(k), epoch, fmt.Sprintf(`{"n":%d}`, k)))
	}
	o.publish12(epoch)
	raw.expect(push(ch, 12, epoch, `{"n":12}`))
	a.publishAPI(t, ch, `{"n":13}`)
	raw.expect(push(ch, 13, epoch, `{"n":13}`))

	gotB := logB.waitFor(wait, t, `message 13 {"n":13}`)
	wantB := []string{"subscribed resubscribed=false recovered=false offset=0", `message 1 {"n":1}`,
		"subscribed resubscribed=true recovered=false offset=8 lost=2..8"}
	for k := 9; k <= 13; k++ {
		wantB = append(wantB, fmt.Sprintf(`message %d {"n":%d}`, k, k))
	}
	if !slices.Equal(gotB, wantB) {
		t.Errorf("the subscriber on the cut node saw:\n\t%s\nwant:\n\t%s", strings.Join(gotB, "\n\t"), strings.Join(wantB, "\n\t"))
	}
	gotA := logA.waitFor(ctx, t, `message 13 {"n":13}`)
	wantA := []string{"subscribed resubscribed=false recovered=false offset=0"}
	for k := 1; k <= 13; k++ {
		wantA = append(wantA, fmt.Sprintf(`message %d {"n":%d}`, k, k))
	}
	if !slices.Equal(gotA, wantA) {
		t.Errorf("the subscriber on the other node saw:\n\t%s\nwant:\n\t%s", strings.Join(gotA, "\n\t"), strings.Join(wantA, "\n\t"))
	}
	want := client.Position{Offset: 13, Epoch: epoch}
	if p := subB.Position(); p != want {
		t.Errorf("position of the subscription on the cut node %+v, want %+v", p, want)
	}
	if p := subA.Position(); p != want {
		t.Errorf("position of the subscription on the other node %+v, want %+v", p, want)
	}
	// Nothing more came to the raw subscriber (a duplicate would be
	// next): a ping is answered at once.
	raw.expectCall(`{"id":2,"op":"ping"}`, `{"id":2,"result":{}}`)
}

// TestLostDuringLinkOutageRedis runs lostDuringLinkOutage on redis-server:
// B resubscribes to Pub/Sub within a few seconds of its link coming back,
// then reads the stream.
func TestLostDuringLinkOutageRedis(t *testing.T) {
	rs := redistest.Start(t)
	proxy := startLinkProxy(t, rs.Addr())
	a := startRedisNode(t, rs.URL())
	b := startRedisNode(t, "redis://"+proxy.addr())
	ctx := testContext(t)
	lostDuringLinkOutage(t, a, b, proxy, linkOutage{
		whileCut: func() {
			for {
				status, _, body := b.do(t, "GET", "/readyz", "", "", nil)
				if status == http.StatusServiceUnavailable && strings.Contains(body, "redisbroker: redis unreachable") {
					return
				}
				select {
				case <-ctx.Done():
					t.Fatalf("/readyz of the cut node: %d %s", status, body)
				case <-time.After(20 * time.Millisecond):
				}
			}
		},
		publish12: func(string) { a.publishAPI(t, "small:lost", `{"n":12}`) },
	})
}
