package server_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// dialHeader opens a connection to path with extra request headers
// (X-Forwarded-For), offering duplex.v1 on /ws; it returns the refusal
// instead of failing.
func (ts *testServer) dialHeader(ctx context.Context, t testing.TB, path string, header http.Header) (*wsClient, *http.Response, error) {
	var tcp net.Conn
	var sub []string
	if strings.HasPrefix(path, "/ws") {
		sub = []string{server.Subprotocol}
	}
	opts := dialOptions(&tcp, 0, sub...)
	opts.Header = header
	c, resp, err := websocket.Dial(ctx, ts.ws+path, opts)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, ctx: ctx, conn: c, tcp: tcp}, resp, nil
}

// fromAddr is an X-Forwarded-For header naming addr.
func fromAddr(addr string) http.Header {
	return http.Header{"X-Forwarded-For": {addr}}
}

// expectRefused checks that a handshake was refused before the upgrade
// with status, Retry-After and the plain-text body.
func expectRefused(t *testing.T, resp *http.Response, err error, status int, retryAfter, body string) {
	t.Helper()
	var he *websocket.HandshakeError
	if !errors.As(err, &he) || resp == nil {
		t.Fatalf("handshake: %v, want refused with %d", err, status)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || resp.Header.Get("Retry-After") != retryAfter || string(b) != body+"\n" {
		t.Fatalf("refused with %d, Retry-After %q, body %q\nwant %d, Retry-After %q, body %q",
			resp.StatusCode, resp.Header.Get("Retry-After"), b, status, retryAfter, body+"\n")
	}
}

// alive checks that c still answers a ping command (with id).
func (c *wsClient) alive(id int) {
	c.t.Helper()
	c.expectCall(fmt.Sprintf(`{"id":%d,"op":"ping"}`, id), fmt.Sprintf(`{"id":%d,"result":{}}`, id))
}

// waitSeries polls /metrics until every series of want has its value.
func waitSeries(ctx context.Context, t *testing.T, ts *testServer, want map[string]string) {
	t.Helper()
	for {
		got := scrape(t, ts)
		missing := ""
		for name, v := range want {
			if got[name] != v {
				missing = fmt.Sprintf("%s = %q, want %q", name, got[name], v)
				break
			}
		}
		if missing == "" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal(missing)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// refusals is the refusal series of limit.
func refusals(limit string) string {
	return fmt.Sprintf(`duplex_limit_refusals_total{limit=%q}`, limit)
}

// Beyond MaxConnections, a handshake on any endpoint is refused with 503
// and Retry-After before the upgrade; the open connections go on, and a
// slot freed by a close is taken by the next client.
func TestLimitConnectionsTotal(t *testing.T) {
	ts := startServer(t, server.Config{Limits: server.Limits{MaxConnections: 2}})
	ctx := testContext(t)
	a := ts.dial(ctx, t)
	b, _, err := ts.dialHeader(ctx, t, "/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/ws", "/echo", "/chat/lobby"} {
		_, resp, err := ts.dialHeader(ctx, t, path, nil)
		expectRefused(t, resp, err, http.StatusServiceUnavailable, "5", "Service Unavailable: the server has 2 connections, its limit; retry later")
	}
	a.alive(1)
	// Pages are not connections.
	if status, _, _ := ts.do(t, "GET", "/chat/lobby", "", "", nil); status != http.StatusOK {
		t.Fatalf("GET /chat/lobby (the page): %d", status)
	}
	checkSeries(t, scrape(t, ts), map[string]string{
		refusals("connections"): "3",
		`duplex_handshakes_total{endpoint="ws",outcome="refused",status="503"}`:   "1",
		`duplex_handshakes_total{endpoint="echo",outcome="refused",status="503"}`: "1",
		`duplex_handshakes_total{endpoint="chat",outcome="refused",status="503"}`: "1",
	})
	if err := b.conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	for { // the server frees the slot once b's handler has returned
		c, resp, err := ts.dialHeader(ctx, t, "/ws", nil)
		if err == nil {
			c.alive(1)
			break
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || ctx.Err() != nil {
			t.Fatalf("after a close: %v", err)
		}
	}
	a.alive(2)
}

// Beyond MaxConnectionsPerIP, a client address is refused with 429 and
// Retry-After; other addresses are not. Behind a trusted proxy the address
// is X-Forwarded-For's; IPv6 addresses count per /64; an untrusted peer's
// X-Forwarded-For is ignored; loopback is limited only with LimitLoopback.
func TestLimitConnectionsPerIP(t *testing.T) {
	ctx := testContext(t)
	t.Run("behind a trusted proxy", func(t *testing.T) {
		ts := startServer(t, server.Config{Limits: server.Limits{MaxConnectionsPerIP: 2, TrustedProxies: []string{"127.0.0.0/8", "10.0.0.1"}}})
		var first *wsClient
		for i := range 2 {
			c, _, err := ts.dialHeader(ctx, t, "/ws", fromAddr("192.0.2.1"))
			if err != nil {
				t.Fatalf("connection %d: %v", i+1, err)
			}
			first = c
		}
		_, resp, err := ts.dialHeader(ctx, t, "/ws", fromAddr("192.0.2.1"))
		expectRefused(t, resp, err, http.StatusTooManyRequests, "5", "Too Many Requests: 192.0.2.1 has 2 connections, the limit per client address")
		// The proxy chain: the last address that is not a trusted proxy.
		_, resp, err = ts.dialHeader(ctx, t, "/echo", fromAddr("203.0.113.9, 192.0.2.1, 10.0.0.1"))
		expectRefused(t, resp, err, http.StatusTooManyRequests, "5", "Too Many Requests: 192.0.2.1 has 2 connections, the limit per client address")
		for _, other := range []string{"192.0.2.2", "192.0.2.1, 192.0.2.3", "2001:db8::1", "2001:db8::2"} {
			c, _, err := ts.dialHeader(ctx, t, "/ws", fromAddr(other))
			if err != nil {
				t.Fatalf("from %s: %v", other, err)
			}
			c.alive(1)
		}
		_, resp, err = ts.dialHeader(ctx, t, "/ws", fromAddr("2001:db8::ffff"))
		expectRefused(t, resp, err, http.StatusTooManyRequests, "5", "Too Many Requests: 2001:db8::/64 has 2 connections, the limit per client address")
		// Without X-Forwarded-For the client is the proxy itself, on loopback.
		for range 3 {
			ts.dial(ctx, t).alive(1)
		}
		first.alive(1)
		checkSeries(t, scrape(t, ts), map[string]string{refusals("connections_per_ip"): "3"})
	})
	t.Run("loopback", func(t *testing.T) {
		ts := startServer(t, server.Config{Limits: server.Limits{MaxConnectionsPerIP: 1, LimitLoopback: true}})
		a := ts.dial(ctx, t)
		_, resp, err := ts.dialHeader(ctx, t, "/ws", fromAddr("192.0.2.7")) // not a trusted proxy: ignored
		expectRefused(t, resp, err, http.StatusTooManyRequests, "5", "Too Many Requests: 127.0.0.1 has 1 connections, the limit per client address")
		a.alive(1)
	})
}

// Beyond MaxConnectionsPerUser, the connect (with a token) of one more
// connection of the user is answered with error 122, then the connection
// is closed with 1008; other users and anonymous connections are not
// affected, and a closed connection frees its slot. Without
// authentication, the user a client names in connect is only its claim
// and is not counted: any number of connections may name "alice".
func TestLimitConnectionsPerUser(t *testing.T) {
	ctx := testContext(t)
	plain := startServer(t, server.Config{Limits: server.Limits{MaxConnectionsPerUser: 1}})
	for i := range 3 {
		c := plain.dial(ctx, t)
		if got := c.call(`{"id":1,"op":"connect","user":"alice"}`); !strings.Contains(got, `"user":"alice"`) {
			t.Fatalf("without auth, claimed connection %d: %s", i+1, got)
		}
		c.alive(2)
	}
	checkSeries(t, scrape(t, plain), map[string]string{refusals("connections_per_user"): "0"})

	ts := startAuthServer(t, server.Config{Auth: server.AuthConfig{HMACSecret: testSecret}, Limits: server.Limits{MaxConnectionsPerUser: 2}})
	token := func(user string) string {
		return sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claimsFor(user, time.Hour))
	}
	var alice [2]*wsClient
	for i := range alice {
		var got string
		alice[i], got = ts.connectWith(ctx, t, token("alice"))
		if !strings.Contains(got, `"user":"alice"`) {
			t.Fatalf("connect %d: %s", i+1, got)
		}
	}
	third, got := ts.connectWith(ctx, t, token("alice"))
	if want := `{"id":1,"error":{"code":122,"message":"too many connections for user \"alice\": 2 is the limit per user"}}`; got != want {
		t.Fatalf("third connect: %s\nwant %s", got, want)
	}
	third.expectClose(websocket.StatusPolicyViolation, "too many connections for this user")
	if _, got := ts.connectWith(ctx, t, token("bob")); !strings.Contains(got, `"user":"bob"`) {
		t.Fatalf("bob: %s", got)
	}
	for range 3 {
		ts.dial(ctx, t).alive(1) // anonymous
	}
	alice[0].alive(2)
	checkSeries(t, scrape(t, ts), map[string]string{
		refusals("connections_per_user"):                           "1",
		`duplex_close_codes_sent_total{code="1008",endpoint="ws"}`: "1",
	})
	if err := alice[1].conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	for { // the slot is freed once the server has ended the session
		_, got := ts.connectWith(ctx, t, token("alice"))
		if strings.Contains(got, `"user":"alice"`) {
			break
		}
		if !strings.Contains(got, `"code":122`) || ctx.Err() != nil {
			t.Fatalf("after a close: %s", got)
		}
	}
	alice[0].alive(3)
}

// With authentication, the user is the token's: a token in the upgrade
// request over the limit is refused with 429 before the upgrade, one in
// connect gets error 122 and close 1008; other users go on.
func TestLimitConnectionsPerUserToken(t *testing.T) {
	ts := startAuthServer(t, server.Config{Auth: server.AuthConfig{HMACSecret: testSecret}, Limits: server.Limits{MaxConnectionsPerUser: 1}})
	ctx := testContext(t)
	token := func(user string) string {
		return sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claimsFor(user, time.Hour))
	}
	alice := ts.dialWith(ctx, t, "/ws?token="+token("alice"), nil)
	_, resp, err := ts.dialHeader(ctx, t, "/ws?token="+token("alice"), nil)
	expectRefused(t, resp, err, http.StatusTooManyRequests, "5", `Too Many Requests: too many connections for user "alice": 1 is the limit per user`)
	c, got := ts.connectWith(ctx, t, token("alice"))
	if want := `{"id":1,"error":{"code":122,"message":"too many connections for user \"alice\": 1 is the limit per user"}}`; got != want {
		t.Fatalf("connect: %s\nwant %s", got, want)
	}
	c.expectClose(websocket.StatusPolicyViolation, "too many connections for this user")
	bob := ts.dialWith(ctx, t, "/ws?token="+token("bob"), nil)
	bob.alive(1)
	alice.alive(1)
	checkSeries(t, scrape(t, ts), map[string]string{refusals("connections_per_user"): "2"})
}

// Beyond AcceptRate (all clients), a handshake gets 503 with Retry-After
// the seconds until the bucket has a token again; beyond AcceptRatePerIP,
// 429, and a refusal per address does not spend the server's tokens.
func TestLimitAcceptRate(t *testing.T) {
	ctx := testContext(t)
	t.Run("total", func(t *testing.T) {
		ts := startServer(t, server.Config{Limits: server.Limits{AcceptRate: 0.01, AcceptBurst: 2}})
		a := ts.dial(ctx, t)
		ts.dial(ctx, t).alive(1)
		_, resp, err := ts.dialHeader(ctx, t, "/ws", nil)
		expectRefused(t, resp, err, http.StatusServiceUnavailable, "100", "Service Unavailable: the server accepts at most 0.01 new connections a second; retry later")
		a.alive(1)
		checkSeries(t, scrape(t, ts), map[string]string{
			refusals("accept_rate"): "1",
			`duplex_handshakes_total{endpoint="ws",outcome="refused",status="503"}`: "1",
		})
	})
	t.Run("per address", func(t *testing.T) {
		ts := startServer(t, server.Config{Limits: server.Limits{
			AcceptRate: 0.01, AcceptBurst: 3, AcceptRatePerIP: 0.5, AcceptBurstPerIP: 1, TrustedProxies: []string{"127.0.0.1"}}})
		a, _, err := ts.dialHeader(ctx, t, "/ws", fromAddr("192.0.2.1"))
		if err != nil {
			t.Fatal(err)
		}
		_, resp, err := ts.dialHeader(ctx, t, "/ws", fromAddr("192.0.2.1"))
		expectRefused(t, resp, err, http.StatusTooManyRequests, "2", "Too Many Requests: 192.0.2.1 opens more than 0.5 connections a second, the limit per client address")
		for _, other := range []string{"192.0.2.2", "192.0.2.3"} { // the server's bucket still holds 2
			c, _, err := ts.dialHeader(ctx, t, "/ws", fromAddr(other))
			if err != nil {
				t.Fatalf("from %s: %v", other, err)
			}
			c.alive(1)
		}
		_, resp, err = ts.dialHeader(ctx, t, "/ws", fromAddr("192.0.2.4"))
		expectRefused(t, resp, err, http.StatusServiceUnavailable, "100", "Service Unavailable: the server accepts at most 0.01 new connections a second; retry later")
		a.alive(1)
		checkSeries(t, scrape(t, ts), map[string]string{refusals("accept_rate_per_ip"): "1", refusals("accept_rate"): "1"})
	})
}

// A client that trickles its upgrade request is cut off by the handshake
// timeout, which is counted, while an open connection goes on.
func TestLimitHandshakeTimeout(t *testing.T) {
	ts := startServer(t, server.Config{HandshakeTimeout: 300 * time.Millisecond})
	ctx := testContext(t)
	bystander := ts.dial(ctx, t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.http, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(conn) // until the server closes
	if err != nil {
		t.Fatalf("the server did not close the connection: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("cut off after %v, before the timeout", d)
	}
	if len(b) != 0 { // io.ReadAll ended in EOF: closed without an answer
		t.Fatalf("answered %q, want the connection closed without an answer", b)
	}
	bystander.alive(1)
	waitSeries(ctx, t, ts, map[string]string{refusals("handshake_timeout"): "1"})
}

// rawConn is a WebSocket client that never answers pings: it performs the
// handshake and reads frames by hand.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, ts *testServer, path string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.http, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: %s\r\n\r\n", path, server.Subprotocol)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return &rawConn{t: t, c: c, br: br}
}

// frame reads one unmasked server frame of at most 125 bytes.
func (r *rawConn) frame() (op byte, payload []byte) {
	r.t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		r.t.Fatalf("reading a frame: %v", err)
	}
	payload = make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		r.t.Fatalf("reading a frame: %v", err)
	}
	return h[0] & 0x0f, payload
}

// A connection that sends nothing and answers no ping is pinged once, at
// half the idle timeout, and closed with 1001 "idle timeout" at the
// timeout, on /ws and /chat/{room}; a quiet client that answers pings
// stays connected however long.
func TestLimitIdleTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	ts := startServer(t, server.Config{Limits: server.Limits{IdleTimeout: timeout}})
	ctx := testContext(t)

	pings := make(chan struct{}, 100)
	var tcp net.Conn
	opts := dialOptions(&tcp, 0, server.Subprotocol)
	opts.OnPing = func([]byte) { pings <- struct{}{} }
	qc, _, err := websocket.Dial(ctx, ts.ws+"/ws", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseNow()
	quiet := &wsClient{t: t, ctx: ctx, conn: qc}
	msgs := make(chan string, 10)
	go func() {
		for {
			_, p, err := qc.Read(ctx)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(p)
		}
	}()

	for _, path := range []string{"/ws", "/chat/lobby"} {
		start := time.Now()
		r := dialRaw(t, ts, path)
		op, p := r.frame()
		if op != 0x9 || len(p) != 8 {
			t.Fatalf("%s: first frame op %#x %q, want a ping", path, op, p)
		}
		op, p = r.frame()
		if op != 0x8 || len(p) < 2 || binary.BigEndian.Uint16(p) != 1001 || string(p[2:]) != "idle timeout" {
			t.Fatalf("%s: then op %#x %q, want close 1001 \"idle timeout\"", path, op, p)
		}
		if d := time.Since(start); d < timeout {
			t.Fatalf("%s: closed after %v, before the timeout", path, d)
		}
	}

	// Three pings answered: the quiet client has been silent for 1.5
	// timeouts, yet stays.
	for i := range 3 {
		select {
		case <-pings:
		case <-ctx.Done():
			t.Fatalf("ping %d did not come", i+1)
		}
	}
	quiet.send(`{"id":1,"op":"ping"}`)
	if got := <-msgs; got != `{"id":1,"result":{}}` {
		t.Fatalf("quiet client: %q", got)
	}
	checkSeries(t, scrape(t, ts), map[string]string{
		refusals("idle_timeout"):                                     "2",
		`duplex_close_codes_sent_total{code="1001",endpoint="ws"}`:   "1",
		`duplex_close_codes_sent_total{code="1001",endpoint="chat"}`: "1",
	})
}

// A message over the read limit closes its connection with 1009; another
// connection goes on.
func TestLimitMessageSize(t *testing.T) {
	ts := startServer(t, server.Config{Limits: server.Limits{MaxMessageSize: 1024}})
	ctx := testContext(t)
	big, bystander := ts.dial(ctx, t), ts.dial(ctx, t)
	big.send(`{"id":1,"op":"publish","channel":"news","data":"` + strings.Repeat("x", 2000) + `"}`)
	big.expectClose(websocket.StatusMessageTooBig, "message of at least 2050 bytes exceeds the limit of 1024")
	bystander.alive(1)
	waitSeries(ctx, t, ts, map[string]string{
		refusals("message_size"):                                   "1",
		`duplex_close_codes_sent_total{code="1009",endpoint="ws"}`: "1",
	})
}

// Beyond MaxChannels, a subscribe is answered with error 121 (after the
// channel's own checks); an unsubscribe makes room; another connection
// subscribes and receives as usual.
func TestLimitChannels(t *testing.T) {
	ts := startServer(t, server.Config{Limits: server.Limits{MaxChannels: 2}})
	ctx := testContext(t)
	c, other := ts.dial(ctx, t), ts.dial(ctx, t)
	c.subscribe(1, "bare:a")
	c.subscribe(2, "bare:b")
	c.expectCall(`{"id":3,"op":"subscribe","channel":"bare:c"}`,
		`{"id":3,"error":{"code":121,"message":"too many channels: this connection is subscribed to 2, the limit"}}`)
	c.expectCall(`{"id":4,"op":"subscribe","channel":"bare:a"}`, `{"id":4,"error":{"code":107,"message":"already subscribed to \"bare:a\""}}`)
	c.expectCall(`{"id":5,"op":"subscribe","channel":"no:x"}`, `{"id":5,"error":{"code":104,"message":"unknown namespace \"no\" (channel \"no:x\")"}}`)
	c.expectCall(`{"id":6,"op":"unsubscribe","channel":"bare:b"}`, `{"id":6,"result":{}}`)
	c.subscribe(7, "bare:c")
	other.subscribe(1, "bare:a")
	r := other.subscribe(2, "bare:c")
	pos := ts.publishAPI(t, "bare:c", `"hi"`)
	other.expect(push("bare:c", pos.Offset, r.Epoch, `"hi"`))
	c.expect(push("bare:c", pos.Offset, r.Epoch, `"hi"`))
	checkSeries(t, scrape(t, ts), map[string]string{refusals("channels"): "1"})
}

// A plain chat member over the message rate: the texts beyond it are not
// relayed, and one that keeps sending is closed with 1008; the other
// members go on.
func TestLimitMessageRateChat(t *testing.T) {
	ts := startServer(t, server.Config{Limits: server.Limits{MessageRate: 0.001, MessageBurst: 2}})
	ctx := testContext(t)
	// A duplex.v1 observer sees each member join: then it is in the room.
	obs := ts.dial(ctx, t)
	obs.subscribe(1, "chat:lobby")
	joinedAnon(t, obs, "chat:lobby")
	member := func() *wsClient {
		c, err := ts.dialPath(ctx, t, "/chat/lobby", 0)
		if err != nil {
			t.Fatal(err)
		}
		joinedAnon(t, obs, "chat:lobby")
		return c
	}
	flood, other := member(), member()
	for _, text := range []string{"one", "two", "three"} {
		flood.send(text)
	}
	for _, c := range []*wsClient{flood, other} {
		c.expect("one")
		c.expect("two")
	}
	waitSeries(ctx, t, ts, map[string]string{refusals("message_rate"): "1"}) // "three" was read and refused
	other.send("hello")
	for _, c := range []*wsClient{flood, other} {
		c.expect("hello") // not "three"
	}
	for range 10 { // the error budget: ten more, and the connection ends
		flood.send("more")
	}
	for {
		_, p, err := flood.conn.Read(ctx)
		if err == nil {
			t.Fatalf("got %q after the budget", p)
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "message rate exceeded" {
			t.Fatalf("flooder ended with %v, want close 1008 \"message rate exceeded\"", err)
		}
		break
	}
	other.send("still here")
	other.expect("still here")
}

// slowNamespaces are testNamespaces with a drop-oldest namespace and a
// conflating one keyed by the field symbol.
func slowNamespaces() map[string]pubsub.NamespaceOptions {
	ns := testNamespaces()
	ns["drop"] = pubsub.NamespaceOptions{HistorySize: 100, ClientPublish: true, SlowConsumer: pubsub.SlowConsumerDropOldest}
	ns["tick"] = pubsub.NamespaceOptions{HistorySize: 1, SlowConsumer: pubsub.SlowConsumerConflate, ConflateKey: "symbol"}
	return ns
}

// A slow subscriber of a drop-oldest namespace is not closed: it receives
// the messages its queue kept, in order, and for the ones dropped a lost
// push naming exactly the missing offsets, so that every offset is
// accounted for once. The fast subscriber receives everything.
func TestSlowConsumerDropOldest(t *testing.T) {
	const (
		queue   = 4
		n       = 60
		sockBuf = 16 << 10
	)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServerOn(t, server.Config{SendQueue: queue, Namespaces: slowNamespaces()}, &smallFirstSendBuffer{Listener: l, size: sockBuf})
	ctx := testContext(t)
	const ch = "drop:big"
	big := `"` + strings.Repeat("x", 60<<10) + `"`
	slow, err := ts.dialPath(ctx, t, "/ws", sockBuf, server.Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	rs := slow.subscribe(1, ch)
	fast := ts.dial(ctx, t)
	fast.subscribe(1, ch)
	for i := 1; i <= n; i++ {
		ts.publishAPI(t, ch, big)
		fast.expect(push(ch, uint64(i), rs.Epoch, big))
	}
	next, lostPushes, lostOffsets := uint64(1), 0, 0
	for next <= n {
		msg := slow.next()
		if strings.HasPrefix(msg, `{"op":"lost"`) {
			var l struct {
				To uint64 `json:"offset"`
			}
			json.Unmarshal([]byte(msg), &l)
			if want := fmt.Sprintf(`{"op":"lost","channel":%q,"from":%d,"offset":%d,"epoch":%q}`, ch, next, l.To, rs.Epoch); msg != want || l.To < next || l.To > n {
				t.Fatalf("at offset %d got %s, want %s", next, msg, want)
			}
			lostPushes++
			lostOffsets += int(l.To - next + 1)
			next = l.To + 1
			continue
		}
		if want := push(ch, next, rs.Epoch, big); msg != want {
			t.Fatalf("at offset %d got %.100s", next, msg)
		}
		next++
	}
	if lostPushes == 0 || lostOffsets > n-queue {
		t.Fatalf("%d lost pushes for %d offsets", lostPushes, lostOffsets)
	}
	slow.alive(2)
	fast.alive(2)
	checkSeries(t, scrape(t, ts), map[string]string{
		`duplex_send_queue_drops_total{endpoint="ws"}`:     fmt.Sprint(lostOffsets),
		`duplex_slow_consumer_closes_total{endpoint="ws"}`: "0",
	})
	t.Logf("the slow subscriber lost %d of %d messages, reported in %d pushes", lostOffsets, n, lostPushes)
}

// A slow subscriber of a conflating namespace receives, of each key's
// waiting messages, the newest: fewer messages, offsets in order, each
// symbol's values in order and its last value last; it is not closed. The
// fast subscriber receives everything.
func TestSlowConsumerConflate(t *testing.T) {
	const (
		queue   = 4
		n       = 60
		sockBuf = 16 << 10
	)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServerOn(t, server.Config{SendQueue: queue, Namespaces: slowNamespaces()}, &smallFirstSendBuffer{Listener: l, size: sockBuf})
	ctx := testContext(t)
	const ch = "tick:all"
	pad := strings.Repeat("x", 32<<10)
	data := func(i int) string {
		return fmt.Sprintf(`{"symbol":%q,"seq":%d,"pad":%q}`, string(rune('A'+i%3)), i, pad)
	}
	slow, err := ts.dialPath(ctx, t, "/ws", sockBuf, server.Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	rs := slow.subscribe(1, ch)
	fast := ts.dial(ctx, t)
	fast.subscribe(1, ch)
	for i := 1; i <= n; i++ {
		ts.publishAPI(t, ch, data(i))
		fast.expect(push(ch, uint64(i), rs.Epoch, data(i)))
	}
	last := map[string]int{}
	received, prev := 0, uint64(0)
	for prev < n {
		msg := slow.next()
		f := parseFrame(t, msg)
		var d struct {
			Symbol string
			Seq    int
		}
		json.Unmarshal(f.Data, &d)
		if msg != push(ch, f.Offset, rs.Epoch, data(d.Seq)) || int(f.Offset) != d.Seq || f.Offset <= prev || d.Seq <= last[d.Symbol] {
			t.Fatalf("after offset %d and %v: %.100s", prev, last, msg)
		}
		prev, last[d.Symbol] = f.Offset, d.Seq
		received++
	}
	for i := n - 2; i <= n; i++ { // each symbol's last value arrived
		if sym := string(rune('A' + i%3)); last[sym] != i {
			t.Fatalf("last value of %s: seq %d, want %d", sym, last[sym], i)
		}
	}
	if received >= n {
		t.Fatalf("the slow subscriber received all %d messages: nothing was conflated", n)
	}
	slow.alive(2)
	fast.alive(2)
	checkSeries(t, scrape(t, ts), map[string]string{
		`duplex_send_queue_conflated_total{endpoint="ws"}`: fmt.Sprint(n - received),
		`duplex_send_queue_drops_total{endpoint="ws"}`:     "0",
		`duplex_slow_consumer_closes_total{endpoint="ws"}`: "0",
	})
	t.Logf("the slow subscriber received %d of %d messages", received, n)
}

// An invalid limit setting stops the server at start, naming it.
func TestLimitsInvalid(t *testing.T) {
	srv := server.New(server.Config{Listen: "127.0.0.1:0", Limits: server.Limits{TrustedProxies: []string{"10.0.0.0/8", "proxy.internal"}}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = srv.Serve(l)
	if want := `limits: TrustedProxies entry "proxy.internal" is neither an IP address nor a network such as 10.0.0.0/8`; err == nil || err.Error() != want {
		t.Fatalf("Serve = %v, want %s", err, want)
	}
	for _, tc := range []struct {
		l    server.Limits
		want string
	}{
		{server.Limits{MessageBurst: -1}, "limits: MessageBurst is -1: want 1 or more (0: the default)"},
		{server.Limits{AcceptBurstPerIP: -3}, "limits: AcceptBurstPerIP is -3: want 1 or more (0: the default)"},
	} {
		if err := tc.l.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("Validate(%+v) = %v, want %s", tc.l, err, tc.want)
		}
	}
}

// The zero Limits have every limit on, at the documented defaults; a
// negative value turns one off.
func TestLimitsDefaults(t *testing.T) {
	want := server.Limits{
		MaxConnections: 100000, MaxConnectionsPerIP: 1000, MaxConnectionsPerUser: 100,
		AcceptRate: 1000, AcceptBurst: 2000, AcceptRatePerIP: 50, AcceptBurstPerIP: 100,
		IdleTimeout: time.Minute, MaxMessageSize: 64 << 10, MessageRate: 100, MessageBurst: 200, MaxChannels: 128,
	}
	if got := (server.Limits{}).Effective(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Effective() = %+v\nwant %+v", got, want)
	}
	off := server.Limits{MaxConnections: -1, IdleTimeout: -1, MessageRate: -1, MaxMessageSize: -1}.Effective()
	if off.MaxConnections != -1 || off.IdleTimeout != -1 || off.MessageRate != -1 || off.MaxMessageSize != -1 || off.MaxChannels != 128 {
		t.Fatalf("Effective() of negative values = %+v", off)
	}
}
