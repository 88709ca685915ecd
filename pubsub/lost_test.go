package pubsub

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// scriptedBroker is a Broker whose deliveries the test makes: it delivers
// nothing by itself, History answers with the position (and, with Since,
// the messages) the test set, and the rest succeeds doing nothing.
type scriptedBroker struct {
	mu      sync.Mutex
	handler BrokerHandler
	pos     Position
	kept    []*Message // what History returns after Since, when complete
}

func (b *scriptedBroker) SetHandler(h BrokerHandler)                            { b.handler = h }
func (b *scriptedBroker) Subscribe(context.Context, string) error               { return nil }
func (b *scriptedBroker) Unsubscribe(context.Context, string) error             { return nil }
func (b *scriptedBroker) AddPresence(context.Context, string, ClientInfo) error { return nil }
func (b *scriptedBroker) RemovePresence(context.Context, string, ClientInfo) error {
	return nil
}
func (b *scriptedBroker) Presence(context.Context, string) ([]ClientInfo, error) { return nil, nil }
func (b *scriptedBroker) Channels(context.Context) ([]ChannelInfo, error)        { return nil, nil }
func (b *scriptedBroker) Close() error                                           { return nil }

func (b *scriptedBroker) Publish(context.Context, string, []byte, HistoryOptions) (*Message, error) {
	return nil, fmt.Errorf("scriptedBroker: no Publish")
}

func (b *scriptedBroker) History(_ context.Context, channel string, req HistoryRequest) (HistoryResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	res := HistoryResult{Position: b.pos}
	if req.Since != nil && req.Since.Epoch == b.pos.Epoch {
		for _, m := range b.kept {
			if m.Offset == req.Since.Offset+1 || len(res.Messages) > 0 {
				res.Messages = append(res.Messages, m)
			}
		}
		res.Complete = len(res.Messages) > 0 || req.Since.Offset == b.pos.Offset
	}
	return res, nil
}

// setPosition sets what History answers.
func (b *scriptedBroker) setPosition(p Position, kept ...*Message) {
	b.mu.Lock()
	b.pos, b.kept = p, kept
	b.mu.Unlock()
}

// msg makes the message of channel "c" at offset in epoch.
func msg(offset uint64, epoch string) *Message {
	return &Message{Channel: "c", Offset: offset, Epoch: epoch, Data: data(int(offset))}
}

// deliver hands the broker's handler the messages, as a broker's
// delivery goroutine would.
func (b *scriptedBroker) deliver(ms ...*Message) {
	for _, m := range ms {
		b.handler.HandleMessage(m)
	}
}

// lines renders what a recorder saw, one line per entry.
func (r *recorder) lines() []string {
	var out []string
	for _, e := range r.log() {
		switch {
		case e.res != nil:
			out = append(out, fmt.Sprintf("result recovered=%t %d@%s", e.res.Recovered, e.res.Position.Offset, e.res.Position.Epoch))
		case e.ev.Kind == EventMessage:
			out = append(out, fmt.Sprintf("message %s %d@%s %s", e.ev.Channel, e.ev.Message.Offset, e.ev.Message.Epoch, e.ev.Message.Data))
		case e.ev.Kind == EventLost:
			if e.ev.Message != nil {
				out = append(out, "lost with a message")
			}
			l := fmt.Sprintf("lost %s %d..%d@%s", e.ev.Channel, e.ev.Lost.From, e.ev.Lost.To, e.ev.Lost.Epoch)
			if o := e.ev.Lost.Old; o != (Position{}) {
				l += fmt.Sprintf(" after %d@%s", o.Offset, o.Epoch)
			}
			out = append(out, l)
		default:
			out = append(out, fmt.Sprintf("%s %s %s", e.ev.Kind, e.ev.Channel, e.ev.Client.Client))
		}
	}
	return out
}

func wantLines(t *testing.T, who string, r *recorder, want ...string) {
	t.Helper()
	if got := r.lines(); !slices.Equal(got, want) {
		t.Fatalf("%s saw:\n\t%s\nwant:\n\t%s", who, joinLines(got), joinLines(want))
	}
}

func joinLines(l []string) string {
	s := ""
	for i, x := range l {
		if i > 0 {
			s += "\n\t"
		}
		s += x
	}
	return s
}

// TestLostReportedBeforeTheJump scripts a broker that skips offsets, as
// one does after a link outage longer than the history keeps: each
// subscriber gets a lost event naming exactly the offsets it will never
// see, right before the message after the gap, once; duplicates and
// contiguous offsets report nothing; a new epoch reports that the old one
// is gone after the last offset delivered, and the new epoch's first
// offsets when it starts past 1.
func TestLostReportedBeforeTheJump(t *testing.T) {
	b := &scriptedBroker{}
	h := NewHub(Config{Broker: b})
	t.Cleanup(func() { h.Close() })
	ctx := testCtx(t)

	b.setPosition(Position{Offset: 2, Epoch: "E"})
	early := &recorder{}
	if _, err := h.Subscribe(ctx, "c", early, SubscribeOptions{Client: ClientInfo{Client: "early"}, OnResult: early.onResult}); err != nil {
		t.Fatal(err)
	}
	b.deliver(msg(3, "E"), msg(4, "E"))
	b.handler.HandleJoin("c", ClientInfo{Client: "x"})
	// The link was down: 5..7 left the history, 8 and 9 were still there.
	b.deliver(msg(8, "E"), msg(9, "E"))

	// A subscriber that came after the gap counts from its own position.
	b.setPosition(Position{Offset: 9, Epoch: "E"})
	late := &recorder{}
	if _, err := h.Subscribe(ctx, "c", late, SubscribeOptions{Client: ClientInfo{Client: "late"}, OnResult: late.onResult}); err != nil {
		t.Fatal(err)
	}
	b.deliver(
		msg(9, "E"), msg(8, "E"), // duplicates, stale: dropped
		msg(10, "E"),
		msg(12, "E"),  // 11 lost for both
		msg(12, "E"),  // a duplicate reports nothing again
		msg(1, "F"),   // a new epoch from its start: E is gone after 12
		msg(2, "F"),   //
		msg(5, "F"),   // 3..4 of F lost
		msg(3, "G"),   // a new epoch whose 1..2 never came: F is gone after 5
		msg(4, "G"),   //
		msg(100, "G"), // a long outage
	)

	wantLines(t, "early", early,
		"result recovered=false 2@E",
		`message c 3@E {"n":3}`,
		`message c 4@E {"n":4}`,
		"join c x",
		"lost c 5..7@E",
		`message c 8@E {"n":8}`,
		`message c 9@E {"n":9}`,
		`message c 10@E {"n":10}`,
		"lost c 11..11@E",
		`message c 12@E {"n":12}`,
		"lost c 1..0@F after 12@E",
		`message c 1@F {"n":1}`,
		`message c 2@F {"n":2}`,
		"lost c 3..4@F",
		`message c 5@F {"n":5}`,
		"lost c 1..2@G after 5@F",
		`message c 3@G {"n":3}`,
		`message c 4@G {"n":4}`,
		"lost c 5..99@G",
		`message c 100@G {"n":100}`,
	)
	wantLines(t, "late", late,
		"result recovered=false 9@E",
		`message c 10@E {"n":10}`,
		"lost c 11..11@E",
		`message c 12@E {"n":12}`,
		"lost c 1..0@F after 12@E",
		`message c 1@F {"n":1}`,
		`message c 2@F {"n":2}`,
		"lost c 3..4@F",
		`message c 5@F {"n":5}`,
		"lost c 1..2@G after 5@F",
		`message c 3@G {"n":3}`,
		`message c 4@G {"n":4}`,
		"lost c 5..99@G",
		`message c 100@G {"n":100}`,
	)
}

// TestLostAfterRecovery: a subscription that recovered from a position
// counts from the replayed messages, and a jump after them is reported;
// one that could not recover counts from the channel's position, and what
// the broker delivers from there on is no loss.
func TestLostAfterRecovery(t *testing.T) {
	b := &scriptedBroker{}
	h := NewHub(Config{Broker: b, Namespaces: map[string]NamespaceOptions{"": {HistorySize: 10}}})
	t.Cleanup(func() { h.Close() })
	ctx := testCtx(t)

	b.setPosition(Position{Offset: 6, Epoch: "E"}, msg(4, "E"), msg(5, "E"), msg(6, "E"))
	rec := &recorder{}
	if _, err := h.Subscribe(ctx, "c", rec, SubscribeOptions{Since: &Position{Offset: 3, Epoch: "E"}, OnResult: rec.onResult}); err != nil {
		t.Fatal(err)
	}
	notRec := &recorder{}
	if _, err := h.Subscribe(ctx, "c", notRec, SubscribeOptions{Since: &Position{Offset: 1, Epoch: "E"}, OnResult: notRec.onResult}); err != nil {
		t.Fatal(err)
	}
	b.deliver(msg(6, "E"), msg(7, "E"), msg(9, "E"))
	wantLines(t, "recovered", rec,
		"result recovered=true 6@E",
		`message c 4@E {"n":4}`,
		`message c 5@E {"n":5}`,
		`message c 6@E {"n":6}`,
		`message c 7@E {"n":7}`,
		"lost c 8..8@E",
		`message c 9@E {"n":9}`,
	)
	wantLines(t, "not recovered", notRec,
		"result recovered=false 6@E",
		`message c 7@E {"n":7}`,
		"lost c 8..8@E",
		`message c 9@E {"n":9}`,
	)
}

// msgIn makes the message of channel at offset in epoch.
func msgIn(channel string, offset uint64, epoch string) *Message {
	return &Message{Channel: channel, Offset: offset, Epoch: epoch, Data: data(int(offset))}
}

// TestLostOnNewEpoch scripts a broker that lost the channels' history and
// delivers new epochs, as NATS or Redis restarted on an empty store do.
// Each subscription that had a position in the old epoch is told once,
// right before the new epoch's first message, whatever its offset, that
// the old epoch is gone after that position (the last message delivered,
// or the subscribe position when none came), and which of the new epoch's
// offsets never came; counting then goes on in the new epoch, and
// duplicates are dropped per epoch. A subscription that knew no message
// of its epoch (subscribed to an empty channel, nothing since) is told
// only of what is missing from the new epoch; one without a position
// (a broker that gave no epoch) is told nothing.
func TestLostOnNewEpoch(t *testing.T) {
	b := &scriptedBroker{}
	h := NewHub(Config{Broker: b, Namespaces: map[string]NamespaceOptions{"": {HistorySize: 10}}})
	t.Cleanup(func() { h.Close() })
	ctx := testCtx(t)
	subscribe := func(channel string, pos Position, since *Position, kept ...*Message) *recorder {
		t.Helper()
		b.setPosition(pos, kept...)
		r := &recorder{}
		if _, err := h.Subscribe(ctx, channel, r, SubscribeOptions{Since: since, OnResult: r.onResult}); err != nil {
			t.Fatal(err)
		}
		return r
	}

	follower := subscribe("c", Position{Offset: 2, Epoch: "E"}, nil)
	answered := subscribe("answered", Position{Offset: 5, Epoch: "E"}, nil)
	empty := subscribe("empty", Position{Offset: 0, Epoch: "E"}, nil)
	emptyLate := subscribe("late", Position{Offset: 0, Epoch: "E"}, nil)
	noEpoch := subscribe("none", Position{}, nil)
	recovered := subscribe("r", Position{Offset: 6, Epoch: "E"}, &Position{Offset: 4, Epoch: "E"},
		msgIn("r", 5, "E"), msgIn("r", 6, "E"))

	b.deliver(
		msgIn("c", 3, "E"), msgIn("c", 4, "E"),
		msgIn("c", 1, "F"), // E is gone after 4
		msgIn("c", 1, "F"), // a duplicate: dropped, nothing reported again
		msgIn("c", 2, "F"),
		msgIn("c", 3, "G"), // G's 1..2 never came, F is gone after 2
		msgIn("c", 4, "G"),
		msgIn("answered", 1, "F"), // nothing delivered, but it was at 5 of E
		msgIn("empty", 1, "F"),    // it knew nothing of E: no loss
		msgIn("empty", 2, "F"),
		msgIn("empty", 1, "G"), // now it knew F up to 2
		msgIn("late", 3, "F"),  // F's 1..2 never came
		msgIn("none", 5, "F"),
		msgIn("none", 6, "F"),
		msgIn("r", 7, "E"),
		msgIn("r", 2, "F"),
	)

	wantLines(t, "follower", follower,
		"result recovered=false 2@E",
		`message c 3@E {"n":3}`,
		`message c 4@E {"n":4}`,
		"lost c 1..0@F after 4@E",
		`message c 1@F {"n":1}`,
		`message c 2@F {"n":2}`,
		"lost c 1..2@G after 2@F",
		`message c 3@G {"n":3}`,
		`message c 4@G {"n":4}`,
	)
	wantLines(t, "answered", answered,
		"result recovered=false 5@E",
		"lost answered 1..0@F after 5@E",
		`message answered 1@F {"n":1}`,
	)
	wantLines(t, "empty", empty,
		"result recovered=false 0@E",
		`message empty 1@F {"n":1}`,
		`message empty 2@F {"n":2}`,
		"lost empty 1..0@G after 2@F",
		`message empty 1@G {"n":1}`,
	)
	wantLines(t, "late", emptyLate,
		"result recovered=false 0@E",
		"lost late 1..2@F after 0@E",
		`message late 3@F {"n":3}`,
	)
	wantLines(t, "no epoch", noEpoch,
		"result recovered=false 0@",
		`message none 5@F {"n":5}`,
		`message none 6@F {"n":6}`,
	)
	wantLines(t, "recovered", recovered,
		"result recovered=true 6@E",
		`message r 5@E {"n":5}`,
		`message r 6@E {"n":6}`,
		`message r 7@E {"n":7}`,
		"lost r 1..1@F after 7@E",
		`message r 2@F {"n":2}`,
	)
}
