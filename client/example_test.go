package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/server"
)

// Example subscribes to a channel, publishes to it, and reads the message
// back, against a duplex server running in the same process.
func Example() {
	srv := httptest.NewServer(server.New(server.Config{Log: slog.New(slog.DiscardHandler)}).Handler())
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"

	c := client.New(url, &client.Options{User: "alice"})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	reload := func(channel string) { /* fetch the state the channel feeds */ }
	got := make(chan client.Message, 1)
	_, err := c.Subscribe(ctx, "news", func(m client.Message) { got <- m }, &client.SubscribeOptions{
		OnSubscribed: func(ev client.SubscribedEvent) {
			// Back after a reconnection, but what was missed is gone.
			if ev.Resubscribed && !ev.Recovered {
				reload(ev.Channel)
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	pos, err := c.Publish(ctx, "news", map[string]string{"text": "hello"})
	if err != nil {
		fmt.Println(err)
		return
	}
	m := <-got
	fmt.Println(pos.Offset, m.Channel, m.Offset, string(m.Data))
	// Output: 1 news 1 {"text":"hello"}
}

// ExampleError shows how an error answer reads.
func ExampleError() {
	srv := httptest.NewServer(server.New(server.Config{Log: slog.New(slog.DiscardHandler)}).Handler())
	defer srv.Close()
	c := client.New("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, err := c.Publish(ctx, "nowhere:x", 1)
	if e, ok := err.(*client.Error); ok && e.Code == client.CodeUnknownNamespace {
		fmt.Println("refused:", e.Code)
	}
	// Output: refused: 104
}
