package server

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/redistest"
	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/pubsub/redisbroker"
	"github.com/duplex-ws/duplex/websocket"
)

// TestErrorBudgetBrokerOutage: while the broker (a real redis-server,
// stopped) fails, a connection may send as many commands that need it as
// it likes: each is answered with error 100, which is the server's fault
// and costs the client nothing, so the connection stays open. The budget
// still closes a connection that sends bad commands with 1008, whether or
// not they come among broker failures, after exactly errorBurst of them
// (the clock stands still: nothing is refilled).
func TestErrorBudgetBrokerOutage(t *testing.T) {
	rs := redistest.Start(t)
	b, err := redisbroker.Dial(rs.URL(), redisbroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	hub := pubsub.NewHub(pubsub.Config{Broker: b, Namespaces: DefaultNamespaces()})
	t.Cleanup(func() { hub.Close() })
	srv := httptest.NewServer(&ChannelHandler{Hub: hub, now: clock.now})
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	dial := func(t *testing.T) *budgetConn {
		t.Helper()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return &budgetConn{t: t, ctx: ctx, conn: c}
	}

	rs.Stop()
	refused := "dial tcp " + rs.Addr() + ": connect: connection refused"
	for deadline := time.Now().Add(15 * time.Second); ; {
		err := b.Ready()
		if err != nil && err.Error() == "redisbroker: redis unreachable: "+refused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker's Ready is %v 15s after Redis stopped, want unreachable: %s", err, refused)
		}
		time.Sleep(20 * time.Millisecond) // the poll's period, not a synchronization
	}

	// brokerFailure sends a command that needs Redis, cycling through
	// publish, subscribe, history and presence, and checks its error 100.
	brokerFailure := func(c *budgetConn) {
		t.Helper()
		c.id++
		cmds := []struct{ cmd, msg string }{
			{`{"id":%d,"op":"publish","channel":"live","data":{"n":1}}`, `redisbroker: publish to "live": `},
			{`{"id":%d,"op":"subscribe","channel":"live"}`, `redisbroker: subscribe to "live": `},
			{`{"id":%d,"op":"history","channel":"live"}`, `redisbroker: history of "live": `},
			{`{"id":%d,"op":"presence","channel":"live"}`, `redisbroker: presence of "live": `},
		}
		tc := cmds[c.id%len(cmds)]
		c.call(fmt.Sprintf(tc.cmd, c.id), fmt.Sprintf(`{"id":%d,"error":{"code":100,"message":%q}}`, c.id, tc.msg+refused))
	}
	ping := func(c *budgetConn) {
		t.Helper()
		c.id++
		c.call(fmt.Sprintf(`{"id":%d,"op":"ping"}`, c.id), fmt.Sprintf(`{"id":%d,"result":{}}`, c.id))
	}

	t.Run("broker failures cost nothing", func(t *testing.T) {
		c := dial(t)
		for range 3 * errorBurst {
			brokerFailure(c)
		}
		ping(c)
		// The whole budget is still there for bad commands.
		for range errorBurst {
			c.errorCmd()
		}
		ping(c)
		c.overBudget()
	})
	t.Run("bad commands among broker failures", func(t *testing.T) {
		c := dial(t)
		for range errorBurst {
			brokerFailure(c)
			c.errorCmd()
			brokerFailure(c)
		}
		ping(c)
		c.overBudget()
	})
}
