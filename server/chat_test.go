package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/web"
	"github.com/duplex-ws/duplex/websocket"
)

// joinedAnon reads a join push of an anonymous client on channel and
// returns the client's id.
func joinedAnon(t *testing.T, c *wsClient, channel string) string {
	t.Helper()
	got := c.next()
	var j struct {
		Client struct{ Client string } `json:"client"`
	}
	json.Unmarshal([]byte(got), &j)
	if want := fmt.Sprintf(`{"op":"join","channel":%q,"client":{"client":%q,"user":""}}`, channel, j.Client.Client); got != want || j.Client.Client == "" {
		t.Fatalf("got %s, want a join of an anonymous client", got)
	}
	return j.Client.Client
}

// Two plain clients of /chat/{room} exchange texts, each receiving its own
// too; a duplex.v1 client subscribed to chat:{room} sees them as message
// pushes whose data is the text as a JSON string, and what it publishes
// reaches the plain members as text.
func TestChatRoom(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	const ch = "chat:lobby"
	// The duplex.v1 observer sees each plain member join, so the test knows
	// when a member is in the room.
	obs := ts.dial(ctx, t)
	r := obs.subscribe(1, ch)
	joinedAnon(t, obs, ch)
	dialPlain := func() (*wsClient, string) {
		t.Helper()
		c, err := ts.dialPath(ctx, t, "/chat/lobby", 0)
		if err != nil {
			t.Fatal(err)
		}
		if c.conn.Subprotocol() != "" {
			t.Fatalf("plain chat connection got subprotocol %q", c.conn.Subprotocol())
		}
		return c, joinedAnon(t, obs, ch)
	}
	a, idA := dialPlain()
	b, _ := dialPlain()

	off := uint64(0)
	members := []*wsClient{a, b}
	say := func(from *wsClient, text string) {
		t.Helper()
		from.send(text)
		for _, m := range members {
			m.expect(text)
		}
		off++
		raw := obs.next()
		got := parseFrame(t, raw)
		var data string
		if got.Op != "message" || got.Channel != ch || got.Offset != off || got.Epoch != r.Epoch || json.Unmarshal(got.Data, &data) != nil || data != text {
			t.Fatalf("observer got %+v (data %s), want message %d with data %q", got, got.Data, off, text)
		}
		// The text's bytes are kept where JSON allows: < > & unescaped.
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		enc.Encode(text)
		if w := push(ch, off, r.Epoch, strings.TrimSuffix(want.String(), "\n")); raw != w {
			t.Fatalf("observer got %s, want %s", raw, w)
		}
	}
	say(a, "hello from a")
	say(b, "hi a, it's b")
	say(a, `<b>"quoted"</b> & é ✓ 𝄞 \n`)
	say(b, "")
	say(a, `{"looks":"like json"}`)
	say(b, strings.Repeat("long ", 12000)) // 60 KB, under MaxMessageSize

	// What the observer publishes reaches the plain members as text: a
	// string as its value, anything else as its JSON encoding.
	for _, tc := range []struct{ data, text string }{
		{`"from duplex.v1"`, "from duplex.v1"},
		{`"\u00e9\n\"q\""`, "é\n\"q\""},
		{`{"x":[1,2]}`, `{"x":[1,2]}`},
		{`42`, `42`},
		{`null`, `null`},
	} {
		off++
		obs.send(fmt.Sprintf(`{"id":%d,"op":"publish","channel":%q,"data":%s}`, off, ch, tc.data))
		a.expect(tc.text)
		b.expect(tc.text)
		got := []string{obs.next(), obs.next()} // the push and the answer
		answer := fmt.Sprintf(`{"id":%d,"result":{"offset":%d,"epoch":%q}}`, off, off, r.Epoch)
		msg := push(ch, off, r.Epoch, tc.data)
		if !(got[0] == answer && got[1] == msg) && !(got[0] == msg && got[1] == answer) {
			t.Fatalf("observer got %q, want %s and %s", got, answer, msg)
		}
	}

	// Plain members see no presence pushes: a leaving member is not
	// shown to b, but the observer sees it.
	a.conn.Close(websocket.StatusNormalClosure, "bye")
	obs.expect(fmt.Sprintf(`{"op":"leave","channel":%q,"client":{"client":%q,"user":""}}`, ch, idA))
	members = []*wsClient{b}
	say(b, "alone")
}

// An invalid room name gets 400 before the upgrade; so does a room of
// a namespace the server does not have.
func TestChatInvalidRoom(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	for _, room := range []string{"a%20b", "a*", strings.Repeat("r", 251), "%C3%A9"} {
		c, resp, err := websocket.Dial(ctx, ts.ws+"/chat/"+room, &websocket.DialOptions{Proxy: noProxy})
		if err == nil {
			c.CloseNow()
			t.Fatalf("room %q: connected", room)
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("room %q: %v, want 400", room, err)
		}
	}
	// The reason is in the body.
	status, _, body := ts.do(t, "GET", "/chat/a%20b", "", "", nil)
	if want := "Bad Request: invalid channel name \"chat:a b\": byte 6 (' ') is not a letter, digit or one of _-.:@/=\n"; status != 400 || body != want {
		t.Fatalf("got %d %q, want 400 %q", status, body, want)
	}
	// A valid room opened as a page (no upgrade) gets the chat app.
	status, hdr, body := ts.do(t, "GET", "/chat/lobby", "", "", nil)
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(body, `src="/app/chat/chat.js"`) {
		t.Fatalf("GET /chat/lobby as a page: %d %q, body starts %.80q", status, hdr.Get("Content-Type"), body)
	}
	// The longest room name that fits a channel name works.
	c, err := ts.dialPath(ctx, t, "/chat/"+strings.Repeat("r", 250), 0)
	if err != nil {
		t.Fatal(err)
	}
	c.send("x")
	c.expect("x")

	// Without the chat namespace, there are no chat rooms.
	noChat := testNamespaces()
	delete(noChat, server.ChatNamespace)
	ts3 := startServer(t, server.Config{Namespaces: noChat})
	status, _, body = ts3.do(t, "GET", "/chat/lobby", "", "", nil)
	if want := "Bad Request: unknown namespace \"chat\" (channel \"chat:lobby\")\n"; status != 400 || body != want {
		t.Fatalf("without the chat namespace: %d %q, want 400 %q", status, body, want)
	}
}

// A binary message to a chat room closes the connection with 1003.
func TestChatBinaryCloses1003(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	c, err := ts.dialPath(ctx, t, "/chat/bin", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.conn.Write(ctx, websocket.MessageBinary, []byte("bytes")); err != nil {
		t.Fatal(err)
	}
	c.expectClose(websocket.StatusUnsupportedData, "chat rooms take text messages")
}

// Shutdown closes channel and chat connections with 1001, and Serve
// returns.
func TestShutdownClosesConnections1001(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Namespaces: testNamespaces(), Log: slog.New(slog.DiscardHandler)})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	ts := &testServer{srv: srv, http: "http://" + l.Addr().String(), ws: "ws://" + l.Addr().String()}
	ctx := testContext(t)

	ch := ts.dial(ctx, t)
	ch.subscribe(1, "live:x")
	idle := ts.dial(ctx, t) // no subscription
	chat, err := ts.dialPath(ctx, t, "/chat/room", 0)
	if err != nil {
		t.Fatal(err)
	}
	chat.send("in") // once echoed, the member is in the room
	chat.expect("in")

	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(sctx) }()
	for _, c := range []*wsClient{ch, idle, chat} {
		c.expectClose(websocket.StatusGoingAway, "server shutting down")
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-sctx.Done():
		t.Fatal("Serve did not return")
	}
	if _, _, err := websocket.Dial(ctx, ts.ws+"/ws", &websocket.DialOptions{Subprotocols: []string{server.Subprotocol}, Proxy: noProxy}); err == nil {
		t.Fatal("dialed a shut down server")
	}
}

// /duplex.js is served as JavaScript, byte for byte the embedded file, and
// its TypeScript declarations next to it.
func TestDuplexJSServed(t *testing.T) {
	ts := startServer(t, server.Config{})
	for _, tc := range []struct{ path, file, contentType string }{
		{"/duplex.js", "duplex.js", "text/javascript; charset=utf-8"},
		{"/duplex.d.ts", "duplex.d.ts", "application/typescript; charset=utf-8"},
	} {
		resp, err := httpClient.Get(ts.http + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, err := web.FS.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType || string(body) != string(want) || len(want) == 0 {
			t.Fatalf("GET %s: %d %q, %d bytes; want 200 %q, the %d bytes of web/%s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), tc.contentType, len(want), tc.file)
		}
	}
}

// Connections whose upgrade races with Shutdown are closed with 1001 too
// (or refused), never left open: clients keep dialing while the server
// shuts down.
func TestShutdownDuringUpgrades(t *testing.T) {
	for round := 0; round < 3; round++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := server.New(server.Config{Namespaces: testNamespaces(), Log: slog.New(slog.DiscardHandler)})
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		ts := &testServer{srv: srv, http: "http://" + l.Addr().String(), ws: "ws://" + l.Addr().String()}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)

		const dialers = 8
		results := make(chan error, dialers)
		dialed := make(chan struct{}, 1000)
		for i := range dialers {
			path, sub := "/ws", []string{server.Subprotocol}
			if i%2 == 0 {
				path, sub = "/chat/race", nil
			}
			go func() {
				var conns []*wsClient
				for { // dial until refused
					c, err := ts.dialPath(ctx, t, path, 0, sub...)
					if err != nil {
						break
					}
					conns = append(conns, c)
					select {
					case dialed <- struct{}{}:
					default:
					}
				}
				for _, c := range conns {
					_, _, err := c.conn.Read(ctx)
					var ce *websocket.CloseError
					if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
						results <- fmt.Errorf("a connection made around Shutdown ended with %v, want 1001", err)
						return
					}
				}
				results <- nil
			}()
		}
		for range 4 * dialers {
			<-dialed
		}
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		for range dialers {
			if err := <-results; err != nil {
				t.Fatal(err)
			}
		}
		if err := <-served; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		cancel()
	}
}
