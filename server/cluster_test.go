package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/duplex-ws/duplex/pubsub"
)

// threeNodes is the scenario TestThreeNodesNATS and TestThreeNodesRedis
// share, so both brokers are held to the same assertions: three nodes
// whose broker is OpenBroker(url) share channels; a message published on
// any node reaches the subscribers of the others in offset order, each
// once; presence is the same on every node; a client recovers against
// another node than the one it left.
func threeNodes(t *testing.T, url string) {
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
