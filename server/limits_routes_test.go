package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/bridge"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// With the default limits, a /ws command, a /chat message or an API body
// of 65 KiB is over the 64 KiB MaxMessageSize: the WebSocket ones close
// their connection with 1009, the API answers 413; other connections go
// on, and a 65 KiB message on /echo (Config.ReadLimit, 32 MiB) is echoed.
func TestLimitMessageSizeDefault(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	data := strings.Repeat("x", 65<<10)
	big, bystander := ts.dial(ctx, t), ts.dial(ctx, t)
	cmd := `{"id":1,"op":"publish","channel":"news","data":"` + data + `"}`
	big.send(cmd)
	big.expectClose(websocket.StatusMessageTooBig, fmt.Sprintf("message of at least %d bytes exceeds the limit of 65536", len(cmd)))
	bystander.alive(1)

	chat, err := ts.dialChat(ctx, t, "/chat/lobby")
	if err != nil {
		t.Fatal(err)
	}
	chat.send(data)
	chat.expectClose(websocket.StatusMessageTooBig, "message of at least 66560 bytes exceeds the limit of 65536")

	status, _, body := ts.do(t, "POST", "/api/publish", "application/json", `{"channel":"news","data":"`+data+`"}`, nil)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "body over 65536 bytes") {
		t.Fatalf("API: %d %s", status, body)
	}
	if status, _, body := ts.do(t, "POST", "/api/publish", "application/json", `{"channel":"news","data":"small"}`, nil); status != http.StatusOK {
		t.Fatalf("API, small body: %d %s", status, body)
	}

	echo, _, err := websocket.Dial(ctx, ts.ws+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.CloseNow()
	if err := echo.Write(ctx, websocket.MessageText, []byte(data)); err != nil {
		t.Fatal(err)
	}
	if _, p, err := echo.Read(ctx); err != nil || string(p) != data {
		t.Fatalf("echo of 65 KiB: %d bytes, %v", len(p), err)
	}
	bystander.alive(2)
	waitSeries(ctx, t, ts, map[string]string{
		refusals("message_size"):                                     "2",
		`duplex_close_codes_sent_total{code="1009",endpoint="ws"}`:   "1",
		`duplex_close_codes_sent_total{code="1009",endpoint="chat"}`: "1",
	})
}

// dialChat opens a plain WebSocket connection to a chat room.
func (ts *testServer) dialChat(ctx context.Context, t testing.TB, path string) (*wsClient, error) {
	c, _, err := websocket.Dial(ctx, ts.ws+path, nil)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, ctx: ctx, conn: c}, nil
}

// tcpEchoTarget is a TCP server that sends back what it reads.
func tcpEchoTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// On /echo, a bridge route and an exec route, a client that sends nothing
// and answers no ping is pinged at half the idle timeout and closed with
// 1001 "idle timeout" at the timeout; a quiet client that answers pings
// stays however long, and still gets its messages through.
func TestLimitIdleTimeoutRoutes(t *testing.T) {
	const timeout = 400 * time.Millisecond
	ts := startServer(t, server.Config{
		Limits:  server.Limits{IdleTimeout: timeout},
		Bridges: []server.BridgeRoute{{Path: "/tcp", Target: bridge.Target{Addr: tcpEchoTarget(t)}}},
		Execs:   []server.ExecRoute{{Path: "/cat", Command: []string{"cat"}}},
	})
	ctx := testContext(t)
	for _, tc := range []struct {
		path, endpoint string
		send, want     string
	}{
		{"/echo", "echo", "hello", "hello"},
		{"/tcp", "bridge", "hello", "hello"},
		{"/cat", "exec", "hello\n", "hello"},
	} {
		t.Run(tc.endpoint, func(t *testing.T) {
			pings := make(chan struct{}, 100)
			opts := &websocket.DialOptions{Options: websocket.Options{OnPing: func([]byte) { pings <- struct{}{} }}}
			quiet, _, err := websocket.Dial(ctx, ts.ws+tc.path, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer quiet.CloseNow()
			msgs := make(chan string, 10)
			go func() {
				defer close(msgs)
				for {
					_, p, err := quiet.Read(ctx)
					if err != nil {
						return
					}
					msgs <- string(p)
				}
			}()

			start := time.Now()
			r := dialRaw(t, ts, tc.path)
			op, p := r.frame()
			if op != 0x9 || len(p) != 8 {
				t.Fatalf("first frame op %#x %q, want a ping", op, p)
			}
			op, p = r.frame()
			if op != 0x8 || len(p) < 2 || binary.BigEndian.Uint16(p) != 1001 || string(p[2:]) != "idle timeout" {
				t.Fatalf("then op %#x %q, want close 1001 \"idle timeout\"", op, p)
			}
			if d := time.Since(start); d < timeout {
				t.Fatalf("closed after %v, before the timeout", d)
			}

			for i := range 3 { // silent for 1.5 timeouts, yet it stays
				select {
				case <-pings:
				case <-ctx.Done():
					t.Fatalf("ping %d did not come", i+1)
				}
			}
			if err := quiet.Write(ctx, websocket.MessageText, []byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			if got := <-msgs; got != tc.want {
				t.Fatalf("quiet client got %q, want %q", got, tc.want)
			}
			waitSeries(ctx, t, ts, map[string]string{
				fmt.Sprintf(`duplex_close_codes_sent_total{code="1001",endpoint=%q}`, tc.endpoint): "1",
			})
		})
	}
	checkSeries(t, scrape(t, ts), map[string]string{refusals("idle_timeout"): "3"})
}

// On a bridge route, bytes from the target count as activity: a client
// that answers no ping but receives a tick every quarter of the idle
// timeout stays past two timeouts, and is closed with 1001 once the
// target falls silent.
func TestLimitIdleTimeoutBridgeTargetActivity(t *testing.T) {
	const timeout = 400 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const ticks = 10
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for range ticks {
			if _, err := c.Write([]byte("tick")); err != nil {
				return
			}
			time.Sleep(timeout / 4) // the target's pace, not synchronization
		}
		io.Copy(io.Discard, c)
	}()
	ts := startServer(t, server.Config{
		Limits:  server.Limits{IdleTimeout: timeout},
		Bridges: []server.BridgeRoute{{Path: "/tcp", Target: bridge.Target{Addr: ln.Addr().String()}}},
	})
	start := time.Now()
	r := dialRaw(t, ts, "/tcp")
	got := 0
	for {
		op, p := r.frame()
		switch {
		case op == 0x2 && string(p) == "tick":
			got++
			continue
		case op == 0x9:
			continue // the ping after the target fell silent
		case op == 0x8 && len(p) >= 2 && binary.BigEndian.Uint16(p) == 1001 && string(p[2:]) == "idle timeout":
		default:
			t.Fatalf("frame op %#x %q after %d ticks", op, p, got)
		}
		break
	}
	if got != ticks {
		t.Fatalf("closed after %d ticks of %d", got, ticks)
	}
	if d := time.Since(start); d < 2*timeout {
		t.Fatalf("closed after %v, while the target was sending", d)
	}
}

// Beyond its message rate, an /echo connection is closed with 1008
// "message rate exceeded" (the messages within the burst are echoed);
// another connection echoes as usual.
func TestLimitMessageRateEcho(t *testing.T) {
	ts := startServer(t, server.Config{Limits: server.Limits{MessageRate: 0.5, MessageBurst: 3}})
	ctx := testContext(t)
	dial := func() *wsClient {
		c, _, err := websocket.Dial(ctx, ts.ws+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return &wsClient{t: t, ctx: ctx, conn: c}
	}
	fast, bystander := dial(), dial()
	for i := range 4 {
		fast.send(fmt.Sprintf("m%d", i+1))
	}
	for i := range 3 {
		if _, p, err := fast.conn.Read(ctx); err != nil || string(p) != fmt.Sprintf("m%d", i+1) {
			t.Fatalf("echo %d: %q %v", i+1, p, err)
		}
	}
	fast.expectClose(websocket.StatusPolicyViolation, "message rate exceeded")
	bystander.send("still here")
	if _, p, err := bystander.conn.Read(ctx); err != nil || string(p) != "still here" {
		t.Fatalf("bystander: %q %v", p, err)
	}
	checkSeries(t, scrape(t, ts), map[string]string{
		refusals("message_rate"):                                     "1",
		`duplex_close_codes_sent_total{code="1008",endpoint="echo"}`: "1",
	})
}
