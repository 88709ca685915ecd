package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// TestDuplexJSResubscribeRetry checks, in Chromium against a scripted
// endpoint (/retry/ws), how duplex.js restores subscriptions through a
// failure of the server: a resubscription answered with error 100 is tried
// again after the backoff ("retrying"), until it succeeds and recovers; one
// refused with another code ends; an unsubscribe while an attempt is due
// ends it without a word to the server; a first subscribe answered with 100
// fails.
func TestDuplexJSResubscribeRetry(t *testing.T) {
	requireChromium(t)
	var hp atomic.Pointer[harness] // set once the harness is up, before the browser starts
	var mu sync.Mutex
	conns := map[string]int{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /retry/ws", func(w http.ResponseWriter, r *http.Request) {
		tag := r.URL.Query().Get("tag")
		mu.Lock()
		conns[tag]++
		nth := conns[tag]
		mu.Unlock()
		retryScript(hp.Load(), w, r, tag, nth)
	})
	mux.Handle("/", serveSDK())
	h := newHarness(t, mux)
	hp.Store(h)
	names := []string{"fake-resubscribe-retry", "fake-resubscribe-retry-unsubscribe"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h.run(ctx, "ws=/retry/ws&scenarios="+names[0]+","+names[1])
	h.check(names)
}

// retryScript is the nth connection of the scenario ?script=retry or
// ?script=unsubscribe of duplex_test.html. It records the commands it reads
// for /test/commands; the page checks them.
func retryScript(h *harness, w http.ResponseWriter, r *http.Request, tag string, nth int) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"duplex.v1"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	var cmd struct {
		ID float64 `json:"id"`
	}
	// read reads the next command; answer and fail answer it.
	read := func() bool {
		_, p, err := c.Read(ctx)
		if err != nil {
			return false
		}
		h.mu.Lock()
		h.commands[tag] = append(h.commands[tag], json.RawMessage(append([]byte{}, p...)))
		h.mu.Unlock()
		return json.Unmarshal(p, &cmd) == nil
	}
	send := func(frame string) bool { return c.Write(ctx, websocket.MessageText, []byte(frame)) == nil }
	answer := func(result string) bool {
		return read() && send(fmt.Sprintf(`{"id":%d,"result":%s}`, int64(cmd.ID), result))
	}
	fail := func(code int, msg string) bool {
		return read() && send(fmt.Sprintf(`{"id":%d,"error":{"code":%d,"message":%q}}`, int64(cmd.ID), code, msg))
	}
	message := func(channel string, offset int) bool {
		return send(fmt.Sprintf(`{"op":"message","channel":%q,"offset":%d,"epoch":"e1","data":{"n":%d}}`, channel, offset, offset))
	}
	outage := func(channel string) string {
		return fmt.Sprintf(`redisbroker: history of %q: dial tcp 127.0.0.1:6379: connect: connection refused`, channel)
	}
	first := `{"recovered":false,"offset":0,"epoch":"e1"}`
	drain := func() {
		for read() {
		}
	}

	switch r.URL.Query().Get("script") + "/" + fmt.Sprint(nth) {
	case "retry/1":
		// subscribe rt, subscribe rp, two messages, then a ping never
		// answered: the connection is cut.
		if answer(first) && answer(first) && message("rt", 1) && message("rt", 2) {
			read()
		}
	case "retry/2":
		// The resubscriptions: rt fails (100), rp is refused (105); rt
		// fails again, then recovers 3 and 4 (2 again is dropped).
		if fail(100, outage("rt")) && fail(105, `user "ann" may not subscribe to "rp"`) && fail(100, outage("rt")) &&
			answer(`{"recovered":true,"offset":4,"epoch":"e1"}`) && message("rt", 2) && message("rt", 3) && message("rt", 4) &&
			answer(`{}`) {
			drain()
		}
	case "unsubscribe/1":
		if answer(first) {
			read() // the ping: cut
		}
	case "unsubscribe/2":
		// ru fails (100) and is unsubscribed; a ping; rn's first
		// subscribe fails (100); a ping.
		if fail(100, outage("ru")) && answer(`{}`) && fail(100, outage("rn")) && answer(`{}`) {
			drain()
		}
	}
}
