package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/websocket"
)

// stepConn is one connection of a stepServer, as its script sees it.
type stepConn struct {
	t    *testing.T
	n    int // 1 for the first connection
	ctx  context.Context
	ws   *websocket.Conn
	cmds chan map[string]json.RawMessage
}

// next returns the next command, which must be op (and, when channel is
// not "", on channel with since, "" for none); nil after a failure
// reported.
func (c *stepConn) next(op, channel, since string) map[string]json.RawMessage {
	c.t.Helper()
	select {
	case cmd, ok := <-c.cmds:
		if !ok {
			c.t.Errorf("connection %d: ended while waiting for %s", c.n, op)
			return nil
		}
		if got := string(cmd["op"]); got != `"`+op+`"` {
			c.t.Errorf("connection %d: got %s, want op %q %s since %s", c.n, cmdString(cmd), op, channel, since)
			return nil
		}
		if channel != "" && (string(cmd["channel"]) != `"`+channel+`"` || string(cmd["since"]) != since) {
			c.t.Errorf("connection %d: got %s, want a subscribe to %q since %q", c.n, cmdString(cmd), channel, since)
			return nil
		}
		return cmd
	case <-c.ctx.Done():
		c.t.Errorf("connection %d: timed out waiting for %s", c.n, op)
		return nil
	}
}

func cmdString(cmd map[string]json.RawMessage) string {
	b, _ := json.Marshal(cmd)
	return string(b)
}

// send writes one message.
func (c *stepConn) send(s string) bool {
	if err := c.ws.Write(c.ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Errorf("connection %d: write %s: %v", c.n, s, err)
		return false
	}
	return true
}

// answer answers cmd with result, or with an error when code is not 0.
func (c *stepConn) answer(cmd map[string]json.RawMessage, result string, code int, msg string) bool {
	if cmd == nil {
		return false
	}
	if code != 0 {
		return c.send(fmt.Sprintf(`{"id":%s,"error":{"code":%d,"message":%q}}`, cmd["id"], code, msg))
	}
	return c.send(fmt.Sprintf(`{"id":%s,"result":%s}`, cmd["id"], result))
}

// stepServer is a duplex.v1 server that runs script[i] on its i-th
// connection (after answering connect) and cuts the connection, without a
// close frame, when the script returns.
func stepServer(t *testing.T, ctx context.Context, script []func(*stepConn)) *httptest.Server {
	var count atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(count.Add(1))
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{client.Subprotocol}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer ws.CloseNow()
		if n > len(script) {
			t.Errorf("connection %d: the script has only %d", n, len(script))
			return
		}
		c := &stepConn{t: t, n: n, ctx: ctx, ws: ws, cmds: make(chan map[string]json.RawMessage)}
		go func() {
			defer close(c.cmds)
			for {
				_, b, err := ws.Read(context.Background())
				if err != nil {
					return
				}
				var cmd map[string]json.RawMessage
				if err := json.Unmarshal(b, &cmd); err != nil {
					t.Errorf("connection %d: malformed command %s", n, b)
					return
				}
				select {
				case c.cmds <- cmd:
				case <-ctx.Done():
					return
				}
			}
		}()
		if !c.answer(c.next("connect", "", ""), fmt.Sprintf(`{"client":"c%d","version":"test"}`, n), 0, "") {
			return
		}
		script[n-1](c)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// newsPush is a message push of the channel.
func newsPush(channel string, offset uint64) string {
	return fmt.Sprintf(`{"op":"message","channel":%q,"offset":%d,"epoch":"A","data":"m%d"}`, channel, offset, offset)
}

// eventLines subscribes to channel and sends what the application sees
// of it, as lines, to the returned channel.
func eventLines(t *testing.T, ctx context.Context, c *client.Client, channel string, minBackoff, maxBackoff time.Duration) (*client.Subscription, chan string, error) {
	lines := make(chan string, 100)
	sub, err := c.Subscribe(ctx, channel, func(m client.Message) {
		lines <- fmt.Sprintf("message %d@%s %s", m.Offset, m.Epoch, m.Data)
	}, &client.SubscribeOptions{OnSubscribed: func(ev client.SubscribedEvent) {
		if ev.Channel != channel {
			t.Errorf("an event of %q on the subscription of %q", ev.Channel, channel)
		}
		if ev.Retrying && (ev.RetryIn < minBackoff || ev.RetryIn > maxBackoff) {
			t.Errorf("RetryIn %v, want %v..%v", ev.RetryIn, minBackoff, maxBackoff)
		}
		if !ev.Retrying && ev.RetryIn != 0 {
			t.Errorf("RetryIn %v without Retrying", ev.RetryIn)
		}
		lines <- fmt.Sprintf("subscribed resubscribed=%t recovered=%t at %d@%s retrying=%t err=%v", ev.Resubscribed, ev.Recovered, ev.Position.Offset, ev.Position.Epoch, ev.Retrying, ev.Err)
	}})
	return sub, lines, err
}

// expectLines reads want from lines, in order.
func expectLines(t *testing.T, lines chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := recv(t, lines, w); got != w {
			t.Fatalf("got  %s\nwant %s", got, w)
		}
	}
}

// noMoreLines checks that nothing else was seen.
func noMoreLines(t *testing.T, lines chan string) {
	t.Helper()
	select {
	case l := <-lines:
		t.Fatalf("unexpected %s", l)
	default:
	}
}

const (
	outage = "redisbroker: history of \"news\": dial tcp 127.0.0.1:6379: connect: connection refused"
	denied = "user \"ann\" may not subscribe to \"perm\""
)

// TestResubscribeRetriesServerFailure: after a reconnection, the server
// fails to restore a subscription (error 100, its broker is down): the
// subscription stays, OnSubscribed is told each failure with Retrying and
// RetryIn within the backoff, and the client subscribes again, on the same
// connection, from the same position, until the server accepts; the
// messages missed meanwhile then follow, once each. When the connection
// drops while an attempt is due, the new connection subscribes at once,
// and the pending attempt sends nothing more. A refusal (105) on the same
// reconnection still ends the other subscription, which no connection
// asks for again.
func TestResubscribeRetriesServerFailure(t *testing.T) {
	ctx := testContext(t)
	const minB, maxB = 5 * time.Millisecond, 50 * time.Millisecond
	cut1 := make(chan struct{})
	srv := stepServer(t, ctx, []func(*stepConn){
		func(c *stepConn) {
			if !c.answer(c.next("subscribe", "news", ""), `{"recovered":false,"offset":0,"epoch":"A"}`, 0, "") ||
				!c.answer(c.next("subscribe", "perm", ""), `{"recovered":false,"offset":0,"epoch":"A"}`, 0, "") ||
				!c.send(newsPush("news", 1)) || !c.send(newsPush("news", 2)) {
				return
			}
			select {
			case <-cut1:
			case <-ctx.Done():
			}
		},
		func(c *stepConn) {
			// The two subscriptions come back in either order.
			for range 2 {
				cmd := c.next("subscribe", "", "")
				if cmd == nil {
					return
				}
				switch ch, since := string(cmd["channel"]), string(cmd["since"]); {
				case ch == `"news"` && since == `{"offset":2,"epoch":"A"}`:
					c.answer(cmd, "", 100, outage)
				case ch == `"perm"` && since == `{"offset":0,"epoch":"A"}`:
					c.answer(cmd, "", 105, denied)
				default:
					t.Errorf("connection 2: %s", cmdString(cmd))
					return
				}
			}
			// The attempt after the backoff, on the same connection.
			if !c.answer(c.next("subscribe", "news", `{"offset":2,"epoch":"A"}`), "", 100, outage) {
				return
			}
			// The connection drops while the next attempt is due.
		},
		func(c *stepConn) {
			if !c.answer(c.next("subscribe", "news", `{"offset":2,"epoch":"A"}`), `{"recovered":true,"offset":4,"epoch":"A"}`, 0, "") ||
				!c.send(newsPush("news", 2)) || !c.send(newsPush("news", 3)) || !c.send(newsPush("news", 4)) {
				return
			}
			c.answer(c.next("ping", "", ""), `{}`, 0, "")
			for range c.cmds {
			}
		},
	})
	r := newRecorder()
	c := newClient(t, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", r, &client.Options{MinBackoff: minB, MaxBackoff: maxB})
	news, newsLines, err := eventLines(t, ctx, c, "news", minB, maxB)
	if err != nil {
		t.Fatal(err)
	}
	_, permLines, err := eventLines(t, ctx, c, "perm", minB, maxB)
	if err != nil {
		t.Fatal(err)
	}
	expectLines(t, newsLines,
		"subscribed resubscribed=false recovered=false at 0@A retrying=false err=<nil>",
		`message 1@A "m1"`,
		`message 2@A "m2"`,
	)
	expectLines(t, permLines, "subscribed resubscribed=false recovered=false at 0@A retrying=false err=<nil>")
	close(cut1)
	failed := "subscribed resubscribed=true recovered=false at 2@A retrying=true err=duplex: error 100: " + outage
	expectLines(t, newsLines,
		failed, // on connection 2
		failed, // the attempt after the backoff, on connection 2
		"subscribed resubscribed=true recovered=true at 4@A retrying=false err=<nil>", // on connection 3
		`message 3@A "m3"`,
		`message 4@A "m4"`,
	)
	expectLines(t, permLines, "subscribed resubscribed=true recovered=false at 0@A retrying=false err=duplex: error 105: "+denied)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if p := news.Position(); p != (client.Position{Offset: 4, Epoch: "A"}) {
		t.Fatalf("position %+v, want 4@A", p)
	}
	noMoreLines(t, newsLines)
	noMoreLines(t, permLines)
	for _, want := range []client.State{client.StateConnecting, client.StateConnected, client.StateDisconnected, client.StateConnecting, client.StateConnected, client.StateDisconnected, client.StateConnecting, client.StateConnected} {
		if got := recv(t, r.states, "state "+want.String()).state; got != want {
			t.Fatalf("state %v, want %v", got, want)
		}
	}
}

// TestResubscribeRetryEnds: a subscription the client is about to
// subscribe again after a server failure ends on Unsubscribe without a
// word to the server, and no attempt is sent afterwards; Close stops the
// attempts of the others. A first Subscribe answered with error 100 is not
// retried: it returns the *Error, which says it is Retryable.
func TestResubscribeRetryEnds(t *testing.T) {
	ctx := testContext(t)
	const minB, maxB = 20 * time.Millisecond, 40 * time.Millisecond
	cut1 := make(chan struct{})
	done := make(chan struct{})
	srv := stepServer(t, ctx, []func(*stepConn){
		func(c *stepConn) {
			if !c.answer(c.next("subscribe", "news", ""), `{"recovered":false,"offset":0,"epoch":"A"}`, 0, "") {
				return
			}
			select {
			case <-cut1:
			case <-ctx.Done():
			}
		},
		func(c *stepConn) {
			if !c.answer(c.next("subscribe", "news", `{"offset":0,"epoch":"A"}`), "", 100, outage) {
				return
			}
			// After the Unsubscribe: no attempt, the ping, a new
			// Subscribe refused with 100, a ping.
			if !c.answer(c.next("ping", "", ""), `{}`, 0, "") ||
				!c.answer(c.next("subscribe", "other", ""), "", 100, "redisbroker: subscribe to \"other\": connection refused") ||
				!c.answer(c.next("ping", "", ""), `{}`, 0, "") {
				return
			}
			for cmd := range c.cmds {
				t.Errorf("connection 2: unexpected %s", cmdString(cmd))
			}
			close(done)
		},
	})
	c := newClient(t, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil, &client.Options{MinBackoff: minB, MaxBackoff: maxB})
	news, lines, err := eventLines(t, ctx, c, "news", minB, maxB)
	if err != nil {
		t.Fatal(err)
	}
	expectLines(t, lines, "subscribed resubscribed=false recovered=false at 0@A retrying=false err=<nil>")
	close(cut1)
	expectLines(t, lines, "subscribed resubscribed=true recovered=false at 0@A retrying=true err=duplex: error 100: "+outage)
	if err := news.Unsubscribe(ctx); err != nil {
		t.Fatalf("Unsubscribe while retrying: %v", err)
	}
	// An attempt would be due within maxB: give it three times that to
	// show up before the ping (a window to observe nothing, not a
	// synchronization).
	time.Sleep(3 * maxB)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.Subscribe(ctx, "other", nil, nil)
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeInternal || !e.Retryable() {
		t.Fatalf("first Subscribe answered with 100: %v, want a Retryable *Error 100", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{101, 103, 104, 105, 107, 108, 111} {
		if (&client.Error{Code: code}).Retryable() {
			t.Errorf("error %d is Retryable", code)
		}
	}
	c.Close()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the server did not see the connection end")
	}
	noMoreLines(t, lines)
}
