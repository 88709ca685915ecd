package server

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/websocket"
)

// fakeClock is a time source that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// budgetConn is a duplex.v1 connection that checks answers byte for byte.
type budgetConn struct {
	t    *testing.T
	ctx  context.Context
	conn *websocket.Conn
	bad  int // bad commands sent, for distinct ids
	id   int
}

func (c *budgetConn) call(cmd, want string) {
	c.t.Helper()
	if err := c.conn.Write(c.ctx, websocket.MessageText, []byte(cmd)); err != nil {
		c.t.Fatalf("send %s: %v", cmd, err)
	}
	_, p, err := c.conn.Read(c.ctx)
	if err != nil {
		c.t.Fatalf("%s: %v, want %s", cmd, err, want)
	}
	if string(p) != want {
		c.t.Fatalf("%s\ngot  %s\nwant %s", cmd, p, want)
	}
}

// errorCmd sends a command that earns an error answer and checks it.
func (c *budgetConn) errorCmd() {
	c.t.Helper()
	c.id++
	c.call(fmt.Sprintf(`{"id":%d,"op":"bad"}`, c.id), fmt.Sprintf(`{"id":%d,"error":{"code":102,"message":"unknown op \"bad\""}}`, c.id))
}

// errorRun sends n commands that earn error answers, with a good command
// after each, which costs nothing.
func (c *budgetConn) errorRun(n int) {
	c.t.Helper()
	for range n {
		c.errorCmd()
		c.id++
		c.call(fmt.Sprintf(`{"id":%d,"op":"ping"}`, c.id), fmt.Sprintf(`{"id":%d,"result":{}}`, c.id))
	}
}

// overBudget sends one more error command: its answer arrives, then the
// close 1008.
func (c *budgetConn) overBudget() {
	c.t.Helper()
	c.errorCmd()
	_, p, err := c.conn.Read(c.ctx)
	var ce *websocket.CloseError
	if err == nil || !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != closeReasonBadCommands {
		c.t.Fatalf("after the budget: %q %v, want close 1008 %q", p, err, closeReasonBadCommands)
	}
}

// TestErrorBudget drives the error budget with a clock that moves only when
// the test says: a burst of errorBurst error answers, the next one closes
// with 1008; one more error per whole errorRefill elapsed, fractions carried
// over, never more than errorBurst saved up.
func TestErrorBudget(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	hub := pubsub.NewHub(pubsub.Config{Namespaces: DefaultNamespaces()})
	t.Cleanup(func() { hub.Close() })
	srv := httptest.NewServer(&ChannelHandler{Hub: hub, now: clock.now})
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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

	t.Run("burst", func(t *testing.T) {
		c := dial(t)
		c.errorRun(errorBurst)
		c.overBudget()
	})
	t.Run("not refilled before a whole interval", func(t *testing.T) {
		c := dial(t)
		c.errorRun(errorBurst)
		clock.advance(errorRefill - time.Nanosecond)
		c.overBudget()
	})
	t.Run("one per interval", func(t *testing.T) {
		c := dial(t)
		c.errorRun(errorBurst)
		clock.advance(errorRefill)
		c.errorRun(1)
		c.overBudget()
	})
	t.Run("fractions carried over", func(t *testing.T) {
		c := dial(t)
		c.errorRun(errorBurst)
		clock.advance(errorRefill * 3 / 2) // one error, half an interval left
		c.errorRun(1)
		clock.advance(errorRefill / 2) // the other half
		c.errorRun(1)
		c.overBudget()
	})
	t.Run("capped at the burst", func(t *testing.T) {
		c := dial(t)
		clock.advance(time.Hour)
		c.errorRun(errorBurst)
		c.overBudget()
	})
	t.Run("idle connection capped at the burst", func(t *testing.T) {
		c := dial(t)
		c.errorRun(errorBurst / 2)
		clock.advance(time.Hour)
		c.errorRun(errorBurst)
		c.overBudget()
	})
}
