package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/websocket"
)

// TestMessageRate drives the message bucket of /ws with a clock that moves
// only when the test says: a burst of MessageBurst commands, then error
// 120 for each one beyond the rate, one more allowed per 1/MessageRate
// elapsed; refusals spend the error budget, so a client that keeps at it
// is closed with 1008 "message rate exceeded". Another connection of the
// same handler keeps its own bucket.
func TestMessageRate(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	hub := pubsub.NewHub(pubsub.Config{Namespaces: DefaultNamespaces()})
	t.Cleanup(func() { hub.Close() })
	srv := httptest.NewServer(&ChannelHandler{Hub: hub, now: clock.now, Limits: Limits{MessageRate: 2, MessageBurst: 3}})
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	dial := func() *budgetConn {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return &budgetConn{t: t, ctx: ctx, conn: c}
	}
	const refused = `{"id":%d,"error":{"code":120,"message":"message rate exceeded: at most 2 messages a second, in bursts of 3"}}`
	ping := func(c *budgetConn, ok bool) {
		t.Helper()
		c.id++
		want := fmt.Sprintf(`{"id":%d,"result":{}}`, c.id)
		if !ok {
			want = fmt.Sprintf(refused, c.id)
		}
		c.call(fmt.Sprintf(`{"id":%d,"op":"ping"}`, c.id), want)
	}
	c, other := dial(), dial()
	for range 3 {
		ping(c, true)
	}
	ping(c, false)
	ping(other, true)
	clock.advance(time.Second / 2) // one token
	ping(c, true)
	ping(c, false)
	clock.advance(time.Second) // two tokens
	ping(c, true)
	ping(c, true)
	// The budget: 10 errors (2 spent), refilled by 1 over that 1.5 s: 9
	// more refusals are answered, the next one closes.
	for range 9 {
		ping(c, false)
	}
	c.id++
	c.call(fmt.Sprintf(`{"id":%d,"op":"ping"}`, c.id), fmt.Sprintf(refused, c.id))
	_, p, err := c.conn.Read(ctx)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != closeReasonRate {
		t.Fatalf("after the budget: %q %v, want close 1008 %q", p, err, closeReasonRate)
	}
	ping(other, true)
	ping(other, true)
}

// TestAdmissionClock drives the accept buckets with a clock that moves
// only when the test says: Retry-After is the wait for the next token,
// rounded up; tokens come back at the rate; a refused address spends no
// token of the server's; addresses unused for a while are forgotten.
func TestAdmissionClock(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, err := newAdmission(Limits{AcceptRate: 4, AcceptBurst: 4, AcceptRatePerIP: 0.25, AcceptBurstPerIP: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.now = clock.now
	ip := func(s string) netip.Prefix { return netip.PrefixFrom(netip.MustParseAddr(s), 32) }
	admit := func(addr netip.Prefix, want string) {
		t.Helper()
		release, ref := a.admit(addr)
		got := "ok"
		if ref != nil {
			got = fmt.Sprintf("%d %s retry %d", ref.status, ref.limit, ref.retryAfter)
		} else {
			release()
		}
		if got != want {
			t.Fatalf("admit(%v) at %v: %s, want %s", addr, clock.now().Format("15:04:05.000"), got, want)
		}
	}
	x, y := ip("192.0.2.1"), ip("192.0.2.2")
	admit(x, "ok")
	admit(x, "ok")
	admit(x, "429 accept_rate_per_ip retry 4")
	clock.advance(3 * time.Second)
	admit(x, "429 accept_rate_per_ip retry 1") // 0.75 of a token
	clock.advance(time.Second)
	admit(x, "ok")
	admit(y, "ok")
	admit(y, "ok")
	admit(netip.Prefix{}, "ok")
	admit(netip.Prefix{}, "503 accept_rate retry 1") // 4 spent, none back yet
	clock.advance(time.Second / 8)
	admit(netip.Prefix{}, "503 accept_rate retry 1") // half a token
	clock.advance(time.Second / 8)
	admit(netip.Prefix{}, "ok")
	if len(a.perIP) != 2 {
		t.Fatalf("%d addresses kept, want 2", len(a.perIP))
	}
	clock.advance(time.Minute) // both buckets full again, no connection
	admit(netip.Prefix{}, "ok")
	if len(a.perIP) != 0 {
		t.Fatalf("%d addresses kept after a minute, want 0", len(a.perIP))
	}
}

// TestClientAddr: which address a request is limited by.
func TestClientAddr(t *testing.T) {
	a, err := newAdmission(Limits{TrustedProxies: []string{"10.0.0.0/8", "::1", "192.0.2.9"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"203.0.113.5:1234", nil, "203.0.113.5/32"},
		{"203.0.113.5:1234", []string{"198.51.100.1"}, "203.0.113.5/32"}, // not a proxy: ignored
		{"10.1.2.3:1234", []string{"198.51.100.1"}, "198.51.100.1/32"},
		{"10.1.2.3:1234", []string{"198.51.100.1, 10.0.0.7"}, "198.51.100.1/32"},
		{"10.1.2.3:1234", []string{"6.6.6.6, 198.51.100.1", "10.0.0.7"}, "198.51.100.1/32"},
		{"10.1.2.3:1234", []string{"198.51.100.1, junk, 10.0.0.7"}, "10.0.0.7/32"}, // trust stops at garbage
		{"10.1.2.3:1234", []string{"10.0.0.7"}, "10.0.0.7/32"},                     // all proxies: the first
		{"10.1.2.3:1234", []string{"2001:db8:1:2:3:4:5:6"}, "2001:db8:1:2::/64"},
		{"[::1]:1234", []string{"::ffff:198.51.100.2"}, "198.51.100.2/32"},
		{"[::1]:1234", nil, "invalid Prefix"},     // loopback
		{"127.0.0.1:1234", nil, "invalid Prefix"}, // loopback
		{"[2001:db8::1]:1234", nil, "2001:db8::/64"},
		{"pipe", nil, "invalid Prefix"},
	} {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{"X-Forwarded-For": tc.xff}}
		if got := a.clientAddr(r).String(); got != tc.want {
			t.Errorf("clientAddr(%s, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}
