package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/bridge"
	"github.com/duplex-ws/duplex/websocket"
)

// TestGatewayShutdownLateConnection: a connection whose handler registers
// it only after shutdown took its list of connections (an upgrade in
// flight when the signal came) is still closed with 1001, and shutdown
// waits for its handler, so that its process is killed and reaped before
// the command exits.
func TestGatewayShutdownLateConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g := newGatewayServer(slog.New(slog.DiscardHandler))
	upgraded := make(chan struct{})
	h := &bridge.ExecHandler{
		Command:     []string{"sleep", "30"},
		KillTimeout: 5 * time.Second,
		OnConn: func(c *websocket.Conn) func() {
			// Hold the handler between its upgrade and track until
			// shutdown has taken its list.
			close(upgraded)
			<-g.closing
			return g.track(c)
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- g.serve(sctx, l, g.counted(h)) }()

	c, _, err := websocket.Dial(ctx, "ws://"+l.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	<-upgraded
	stop() // the signal
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	_, _, err = c.Read(rctx)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != "server shutting down" {
		t.Fatalf("read: %v, want close 1001 \"server shutting down\"", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("serve did not return")
	}
	// serve returned only after the handler did: the process was reaped.
	if n := h.Running(); n != 0 {
		t.Fatalf("%d processes still running after shutdown, want 0", n)
	}
	g.mu.Lock()
	active := g.active
	g.mu.Unlock()
	if active != 0 {
		t.Fatalf("%d handlers still running after shutdown, want 0", active)
	}
}
