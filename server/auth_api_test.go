package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/duplex-ws/duplex/server"
)

// TestAPIKeys: several keys, each limited or not, beside the single key:
// the right key gets through, a wrong one 401, a key used beyond its
// operations or channels 403 with code 105 and a message naming the key.
func TestAPIKeys(t *testing.T) {
	const (
		adminKey  = "admin-0123456789abcdef"
		feedKey   = "feed-0123456789abcdef"
		readerKey = "reader-0123456789abcdef"
	)
	ts := startServer(t, server.Config{
		APIKey: "s3cret",
		APIKeys: []server.APIKey{
			{Name: "admin", Key: adminKey},
			{Name: "feed", Key: feedKey, Ops: []string{server.APIOpPublish}, Channels: []string{"live:*"}},
			{Name: "reader", Key: readerKey, Ops: []string{server.APIOpChannels, server.APIOpHistory}, Channels: []string{"small:*", "live:a"}},
		},
	})
	as := func(key string) http.Header { return http.Header{"Authorization": {"apikey " + key}} }
	publish := func(key, channel string) (int, string) {
		status, _, body := ts.do(t, "POST", "/api/publish", "", fmt.Sprintf(`{"channel":%q,"data":1}`, channel), as(key))
		return status, body
	}

	// The right keys.
	for i, key := range []string{"s3cret", adminKey, feedKey} {
		status, body := publish(key, "live:a")
		if want := fmt.Sprintf(`{"offset":%d,"epoch":"`, i+1); status != 200 || !strings.HasPrefix(body, want) {
			t.Fatalf("publish with key %d: %d %q", i, status, body)
		}
	}
	publish(adminKey, "small:x")
	// Wrong keys: a prefix, a longer one, another key's name.
	for _, key := range []string{"feed-0123456789abcde", feedKey + "0", "feed", ""} {
		status, body := publish(key, "live:a")
		checkHTTP(t, "key "+key, status, body, 401, errWrongKey)
	}

	// Operations.
	status, _, body := ts.do(t, "GET", "/api/channels", "", "", as(feedKey))
	checkHTTP(t, "feed lists channels", status, body, 403, "{\"error\":{\"code\":105,\"message\":\"API key \\\"feed\\\" may not use channels\"}}\n")
	status, _, body = ts.do(t, "GET", "/api/channels/live:a/presence", "", "", as(readerKey))
	checkHTTP(t, "reader asks presence", status, body, 403, "{\"error\":{\"code\":105,\"message\":\"API key \\\"reader\\\" may not use presence\"}}\n")
	status, body = publish(readerKey, "small:x")
	checkHTTP(t, "reader publishes", status, body, 403, "{\"error\":{\"code\":105,\"message\":\"API key \\\"reader\\\" may not use publish\"}}\n")

	// Channels.
	status, body = publish(feedKey, "small:x")
	checkHTTP(t, "feed publishes outside live:*", status, body, 403, "{\"error\":{\"code\":105,\"message\":\"API key \\\"feed\\\" may not publish to \\\"small:x\\\"\"}}\n")
	status, body = publish(feedKey, "bad name")
	checkHTTP(t, "feed publishes to an invalid name", status, body, 400, "{\"error\":{\"code\":103,\"message\":\"invalid channel name \\\"bad name\\\": byte 3 (' ') is not a letter, digit or one of _-.:@/=\"}}\n")
	status, _, body = ts.do(t, "POST", "/api/publish", "", `{"messages":[{"channel":"live:b","data":1},{"channel":"chat:x","data":2}]}`, as(feedKey))
	if status != 200 || !strings.HasPrefix(body, `{"results":[{"offset":1,"epoch":"`) || !strings.HasSuffix(body, "},{\"error\":{\"code\":105,\"message\":\"API key \\\"feed\\\" may not publish to \\\"chat:x\\\"\"}}]}\n") {
		t.Fatalf("batch: %d %q", status, body)
	}
	status, _, body = ts.do(t, "GET", "/api/channels/live:b/history", "", "", as(readerKey))
	checkHTTP(t, "reader reads live:b", status, body, 403, "{\"error\":{\"code\":105,\"message\":\"API key \\\"reader\\\" may not read \\\"live:b\\\"\"}}\n")
	status, _, body = ts.do(t, "GET", "/api/channels/small:x/history", "", "", as(readerKey))
	if status != 200 || !strings.HasPrefix(body, `{"messages":[{"offset":1,"data":1}],"offset":1,"epoch":"`) {
		t.Fatalf("reader reads small:x: %d %q", status, body)
	}
	// The channel list shows a limited key its channels only.
	status, _, body = ts.do(t, "GET", "/api/channels", "", "", as(readerKey))
	if status != 200 || !strings.Contains(body, `"channel":"live:a"`) || !strings.Contains(body, `"channel":"small:x"`) || strings.Contains(body, `"channel":"live:b"`) {
		t.Fatalf("reader lists: %d %q", status, body)
	}
	status, _, body = ts.do(t, "GET", "/api/channels", "", "", as(adminKey))
	if status != 200 || !strings.Contains(body, `"channel":"live:b"`) {
		t.Fatalf("admin lists: %d %q", status, body)
	}
}
