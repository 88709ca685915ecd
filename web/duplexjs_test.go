package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/web"
	"github.com/duplex-ws/duplex/websocket"
)

// The browser tests run testdata/duplex_test.html in Debian's headless
// Chromium, driven by the interop tests' launcher (playwright-core). The page
// imports /duplex.js, runs the scenarios named in its query one after the
// other, and posts each one's verdict to /test/result; the Go side serves the
// page, the endpoint under test, and the actions a page cannot do itself
// (publishing over the HTTP API, cutting TCP connections).
const (
	chromiumPath = "/usr/bin/chromium"
	launcher     = "../interop/node/browser.js"
	installHint  = "bash scripts/install-test-deps.sh (from the repository root)"
	testPage     = "testdata/duplex_test.html"
)

// requireChromium skips the test when Chromium, node or playwright-core is
// missing; under CI=true it fails instead.
func requireChromium(t *testing.T) {
	t.Helper()
	var missing string
	if _, err := os.Stat(chromiumPath); err != nil {
		missing = chromiumPath + " not found (Debian package chromium)"
	} else if _, err := exec.LookPath("node"); err != nil {
		missing = "node not found on PATH (Debian package nodejs)"
	} else if _, err := os.Stat("../interop/node/node_modules/playwright-core/package.json"); err != nil {
		missing = "interop/node/node_modules/playwright-core not found (npm ci in interop/node)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("headless Chromium is not usable (%s); with CI=true this fails instead of skipping; install it with: %s", missing, installHint)
	}
	t.Skipf("headless Chromium is not usable (%s); install it with: %s", missing, installHint)
}

type connKey struct{}

// scenarioResult is what the page posts for each scenario.
type scenarioResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

// harness is the HTTP server the page talks to: the handler under test plus
// the /test/ endpoints.
type harness struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	conns    map[string][]net.Conn        // WebSocket connections by the tag in their URL
	commands map[string][]json.RawMessage // commands the fake endpoint read, by tag
	results  map[string]scenarioResult
}

// newHarness serves the test page at /, the harness's endpoints under
// /test/, the fake channel endpoint at /fake/ws, and everything else with
// app. It records the TCP connection of each /ws and /fake/ws request.
func newHarness(t *testing.T, app http.Handler) *harness {
	h := &harness{
		t:        t,
		conns:    map[string][]net.Conn{},
		commands: map[string][]json.RawMessage{},
		results:  map[string]scenarioResult{},
	}
	page, err := os.ReadFile(testPage)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent) // no 404 in the browser's console
	})
	mux.HandleFunc("POST /test/result", h.result)
	mux.HandleFunc("POST /test/publish", h.publish)
	mux.HandleFunc("POST /test/kill", h.kill)
	mux.HandleFunc("GET /test/count", h.count)
	mux.HandleFunc("GET /test/commands", h.listCommands)
	mux.HandleFunc("GET /fake/ws", h.fake)
	mux.Handle("/", app)
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" || r.URL.Path == "/fake/ws" {
			tag := r.URL.Query().Get("tag")
			h.mu.Lock()
			h.conns[tag] = append(h.conns[tag], r.Context().Value(connKey{}).(net.Conn))
			h.mu.Unlock()
		}
		mux.ServeHTTP(w, r)
	}))
	h.srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	return h
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (h *harness) result(w http.ResponseWriter, r *http.Request) {
	var res scenarioResult
	if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.results[res.Name] = res
	h.mu.Unlock()
	writeJSON(w, struct{}{})
}

// publishRange is the body of /test/publish and /test/kill: publish
// {"n":i,"text":"…"} for i from From to To over POST /api/publish.
type publishRange struct {
	Channel  string `json:"channel"`
	From, To int
}

// publishAPI publishes over the server's HTTP API and returns the offsets.
func (h *harness) publishAPI(p publishRange) ([]int64, error) {
	var offsets []int64
	for i := p.From; i <= p.To && p.Channel != ""; i++ {
		body, _ := json.Marshal(map[string]any{"channel": p.Channel, "data": map[string]any{"n": i, "text": fmt.Sprintf("message %d é ✓", i)}})
		resp, err := http.Post(h.srv.URL+"/api/publish", "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			Offset int64  `json:"offset"`
			Epoch  string `json:"epoch"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Epoch == "" {
			return nil, fmt.Errorf("POST /api/publish %s: %s %s", body, resp.Status, b)
		}
		offsets = append(offsets, out.Offset)
	}
	return offsets, nil
}

func (h *harness) publish(w http.ResponseWriter, r *http.Request) {
	var p publishRange
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	offsets, err := h.publishAPI(p)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]any{"offsets": offsets})
}

// kill closes the TCP connections of the WebSocket requests tagged
// ?tag=..., without a closing handshake, then publishes the body's range
// (while the page's client is away).
func (h *harness) kill(w http.ResponseWriter, r *http.Request) {
	var p publishRange
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tag := r.URL.Query().Get("tag")
	h.mu.Lock()
	conns := h.conns[tag]
	h.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	offsets, err := h.publishAPI(p)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]any{"killed": len(conns), "offsets": offsets})
}

func (h *harness) count(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	n := len(h.conns[r.URL.Query().Get("tag")])
	h.mu.Unlock()
	writeJSON(w, map[string]any{"connections": n})
}

func (h *harness) listCommands(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	cmds := append([]json.RawMessage{}, h.commands[r.URL.Query().Get("tag")]...)
	h.mu.Unlock()
	writeJSON(w, cmds)
}

// run opens the page in Chromium with the given query and returns once the
// page is done. The launcher exits 1 when a scenario failed; check says
// which, so only a launcher that ran out of time fails the test here.
func (h *harness) run(ctx context.Context, query string) {
	h.t.Helper()
	cmd := exec.CommandContext(ctx, "node", launcher, h.srv.URL+"/?"+query)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	h.t.Logf("browser (exit: %v):\n%s", err, out)
	if ctx.Err() != nil {
		h.t.Fatalf("the browser did not finish in time: %v", ctx.Err())
	}
}

// check reports each scenario's verdict as a subtest.
func (h *harness) check(names []string) {
	h.t.Helper()
	for _, name := range names {
		h.t.Run(name, func(t *testing.T) {
			h.mu.Lock()
			res, ok := h.results[name]
			h.mu.Unlock()
			if !ok {
				t.Fatalf("the page sent no verdict for %s", name)
			}
			if !res.OK {
				t.Fatalf("%s", res.Error)
			}
		})
	}
}

// serveSDK serves the embedded duplex.js and duplex.d.ts, as the fake
// endpoint's tests need no real server.
func serveSDK() http.Handler {
	sub, _ := fs.Sub(web.FS, ".")
	return http.FileServerFS(sub)
}

// TestDuplexJSFakeServer checks the SDK's own behaviour against a scripted
// endpoint (/fake/ws): connect before subscribe, dedupe by offset, the
// reconnection policy for each close code, resubscription with `since`,
// pending calls that reject when the connection drops, and lost pushes.
func TestDuplexJSFakeServer(t *testing.T) {
	requireChromium(t)
	h := newHarness(t, serveSDK())
	names := []string{"fake-dedupe-connect", "fake-lost", "fake-lost-epoch"}
	for _, code := range []int{1001, 1005, 1006, 1009, 1011, 1012, 1013, 1014, 4000} {
		names = append(names, "fake-reconnect-"+strconv.Itoa(code))
	}
	for _, code := range []int{1000, 1002, 1003, 1007, 1008, 1010} {
		names = append(names, "fake-final-"+strconv.Itoa(code))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h.run(ctx, "ws=/fake/ws&scenarios="+strings.Join(names, ","))
	h.check(names)
}

// fake is a scripted duplex.v1 endpoint. ?script=dedupe answers connect and
// subscribe, then pushes duplicates and out-of-place frames; ?script=close
// with ?code=N answers subscribe and a message, then closes with N (1006:
// cuts the TCP connection; 1005: a close frame without a code) when the
// next command arrives, and behaves on the next connection; ?script=lost
// answers subscribe, pushes messages and lost pushes (one of offsets
// already passed), answers a ping, closes with 4000, and on the next
// connection answers the subscribe as recovered; ?script=epoch does the
// same with a lost push of a new epoch (the history was lost after offset
// 3 of e1), sent twice, and the new epoch's messages from offset 1.
func (h *harness) fake(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tag := q.Get("tag")
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"duplex.v1"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	h.mu.Lock()
	nth := len(h.conns[tag])
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()

	type command struct {
		ID      float64 `json:"id"`
		Op      string  `json:"op"`
		Channel string  `json:"channel"`
	}
	read := func() (command, bool) {
		var cmd command
		_, p, err := c.Read(ctx)
		if err != nil {
			return cmd, false
		}
		h.mu.Lock()
		h.commands[tag] = append(h.commands[tag], json.RawMessage(append([]byte{}, p...)))
		h.mu.Unlock()
		return cmd, json.Unmarshal(p, &cmd) == nil
	}
	send := func(frame string) bool {
		return c.Write(ctx, websocket.MessageText, []byte(frame)) == nil
	}
	answer := func(cmd command, result string) bool {
		return send(fmt.Sprintf(`{"id":%d,"result":%s}`, int64(cmd.ID), result))
	}
	message := func(channel string, offset int) string {
		return fmt.Sprintf(`{"op":"message","channel":%q,"offset":%d,"epoch":"e1","data":{"n":%d}}`, channel, offset, offset)
	}
	drain := func() {
		for {
			if _, ok := read(); !ok {
				return
			}
		}
	}

	switch q.Get("script") {
	case "dedupe":
		cmd, ok := read() // connect
		if !ok || !answer(cmd, `{"client":"c9","user":"zoe","version":"test"}`) {
			return
		}
		if cmd, ok = read(); !ok || !answer(cmd, `{"recovered":false,"offset":0,"epoch":"e1"}`) { // subscribe
			return
		}
		for _, f := range []string{
			`{"op":"join","channel":"dd","client":{"client":"c9","user":"zoe","info":{"k":[1]}}}`,
			message("dd", 1), message("dd", 2), message("dd", 2), message("dd", 1),
			message("other", 3), // not subscribed: ignored
			`{"id":0,"error":{"code":101,"message":"not JSON"}}`,
			message("dd", 3), message("dd", 2), message("dd", 4),
			`{"op":"leave","channel":"dd","client":{"client":"c9","user":"zoe","info":{"k":[1]}}}`,
		} {
			if !send(f) {
				return
			}
		}
		if cmd, ok = read(); !ok || !answer(cmd, `{}`) { // ping
			return
		}
		drain()
	case "lost":
		lost := func(from, offset int) string {
			return fmt.Sprintf(`{"op":"lost","channel":"ls","from":%d,"offset":%d,"epoch":"e1"}`, from, offset)
		}
		if nth > 1 {
			cmd, ok := read() // subscribe with since
			if !ok || !answer(cmd, `{"recovered":true,"offset":10,"epoch":"e1"}`) || !send(message("ls", 10)) {
				return
			}
			if cmd, ok = read(); !ok || !answer(cmd, `{}`) { // ping
				return
			}
			drain()
			return
		}
		cmd, ok := read() // subscribe
		if !ok || !answer(cmd, `{"recovered":false,"offset":0,"epoch":"e1"}`) {
			return
		}
		for _, f := range []string{message("ls", 1), lost(2, 4), message("ls", 5), lost(2, 3), message("ls", 5), lost(6, 9)} {
			if !send(f) {
				return
			}
		}
		if cmd, ok = read(); !ok || !answer(cmd, `{}`) { // ping
			return
		}
		c.Close(4000, "")
	case "epoch":
		messageIn := func(offset int, epoch string) string {
			return fmt.Sprintf(`{"op":"message","channel":"ep","offset":%d,"epoch":%q,"data":{"n":%d}}`, offset, epoch, offset)
		}
		if nth > 1 {
			cmd, ok := read() // subscribe with since
			if !ok || !answer(cmd, `{"recovered":true,"offset":3,"epoch":"e2"}`) || !send(messageIn(3, "e2")) {
				return
			}
			if cmd, ok = read(); !ok || !answer(cmd, `{}`) { // ping
				return
			}
			drain()
			return
		}
		cmd, ok := read() // subscribe
		if !ok || !answer(cmd, `{"recovered":false,"offset":1,"epoch":"e1"}`) {
			return
		}
		lost := `{"op":"lost","channel":"ep","from":1,"offset":0,"epoch":"e2","old":{"offset":3,"epoch":"e1"}}`
		for _, f := range []string{
			messageIn(2, "e1"), messageIn(3, "e1"),
			lost, messageIn(1, "e2"),
			lost, messageIn(1, "e2"), // passed already: ignored, and a duplicate
			messageIn(2, "e2"),
		} {
			if !send(f) {
				return
			}
		}
		if cmd, ok = read(); !ok || !answer(cmd, `{}`) { // ping
			return
		}
		c.Close(4000, "")
	case "close":
		if nth > 1 {
			cmd, ok := read() // subscribe with since
			if !ok || !answer(cmd, `{"recovered":true,"offset":7,"epoch":"e1"}`) ||
				!send(message("fk", 6)) || !send(message("fk", 7)) {
				return
			}
			if cmd, ok = read(); !ok || !answer(cmd, `{}`) { // ping
				return
			}
			drain()
			return
		}
		cmd, ok := read() // subscribe
		if !ok || !answer(cmd, `{"recovered":false,"offset":5,"epoch":"e1"}`) || !send(message("fk", 6)) {
			return
		}
		if _, ok := read(); !ok { // ping: never answered
			return
		}
		code, _ := strconv.Atoi(q.Get("code"))
		switch code {
		case 1006:
			c.CloseNow()
		default:
			c.Close(websocket.StatusCode(code), "")
		}
	}
}

// TestDuplexJSServer runs duplex.js in Chromium against the real server:
// /duplex.js and /ws as `duplex serve` serves them, and POST /api/publish.
func TestDuplexJSServer(t *testing.T) {
	requireChromium(t)
	h := newHarness(t, newServerHandler(t))
	names := []string{"roundtrip", "http-publish", "presence", "recovery", "errors", "connect-refused"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h.run(ctx, "ws=/ws&scenarios="+strings.Join(names, ","))
	h.check(names)
}

// TestDuplexJSAuth runs duplex.js in Chromium against a server that
// authenticates with an HS256 secret; /test/token signs the page's tokens.
func TestDuplexJSAuth(t *testing.T) {
	requireChromium(t)
	const secret = "0123456789abcdef0123456789abcdef-web"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /test/token", func(w http.ResponseWriter, r *http.Request) {
		ttl, err := strconv.Atoi(r.URL.Query().Get("ttl"))
		if err != nil {
			http.Error(w, "ttl", http.StatusBadRequest)
			return
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": r.URL.Query().Get("sub"),
			"exp": time.Now().Add(time.Duration(ttl) * time.Second).Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, tok)
	})
	mux.Handle("/", server.New(server.Config{Log: log, Auth: server.AuthConfig{HMACSecret: secret}}).Handler())
	h := newHarness(t, mux)
	names := []string{"auth-token", "auth-refused", "auth-expired", "auth-refresh", "auth-get-token"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h.run(ctx, "ws=/ws&scenarios="+strings.Join(names, ","))
	h.check(names)
}

// newServerHandler is the real server's handler with its defaults.
func newServerHandler(t *testing.T) http.Handler {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return server.New(server.Config{Log: log}).Handler()
}

// TestServerServesSDK checks that the server serves the embedded files at
// /duplex.js and /duplex.d.ts, byte for byte, with their content types.
func TestServerServesSDK(t *testing.T) {
	h := newServerHandler(t)
	for _, tc := range []struct{ path, file, ctype string }{
		{"/duplex.js", "duplex.js", "text/javascript; charset=utf-8"},
		{"/duplex.d.ts", "duplex.d.ts", "application/typescript"},
	} {
		want, err := fs.ReadFile(web.FS, tc.file)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) {
			t.Errorf("GET %s: %d, %d bytes; want 200 and the %d bytes of %s", tc.path, rec.Code, rec.Body.Len(), len(want), tc.file)
		}
		if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, strings.SplitN(tc.ctype, ";", 2)[0]) {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
	}
}

// TestDuplexJSNode runs duplex.js in Node with the ws package passed as the
// WebSocket option, against the real server: a round trip, and recovery
// after the TCP connection is cut.
func TestDuplexJSNode(t *testing.T) {
	var missing string
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node not found on PATH (Debian package nodejs)"
	} else if _, err := os.Stat("../interop/node/node_modules/ws/package.json"); err != nil {
		missing = "interop/node/node_modules/ws not found (npm ci in interop/node)"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is not usable (%s); with CI=true this fails instead of skipping; install it with: %s", missing, installHint)
		}
		t.Skipf("node is not usable (%s); install it with: %s", missing, installHint)
	}
	h := newHarness(t, newServerHandler(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "testdata/node_test.mjs", "duplex.js", "../interop/node/node_modules/ws", h.srv.URL)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Equal(out, []byte("node: ok\n")) {
		t.Fatalf("node: %v\n%s", err, out)
	}
}
