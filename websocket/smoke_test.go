package websocket

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSmokeEcho(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &AcceptOptions{Subprotocols: []string{"b", "a"}})
		if err != nil {
			return
		}
		for {
			typ, p, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), typ, p); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &DialOptions{Subprotocols: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Subprotocol() != "b" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	for _, n := range []int{0, 1, 125, 126, 5000, 65536, 1 << 20} {
		msg := bytes.Repeat([]byte("x"), n)
		if err := c.Write(ctx, MessageText, msg); err != nil {
			t.Fatal(err)
		}
		typ, p, err := c.Read(ctx)
		if err != nil || typ != MessageText || !bytes.Equal(p, msg) {
			t.Fatalf("n=%d typ=%v len=%d err=%v", n, typ, len(p), err)
		}
	}
	if err := c.Close(StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
}
