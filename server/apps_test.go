package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/web"
	"github.com/duplex-ws/duplex/websocket"
)

func appsQuietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestAppRoutes checks what each app route serves: the pages with their
// scripts, the chat page for /chat/{room} opened without an upgrade, the
// assets under /app/ byte for byte, and nothing else from the embedded tree.
func TestAppRoutes(t *testing.T) {
	h := New(Config{Log: appsQuietLog(), Version: "v-test"}).Handler()
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	chatPage, err := web.FS.ReadFile("app/chat/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, ctype string
		contains    []string
	}{
		{"/", "text/html; charset=utf-8", []string{"Version v-test", `href="/chat/"`, `href="/echo/"`, `href="/ticker/"`, "GET /echo", "<code>duplex serve --demo</code>"}},
		{"/chat/", "text/html; charset=utf-8", []string{`<script type="module" src="/app/chat/chat.js">`}},
		{"/chat/lobby", "text/html; charset=utf-8", []string{`<script type="module" src="/app/chat/chat.js">`}},
		{"/echo/", "text/html; charset=utf-8", []string{`<script type="module" src="/app/echo/echo.js">`}},
		{"/ticker/", "text/html; charset=utf-8", []string{`<script type="module" src="/app/ticker/ticker.js">`}},
	} {
		rec := get(tc.path)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != tc.ctype {
			t.Errorf("GET %s: %d %q, want 200 %q", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.ctype)
		}
		for _, s := range tc.contains {
			if !strings.Contains(rec.Body.String(), s) {
				t.Errorf("GET %s: the page does not contain %q", tc.path, s)
			}
		}
	}
	if rec := get("/chat/a%20b"); rec.Code != http.StatusBadRequest ||
		rec.Body.String() != "Bad Request: invalid channel name \"chat:a b\": byte 6 (' ') is not a letter, digit or one of _-.:@/=\n" {
		t.Errorf("GET /chat/a%%20b without an upgrade: %d %q, want 400 and the reason", rec.Code, rec.Body.String())
	}
	if got := get("/chat/lobby").Body.String(); got != string(chatPage) {
		t.Errorf("GET /chat/lobby without an upgrade: not the chat page (%d bytes, want %d)", len(got), len(chatPage))
	}
	for _, tc := range []struct{ path, file, ctype string }{
		{"/app/style.css", "app/style.css", "text/css; charset=utf-8"},
		{"/app/chat/chat.js", "app/chat/chat.js", "text/javascript; charset=utf-8"},
		{"/app/echo/echo.js", "app/echo/echo.js", "text/javascript; charset=utf-8"},
		{"/app/ticker/ticker.css", "app/ticker/ticker.css", "text/css; charset=utf-8"},
	} {
		want, err := web.FS.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		rec := get(tc.path)
		if rec.Code != http.StatusOK || rec.Body.String() != string(want) || rec.Header().Get("Content-Type") != tc.ctype {
			t.Errorf("GET %s: %d %q, %d bytes; want 200 %q and the %d bytes of %s", tc.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len(), tc.ctype, len(want), tc.file)
		}
	}
	for _, path := range []string{"/app/", "/app/landing.html", "/app/chat/index.html", "/app/chat/", "/app/nope.js", "/echo/x", "/ticker/x"} {
		if rec := get(path); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, rec.Code)
		}
	}
}

// TestChatFallbackKeepsUpgrade checks that /chat/{room} still upgrades a
// WebSocket request now that a browser's plain GET gets the chat page.
func TestChatFallbackKeepsUpgrade(t *testing.T) {
	ts := httptest.NewServer(New(Config{Log: appsQuietLog()}).Handler())
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/chat/lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	typ, p, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(p) != "hi" {
		t.Fatalf("Read: %v %q %v, want text \"hi\"", typ, p, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// appsEvents is a Subscriber that forwards events to a channel, dropping
// those that do not fit (Deliver must not block).
type appsEvents chan *pubsub.Event

func (e appsEvents) Deliver(ev *pubsub.Event) {
	select {
	case e <- ev:
	default:
	}
}

// TestDemoTicker checks Config.Demo: the ticker namespace (one message of
// history, no presence, API only) and quotes published while the server
// serves, and a publisher that stops with Shutdown.
func TestDemoTicker(t *testing.T) {
	own := map[string]pubsub.NamespaceOptions{"": pubsub.DefaultNamespace}
	s := New(Config{Log: appsQuietLog(), Demo: true, Namespaces: own})
	if _, ok := own[TickerNamespace]; ok {
		t.Error("New added the ticker namespace to the caller's map")
	}
	opts, err := s.Hub().Options("ticker:ACME")
	if err != nil || opts != TickerNamespaceOptions {
		t.Fatalf("Options(ticker:ACME) = %+v, %v; want %+v", opts, err, TickerNamespaceOptions)
	}
	if err := s.Hub().CheckClientPublish("ticker:ACME"); err == nil {
		t.Error("clients may publish to ticker:ACME")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events := make(appsEvents, 16)
	if _, err := s.Hub().Subscribe(ctx, "ticker:ACME", events, pubsub.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()

	var q Quote
	select {
	case ev := <-events:
		if ev.Kind != pubsub.EventMessage {
			t.Fatalf("event kind %v, want a message", ev.Kind)
		}
		if err := json.Unmarshal(ev.Message.Data, &q); err != nil {
			t.Fatalf("quote %s: %v", ev.Message.Data, err)
		}
	case <-ctx.Done():
		t.Fatal("no quote on ticker:ACME")
	}
	age := time.Since(time.UnixMicro(int64(q.TS * 1000)))
	if q.Symbol != "ACME" || q.Price < 1 || q.Open < 1 || q.Seq < 1 || age < 0 || age > 5*time.Second {
		t.Errorf("quote %+v (published %v ago)", q, age)
	}
	h, err := s.Hub().History(ctx, "ticker:ACME", pubsub.HistoryRequest{Limit: 10})
	if err != nil || len(h.Messages) != 1 {
		t.Errorf("history of ticker:ACME: %d messages, %v; want the latest one only", len(h.Messages), err)
	}

	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if s.demo.cancel == nil || !s.demo.stopped {
		t.Error("the demo publisher was not started, or not stopped")
	}
	select {
	case <-s.demo.done:
	default:
		t.Error("the demo publisher still runs after Shutdown")
	}
}

// TestDemoOff checks that without Config.Demo there is no ticker namespace
// and the landing page says how to start the demo, and that a namespace
// the caller set for ticker wins over the demo's.
func TestDemoOff(t *testing.T) {
	s := New(Config{Log: appsQuietLog()})
	if _, err := s.Hub().Options("ticker:ACME"); !errors.Is(err, pubsub.ErrUnknownNamespace) {
		t.Errorf("Options(ticker:ACME) without Demo: %v, want ErrUnknownNamespace", err)
	}
	mine := pubsub.NamespaceOptions{HistorySize: 5, Presence: true}
	s = New(Config{Log: appsQuietLog(), Demo: true, Namespaces: map[string]pubsub.NamespaceOptions{TickerNamespace: mine}})
	if got, err := s.Hub().Options("ticker:X"); err != nil || got != mine {
		t.Errorf("Options(ticker:X) = %+v, %v; want the caller's %+v", got, err, mine)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !strings.Contains(rec.Body.String(), "<code>ACME</code>") {
		t.Error("the landing page with Demo does not list the ticker's symbols")
	}
}
