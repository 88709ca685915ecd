package client_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/duplex-ws/duplex/client"
)

// lostPush is a lost push as the server writes it.
func lostPush(from, offset uint64, epoch string) string {
	return fmt.Sprintf(`{"op":"lost","channel":"news","from":%d,"offset":%d,"epoch":%q}`, from, offset, epoch)
}

// subscribedLine renders a SubscribedEvent for the lost tests.
func subscribedLine(ev client.SubscribedEvent) string {
	s := fmt.Sprintf("subscribed %s resubscribed=%t recovered=%t at %d@%s", ev.Channel, ev.Resubscribed, ev.Recovered, ev.Position.Offset, ev.Position.Epoch)
	if ev.Lost != nil {
		s += fmt.Sprintf(" lost %d..%d@%s", ev.Lost.From, ev.Lost.To, ev.Lost.Epoch)
		if o := ev.Lost.Old; o != nil {
			s += fmt.Sprintf(" after %d@%s", o.Offset, o.Epoch)
		}
	}
	if ev.Err != nil {
		s += fmt.Sprintf(" err %v", ev.Err)
	}
	return s
}

// TestLostPush: the server reports messages lost on a live subscription.
// OnSubscribed is told, in order with the messages, as after a
// resubscription that could not recover (Recovered false) with Lost set;
// the subscription goes on from the last offset lost, so a report of
// offsets already passed is ignored and a resumption asks for what
// follows the gap.
func TestLostPush(t *testing.T) {
	ctx := testContext(t)
	release := make(chan struct{})
	srv := scriptedServer(t, ctx, []scriptedConn{
		{
			subscribed: `{"recovered":false,"offset":0,"epoch":"A"}`,
			pushes: []string{
				push(1, "A", `"a1"`),
				lostPush(2, 4, "A"),
				push(5, "A", `"a5"`),
				lostPush(2, 3, "A"), // passed already: ignored
				push(5, "A", `"a5 again"`),
				lostPush(6, 9, "A"), // the last push: the position is 9
			},
			release: release,
		},
		{
			wantSince:  `{"offset":9,"epoch":"A"}`,
			subscribed: `{"recovered":true,"offset":11,"epoch":"A"}`,
			pushes: []string{
				push(10, "A", `"a10"`),
				push(11, "A", `"a11"`),
				lostPush(1, 2, "B"), // a new epoch whose 1..2 never came
				push(3, "B", `"b3"`),
			},
		},
	})

	lines := make(chan string, 100)
	c := newClient(t, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil, nil)
	sub, err := c.Subscribe(ctx, "news", func(m client.Message) {
		lines <- fmt.Sprintf("message %d@%s %s", m.Offset, m.Epoch, m.Data)
	}, &client.SubscribeOptions{OnSubscribed: func(ev client.SubscribedEvent) { lines <- subscribedLine(ev) }})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(want ...string) {
		t.Helper()
		for _, w := range want {
			if got := recv(t, lines, w); got != w {
				t.Fatalf("got  %s\nwant %s", got, w)
			}
		}
	}
	expect(
		"subscribed news resubscribed=false recovered=false at 0@A",
		`message 1@A "a1"`,
		"subscribed news resubscribed=true recovered=false at 4@A lost 2..4@A",
		`message 5@A "a5"`,
		"subscribed news resubscribed=true recovered=false at 9@A lost 6..9@A",
	)
	if p := sub.Position(); p != (client.Position{Offset: 9, Epoch: "A"}) {
		t.Fatalf("position after the lost push %+v, want 9@A", p)
	}
	close(release)
	expect(
		"subscribed news resubscribed=true recovered=true at 11@A",
		`message 10@A "a10"`,
		`message 11@A "a11"`,
		"subscribed news resubscribed=true recovered=false at 2@B lost 1..2@B",
		`message 3@B "b3"`,
	)
	select {
	case l := <-lines:
		t.Fatalf("unexpected %s", l)
	default:
	}
}

// epochLostPush is the lost push of a new epoch, as the server writes it:
// the old epoch is gone after oldOffset, and epoch goes on after offset.
func epochLostPush(offset uint64, epoch string, oldOffset uint64, oldEpoch string) string {
	return fmt.Sprintf(`{"op":"lost","channel":"news","from":1,"offset":%d,"epoch":%q,"old":{"offset":%d,"epoch":%q}}`, offset, epoch, oldOffset, oldEpoch)
}

// TestLostPushNewEpoch: the server reports that the channel's history was
// lost under the live subscription (the broker started a new epoch).
// OnSubscribed is told once, before the new epoch's first message, with
// Recovered false and Lost naming the old position; the subscription goes
// on in the new epoch, so its offset 1 is delivered (not taken for a
// duplicate of the old epoch's), duplicates of the new epoch are dropped,
// a repeated report is ignored, and a resumption asks for the new epoch.
func TestLostPushNewEpoch(t *testing.T) {
	ctx := testContext(t)
	release := make(chan struct{})
	srv := scriptedServer(t, ctx, []scriptedConn{
		{
			subscribed: `{"recovered":false,"offset":1,"epoch":"A"}`,
			pushes: []string{
				push(2, "A", `"a2"`),
				push(3, "A", `"a3"`),
				epochLostPush(0, "B", 3, "A"),
				push(1, "B", `"b1"`),
				epochLostPush(0, "B", 3, "A"), // passed already: ignored
				push(1, "B", `"b1 again"`),
				push(2, "B", `"b2"`),
				`{"op":"lost","channel":"news","from":1,"offset":2,"epoch":"C","old":{"offset":2,"epoch":"B"}}`, // C's 1..2 never came
				push(3, "C", `"c3"`),
			},
			release: release,
		},
		{
			wantSince:  `{"offset":3,"epoch":"C"}`,
			subscribed: `{"recovered":true,"offset":4,"epoch":"C"}`,
			pushes:     []string{push(4, "C", `"c4"`)},
		},
	})

	lines := make(chan string, 100)
	c := newClient(t, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil, nil)
	sub, err := c.Subscribe(ctx, "news", func(m client.Message) {
		lines <- fmt.Sprintf("message %d@%s %s", m.Offset, m.Epoch, m.Data)
	}, &client.SubscribeOptions{OnSubscribed: func(ev client.SubscribedEvent) { lines <- subscribedLine(ev) }})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(want ...string) {
		t.Helper()
		for _, w := range want {
			if got := recv(t, lines, w); got != w {
				t.Fatalf("got  %s\nwant %s", got, w)
			}
		}
	}
	expect(
		"subscribed news resubscribed=false recovered=false at 1@A",
		`message 2@A "a2"`,
		`message 3@A "a3"`,
		"subscribed news resubscribed=true recovered=false at 0@B lost 1..0@B after 3@A",
		`message 1@B "b1"`,
		`message 2@B "b2"`,
		"subscribed news resubscribed=true recovered=false at 2@C lost 1..2@C after 2@B",
		`message 3@C "c3"`,
	)
	if p := sub.Position(); p != (client.Position{Offset: 3, Epoch: "C"}) {
		t.Fatalf("position %+v, want 3@C", p)
	}
	close(release)
	expect(
		"subscribed news resubscribed=true recovered=true at 4@C",
		`message 4@C "c4"`,
	)
	select {
	case l := <-lines:
		t.Fatalf("unexpected %s", l)
	default:
	}
}
