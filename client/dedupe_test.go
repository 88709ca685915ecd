package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/websocket"
)

// scriptedConn is what a scriptedServer does on one connection: it answers
// connect, answers the subscribe with subscribed (after checking its since
// against wantSince, "" for none), then sends pushes, and ends the
// connection without a close frame once release is closed (never, when
// release is nil).
type scriptedConn struct {
	wantSince  string
	subscribed string
	pushes     []string
	release    chan struct{}
}

// scriptedServer is a duplex.v1 server that follows one script per
// connection, in order, so that a test controls every byte the client
// reads: duplicates, stale offsets, epochs, replays that overlap.
func scriptedServer(t *testing.T, ctx context.Context, script []scriptedConn) *httptest.Server {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{client.Subprotocol}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer ws.CloseNow()
		if i >= len(script) {
			t.Errorf("connection %d: the script has only %d", i+1, len(script))
			return
		}
		sc := script[i]
		// Commands are read on their own goroutine, which also keeps
		// control frames answered.
		cmds := make(chan map[string]json.RawMessage)
		go func() {
			defer close(cmds)
			for {
				_, b, err := ws.Read(context.Background())
				if err != nil {
					return
				}
				var cmd map[string]json.RawMessage
				if err := json.Unmarshal(b, &cmd); err != nil {
					t.Errorf("connection %d: malformed command %s", i+1, b)
					return
				}
				select {
				case cmds <- cmd:
				case <-ctx.Done():
					return
				}
			}
		}()
		next := func(op string) map[string]json.RawMessage {
			select {
			case cmd, ok := <-cmds:
				if !ok {
					t.Errorf("connection %d: ended while waiting for %s", i+1, op)
					return nil
				}
				if got := string(cmd["op"]); got != `"`+op+`"` {
					t.Errorf("connection %d: got op %s, want %q", i+1, got, op)
					return nil
				}
				return cmd
			case <-ctx.Done():
				t.Errorf("connection %d: timed out waiting for %s", i+1, op)
				return nil
			}
		}
		send := func(s string) bool {
			if err := ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
				t.Errorf("connection %d: write %s: %v", i+1, s, err)
				return false
			}
			return true
		}

		cmd := next("connect")
		if cmd == nil || !send(fmt.Sprintf(`{"id":%s,"result":{"client":"c%d","version":"test"}}`, cmd["id"], i+1)) {
			return
		}
		cmd = next("subscribe")
		if cmd == nil {
			return
		}
		if got := string(cmd["channel"]); got != `"news"` {
			t.Errorf("connection %d: subscribe channel %s", i+1, got)
		}
		if got := string(cmd["since"]); got != sc.wantSince {
			t.Errorf("connection %d: subscribe since %q, want %q", i+1, got, sc.wantSince)
		}
		if !send(fmt.Sprintf(`{"id":%s,"result":%s}`, cmd["id"], sc.subscribed)) {
			return
		}
		for _, p := range sc.pushes {
			if !send(p) {
				return
			}
		}
		if sc.release == nil {
			for range cmds {
			}
			return
		}
		select {
		case <-sc.release:
		case <-ctx.Done():
		}
		// Returning cuts the connection (CloseNow): a network failure, as
		// the client sees it, so it reconnects and recovers.
	}))
	t.Cleanup(srv.Close)
	return srv
}

// push is a message push as the server writes it.
func push(offset uint64, epoch, data string) string {
	return fmt.Sprintf(`{"op":"message","channel":"news","offset":%d,"epoch":%q,"data":%s}`, offset, epoch, data)
}

// TestDedupeByOffset feeds the client duplicates, stale offsets, a new
// epoch whose offsets start over, and a replay after a reconnection that
// overlaps what was delivered: the handler sees each message once, in
// order, and the new epoch's messages from offset 1.
func TestDedupeByOffset(t *testing.T) {
	ctx := testContext(t)
	release := make(chan struct{})
	srv := scriptedServer(t, ctx, []scriptedConn{
		{
			subscribed: `{"recovered":false,"offset":0,"epoch":"A"}`,
			pushes: []string{
				push(1, "A", `"a1"`),
				push(2, "A", `"a2"`),
				push(2, "A", `"a2 again"`),  // duplicate
				push(1, "A", `"a1 again"`),  // stale
				push(3, "A", `"a3"`),        //
				push(1, "B", `"b1"`),        // history lost: a new epoch starts over at 1
				push(2, "B", `"b2"`),        //
				push(1, "B", `"b1 again"`),  // stale in the new epoch
				push(2, "B", `"b2 again"`),  // duplicate in the new epoch
				push(3, "B", `"b3"`),        //
				push(3, "B", `"b3 again"`),  // duplicate, last on this connection
				push(0, "B", `"b0 stale"`),  // below any offset
				push(4, "B", `"b4 before"`), // delivered: the last one here
			},
			release: release,
		},
		{
			// The client resumes from the last message delivered; the
			// server's replay overlaps it.
			wantSince:  `{"offset":4,"epoch":"B"}`,
			subscribed: `{"recovered":true,"offset":6,"epoch":"B"}`,
			pushes: []string{
				push(3, "B", `"b3 replayed"`),
				push(4, "B", `"b4 replayed"`),
				push(5, "B", `"b5"`),
				push(5, "B", `"b5 again"`),
				push(6, "B", `"b6"`),
				push(2, "B", `"b2 late"`),
				push(7, "B", `"b7"`),
			},
		},
	})

	r := newRecorder()
	c := newClient(t, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", r, nil)
	if _, err := c.Subscribe(ctx, "news", r.onMessage, r.subOpts()); err != nil {
		t.Fatal(err)
	}
	ev := recv(t, r.subs, "subscribed")
	if ev.Resubscribed || ev.Recovered || ev.Position != (client.Position{Offset: 0, Epoch: "A"}) {
		t.Fatalf("first subscribed event %+v", ev)
	}
	want := []struct {
		offset uint64
		epoch  string
		data   string
	}{
		{1, "A", `"a1"`},
		{2, "A", `"a2"`},
		{3, "A", `"a3"`},
		{1, "B", `"b1"`},
		{2, "B", `"b2"`},
		{3, "B", `"b3"`},
		{4, "B", `"b4 before"`},
	}
	for _, w := range want {
		expectMessage(t, recv(t, r.msgs, "message"), "news", w.offset, w.epoch, w.data)
	}
	close(release)

	ev = recv(t, r.subs, "resubscribed")
	if !ev.Resubscribed || !ev.Recovered || ev.Err != nil || ev.Position != (client.Position{Offset: 6, Epoch: "B"}) {
		t.Fatalf("second subscribed event %+v", ev)
	}
	for _, w := range []struct {
		offset uint64
		epoch  string
		data   string
	}{
		{5, "B", `"b5"`},
		{6, "B", `"b6"`},
		{7, "B", `"b7"`}, // the last push: every one before it was judged
	} {
		expectMessage(t, recv(t, r.msgs, "message"), "news", w.offset, w.epoch, w.data)
	}
}
