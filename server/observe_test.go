package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// logLines collects the JSON lines of a slog.JSONHandler and tells when a
// "connection closed" line arrives, so that a test waits for a connection's
// end on the server without polling.
type logLines struct {
	mu     sync.Mutex
	lines  []map[string]any
	closed chan struct{} // one value per "connection closed" line
}

func newLogLines() *logLines { return &logLines{closed: make(chan struct{}, 100)} }

func (l *logLines) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.lines = append(l.lines, m)
	l.mu.Unlock()
	if m["msg"] == "connection closed" {
		l.closed <- struct{}{}
	}
	return len(p), nil
}

// logger returns a JSON logger writing into l.
func (l *logLines) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// waitClosed waits for n more "connection closed" lines.
func (l *logLines) waitClosed(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-l.closed:
		case <-ctx.Done():
			t.Fatalf("%d of %d connection closed lines arrived", i, n)
		}
	}
}

// find returns the lines whose msg is msg and whose endpoint is endpoint.
func (l *logLines) find(msg, endpoint string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, m := range l.lines {
		if m["msg"] == msg && m["endpoint"] == endpoint {
			out = append(out, m)
		}
	}
	return out
}

// scrape returns the sample lines of GET /metrics, by series.
func scrape(t *testing.T, ts *testServer) map[string]string {
	t.Helper()
	status, h, body := ts.do(t, "GET", "/metrics", "", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: Content-Type %q", ct)
	}
	series := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		series[line[:i]] = line[i+1:]
	}
	return series
}

// checkSeries compares series with want, exactly.
func checkSeries(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %q, want %q", name, got[name], v)
		}
	}
}

// A known workload on /ws, /echo and a refused handshake shows in
// /metrics as exactly that many connections, handshakes, messages, bytes,
// latency observations and close codes.
func TestMetricsAfterTraffic(t *testing.T) {
	logs := newLogLines()
	ts := startServer(t, server.Config{Log: logs.logger()})
	ctx := testContext(t)

	// Before any traffic every namespace's series is there, at zero.
	checkSeries(t, scrape(t, ts), map[string]string{
		`duplex_channel_messages_in_total{namespace="live",via="websocket"}`: "0",
		`duplex_channel_messages_out_total{namespace="live"}`:                "0",
		`duplex_channel_messages_out_total{namespace="chat"}`:                "0",
		`duplex_connections{endpoint="ws"}`:                                  "0",
	})

	// A subscriber and a publisher on live:news (no presence, so the
	// subscriber gets exactly the three messages).
	sub := ts.dial(ctx, t)
	res := sub.subscribe(1, "live:news")
	pub := ts.dial(ctx, t)
	var inBytes, outBytes int
	for i := 1; i <= 3; i++ {
		cmd := fmt.Sprintf(`{"id":%d,"op":"publish","channel":"live:news","data":"hello %d"}`, i, i)
		inBytes += len(cmd)
		got := pub.call(cmd)
		if want := fmt.Sprintf(`{"id":%d,"result":{"offset":%d,"epoch":"%s"}}`, i, i, res.Epoch); got != want {
			t.Fatalf("publish answer %s, want %s", got, want)
		}
		want := push("live:news", uint64(i), res.Epoch, fmt.Sprintf(`"hello %d"`, i))
		outBytes += len(want)
		sub.expect(want)
	}

	// Mid-traffic: two connections open on /ws.
	checkSeries(t, scrape(t, ts), map[string]string{`duplex_connections{endpoint="ws"}`: "2"})

	// A handshake without the duplex.v1 subprotocol is refused with 400.
	if _, err := ts.dialPath(ctx, t, "/ws", 0); err == nil {
		t.Fatal("a /ws handshake without the subprotocol was accepted")
	} else if he := (*websocket.HandshakeError)(nil); !errors.As(err, &he) || he.Status != http.StatusBadRequest {
		t.Fatalf("refused handshake: %v, want status 400", err)
	}

	// An echo connection: two messages each way, closed with 1000.
	echo, err := ts.dialPath(ctx, t, "/echo", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"one", "two"} {
		echo.send(m)
		echo.expect(m)
	}
	if err := echo.conn.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatal(err)
	}
	if err := sub.conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if err := pub.conn.Close(4000, "bye"); err != nil {
		t.Fatal(err)
	}
	logs.waitClosed(ctx, t, 3)

	checkSeries(t, scrape(t, ts), map[string]string{
		`duplex_connections{endpoint="ws"}`:                                        "0",
		`duplex_connections{endpoint="echo"}`:                                      "0",
		`duplex_handshakes_total{endpoint="ws",outcome="accepted",status="101"}`:   "2",
		`duplex_handshakes_total{endpoint="ws",outcome="refused",status="400"}`:    "1",
		`duplex_handshakes_total{endpoint="echo",outcome="accepted",status="101"}`: "1",
		`duplex_channel_messages_in_total{namespace="live",via="websocket"}`:       "3",
		`duplex_channel_bytes_in_total{namespace="live",via="websocket"}`:          fmt.Sprint(inBytes),
		`duplex_channel_messages_in_total{namespace="live",via="api"}`:             "0",
		`duplex_channel_messages_out_total{namespace="live"}`:                      "3",
		`duplex_channel_bytes_out_total{namespace="live"}`:                         fmt.Sprint(outBytes),
		`duplex_channel_messages_in_total{namespace="",via="websocket"}`:           "0",
		`duplex_delivery_latency_seconds_count{namespace="live"}`:                  "3",
		`duplex_delivery_latency_seconds_bucket{namespace="live",le="+Inf"}`:       "3",
		`duplex_close_codes_received_total{code="1000",endpoint="ws"}`:             "1",
		`duplex_close_codes_received_total{code="4000",endpoint="ws"}`:             "1",
		`duplex_close_codes_received_total{code="1000",endpoint="echo"}`:           "1",
		`duplex_slow_consumer_closes_total{endpoint="ws"}`:                         "0",
	})
	if got := scrape(t, ts); got[`duplex_close_codes_sent_total{code="1013",endpoint="ws"}`] != "" {
		t.Errorf("a close code sent without any server close: %v", got[`duplex_close_codes_sent_total{code="1013",endpoint="ws"}`])
	}
}

// HTTP API publishes count in the channel messages and bytes in, with
// via="api" apart from the WebSocket ones: single and batch publishes, the
// bytes of each message's data; a refused one is not counted.
func TestMetricsAPIPublishes(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	ts.publishAPI(t, "feed:a", `{"n":1}`)
	ts.publishAPI(t, "feed:a", `"xy"`)
	batch := `{"messages":[{"channel":"feed:b","data":[1,2]},{"channel":"live:c","data":true},{"channel":"nope:x","data":1}]}`
	if st, _, body := ts.do(t, "POST", "/api/publish", "application/json", batch, nil); st != http.StatusOK || !strings.Contains(body, `"error":{"code":104`) {
		t.Fatalf("batch: %d %s", st, body)
	}
	if st, _, body := ts.do(t, "POST", "/api/publish", "application/json", `{"channel":"nope:x","data":1}`, nil); st != http.StatusBadRequest {
		t.Fatalf("publish to an unknown namespace: %d %s", st, body)
	}
	pub := ts.dial(ctx, t)
	cmd := `{"id":1,"op":"publish","channel":"live:c","data":"ws"}`
	if got := pub.call(cmd); !strings.HasPrefix(got, `{"id":1,"result":{"offset":2,`) {
		t.Fatalf("WebSocket publish: %s", got)
	}
	checkSeries(t, scrape(t, ts), map[string]string{
		`duplex_channel_messages_in_total{namespace="feed",via="api"}`:       "3",
		`duplex_channel_bytes_in_total{namespace="feed",via="api"}`:          fmt.Sprint(len(`{"n":1}`) + len(`"xy"`) + len(`[1,2]`)),
		`duplex_channel_messages_in_total{namespace="feed",via="websocket"}`: "0",
		`duplex_channel_messages_in_total{namespace="live",via="api"}`:       "1",
		`duplex_channel_bytes_in_total{namespace="live",via="api"}`:          "4",
		`duplex_channel_messages_in_total{namespace="live",via="websocket"}`: "1",
		`duplex_channel_bytes_in_total{namespace="live",via="websocket"}`:    fmt.Sprint(len(cmd)),
	})
}

// A subscriber that does not read is closed with 1013, which shows as one
// slow-consumer close, one 1013 sent and at least one dropped message; the
// server's shutdown then counts its 1001s.
func TestMetricsSlowConsumerAndShutdown(t *testing.T) {
	const sockBuf = 16 << 10
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := newLogLines()
	ts := startServerOn(t, server.Config{SendQueue: 16, Log: logs.logger()}, &smallFirstSendBuffer{Listener: l, size: sockBuf})
	ctx := testContext(t)
	// The subscriber's receive buffer is larger than the loopback MSS
	// (64 KiB): with a smaller one the receiver does not announce the
	// room it frees (less than one MSS), the sender learns of it only
	// from its zero-window probes, whose interval doubles to seconds while
	// the subscriber does not read, and the message ahead of the close
	// frame could take longer than the close timeout to arrive once it
	// reads (measured under load: 0 or 1 message in 1 to 7 s with 16 KiB,
	// 9 in 30 ms to 1.3 s with 256 KiB).
	slow, err := ts.dialPath(ctx, t, "/ws", 256<<10, server.Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	slow.subscribe(1, "live:big")
	big := `"` + strings.Repeat("x", 60<<10) + `"`
	// Publish until the server counts the slow-consumer close (the queue
	// of 16, the batch its writer is blocked in and the socket buffers
	// overflow by message 30 or so), then read at once: the close frame
	// leaves after the write in progress, which ends only when the client
	// reads; a client that has not read within the close timeout (5 s)
	// sees its connection cut (1006, docs/protocol.md), which publishing
	// on for seconds on a loaded machine would cause.
	for i := 1; ; i++ {
		ts.publishAPI(t, "live:big", big)
		if scrape(t, ts)[`duplex_slow_consumer_closes_total{endpoint="ws"}`] == "1" {
			break
		}
		if i == 100 {
			t.Fatalf("no slow-consumer close after %d messages of 60 KiB", i)
		}
	}
	for {
		_, err := slow.recv()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusTryAgainLater {
			t.Fatalf("slow subscriber ended with %v, want close 1013", err)
		}
		break
	}
	logs.waitClosed(ctx, t, 1)
	got := scrape(t, ts)
	checkSeries(t, got, map[string]string{
		`duplex_slow_consumer_closes_total{endpoint="ws"}`:         "1",
		`duplex_close_codes_sent_total{code="1013",endpoint="ws"}`: "1",
		`duplex_connections{endpoint="ws"}`:                        "0",
	})
	if d := got[`duplex_send_queue_drops_total{endpoint="ws"}`]; d == "" || d == "0" {
		t.Errorf("duplex_send_queue_drops_total = %q, want at least 1", d)
	}
	closed := logs.find("connection closed", "ws")
	if len(closed) != 1 || closed[0]["code"] != float64(1013) || closed[0]["by"] != "server" || closed[0]["reason"] != "slow consumer: send queue full" {
		t.Errorf("close lines %v, want one by the server with 1013", closed)
	}

	// Shutdown closes a connected chat member with 1001.
	member, err := ts.dialPath(ctx, t, "/chat/lobby", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The member joins the room after its upgrade: wait until it has, so
	// that Shutdown meets a member, not a subscribe refused by a closed hub.
	for {
		status, _, body := ts.do(t, "GET", "/api/channels/chat:lobby/presence", "", "", nil)
		if status == http.StatusOK && strings.Contains(body, `"client"`) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the chat member never joined: %d %s", status, body)
		case <-time.After(5 * time.Millisecond):
		}
	}
	memberEnd := make(chan error, 1)
	go func() { // reading, so that the closing handshake completes at once
		_, _, err := member.conn.Read(ctx)
		memberEnd <- err
	}()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	var ce *websocket.CloseError
	if err := <-memberEnd; !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != "server shutting down" {
		t.Fatalf("chat member ended with %v, want close 1001", err)
	}
	logs.waitClosed(ctx, t, 1)
	rec := httptest.NewRecorder()
	ts.srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := `duplex_close_codes_sent_total{code="1001",endpoint="chat"} 1`; !strings.Contains(rec.Body.String(), want+"\n") {
		t.Errorf("metrics after shutdown lack %s", want)
	}
}

// Each connection has one open line, with the remote address, endpoint and
// subprotocol, and one close line with the code, reason, duration and
// message counts.
func TestConnectionLogLines(t *testing.T) {
	logs := newLogLines()
	ts := startServer(t, server.Config{Log: logs.logger()})
	ctx := testContext(t)
	c := ts.dial(ctx, t)
	c.subscribe(1, "live:x")
	c.expectCall(`{"id":2,"op":"ping"}`, `{"id":2,"result":{}}`)
	remote := c.tcp.LocalAddr().String()
	if err := c.conn.Close(4001, "see you"); err != nil {
		t.Fatal(err)
	}
	logs.waitClosed(ctx, t, 1)

	opened := logs.find("connection opened", "ws")
	if len(opened) != 1 {
		t.Fatalf("%d open lines, want 1: %v", len(opened), opened)
	}
	wantOpen := map[string]any{"level": "INFO", "msg": "connection opened", "endpoint": "ws", "remote": remote, "subprotocol": "duplex.v1"}
	for k, v := range wantOpen {
		if opened[0][k] != v {
			t.Errorf("open line %s = %v, want %v", k, opened[0][k], v)
		}
	}
	if len(opened[0]) != len(wantOpen)+1 { // and time
		t.Errorf("open line %v has other fields than %v and time", opened[0], wantOpen)
	}
	closed := logs.find("connection closed", "ws")
	if len(closed) != 1 {
		t.Fatalf("%d close lines, want 1: %v", len(closed), closed)
	}
	wantClose := map[string]any{"level": "INFO", "msg": "connection closed", "endpoint": "ws", "remote": remote,
		"by": "client", "code": float64(4001), "reason": "see you", "messages_in": float64(2), "messages_out": float64(2)}
	for k, v := range wantClose {
		if closed[0][k] != v {
			t.Errorf("close line %s = %v, want %v", k, closed[0][k], v)
		}
	}
	if d, ok := closed[0]["duration"].(float64); !ok || d <= 0 {
		t.Errorf("close line duration %v, want a positive number of nanoseconds", closed[0]["duration"])
	}
	if len(closed[0]) != len(wantClose)+2 { // and time, duration
		t.Errorf("close line %v has other fields", closed[0])
	}
}

// notReadyBroker is a memory broker that says it is not ready.
type notReadyBroker struct {
	pubsub.Broker
	err error
}

func (b *notReadyBroker) Ready() error { return b.err }

func TestHealthAndReadiness(t *testing.T) {
	ts := startServer(t, server.Config{})
	status, h, body := ts.do(t, "GET", "/healthz", "", "", nil)
	if status != 200 || body != "ok\n" || h.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("GET /healthz: %d %q %q", status, h.Get("Content-Type"), body)
	}
	status, h, body = ts.do(t, "GET", "/readyz", "", "", nil)
	if status != 200 || body != `{"ready":true}`+"\n" || h.Get("Content-Type") != "application/json" {
		t.Errorf("GET /readyz: %d %q %q", status, h.Get("Content-Type"), body)
	}

	broker := &notReadyBroker{Broker: pubsub.NewMemoryBroker(), err: errors.New("natsbroker: NATS connection reconnecting")}
	defer broker.Close()
	nr := startServer(t, server.Config{Broker: broker})
	status, _, body = nr.do(t, "GET", "/readyz", "", "", nil)
	if want := `{"ready":false,"not_ready":{"broker":"natsbroker: NATS connection reconnecting"}}` + "\n"; status != 503 || body != want {
		t.Errorf("GET /readyz with a broker not ready: %d %q, want 503 %q", status, body, want)
	}
	status, _, body = nr.do(t, "GET", "/healthz", "", "", nil)
	if status != 200 || body != "ok\n" {
		t.Errorf("GET /healthz with a broker not ready: %d %q, want 200", status, body)
	}

	// Once Shutdown begins, the server is not ready (asked in-process: the
	// listener is closed by then).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	ts.srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if want := `{"ready":false,"not_ready":{"server":"shutting down"}}` + "\n"; rec.Code != 503 || rec.Body.String() != want {
		t.Errorf("GET /readyz after Shutdown: %d %q, want 503 %q", rec.Code, rec.Body.String(), want)
	}
	broker.err = errors.New("down")
	rec = httptest.NewRecorder()
	nr.srv.Shutdown(ctx)
	nr.srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if want := `{"ready":false,"not_ready":{"broker":"down","server":"shutting down"}}` + "\n"; rec.Code != 503 || rec.Body.String() != want {
		t.Errorf("GET /readyz after Shutdown, broker down: %d %q, want 503 %q", rec.Code, rec.Body.String(), want)
	}
}

func TestPprofFlag(t *testing.T) {
	off := startServer(t, server.Config{})
	if status, _, _ := off.do(t, "GET", "/debug/pprof/", "", "", nil); status != 404 {
		t.Errorf("GET /debug/pprof/ without Pprof: %d, want 404", status)
	}
	on := startServer(t, server.Config{Pprof: true})
	status, _, body := on.do(t, "GET", "/debug/pprof/", "", "", nil)
	if status != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("GET /debug/pprof/ with Pprof: %d %.200q", status, body)
	}
	status, _, body = on.do(t, "GET", "/debug/pprof/goroutine?debug=1", "", "", nil)
	if status != 200 || !strings.HasPrefix(body, "goroutine profile: total ") {
		t.Errorf("GET /debug/pprof/goroutine?debug=1: %d %.80q", status, body)
	}
}
