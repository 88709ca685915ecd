package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// TestServeDemo runs `duplex serve --demo` and subscribes to ticker:ACME
// over /ws: a quote arrives, and clients may not publish there. Without
// --demo the ticker namespace does not exist (error 104).
func TestServeDemo(t *testing.T) {
	subscribe := func(t *testing.T, args ...string) (*websocket.Conn, context.Context, json.RawMessage) {
		_, addr := startServe(t, args...)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t.Cleanup(cancel)
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Subprotocols: []string{"duplex.v1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"id":1,"op":"subscribe","channel":"ticker:ACME"}`)); err != nil {
			t.Fatal(err)
		}
		_, p, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c, ctx, p
	}

	t.Run("on", func(t *testing.T) {
		c, ctx, answer := subscribe(t, "--demo")
		var sub struct {
			ID     int `json:"id"`
			Result *struct {
				Epoch string `json:"epoch"`
			} `json:"result"`
		}
		if err := json.Unmarshal(answer, &sub); err != nil || sub.ID != 1 || sub.Result == nil || sub.Result.Epoch == "" {
			t.Fatalf("subscribe answer %s", answer)
		}
		_, p, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var push struct {
			Op      string `json:"op"`
			Channel string `json:"channel"`
			Data    struct {
				Symbol string  `json:"symbol"`
				Price  float64 `json:"price"`
				TS     float64 `json:"ts"`
			} `json:"data"`
		}
		if err := json.Unmarshal(p, &push); err != nil || push.Op != "message" || push.Channel != "ticker:ACME" ||
			push.Data.Symbol != "ACME" || push.Data.Price < 1 || push.Data.TS <= 0 {
			t.Fatalf("push %s, want a quote of ACME", p)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"id":2,"op":"publish","channel":"ticker:ACME","data":1}`)); err != nil {
			t.Fatal(err)
		}
		for {
			_, p, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ans struct {
				ID    int `json:"id"`
				Error *struct {
					Code int `json:"code"`
				} `json:"error"`
			}
			if json.Unmarshal(p, &ans) == nil && ans.ID == 2 {
				if ans.Error == nil || ans.Error.Code != 105 {
					t.Fatalf("publish to ticker:ACME: %s, want error 105", p)
				}
				break
			}
		}
	})
	t.Run("off", func(t *testing.T) {
		_, _, answer := subscribe(t)
		var sub struct {
			ID    int `json:"id"`
			Error *struct {
				Code int `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(answer, &sub); err != nil || sub.ID != 1 || sub.Error == nil || sub.Error.Code != 104 {
			t.Fatalf("subscribe answer %s, want error 104", answer)
		}
	})
}
