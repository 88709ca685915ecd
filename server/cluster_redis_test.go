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
	threeNodes(t, redistest.Start(t).URL())
}

// A Redis outage: nodes keep their connections and answer broker calls
// with error 100; Redis comes back empty (no persistence), so the channel
// has a new epoch: live subscribers are told that the old one is gone
// after their last message (a lost push with "old"), then receive its
// messages, and a client resubscribing from the old epoch, on any node,
// gets recovered:false.
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
	bounded.expect(newEpochPush("live:feed", p2.Epoch, p1.Epoch, 1))
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
