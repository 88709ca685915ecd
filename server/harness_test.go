package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// testTimeout bounds every test of the channel server.
const testTimeout = 60 * time.Second

// testNamespaces are the namespaces of the test servers:
//
//	""       the default: history 100, presence, clients publish
//	chat     as duplex serve has it
//	live     history 1000, presence off, clients publish (fan-out tests)
//	small    history 3, presence off, clients publish (eviction)
//	feed     history 10, presence on, only the API publishes
//	bare     no history, no presence, clients publish
func testNamespaces() map[string]pubsub.NamespaceOptions {
	return map[string]pubsub.NamespaceOptions{
		"":      pubsub.DefaultNamespace,
		"chat":  server.DefaultNamespaces()[server.ChatNamespace],
		"live":  {HistorySize: 1000, HistoryTTL: time.Minute, ClientPublish: true},
		"small": {HistorySize: 3, ClientPublish: true},
		"feed":  {HistorySize: 10, Presence: true},
		"bare":  {ClientPublish: true},
	}
}

// testServer is a real server listening on 127.0.0.1.
type testServer struct {
	srv  *server.Server
	http string // http://127.0.0.1:port
	ws   string // ws://127.0.0.1:port
	done chan error
}

// startServer serves cfg (testNamespaces when cfg has none) on a loopback
// listener until the test ends.
func startServer(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, cfg, l)
}

// startServerOn is startServer on the listener l.
func startServerOn(t *testing.T, cfg server.Config, l net.Listener) *testServer {
	t.Helper()
	if cfg.Namespaces == nil {
		cfg.Namespaces = testNamespaces()
	}
	if cfg.Version == "" {
		cfg.Version = "test"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ts := &testServer{srv: server.New(cfg), http: "http://" + l.Addr().String(), ws: "ws://" + l.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- ts.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-ctx.Done():
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	return ts
}

// testContext is a context that ends with the test or after testTimeout.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// noProxy keeps loopback test traffic away from any proxy of the
// environment.
func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// wsClient is a duplex.v1 (or plain) WebSocket client speaking raw JSON.
type wsClient struct {
	t    testing.TB
	ctx  context.Context
	conn *websocket.Conn
	tcp  net.Conn // the TCP connection, to cut it without a closing handshake
}

// dialOptions returns options that offer the subprotocols and record the
// TCP connection in *tcp; readBuffer, when positive, shrinks the socket's
// receive buffer.
func dialOptions(tcp *net.Conn, readBuffer int, subprotocols ...string) *websocket.DialOptions {
	return &websocket.DialOptions{
		Subprotocols: subprotocols,
		Proxy:        noProxy,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if readBuffer > 0 {
				c.(*net.TCPConn).SetReadBuffer(readBuffer)
			}
			*tcp = c
			return c, nil
		},
	}
}

// dialPath connects to path, offering subprotocols; it returns the error
// instead of failing, for use from other goroutines.
func (ts *testServer) dialPath(ctx context.Context, t testing.TB, path string, readBuffer int, subprotocols ...string) (*wsClient, error) {
	var tcp net.Conn
	c, _, err := websocket.Dial(ctx, ts.ws+path, dialOptions(&tcp, readBuffer, subprotocols...))
	if err != nil {
		return nil, err
	}
	if got := c.Subprotocol(); len(subprotocols) > 0 && got != subprotocols[0] {
		c.CloseNow()
		return nil, fmt.Errorf("subprotocol %q, want %q", got, subprotocols[0])
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, ctx: ctx, conn: c, tcp: tcp}, nil
}

// dial opens a duplex.v1 connection to /ws.
func (ts *testServer) dial(ctx context.Context, t testing.TB) *wsClient {
	t.Helper()
	c, err := ts.dialPath(ctx, t, "/ws", 0, server.Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// send sends one text message.
func (c *wsClient) send(msg string) {
	c.t.Helper()
	if err := c.conn.Write(c.ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("send %s: %v", msg, err)
	}
}

// recv reads the next message, which must be text.
func (c *wsClient) recv() (string, error) {
	typ, p, err := c.conn.Read(c.ctx)
	if err != nil {
		return "", err
	}
	if typ != websocket.MessageText {
		return "", fmt.Errorf("got a %v message: %q", typ, p)
	}
	return string(p), nil
}

// next reads the next text message.
func (c *wsClient) next() string {
	c.t.Helper()
	s, err := c.recv()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return s
}

// expect reads the next message and checks its bytes.
func (c *wsClient) expect(want string) {
	c.t.Helper()
	if got := c.next(); got != want {
		c.t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// call sends a command and returns the next message.
func (c *wsClient) call(cmd string) string {
	c.t.Helper()
	c.send(cmd)
	return c.next()
}

// expectClose reads until the connection ends and checks that the server
// closed it with code and reason, and that no message came before.
func (c *wsClient) expectClose(code websocket.StatusCode, reason string) {
	c.t.Helper()
	_, p, err := c.conn.Read(c.ctx)
	if err == nil {
		c.t.Fatalf("got message %q, want close %d %q", p, code, reason)
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || ce.Reason != reason {
		c.t.Fatalf("connection ended with %v, want close %d %q", err, code, reason)
	}
}

// frame is any message the server sends on /ws.
type frame struct {
	ID      *uint64         `json:"id"`
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	Data    json.RawMessage `json:"data"`
	Client  json.RawMessage `json:"client"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func parseFrame(t testing.TB, s string) frame {
	t.Helper()
	var f frame
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		t.Fatalf("server sent non-JSON %q: %v", s, err)
	}
	return f
}

// subscribeResult is the result of a subscribe answer.
type subscribeResult struct {
	Recovered bool   `json:"recovered"`
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
}

// subscribe subscribes with id and returns the answer's result, checking
// the answer's shape byte for byte.
func (c *wsClient) subscribe(id int, channel string) subscribeResult {
	c.t.Helper()
	got := c.call(fmt.Sprintf(`{"id":%d,"op":"subscribe","channel":%q}`, id, channel))
	return c.checkSubscribeAnswer(id, got)
}

// checkSubscribeAnswer decodes a subscribe answer and checks it is exactly
// {"id":id,"result":{"recovered":…,"offset":…,"epoch":"…"}}.
func (c *wsClient) checkSubscribeAnswer(id int, got string) subscribeResult {
	c.t.Helper()
	f := parseFrame(c.t, got)
	if f.ID == nil || *f.ID != uint64(id) || f.Result == nil {
		c.t.Fatalf("got %s, want the answer to subscribe %d", got, id)
	}
	var r subscribeResult
	json.Unmarshal(f.Result, &r)
	if want := fmt.Sprintf(`{"id":%d,"result":{"recovered":%t,"offset":%d,"epoch":%q}}`, id, r.Recovered, r.Offset, r.Epoch); got != want || r.Epoch == "" {
		c.t.Fatalf("got  %s\nwant %s (with an epoch)", got, want)
	}
	return r
}

// push is the exact bytes of a message push.
func push(channel string, offset uint64, epoch, data string) string {
	return fmt.Sprintf(`{"op":"message","channel":%q,"offset":%d,"epoch":%q,"data":%s}`, channel, offset, epoch, data)
}

// httpClient talks to the test servers, never through a proxy.
var httpClient = &http.Client{Transport: &http.Transport{Proxy: noProxy}, Timeout: 30 * time.Second}

// do sends an HTTP request and returns the status, headers and body.
func (ts *testServer) do(t testing.TB, method, path, contentType, body string, header http.Header) (int, http.Header, string) {
	t.Helper()
	status, h, b, err := ts.tryDo(method, path, contentType, body, header)
	if err != nil {
		t.Fatal(err)
	}
	return status, h, b
}

// tryDo is do that returns its error, for use from other goroutines.
func (ts *testServer) tryDo(method, path, contentType, body string, header http.Header) (int, http.Header, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.http+path, rd)
	if err != nil {
		return 0, nil, "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}

// publishAPI publishes data to channel with POST /api/publish and returns
// the message's position.
func (ts *testServer) publishAPI(t testing.TB, channel, data string) pubsub.Position {
	t.Helper()
	pos, err := ts.tryPublishAPI(channel, data)
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

func (ts *testServer) tryPublishAPI(channel, data string) (pubsub.Position, error) {
	body := fmt.Sprintf(`{"channel":%q,"data":%s}`, channel, data)
	status, _, got, err := ts.tryDo("POST", "/api/publish", "application/json", body, nil)
	if err != nil {
		return pubsub.Position{}, err
	}
	var pos pubsub.Position
	if status != http.StatusOK || json.Unmarshal([]byte(got), &pos) != nil {
		return pos, fmt.Errorf("POST /api/publish %s: %d %s", body, status, got)
	}
	if want := fmt.Sprintf("{\"offset\":%d,\"epoch\":%q}\n", pos.Offset, pos.Epoch); got != want || pos.Epoch == "" {
		return pos, fmt.Errorf("POST /api/publish answered %q, want %q", got, want)
	}
	return pos, nil
}

// expectCall sends a command and checks the bytes of the next message.
func (c *wsClient) expectCall(cmd, want string) {
	c.t.Helper()
	c.send(cmd)
	c.expect(want)
}
