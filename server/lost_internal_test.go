package server

import (
	"testing"

	"github.com/duplex-ws/duplex/pubsub"
)

// A loss is a lost push on /ws, byte for byte (with "old" for a new
// epoch), with no latency to observe; plain chat members are shown
// nothing of it, while a message still reaches them.
func TestLostPushAndChat(t *testing.T) {
	lost := &pubsub.Event{Kind: pubsub.EventLost, Channel: "chat:lobby", Lost: pubsub.Gap{Epoch: "e1", From: 3, To: 5}}
	want := `{"op":"lost","channel":"chat:lobby","from":3,"offset":5,"epoch":"e1"}`
	if got := string(appendPush(nil, lost)); got != want {
		t.Fatalf("lost push %s, want %s", got, want)
	}
	newEpoch := &pubsub.Event{Kind: pubsub.EventLost, Channel: "chat:lobby", Lost: pubsub.Gap{Epoch: "e2", From: 1, To: 0, Old: pubsub.Position{Offset: 5, Epoch: "e1"}}}
	wantNew := `{"op":"lost","channel":"chat:lobby","from":1,"offset":0,"epoch":"e2","old":{"offset":5,"epoch":"e1"}}`
	if got := string(appendPush(nil, newEpoch)); got != wantNew {
		t.Fatalf("lost push of a new epoch %s, want %s", got, wantNew)
	}
	f, _ := lost.Encoded((&ChannelHandler{}).encoding()).(*outFrame)
	if f == nil || f.size != len(want) || f.pub != 0 {
		t.Fatalf("lost push framed as %+v, want %d bytes and no publish time", f, len(want))
	}

	m := &chatMember{queue: newSendQueue(2, false, nil), enc: (&ChatHandler{}).encoding()}
	m.Deliver(lost)
	m.Deliver(newEpoch)
	if n := m.queue.len(); n != 0 {
		t.Fatalf("a plain chat member was sent %d frames for a loss, want none", n)
	}
	m.Deliver(&pubsub.Event{Kind: pubsub.EventMessage, Channel: "chat:lobby", Message: &pubsub.Message{Channel: "chat:lobby", Offset: 6, Epoch: "e1", Data: []byte(`"hi"`)}})
	if n := m.queue.len(); n != 1 {
		t.Fatalf("a plain chat member was sent %d frames for a message, want 1", n)
	}
}
