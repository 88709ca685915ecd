package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/redistest"
	"github.com/duplex-ws/duplex/websocket"
)

// readyBody is /readyz's body when the node is ready.
const readyBody = `{"ready":true}` + "\n"

// notReadyBody is /readyz's body when the broker is not ready because of
// err.
func notReadyBody(err string) string {
	return fmt.Sprintf(`{"ready":false,"not_ready":{"broker":%q}}`, err) + "\n"
}

// waitReadyz polls GET /readyz on ts every 20 ms until it answers status
// and body, within 15 s, and returns how long that took. Every answer
// before must satisfy before (nil: none may come first): readiness changes
// once, no other answer shows.
func waitReadyz(t *testing.T, ts *testServer, status int, body string, before func(status int, body string) bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	for {
		st, h, got := ts.do(t, "GET", "/readyz", "", "", nil)
		if st == status && got == body {
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("GET /readyz: Content-Type %q", ct)
			}
			return time.Since(start)
		}
		if before == nil || !before(st, got) {
			t.Fatalf("GET /readyz: %d %q while waiting for %d %q", st, got, status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz still %d %q after 15s, want %d %q", st, got, status, body)
		}
		time.Sleep(20 * time.Millisecond) // the poll's period, not a synchronization
	}
}

// is returns a predicate for waitReadyz that accepts exactly status and
// body.
func is(status int, body string) func(int, string) bool {
	return func(st int, b string) bool { return st == status && b == body }
}

// within returns a copy of c whose reads end after d: a command that
// must be answered promptly fails the test instead of hanging it.
func within(t *testing.T, c *wsClient, d time.Duration) *wsClient {
	ctx, cancel := context.WithTimeout(c.ctx, d)
	t.Cleanup(cancel)
	b := *c
	b.ctx = ctx
	return &b
}

// A Redis stopped while a node runs: /readyz answers 503 naming the broker
// and why, then 200 once Redis is back, each time within a health check's
// poll. Meanwhile the node serves what needs no broker: its WebSocket
// connections stay open, new ones are accepted, /echo echoes, ping and
// connect are answered; every command that needs Redis is answered
// promptly with error 100 (500 on the HTTP API) naming the broker call and
// the cause. Once Redis is back, the same connections publish and receive
// again.
func TestRedisOutageReadyz(t *testing.T) {
	rs := redistest.Start(t)
	a := startRedisNode(t, rs.URL())
	ctx := testContext(t)

	waitReadyz(t, a, 200, readyBody, nil)
	sub := a.dial(ctx, t)
	r := sub.subscribe(1, "live:feed")
	p1 := a.publishAPI(t, "live:feed", `{"n":1}`)
	sub.expect(push("live:feed", 1, r.Epoch, `{"n":1}`))
	echo, _, err := websocket.Dial(ctx, a.ws+"/echo", &websocket.DialOptions{Proxy: noProxy})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.CloseNow()

	rs.Stop()
	refused := "dial tcp " + rs.Addr() + ": connect: connection refused"
	down := notReadyBody("redisbroker: redis unreachable: " + refused)
	took := waitReadyz(t, a, 503, down, is(200, readyBody))
	t.Logf("/readyz not ready %v after Redis stopped", took.Round(time.Millisecond))
	if st, _, body := a.do(t, "GET", "/healthz", "", "", nil); st != 200 || body != "ok\n" {
		t.Errorf("GET /healthz during the outage: %d %q, want 200 ok", st, body)
	}

	// What needs no broker.
	if err := echo.Write(ctx, websocket.MessageText, []byte("still there")); err != nil {
		t.Fatal(err)
	}
	if typ, p, err := echo.Read(ctx); err != nil || typ != websocket.MessageText || string(p) != "still there" {
		t.Fatalf("/echo during the outage: %v %q %v", typ, p, err)
	}
	within(t, sub, 5*time.Second).expectCall(`{"id":2,"op":"ping"}`, `{"id":2,"result":{}}`)
	c := a.dial(ctx, t)
	connectAs(t, within(t, c, 5*time.Second), "ann")

	// What needs Redis: error 100 naming the call, in bounded time.
	bc := within(t, c, 10*time.Second)
	for i, tc := range []struct{ cmd, msg string }{
		{`{"id":2,"op":"publish","channel":"live:feed","data":{"n":2}}`, `redisbroker: publish to "live:feed": `},
		{`{"id":3,"op":"subscribe","channel":"live:other"}`, `redisbroker: subscribe to "live:other": `},
		{fmt.Sprintf(`{"id":4,"op":"subscribe","channel":"live:feed","since":{"offset":1,"epoch":%q}}`, p1.Epoch), `redisbroker: history of "live:feed": `},
		{`{"id":5,"op":"history","channel":"live:feed"}`, `redisbroker: history of "live:feed": `},
		{`{"id":6,"op":"presence","channel":"lobby"}`, `redisbroker: presence of "lobby": `},
	} {
		want := fmt.Sprintf(`{"id":%d,"error":{"code":100,"message":%q}}`, i+2, tc.msg+refused)
		bc.expectCall(tc.cmd, want)
	}
	bc.expectCall(`{"id":7,"op":"ping"}`, `{"id":7,"result":{}}`)
	for _, tc := range []struct{ method, path, body, msg string }{
		{"POST", "/api/publish", `{"channel":"live:feed","data":{"n":2}}`, `redisbroker: publish to "live:feed": `},
		{"GET", "/api/channels", "", "redisbroker: channels: "},
		{"GET", "/api/channels/live:feed/history", "", `redisbroker: history of "live:feed": `},
		{"GET", "/api/channels/lobby/presence", "", `redisbroker: presence of "lobby": `},
	} {
		ct := ""
		if tc.body != "" {
			ct = "application/json"
		}
		st, _, body := a.do(t, tc.method, tc.path, ct, tc.body, nil)
		want := fmt.Sprintf(`{"error":{"code":100,"message":%q}}`, tc.msg+refused) + "\n"
		if st != http.StatusInternalServerError || body != want {
			t.Errorf("%s %s during the outage: %d %q, want 500 %q", tc.method, tc.path, st, body, want)
		}
	}

	rs.Restart()
	took = waitReadyz(t, a, 200, readyBody, is(503, down))
	t.Logf("/readyz ready %v after Redis restarted", took.Round(time.Millisecond))

	// The same connections work again. Redis came back empty: the channel
	// starts a new epoch, which the live subscriber is told of (the old
	// one is gone after its offset 1), then receives.
	f := parseFrame(t, within(t, c, 10*time.Second).call(`{"id":8,"op":"publish","channel":"live:feed","data":{"n":2}}`))
	var p2 struct {
		Offset uint64 `json:"offset"`
		Epoch  string `json:"epoch"`
	}
	if f.Error != nil || f.Result == nil || json.Unmarshal(f.Result, &p2) != nil || p2.Offset != 1 || p2.Epoch == p1.Epoch || p2.Epoch == "" {
		t.Fatalf("publish after the outage: %+v %s, want offset 1 in a new epoch", f.Error, f.Result)
	}
	within(t, sub, 15*time.Second).expect(newEpochPush("live:feed", p2.Epoch, p1.Epoch, 1))
	within(t, sub, 15*time.Second).expect(push("live:feed", 1, p2.Epoch, `{"n":2}`))
}

// A Redis that hangs (its process paused: connections open, nothing
// answered): /readyz answers within its 1 s PING bound, 503 naming the
// broker and the timeout, then 200 once Redis answers again. A command
// that needs Redis is answered with error 100 in bounded time, and the
// connection then answers what follows it.
func TestRedisHangsReadyz(t *testing.T) {
	rs := redistest.Start(t)
	a := startRedisNode(t, rs.URL())
	ctx := testContext(t)
	sub := a.dial(ctx, t)
	sub.subscribe(1, "live:feed")
	waitReadyz(t, a, 200, readyBody, nil)

	rs.Pause()
	t.Cleanup(rs.Resume) // before Stop, for a test that failed while paused
	// The first PING may time out reading from a pooled connection, whose
	// error names it; later ones time out dialling.
	firstTimeout := regexp.MustCompile(`^\{"ready":false,"not_ready":\{"broker":"redisbroker: redis unreachable: read tcp 127\.0\.0\.1:\d+-\\u003e` +
		regexp.QuoteMeta(rs.Addr()) + `: i/o timeout"\}\}\n$`)
	down := notReadyBody("redisbroker: redis unreachable: i/o timeout")
	took := waitReadyz(t, a, 503, down, func(st int, body string) bool {
		return st == 200 && body == readyBody || st == 503 && firstTimeout.MatchString(body)
	})
	t.Logf("/readyz not ready %v after Redis hung", took.Round(time.Millisecond))

	// Subscribing used to wait for Redis's confirmation for as long as
	// Redis hung, and the connection's later commands behind it.
	start := time.Now()
	within(t, sub, 10*time.Second).expectCall(`{"id":2,"op":"subscribe","channel":"live:other"}`,
		`{"id":2,"error":{"code":100,"message":"redisbroker: subscribe to \"live:other\": no confirmation from Redis within 5s"}}`)
	t.Logf("subscribe answered in %v", time.Since(start).Round(time.Millisecond))
	within(t, sub, 5*time.Second).expectCall(`{"id":3,"op":"ping"}`, `{"id":3,"result":{}}`)

	rs.Resume()
	took = waitReadyz(t, a, 200, readyBody, is(503, down))
	t.Logf("/readyz ready %v after Redis resumed", took.Round(time.Millisecond))
	p := a.publishAPI(t, "live:feed", `{"n":1}`)
	within(t, sub, 10*time.Second).expect(push("live:feed", 1, p.Epoch, `{"n":1}`))
}
