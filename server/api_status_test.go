package server_test

import (
	"net/http"
	"testing"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
)

// A broker failure is answered 500 with code 100, a single publish and a
// batch item alike; a route asked with another method gets 405 and the
// methods it takes.
func TestAPIInternalErrorAndWrongMethod(t *testing.T) {
	broker := failingBroker{pubsub.NewMemoryBroker()}
	t.Cleanup(func() { broker.Close() })
	ts := startServer(t, server.Config{Broker: broker})

	status, hdr, body := ts.do(t, "POST", "/api/publish", "application/json", `{"channel":"bare:fail","data":1}`, nil)
	checkHTTP(t, "publish to a failing broker", status, body, 500, "{\"error\":{\"code\":100,\"message\":\"broker unavailable\"}}\n")
	if got := hdr.Get("Content-Type"); got != "application/json" {
		t.Fatalf("Content-Type %q", got)
	}
	status, _, body = ts.do(t, "POST", "/api/publish", "", `{"messages":[{"channel":"bare:fail","data":1}]}`, nil)
	checkHTTP(t, "batch to a failing broker", status, body, 200, "{\"results\":[{\"error\":{\"code\":100,\"message\":\"broker unavailable\"}}]}\n")

	for _, tc := range []struct{ method, path, allow string }{
		{"GET", "/api/publish", "POST"},
		{"PUT", "/api/publish", "POST"},
		{"POST", "/api/channels", "GET, HEAD"},
		{"DELETE", "/api/channels/news/history", "GET, HEAD"},
		{"POST", "/api/channels/news/presence", "GET, HEAD"},
	} {
		status, hdr, body := ts.do(t, tc.method, tc.path, "", "", nil)
		checkHTTP(t, tc.method+" "+tc.path, status, body, http.StatusMethodNotAllowed, "Method Not Allowed\n")
		if got := hdr.Get("Allow"); got != tc.allow {
			t.Fatalf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}
