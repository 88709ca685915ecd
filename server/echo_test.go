package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

func newTestServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	s := New(Config{Version: "test"})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, "ws" + strings.TrimPrefix(ts.URL, "http")
}

func TestEchoReturnsEachMessageWithItsType(t *testing.T) {
	_, url := newTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	cases := []struct {
		typ websocket.MessageType
		p   []byte
	}{
		{websocket.MessageText, []byte("")},
		{websocket.MessageText, []byte("héllo ✓ 𝄞")},
		{websocket.MessageBinary, []byte{0, 1, 2, 0xff}},
		{websocket.MessageBinary, bytes.Repeat([]byte{0xAB, 0x00, 0x7F}, 1<<20)}, // 3 MiB, streamed
		{websocket.MessageText, bytes.Repeat([]byte("ab"), 70000)},
	}
	for _, tc := range cases {
		if err := c.Write(ctx, tc.typ, tc.p); err != nil {
			t.Fatal(err)
		}
		typ, p, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != tc.typ || !bytes.Equal(p, tc.p) {
			t.Fatalf("sent %v of %d bytes, got %v of %d bytes", tc.typ, len(tc.p), typ, len(p))
		}
	}
	// A fragmented message comes back whole.
	w, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"frag", "ment", "ed"} {
		io.WriteString(w, part)
		w.(interface{ Flush() error }).Flush()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if typ, p, err := c.Read(ctx); err != nil || typ != websocket.MessageText || string(p) != "fragmented" {
		t.Fatalf("got %v %q %v", typ, p, err)
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestEchoRefusesPlainHTTP(t *testing.T) {
	ts, _ := newTestServer(t)
	resp, err := http.Get(ts.URL + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("status %d, Upgrade %q", resp.StatusCode, resp.Header.Get("Upgrade"))
	}
	if got := string(body); got != "WebSocket handshake needs \"Upgrade: websocket\"\n" {
		t.Fatalf("body %q", got)
	}
}

func TestEchoOverLimitClosesWith1009(t *testing.T) {
	s := New(Config{ReadLimit: 1000})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageBinary, make([]byte, 1001))
	_, _, err = c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("got %v, want close 1009", err)
	}
}

func TestLandingPageListsEcho(t *testing.T) {
	ts, _ := newTestServer(t)
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "GET /echo") || !strings.Contains(string(body), "Version test") {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	resp, err = http.Get(ts.URL + "/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown path: status %d", resp.StatusCode)
	}
}
