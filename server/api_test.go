package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/duplex-ws/duplex/server"
)

const (
	errWrongKey     = "{\"error\":{\"code\":105,\"message\":\"missing or wrong API key (Authorization: apikey \\u003ckey\\u003e)\"}}\n"
	errLoopbackOnly = "{\"error\":{\"code\":105,\"message\":\"no API key is configured, so the API answers loopback clients only\"}}\n"
)

// checkHTTP checks a status and an exact body.
func checkHTTP(t *testing.T, what string, status int, body string, wantStatus int, wantBody string) {
	t.Helper()
	if status != wantStatus || body != wantBody {
		t.Fatalf("%s: got %d %q, want %d %q", what, status, body, wantStatus, wantBody)
	}
}

// With an API key configured, every API route wants "Authorization: apikey
// <key>": a missing or wrong key gets 401, the right one gets through, from
// any address.
func TestAPIKey(t *testing.T) {
	ts := startServer(t, server.Config{APIKey: "s3cret"})
	routes := []struct{ method, path, body string }{
		{"GET", "/api/channels", ""},
		{"GET", "/api/channels/news/presence", ""},
		{"GET", "/api/channels/news/history", ""},
		{"POST", "/api/publish", `{"channel":"news","data":1}`},
	}
	for _, auth := range []string{"", "apikey wrong", "apikey s3cretx", "apikey ", "Bearer s3cret", "s3cret", "apikey  s3cret"} {
		for _, r := range routes {
			h := http.Header{}
			if auth != "" {
				h.Set("Authorization", auth)
			}
			status, hdr, body := ts.do(t, r.method, r.path, "", r.body, h)
			checkHTTP(t, fmt.Sprintf("%s %s with Authorization %q", r.method, r.path, auth), status, body, 401, errWrongKey)
			if got := hdr.Get("WWW-Authenticate"); got != `apikey realm="duplex"` {
				t.Fatalf("WWW-Authenticate %q", got)
			}
			if got := hdr.Get("Content-Type"); got != "application/json" {
				t.Fatalf("Content-Type %q", got)
			}
		}
	}
	key := http.Header{"Authorization": {"apikey s3cret"}}
	status, _, body := ts.do(t, "POST", "/api/publish", "", `{"channel":"news","data":1}`, key)
	if status != 200 || !strings.HasPrefix(body, `{"offset":1,"epoch":"`) {
		t.Fatalf("publish with the key: %d %q", status, body)
	}
	// The scheme is case-insensitive, as HTTP auth schemes are (RFC 9110 §11.1).
	for i, auth := range []string{"APIKEY s3cret", "ApiKey s3cret"} {
		status, _, body := ts.do(t, "POST", "/api/publish", "", `{"channel":"news","data":1}`, http.Header{"Authorization": {auth}})
		if want := fmt.Sprintf(`{"offset":%d,"epoch":"`, i+2); status != 200 || !strings.HasPrefix(body, want) {
			t.Fatalf("publish with %q: %d %q, want 200 %s…", auth, status, body, want)
		}
	}
	status, _, body = ts.do(t, "GET", "/api/channels/news/presence", "", "", key)
	checkHTTP(t, "presence with the key", status, body, 200, "{\"clients\":[]}\n")

	// The key lets a non-loopback client in.
	req := httptest.NewRequest("GET", "/api/channels/news/presence", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	req.Header.Set("Authorization", "apikey s3cret")
	rec := httptest.NewRecorder()
	ts.srv.Handler().ServeHTTP(rec, req)
	checkHTTP(t, "key from 192.0.2.1", rec.Code, rec.Body.String(), 200, "{\"clients\":[]}\n")
}

// Without a key, the API answers loopback clients only: 403 for others.
func TestAPILoopbackOnly(t *testing.T) {
	ts := startServer(t, server.Config{})
	status, _, body := ts.do(t, "GET", "/api/channels", "", "", nil)
	checkHTTP(t, "over 127.0.0.1", status, body, 200, "{\"channels\":[]}\n")

	for _, tc := range []struct {
		remote string
		ok     bool
	}{
		{"127.0.0.1:4000", true},
		{"127.1.2.3:4000", true},
		{"[::1]:4000", true},
		{"[::ffff:127.0.0.1]:4000", true},
		{"192.0.2.1:4000", false},
		{"10.0.0.1:4000", false},
		{"[2001:db8::1]:4000", false},
		{"[::ffff:192.0.2.1]:4000", false},
		{"[::]:4000", false},
		{"0.0.0.0:4000", false},
		{"localhost:4000", false}, // a name, not an address
		{"", false},
	} {
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/api/channels", ""},
			{"POST", "/api/publish", `{"channel":"news","data":1}`},
		} {
			req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
			req.RemoteAddr = tc.remote
			rec := httptest.NewRecorder()
			ts.srv.Handler().ServeHTTP(rec, req)
			if tc.ok {
				if rec.Code != 200 {
					t.Fatalf("%s %s from %q: %d %q, want 200", r.method, r.path, tc.remote, rec.Code, rec.Body)
				}
			} else {
				checkHTTP(t, r.method+" "+r.path+" from "+tc.remote, rec.Code, rec.Body.String(), 403, errLoopbackOnly)
			}
		}
	}
	// The rest of the server is not restricted.
	req := httptest.NewRequest("GET", "/duplex.js", nil)
	req.RemoteAddr = "192.0.2.1:4000"
	rec := httptest.NewRecorder()
	ts.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("/duplex.js from 192.0.2.1: %d", rec.Code)
	}
}

// POST /api/publish: single and batch forms, content types, the body
// limit, and the error statuses.
func TestAPIPublish(t *testing.T) {
	ts := startServer(t, server.Config{Limits: server.Limits{MaxMessageSize: 1024}})
	ctx := testContext(t)
	sub := ts.dial(ctx, t)
	r := sub.subscribe(1, "live:a")

	post := func(contentType, body string) (int, string) {
		t.Helper()
		status, hdr, got := ts.do(t, "POST", "/api/publish", contentType, body, nil)
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("answer's Content-Type %q", ct)
		}
		return status, got
	}
	wantPos := func(off int) string { return fmt.Sprintf("{\"offset\":%d,\"epoch\":%q}\n", off, r.Epoch) }

	// Content types: absent or JSON.
	off := 0
	for _, ct := range []string{"", "application/json", "application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"} {
		off++
		status, body := post(ct, fmt.Sprintf(`{"channel":"live:a","data":{"ct":%q}}`, ct))
		checkHTTP(t, "Content-Type "+ct, status, body, 200, wantPos(off))
		sub.expect(push("live:a", uint64(off), r.Epoch, fmt.Sprintf(`{"ct":%q}`, ct)))
	}
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "json", ";;"} {
		status, body := post(ct, `{"channel":"live:a","data":1}`)
		want := fmt.Sprintf("{\"error\":{\"code\":101,\"message\":\"Content-Type must be application/json, got %s\"}}\n", strings.ReplaceAll(fmt.Sprintf("%q", ct), `"`, `\"`))
		checkHTTP(t, "Content-Type "+ct, status, body, 415, want)
	}

	// The body limit (the server's read limit, 1024 here).
	fill := func(n int) string { // a publish body of exactly n bytes
		head := `{"channel":"live:a","data":"`
		return head + strings.Repeat("z", n-len(head)-2) + `"}`
	}
	status, body := post("", fill(1024))
	off++
	checkHTTP(t, "1024-byte body", status, body, 200, wantPos(off))
	sub.expect(push("live:a", uint64(off), r.Epoch, fill(1024)[len(`{"channel":"live:a","data":`):1023]))
	status, body = post("", fill(1025))
	checkHTTP(t, "1025-byte body", status, body, 413, "{\"error\":{\"code\":101,\"message\":\"body over 1024 bytes\"}}\n")

	// Bad bodies.
	status, body = post("application/json", "{\"channel\":\"live:a\",\"data\":\"\xff\"}")
	checkHTTP(t, "invalid UTF-8", status, body, 400, "{\"error\":{\"code\":101,\"message\":\"body is not valid UTF-8\"}}\n")
	for _, b := range []string{"", "hello", "[1,2]", `"x"`, `{"channel":"live:a","data":1`, `{"channel":"live:a","data":1} {}`, `{"channel":5,"data":1}`} {
		status, body = post("", b)
		if status != 400 || !strings.HasPrefix(body, `{"error":{"code":101,"message":"body must be a JSON object: `) {
			t.Fatalf("body %q: %d %q, want 400 with code 101", b, status, body)
		}
	}
	for _, tc := range []struct{ body, want string }{
		{`{"channel":"live:a"}`, `{"error":{"code":101,"message":"publish needs data (any JSON value)"}}`},
		{`null`, `{"error":{"code":101,"message":"publish needs data (any JSON value)"}}`},
		{`{"channel":"a b","data":1}`, `{"error":{"code":103,"message":"invalid channel name \"a b\": byte 1 (' ') is not a letter, digit or one of _-.:@/="}}`},
		{`{"data":1}`, `{"error":{"code":103,"message":"invalid channel name: empty"}}`},
		{`{"channel":"nope:x","data":1}`, `{"error":{"code":104,"message":"unknown namespace \"nope\" (channel \"nope:x\")"}}`},
		{`{"channel":"live:a","data":1,"messages":[]}`, `{"error":{"code":101,"message":"a batch has only \"messages\""}}`},
	} {
		status, body = post("application/json", tc.body)
		checkHTTP(t, tc.body, status, body, 400, tc.want+"\n")
	}

	// The API publishes where clients may not (feed), and null is a value.
	feed := ts.publishAPI(t, "feed:x", `{"from":"api"}`)
	if feed.Offset != 1 {
		t.Fatalf("feed:x offset %d", feed.Offset)
	}
	off++
	status, body = post("", `{"channel":"live:a","data":null}`)
	checkHTTP(t, "null", status, body, 200, wantPos(off))
	sub.expect(push("live:a", uint64(off), r.Epoch, "null"))

	// A batch answers each message in turn, in order.
	status, body = post("", `{"messages":[{"channel":"live:a","data":"b1"},{"channel":"bad name","data":2},{"channel":"nope:x","data":3},{"channel":"live:a"},{"channel":"feed:x","data":[1]},{"channel":"live:a","data":"b2"}]}`)
	want := fmt.Sprintf("{\"results\":[{\"offset\":%d,\"epoch\":%q},", off+1, r.Epoch) +
		`{"error":{"code":103,"message":"invalid channel name \"bad name\": byte 3 (' ') is not a letter, digit or one of _-.:@/="}},` +
		`{"error":{"code":104,"message":"unknown namespace \"nope\" (channel \"nope:x\")"}},` +
		`{"error":{"code":101,"message":"publish needs data (any JSON value)"}},` +
		fmt.Sprintf("{\"offset\":2,\"epoch\":%q},{\"offset\":%d,\"epoch\":%q}]}\n", feed.Epoch, off+2, r.Epoch)
	checkHTTP(t, "batch", status, body, 200, want)
	sub.expect(push("live:a", uint64(off+1), r.Epoch, `"b1"`))
	sub.expect(push("live:a", uint64(off+2), r.Epoch, `"b2"`))
	status, body = post("", `{"messages":[]}`)
	checkHTTP(t, "empty batch", status, body, 200, "{\"results\":[]}\n")

	// Other methods are not routes.
	status, _, _ = ts.do(t, "GET", "/api/publish", "", "", nil)
	if status != http.StatusMethodNotAllowed {
		t.Fatalf("GET /api/publish: %d, want 405", status)
	}
}

// GET /api/channels, presence and history, and the history command.
func TestAPIChannelsPresenceHistory(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	get := func(path string) (int, string) {
		t.Helper()
		status, _, body := ts.do(t, "GET", path, "", "", nil)
		return status, body
	}
	status, body := get("/api/channels")
	checkHTTP(t, "no channels", status, body, 200, "{\"channels\":[]}\n")

	a, b := ts.dial(ctx, t), ts.dial(ctx, t)
	ra := a.subscribe(1, "live:news")
	b.subscribe(1, "live:news")
	var e string
	for n := 1; n <= 5; n++ {
		e = ts.publishAPI(t, "live:news", fmt.Sprintf(`{"n":%d}`, n)).Epoch
	}
	if e != ra.Epoch {
		t.Fatalf("epoch %q, subscribers saw %q", e, ra.Epoch)
	}
	f := ts.publishAPI(t, "feed:a", `"f1"`)
	ts.publishAPI(t, "feed:a", `"f2"`)
	slash := ts.publishAPI(t, "a/b=c@d", `"s"`)
	status, body = get("/api/channels")
	want := fmt.Sprintf("{\"channels\":[{\"channel\":\"a/b=c@d\",\"offset\":1,\"epoch\":%q,\"subscribers\":0},{\"channel\":\"feed:a\",\"offset\":2,\"epoch\":%q,\"subscribers\":0},{\"channel\":\"live:news\",\"offset\":5,\"epoch\":%q,\"subscribers\":2}]}\n", slash.Epoch, f.Epoch, e)
	checkHTTP(t, "channels", status, body, 200, want)

	msgs := func(from, to int) string {
		var parts []string
		for n := from; n <= to; n++ {
			parts = append(parts, fmt.Sprintf(`{"offset":%d,"data":{"n":%d}}`, n, n))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	for _, tc := range []struct{ query, want string }{
		{"", fmt.Sprintf(`{"messages":%s,"offset":5,"epoch":%q}`, msgs(1, 5), e)},
		{"?limit=0", fmt.Sprintf(`{"messages":%s,"offset":5,"epoch":%q}`, msgs(1, 5), e)},
		{"?limit=2", fmt.Sprintf(`{"messages":%s,"offset":5,"epoch":%q}`, msgs(4, 5), e)},
		{"?limit=9", fmt.Sprintf(`{"messages":%s,"offset":5,"epoch":%q}`, msgs(1, 5), e)},
		{"?since=3&epoch=" + e, fmt.Sprintf(`{"messages":%s,"offset":5,"epoch":%q,"recovered":true}`, msgs(4, 5), e)},
		{"?since=0&epoch=" + e, fmt.Sprintf(`{"messages":%s,"offset":5,"epoch":%q,"recovered":true}`, msgs(1, 5), e)},
		{"?since=3&limit=1&epoch=" + e, fmt.Sprintf(`{"messages":%s,"offset":5,"epoch":%q,"recovered":true}`, msgs(4, 4), e)},
		{"?since=5&epoch=" + e, fmt.Sprintf(`{"messages":[],"offset":5,"epoch":%q,"recovered":true}`, e)},
		{"?since=3&epoch=x" + e, fmt.Sprintf(`{"messages":[],"offset":5,"epoch":%q,"recovered":false}`, e)},
		{"?since=6&epoch=" + e, fmt.Sprintf(`{"messages":[],"offset":5,"epoch":%q,"recovered":false}`, e)},
	} {
		status, body = get("/api/channels/live:news/history" + tc.query)
		checkHTTP(t, "history"+tc.query, status, body, 200, tc.want+"\n")
	}
	// The history command answers the same.
	c := ts.dial(ctx, t)
	c.expectCall(`{"id":1,"op":"history","channel":"live:news","limit":2}`, fmt.Sprintf(`{"id":1,"result":{"messages":%s,"offset":5,"epoch":%q}}`, msgs(4, 5), e))
	c.expectCall(fmt.Sprintf(`{"id":2,"op":"history","channel":"live:news","since":{"offset":2,"epoch":%q}}`, e), fmt.Sprintf(`{"id":2,"result":{"messages":%s,"offset":5,"epoch":%q,"recovered":true}}`, msgs(3, 5), e))
	c.expectCall(`{"id":3,"op":"history","channel":"live:news","since":{"offset":2,"epoch":"old"}}`, fmt.Sprintf(`{"id":3,"result":{"messages":[],"offset":5,"epoch":%q,"recovered":false}}`, e))
	c.expectCall(`{"id":4,"op":"history","channel":"feed:a"}`, fmt.Sprintf(`{"id":4,"result":{"messages":[{"offset":1,"data":"f1"},{"offset":2,"data":"f2"}],"offset":2,"epoch":%q}}`, f.Epoch))

	// A channel name with / is one path segment when escaped.
	status, body = get("/api/channels/a%2Fb=c@d/history")
	checkHTTP(t, "history of a/b=c@d", status, body, 200, fmt.Sprintf("{\"messages\":[{\"offset\":1,\"data\":\"s\"}],\"offset\":1,\"epoch\":%q}\n", slash.Epoch))

	// Presence.
	status, body = get("/api/channels/feed:a/presence")
	checkHTTP(t, "presence of feed:a", status, body, 200, "{\"clients\":[]}\n")

	// Errors.
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/api/channels/live:news/history?limit=-1", 400, `{"error":{"code":101,"message":"limit must be a non-negative integer, got \"-1\""}}`},
		{"/api/channels/live:news/history?limit=x", 400, `{"error":{"code":101,"message":"limit must be a non-negative integer, got \"x\""}}`},
		{"/api/channels/live:news/history?since=-1&epoch=e", 400, `{"error":{"code":101,"message":"since must be an offset (a non-negative integer), got \"-1\""}}`},
		{"/api/channels/live:news/history?since=3", 400, `{"error":{"code":101,"message":"since needs an offset and an epoch"}}`},
		{"/api/channels/a%20b/history", 400, `{"error":{"code":103,"message":"invalid channel name \"a b\": byte 1 (' ') is not a letter, digit or one of _-.:@/="}}`},
		{"/api/channels/a%20b/presence", 400, `{"error":{"code":103,"message":"invalid channel name \"a b\": byte 1 (' ') is not a letter, digit or one of _-.:@/="}}`},
		{"/api/channels/nope:x/history", 400, `{"error":{"code":104,"message":"unknown namespace \"nope\" (channel \"nope:x\")"}}`},
		{"/api/channels/nope:x/presence", 400, `{"error":{"code":104,"message":"unknown namespace \"nope\" (channel \"nope:x\")"}}`},
		{"/api/channels/bare:x/history", 404, `{"error":{"code":109,"message":"history is off in this namespace (channel \"bare:x\")"}}`},
		{"/api/channels/live:news/presence", 404, `{"error":{"code":110,"message":"presence is off in this namespace (channel \"live:news\")"}}`},
		{"/api/channels/bare:x/presence", 404, `{"error":{"code":110,"message":"presence is off in this namespace (channel \"bare:x\")"}}`},
	} {
		status, body = get(tc.path)
		checkHTTP(t, tc.path, status, body, tc.status, tc.want+"\n")
	}

	// When the subscribers leave, the count drops; the history stays.
	a.conn.Close(1000, "")
	b.conn.Close(1000, "")
	c.conn.Close(1000, "")
	status, body = get("/api/channels/live:news/history?limit=1")
	checkHTTP(t, "history after the subscribers left", status, body, 200, fmt.Sprintf("{\"messages\":%s,\"offset\":5,\"epoch\":%q}\n", msgs(5, 5), e))
}
