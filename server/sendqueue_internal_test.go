package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/websocket"
)

// queueMsg is the push of message offset on channel, framed as the
// server frames it, with the send-queue information of a namespace with
// opts.
func queueMsg(t *testing.T, channel string, offset uint64, data string, opts pubsub.NamespaceOptions) *outFrame {
	t.Helper()
	e := &pubsub.Event{Kind: pubsub.EventMessage, Channel: channel,
		Message: &pubsub.Message{Channel: channel, Offset: offset, Epoch: "E", Data: json.RawMessage(data)}}
	f := buildPush(e)
	setQueueInfo(f, e, opts)
	return f
}

// queueAnswer is an answer frame with text s.
func queueAnswer(t *testing.T, s string) *outFrame {
	t.Helper()
	pm, err := websocket.NewPreparedMessage(websocket.MessageText, []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return &outFrame{pm: pm}
}

var (
	closeNS    = pubsub.NamespaceOptions{}
	dropNS     = pubsub.NamespaceOptions{SlowConsumer: pubsub.SlowConsumerDropOldest}
	conflateNS = pubsub.NamespaceOptions{SlowConsumer: pubsub.SlowConsumerConflate}
	symbolNS   = pubsub.NamespaceOptions{SlowConsumer: pubsub.SlowConsumerConflate, ConflateKey: "symbol"}
)

// drainQueue writes everything q holds to a connection over a pipe and
// returns the texts the peer reads.
func drainQueue(t *testing.T, q *sendQueue) []string {
	t.Helper()
	a, b := net.Pipe()
	srv := websocket.NewConn(a, nil, websocket.RoleServer, "", nil)
	cli := websocket.NewConn(b, nil, websocket.RoleClient, "", nil)
	defer srv.CloseNow()
	defer cli.CloseNow()
	n := 0 // frames and markers
	for _, f := range q.buf[q.head:] {
		if f != nil {
			n++
		}
	}
	done := make(chan error, 1)
	go func() { done <- q.flush(srv, nil) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for len(got) < n {
		_, p, err := cli.Read(ctx)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, string(p))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if q.len() != 0 || len(q.buf) != 0 || len(q.markers) != 0 || len(q.keys) != 0 || q.droppable != 0 {
		t.Fatalf("drained queue keeps n=%d buf=%d markers=%d keys=%d droppable=%d", q.len(), len(q.buf), len(q.markers), len(q.keys), q.droppable)
	}
	return got
}

// pushAll pushes frames and checks the outcome of each: "ok", "full" (the
// connection is to be closed), "dropped N", "conflated".
func pushAll(t *testing.T, q *sendQueue, want []string, frames ...*outFrame) {
	t.Helper()
	for i, f := range frames {
		ok, st := q.push(f)
		got := "ok"
		switch {
		case !ok:
			got = "full"
		case st.dropped > 0:
			got = fmt.Sprintf("dropped %d", st.dropped)
		case st.conflated:
			got = "conflated"
		}
		if got != want[i] {
			t.Fatalf("push %d: %s, want %s", i, got, want[i])
		}
	}
}

func wantTexts(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("written:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSendQueueClose(t *testing.T) {
	q := newSendQueue(3, true, nil)
	pushAll(t, q, []string{"ok", "ok", "ok", "full", "full"},
		queueAnswer(t, "a1"), queueMsg(t, "c", 1, "1", closeNS), queueMsg(t, "c", 2, "2", closeNS),
		queueMsg(t, "c", 3, "3", closeNS), queueAnswer(t, "a2"))
	wantTexts(t, drainQueue(t, q), "a1", push("c", 1, "1"), push("c", 2, "2"))
}

func push(channel string, offset uint64, data string) string {
	return fmt.Sprintf(`{"op":"message","channel":%q,"offset":%d,"epoch":"E","data":%s}`, channel, offset, data)
}

func lost(channel string, from, to uint64) string {
	return fmt.Sprintf(`{"op":"lost","channel":%q,"from":%d,"offset":%d,"epoch":"E"}`, channel, from, to)
}

// Drop-oldest: the oldest waiting message of a drop-oldest namespace makes
// room, whatever arrives; answers and close-policy messages stay; the loss
// is reported where the first lost message was, once per run of a
// channel's offsets.
func TestSendQueueDropOldest(t *testing.T) {
	q := newSendQueue(4, true, nil)
	pushAll(t, q, []string{"ok", "ok", "ok", "ok", "dropped 1", "dropped 1", "dropped 1", "dropped 1", "dropped 1"},
		queueAnswer(t, "a1"),
		queueMsg(t, "c", 1, "1", dropNS),
		queueMsg(t, "k", 7, "7", closeNS),
		queueMsg(t, "d", 1, "1", dropNS),
		queueMsg(t, "c", 2, "2", dropNS), // drops c1
		queueAnswer(t, "a2"),             // drops d1
		queueMsg(t, "c", 3, "3", dropNS), // drops c2
		queueMsg(t, "d", 2, "2", dropNS), // drops c3
		queueMsg(t, "c", 4, "4", dropNS), // drops d2
	)
	wantTexts(t, drainQueue(t, q),
		"a1", lost("c", 1, 3), push("k", 7, "7"), lost("d", 1, 2), "a2", push("c", 4, "4"))
}

// With nothing older to drop, the drop-oldest message itself goes, and is
// reported after what was queued before it.
func TestSendQueueDropOldestItself(t *testing.T) {
	q := newSendQueue(2, true, nil)
	pushAll(t, q, []string{"ok", "ok", "dropped 1", "dropped 1", "full"},
		queueAnswer(t, "a1"), queueAnswer(t, "a2"),
		queueMsg(t, "c", 5, "5", dropNS), queueMsg(t, "c", 6, "6", dropNS),
		queueAnswer(t, "a3"))
	wantTexts(t, drainQueue(t, q), "a1", "a2", lost("c", 5, 6))
	// Once written, a marker is done with: the next drop starts another.
	pushAll(t, q, []string{"ok", "ok", "dropped 1"},
		queueMsg(t, "c", 7, "7", dropNS), queueAnswer(t, "a4"), queueMsg(t, "c", 8, "8", dropNS))
	wantTexts(t, drainQueue(t, q), lost("c", 7, 7), "a4", push("c", 8, "8"))
}

// A new epoch starts a new range: offsets of two histories never merge.
func TestSendQueueDropOldestEpochs(t *testing.T) {
	q := newSendQueue(1, true, nil)
	m := queueMsg(t, "c", 1, "1", dropNS)
	m.q.epoch = "F"
	pushAll(t, q, []string{"ok", "dropped 1", "dropped 1"},
		queueMsg(t, "c", 9, "9", dropNS), m, queueMsg(t, "c", 2, "2", dropNS))
	wantTexts(t, drainQueue(t, q), lost("c", 9, 9), `{"op":"lost","channel":"c","from":1,"offset":1,"epoch":"F"}`, push("c", 2, "2"))
}

// A queue that reports nothing (plain chat) drops silently.
func TestSendQueueDropOldestSilent(t *testing.T) {
	q := newSendQueue(1, false, nil)
	pushAll(t, q, []string{"ok", "dropped 1", "dropped 1"},
		queueMsg(t, "c", 1, "1", dropNS), queueMsg(t, "c", 2, "2", dropNS), queueMsg(t, "c", 3, "3", dropNS))
	wantTexts(t, drainQueue(t, q), push("c", 3, "3"))
}

// Conflation keeps the newest waiting message per key, at the end of the
// queue so that offsets stay in order; the key is the channel, or the
// channel and a field of the data.
func TestSendQueueConflate(t *testing.T) {
	q := newSendQueue(3, true, nil)
	pushAll(t, q, []string{"ok", "ok", "ok", "conflated", "conflated", "full"},
		queueMsg(t, "t:a", 1, "1", conflateNS), queueMsg(t, "t:b", 1, "1", conflateNS), queueAnswer(t, "a1"),
		queueMsg(t, "t:a", 2, "2", conflateNS), queueMsg(t, "t:a", 3, "3", conflateNS),
		queueMsg(t, "t:c", 1, "1", conflateNS)) // three keys wait: full
	wantTexts(t, drainQueue(t, q), push("t:b", 1, "1"), "a1", push("t:a", 3, "3"))

	q = newSendQueue(10, true, nil)
	pushAll(t, q, []string{"ok", "ok", "ok", "conflated", "ok", "ok", "conflated", "conflated"},
		queueMsg(t, "all", 1, `{"symbol":"A","p":1}`, symbolNS),
		queueMsg(t, "all", 2, `{"symbol":"B","p":1}`, symbolNS),
		queueMsg(t, "all", 3, `[1]`, symbolNS), // no field: keyed by the channel
		queueMsg(t, "all", 4, `{"symbol":"A","p":2}`, symbolNS),
		queueMsg(t, "all", 5, `{"symbol":7}`, symbolNS),
		queueMsg(t, "all", 6, `{"symbol":"7"}`, symbolNS), // a string, not the number
		queueMsg(t, "all", 7, `{"p":0}`, symbolNS),
		queueMsg(t, "all", 8, `{"symbol":"A","p":3}`, symbolNS),
	)
	wantTexts(t, drainQueue(t, q),
		push("all", 2, `{"symbol":"B","p":1}`), push("all", 5, `{"symbol":7}`), push("all", 6, `{"symbol":"7"}`),
		push("all", 7, `{"p":0}`), push("all", 8, `{"symbol":"A","p":3}`))
}

// A long run of replacements and drops while nothing is written keeps the
// buffer near the queue's size (compaction), and what is written is the
// newest of each key, in order.
func TestSendQueueCompaction(t *testing.T) {
	q := newSendQueue(4, true, nil)
	for i := uint64(1); i <= 10000; i++ {
		ok, _ := q.push(queueMsg(t, fmt.Sprintf("t:%d", i%3), i, "0", conflateNS))
		if !ok {
			t.Fatalf("push %d refused", i)
		}
		if cap(q.buf) > 16 {
			t.Fatalf("after %d pushes the buffer holds %d slots for %d frames", i, cap(q.buf), q.len())
		}
	}
	wantTexts(t, drainQueue(t, q), push("t:2", 9998, "0"), push("t:0", 9999, "0"), push("t:1", 10000, "0"))
	for i := uint64(1); i <= 10000; i++ {
		q.push(queueMsg(t, "d", i, "0", dropNS))
		if cap(q.buf) > 16 {
			t.Fatalf("after %d drops the buffer holds %d slots for %d frames", i, cap(q.buf), q.len())
		}
	}
	wantTexts(t, drainQueue(t, q), lost("d", 1, 9996), push("d", 9997, "0"), push("d", 9998, "0"), push("d", 9999, "0"), push("d", 10000, "0"))
}
