package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/redistest"
	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/pubsub/redisbroker"
	"github.com/duplex-ws/duplex/server"
)

func TestOpenBrokerRedis(t *testing.T) {
	for u, want := range map[string]string{
		"redis://127.0.0.1:1":        "redisbroker: connect redis://127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused",
		"redis://127.0.0.1:1/nodb":   `redisbroker: redis://127.0.0.1:1/nodb: redis: invalid database number: "nodb"`,
		"redis://u:pw@127.0.0.1:1/0": "redisbroker: connect redis://u:xxxxx@127.0.0.1:1/0: dial tcp 127.0.0.1:1: connect: connection refused",
	} {
		b, err := server.OpenBroker(u)
		if err == nil || err.Error() != want {
			t.Errorf("OpenBroker(%q) = %v, %v; want error %q", u, b, err, want)
		}
	}
	s := redistest.Start(t)
	for _, u := range []string{s.URL(), s.URL() + "/3"} {
		b, err := server.OpenBroker(u)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := b.(*redisbroker.Broker); !ok {
			t.Errorf("OpenBroker(%q) = %T, want *redisbroker.Broker", u, b)
		}
		b.Close()
	}
}

// Three nodes share channels through one Redis: a message published on any
// node reaches the subscribers of the others in offset order, each once;
// presence is the same on every node; a client recovers against another
// node than the one it left.
func TestThreeNodesRedis(t *testing.T) {
	url := redistest.Start(t).URL()
	a, b, c := startNode(t, url), startNode(t, url), startNode(t, url)
	ctx := testContext(t)

	subB, subC := b.dial(ctx, t), c.dial(ctx, t)
	rb := subB.subscribe(1, "live:feed")
	rc := subC.subscribe(1, "live:feed")
	if rb.Offset != 0 || rc != rb {
		t.Fatalf("subscribe answers on B %+v and C %+v: want offset 0 in one epoch", rb, rc)
	}
	epoch := rb.Epoch

	// Publishers on A (a client) and C (the API), interleaved.
	pub := a.dial(ctx, t)
	const n = 30
	for k := 1; k <= n; k++ {
		d := fmt.Sprintf(`{"n":%d}`, k)
		if k%3 == 0 {
			if p := c.publishAPI(t, "live:feed", d); p != (pubsub.Position{Offset: uint64(k), Epoch: epoch}) {
				t.Fatalf("API publish %d on C at %+v", k, p)
			}
			continue
		}
		pub.expectCall(fmt.Sprintf(`{"id":%d,"op":"publish","channel":"live:feed","data":%s}`, k, d),
			fmt.Sprintf(`{"id":%d,"result":{"offset":%d,"epoch":%q}}`, k, k, epoch))
	}
	for _, s := range []*wsClient{subB, subC} {
		for k := 1; k <= n; k++ {
			s.expect(push("live:feed", uint64(k), epoch, fmt.Sprintf(`{"n":%d}`, k)))
		}
	}

	// Recovery on another node: C's client left after 30; it comes back on
	// B after five more.
	subC.conn.CloseNow()
	for k := n + 1; k <= n+5; k++ {
		a.publishAPI(t, "live:feed", fmt.Sprintf(`{"n":%d}`, k))
	}
	back := b.dial(ctx, t)
	back.send(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"live:feed","since":{"offset":%d,"epoch":%q}}`, n, epoch))
	back.expect(fmt.Sprintf(`{"id":1,"result":{"recovered":true,"offset":%d,"epoch":%q}}`, n+5, epoch))
	for k := n + 1; k <= n+5; k++ {
		back.expect(push("live:feed", uint64(k), epoch, fmt.Sprintf(`{"n":%d}`, k)))
	}
	for k := n + 1; k <= n+5; k++ {
		subB.expect(push("live:feed", uint64(k), epoch, fmt.Sprintf(`{"n":%d}`, k)))
	}

	// Presence is cluster-wide: bob on B and carol on C are listed by A,
	// and each sees the other join.
	bob, carol := b.dial(ctx, t), c.dial(ctx, t)
	bobID := connectAs(t, bob, "bob")
	carolID := connectAs(t, carol, "carol")
	bob.subscribe(2, "chat:room")
	waitJoin(t, bob, bobID)
	carol.subscribe(2, "chat:room")
	waitJoin(t, carol, carolID)
	waitJoin(t, bob, carolID)
	status, _, got := a.do(t, "GET", "/api/channels/chat:room/presence", "", "", nil)
	first, second := `{"client":"`+bobID+`","user":"bob"}`, `{"client":"`+carolID+`","user":"carol"}`
	if carolID < bobID {
		first, second = second, first
	}
	if want := `{"clients":[` + first + "," + second + "]}\n"; status != 200 || got != want {
		t.Fatalf("presence on A: %d %s, want %s", status, got, want)
	}
	// carol leaves: bob, on another node, sees it.
	carol.expectCall(`{"id":3,"op":"unsubscribe","channel":"chat:room"}`, `{"id":3,"result":{}}`)
	bob.expect(`{"op":"leave","channel":"chat:room","client":{"client":"` + carolID + `","user":"carol"}}`)

	// Every node lists the channels with the same positions.
	status, _, got = c.do(t, "GET", "/api/channels", "", "", nil)
	if status != 200 || !strings.Contains(got, fmt.Sprintf(`{"channel":"live:feed","offset":%d,"epoch":%q,"subscribers":0}`, n+5, epoch)) {
		t.Fatalf("channels on C: %d %s", status, got)
	}
}

// A Redis outage: nodes keep their connections and answer broker calls
// with error 100; Redis comes back empty (no persistence), so the channel
// has a new epoch: live subscribers receive its messages, and a client
// resubscribing from the old epoch, on any node, gets recovered:false.
func TestRedisOutage(t *testing.T) {
	rs := redistest.Start(t)
	a, b := startRedisNode(t, rs.URL()), startRedisNode(t, rs.URL())
	ctx := testContext(t)

	sub := b.dial(ctx, t)
	r := sub.subscribe(1, "live:feed")
	p1 := a.publishAPI(t, "live:feed", `{"n":1}`)
	if p1 != (pubsub.Position{Offset: 1, Epoch: r.Epoch}) {
		t.Fatalf("first publish at %+v, subscribed at %+v", p1, r)
	}
	sub.expect(push("live:feed", 1, r.Epoch, `{"n":1}`))

	rs.Stop()
	pub := a.dial(ctx, t)
	pub.send(`{"id":1,"op":"publish","channel":"live:feed","data":{"n":2}}`)
	f := parseFrame(t, pub.next())
	if f.Error == nil || f.Error.Code != 100 || !strings.HasPrefix(f.Error.Message, `redisbroker: publish to "live:feed": `) {
		t.Fatalf("publish during the outage: %+v", f)
	}
	if _, err := a.tryPublishAPI("live:feed", `{"n":2}`); err == nil || !strings.Contains(err.Error(), `: 500 `) {
		t.Fatalf("API publish during the outage: %v", err)
	}
	pub.expectCall(`{"id":2,"op":"ping"}`, `{"id":2,"result":{}}`)

	rs.Restart()
	p2 := a.publishAPI(t, "live:feed", `{"n":2}`)
	if p2.Offset != 1 || p2.Epoch == p1.Epoch {
		t.Fatalf("publish after the outage at %+v, want offset 1 in a new epoch (was %q)", p2, p1.Epoch)
	}
	// B catches up within a few seconds of its Pub/Sub link coming back.
	wait, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	bounded := *sub
	bounded.ctx = wait
	bounded.expect(push("live:feed", 1, p2.Epoch, `{"n":2}`))
	for _, node := range []*testServer{a, b} {
		c := node.dial(ctx, t)
		c.send(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"live:feed","since":{"offset":1,"epoch":%q}}`, p1.Epoch))
		c.expect(fmt.Sprintf(`{"id":1,"result":{"recovered":false,"offset":1,"epoch":%q}}`, p2.Epoch))
	}
}

// startRedisNode is startNode on a Redis broker whose log lines go to
// t.Log, so that a failure shows what the broker saw.
func startRedisNode(t *testing.T, url string) *testServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := redisbroker.Dial(url, redisbroker.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() }) // runs after the server's Shutdown
	return startServer(t, server.Config{Broker: b})
}

// testLog writes each log line to t.Log.
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
