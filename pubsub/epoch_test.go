package pubsub

import "testing"

// A broker that loses a channel's history (a stream purged or restarted
// while this node keeps interest) delivers messages of a new epoch whose
// offsets start over. The Hub must deliver them, and drop duplicates and
// stale offsets within the new epoch as within the old one.
func TestNewEpochUnderLiveSubscription(t *testing.T) {
	h, _ := newTestHub(t, map[string]NamespaceOptions{"": {HistorySize: 10}}, nil)
	ctx := testCtx(t)
	r := &recorder{}
	res, err := h.Subscribe(ctx, "news", r, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, h, "news", 1, 3)
	old := res.Position.Epoch
	deliver := func(off uint64, epoch string) {
		hubHandler{h}.HandleMessage(&Message{Channel: "news", Offset: off, Epoch: epoch, Data: data(int(off))})
	}
	deliver(3, old) // a late duplicate of the old epoch
	deliver(1, "fresh")
	deliver(2, "fresh")
	deliver(2, "fresh") // duplicate
	deliver(1, "fresh") // stale
	deliver(3, "fresh")
	want := "[1@" + old + " 2@" + old + " 3@" + old + " 1@fresh 2@fresh 3@fresh]"
	if got := offsets(r.messages("news")); got != want {
		t.Fatalf("delivered %s, want %s", got, want)
	}
}
