package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// runBenchCmd runs `duplex bench args...` in-process.
func runBenchCmd(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	var out, errb bytes.Buffer
	status = run(append([]string{"bench"}, args...), &out, &errb)
	return out.String(), errb.String(), status
}

// readBenchJSON reads what --out wrote.
func readBenchJSON(t *testing.T, path string) *BenchResult {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r BenchResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("--out is not JSON: %v\n%s", err, b)
	}
	return &r
}

// tableValue returns the value of a row of the final table.
func tableValue(t *testing.T, table, row string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + row + ` +(.*)$`).FindStringSubmatch(table)
	if m == nil {
		t.Fatalf("no %q row in the table:\n%s", row, table)
	}
	return m[1]
}

func TestBenchEchoClosedLoop(t *testing.T) {
	srv := echoServer(t)
	dir := t.TempDir()
	out, plot := filepath.Join(dir, "r.json"), filepath.Join(dir, "l.svg")
	stdout, stderr, status := runBenchCmd(t, "--conns", "3", "--duration", "400ms", "--progress", "100ms", "--out", out, "--plot", plot, wsURL(srv, "/echo"))
	if status != 0 {
		t.Fatalf("exit status %d\n%s%s", status, stdout, stderr)
	}
	r := readBenchJSON(t, out)
	if r.Mode != "echo" || r.Conns != 3 || r.Size != 32 || r.Rate != 0 {
		t.Fatalf("result describes %+v", r)
	}
	if r.Sent == 0 || r.Received != r.Sent || r.Expected != r.Sent || r.Lost != 0 || r.Errors != 0 {
		t.Fatalf("sent %d received %d expected %d lost %d errors %d", r.Sent, r.Received, r.Expected, r.Lost, r.Errors)
	}
	if r.Latency.Min < 1 || r.Latency.P50 < r.Latency.Min || r.Latency.P99 < r.Latency.P50 || r.Latency.Max < r.Latency.P99 {
		t.Fatalf("latency summary out of order: %+v", r.Latency)
	}
	if len(r.Distribution) != len(distributionPoints) {
		t.Fatalf("distribution has %d points, want %d", len(r.Distribution), len(distributionPoints))
	}
	var counted int64
	for _, iv := range r.Intervals {
		counted += iv.Count
	}
	// A loaded machine may fire the progress ticker late, so at least one
	// interval, not one per 100 ms.
	if len(r.Intervals) < 1 || counted > r.Received {
		t.Fatalf("%d intervals counting %d of %d echoes", len(r.Intervals), counted, r.Received)
	}
	// The table says what the JSON says.
	if got, want := tableValue(t, stdout, "echoed"), fmt.Sprintf("%s of %s", group(r.Received), group(r.Sent)); got != want {
		t.Fatalf("echoed row %q, want %q", got, want)
	}
	if got := tableValue(t, stdout, "message"); got != "32 B binary" {
		t.Fatalf("message row %q", got)
	}
	if got := tableValue(t, stdout, "errors"); got != "0" {
		t.Fatalf("errors row %q", got)
	}
	// One progress line per interval.
	lines := regexp.MustCompile(`(?m)^ +\d+\.\ds  echo  [\d ]+ echoes/s  p50 \S+ \S+  p99 \S+ \S+  p99\.9 \S+ \S+$`).FindAllString(stderr, -1)
	if len(lines) != len(r.Intervals) {
		t.Fatalf("%d progress lines for %d intervals:\n%s", len(lines), len(r.Intervals), stderr)
	}
	checkPlot(t, plot)
}

// checkPlot checks that the --plot file at path is SVG with one point per
// percentile of the latency distribution.
func checkPlot(t *testing.T, path string) {
	t.Helper()
	svg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName  xml.Name `xml:"svg"`
		Polyline struct {
			Points string `xml:"points,attr"`
		} `xml:"polyline"`
	}
	if err := xml.Unmarshal(svg, &doc); err != nil {
		t.Fatalf("--plot is not XML: %v", err)
	}
	if n := len(strings.Fields(doc.Polyline.Points)); n != len(distributionPoints) {
		t.Fatalf("plot has %d points, want %d", n, len(distributionPoints))
	}
}

func TestBenchEchoOpenLoopText(t *testing.T) {
	srv := echoServer(t)
	out := filepath.Join(t.TempDir(), "r.json")
	stdout, stderr, status := runBenchCmd(t, "--conns", "4", "--rate", "400", "--duration", "500ms", "--text", "--size", "100", "--progress", "0", "--out", out, wsURL(srv, "/echo"))
	if status != 0 || stderr != "" {
		t.Fatalf("exit status %d\n%s%s", status, stdout, stderr)
	}
	r := readBenchJSON(t, out)
	// 400/s over 0.5 s from 4 connections, each starting within one
	// interval: 200 due, one more per connection at most. Fewer only
	// when the machine stalls the sender near the end (it catches up on
	// what is overdue, but stops at the deadline).
	if r.Sent < 100 || r.Sent > 204 {
		t.Fatalf("sent %d messages at 400/s for 0.5 s", r.Sent)
	}
	if r.Received != r.Sent || r.Lost != 0 || r.Errors != 0 {
		t.Fatalf("sent %d received %d lost %d errors %d", r.Sent, r.Received, r.Lost, r.Errors)
	}
	if got := tableValue(t, stdout, "message"); got != "100 B text" {
		t.Fatalf("message row %q", got)
	}
	// --rate is messages a second in all, not per connection.
	if got, want := tableValue(t, stdout, "rate"), "400 messages/s in all (spread over 4 connections)"; got != want {
		t.Fatalf("rate row %q, want %q", got, want)
	}
}

// TestBenchProgressStartsWithSending runs against a server that takes
// 300 ms over each handshake: the progress clock starts when every
// connection is open and sending starts, so no interval of the sending
// time is empty and the intervals' times count from the first message.
func TestBenchProgressStartsWithSending(t *testing.T) {
	const handshakeDelay = 300 * time.Millisecond
	for _, tc := range []struct{ mode, path string }{{"echo", "/echo"}, {"subscribe", "/ws"}} {
		t.Run(tc.mode, func(t *testing.T) {
			h := server.New(server.Config{Limits: server.Limits{MessageRate: -1}}).Handler()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(handshakeDelay)
				h.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			out := filepath.Join(t.TempDir(), "r.json")
			began := time.Now()
			stdout, stderr, status := runBenchCmd(t, "--mode", tc.mode, "--conns", "2", "--duration", "600ms", "--progress", "100ms", "--out", out, wsURL(srv, tc.path))
			if status != 0 {
				t.Fatalf("exit status %d\n%s%s", status, stdout, stderr)
			}
			if took := time.Since(began); took < handshakeDelay+600*time.Millisecond {
				t.Fatalf("the run took %s: the handshakes were not delayed", took)
			}
			r := readBenchJSON(t, out)
			if len(r.Intervals) == 0 {
				t.Fatal("no progress intervals")
			}
			// The first interval starts at 0, when sending starts, and
			// each begins where the one before ended.
			prev := 0.0
			for i, iv := range r.Intervals {
				if d := iv.At - iv.Elapsed - prev; d < -0.005 || d > 0.005 {
					t.Fatalf("interval %d: at %.3f s after %.3f s, but the one before ended at %.3f s", i+1, iv.At, iv.Elapsed, prev)
				}
				prev = iv.At
				// Every interval that ended while sending saw messages:
				// none is the handshakes' wait.
				if iv.At <= r.Duration && iv.Count == 0 {
					t.Fatalf("interval %d (at %.3f s of %.3f s of sending) counted no messages: %+v", i+1, iv.At, r.Duration, r.Intervals)
				}
			}
			// The last ended near the end of sending, not a handshake
			// later.
			if last := r.Intervals[len(r.Intervals)-1].At; last > r.Duration+0.25 {
				t.Fatalf("the last interval ended at %.3f s, %.3f s of sending: %+v", last, r.Duration, r.Intervals)
			}
		})
	}
}

// TestBenchThroughputWhileSending runs against servers that answer each
// message 600 ms late, one after another, for 900 ms of sending: two
// messages go out (at 0 and 0.6 s closed loop, 0 and 0.5 s at --rate 2),
// the first answer comes at 0.6 s, while sending, and the second at
// 1.2 s, during the drain. Both count as received; the throughput counts
// only the first, as the drain is not in the 0.9 s it divides by.
func TestBenchThroughputWhileSending(t *testing.T) {
	const delay = 600 * time.Millisecond
	slowEcho := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			time.Sleep(delay)
			if c.Write(ctx, typ, p) != nil {
				return
			}
		}
	})
	slowDeliveries := alteringRelay(t, wsURL(echoServer(t), "/ws"), func(n int, p []byte) [][]byte {
		time.Sleep(delay)
		return [][]byte{p}
	})
	cases := []struct {
		name, url, unit, verb string
		args                  []string
	}{
		{"echo closed loop", wsURL(slowEcho, "/"), "echoes", "echoed", nil},
		{"echo open loop", wsURL(slowEcho, "/"), "echoes", "echoed", []string{"--rate", "2"}},
		{"subscribe", wsURL(slowDeliveries, "/ws"), "deliveries", "delivered", []string{"--mode", "subscribe", "--rate", "2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			args := append([]string{"--conns", "1", "--duration", "900ms", "--progress", "0", "--out", out}, tc.args...)
			stdout, stderr, status := runBenchCmd(t, append(args, tc.url)...)
			if status != 0 {
				t.Fatalf("exit status %d\n%s%s", status, stdout, stderr)
			}
			r := readBenchJSON(t, out)
			if r.Sent != 2 || r.Received != 2 || r.Lost != 0 || r.Duration != 0.9 {
				t.Fatalf("sent %d, received %d, lost %d in %g s; want 2, 2, 0 in 0.9 s", r.Sent, r.Received, r.Lost, r.Duration)
			}
			if r.ReceivedWhileSending != 1 {
				t.Fatalf("received_while_sending %d, want 1", r.ReceivedWhileSending)
			}
			if want := 1 / r.Duration; r.PerSec != want {
				t.Fatalf("per_sec %g, want %g: the answer that came during the drain was counted", r.PerSec, want)
			}
			if got, want := tableValue(t, stdout, "throughput"), "1 "+tc.unit+"/s, 0.00 MB/s (counting the 1 "+tc.verb+" while sending)"; got != want {
				t.Fatalf("throughput row %q, want %q", got, want)
			}
		})
	}
}

// TestBenchEchoDetectsBadEchoes runs against servers that answer wrongly:
// each fault is found, named, and makes the exit status 1.
func TestBenchEchoDetectsBadEchoes(t *testing.T) {
	cases := []struct {
		name    string
		answer  func(n int, typ websocket.MessageType, p []byte) [][]byte
		args    []string
		wantErr string
	}{
		{"changed byte", func(n int, typ websocket.MessageType, p []byte) [][]byte {
			if n == 5 {
				p[len(p)-1] ^= 1
			}
			return [][]byte{p}
		}, nil, "connection 1: echo of message 5 has different bytes"},
		{"truncated", func(n int, typ websocket.MessageType, p []byte) [][]byte {
			if n == 3 {
				p = p[:20]
			}
			return [][]byte{p}
		}, nil, "connection 1: echo of 20 bytes does not match the 32 sent"},
		{"out of order", func(n int, typ websocket.MessageType, p []byte) [][]byte {
			if n == 4 {
				return nil // held back: message 5's echo comes first
			}
			return [][]byte{p}
		}, []string{"--rate", "200"}, "connection 1: echo of message 5 arrived when 4 was expected"},
		{"never answered", func(n int, typ websocket.MessageType, p []byte) [][]byte {
			if n >= 7 {
				return nil
			}
			return [][]byte{p}
		}, []string{"--rate", "100", "--drain", "200ms"}, "echoes not received within --drain 200ms"},
		{"never answered, closed loop", func(n int, typ websocket.MessageType, p []byte) [][]byte {
			if n >= 7 {
				return nil
			}
			return [][]byte{p}
		}, []string{"--drain", "200ms"}, "connection 1: echo of message 7 not received within --drain 200ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				for n := 1; ; n++ {
					typ, p, err := c.Read(ctx)
					if err != nil {
						return
					}
					for _, a := range tc.answer(n, typ, append([]byte(nil), p...)) {
						if c.Write(ctx, typ, a) != nil {
							return
						}
					}
				}
			})
			out := filepath.Join(t.TempDir(), "r.json")
			args := append([]string{"--conns", "1", "--duration", "300ms", "--progress", "0", "--out", out}, tc.args...)
			stdout, stderr, status := runBenchCmd(t, append(args, wsURL(srv, "/"))...)
			if status != 1 {
				t.Fatalf("exit status %d, want 1\n%s%s", status, stdout, stderr)
			}
			r := readBenchJSON(t, out)
			if r.Errors != 1 || len(r.Notes) != 1 || !strings.Contains(r.Notes[0], tc.wantErr) {
				t.Fatalf("errors %d, notes %q; want one note with %q", r.Errors, r.Notes, tc.wantErr)
			}
			if !strings.Contains(stdout, "  "+r.Notes[0]+"\n") {
				t.Fatalf("the table does not show the note %q:\n%s", r.Notes[0], stdout)
			}
		})
	}
}

func TestBenchSubscribe(t *testing.T) {
	srv := echoServer(t)
	out := filepath.Join(t.TempDir(), "r.json")
	stdout, stderr, status := runBenchCmd(t, "--mode", "subscribe", "--conns", "5", "--duration", "400ms", "--progress", "0", "--channel", "load", "--size", "200", "--out", out, wsURL(srv, "/ws"))
	if status != 0 || stderr != "" {
		t.Fatalf("exit status %d\n%s%s", status, stdout, stderr)
	}
	r := readBenchJSON(t, out)
	if r.Sent == 0 || r.Expected != 5*r.Sent || r.Received != r.Expected || r.Lost != 0 || r.Errors != 0 {
		t.Fatalf("published %d, delivered %d of %d, lost %d, errors %d", r.Sent, r.Received, r.Expected, r.Lost, r.Errors)
	}
	if r.Channel != "load" || tableValue(t, stdout, "channel") != "load" || tableValue(t, stdout, "subscribers") != "5" {
		t.Fatalf("channel %q, table:\n%s", r.Channel, stdout)
	}
	if got, want := tableValue(t, stdout, "delivered"), fmt.Sprintf("%s of %s", group(r.Received), group(r.Expected)); got != want {
		t.Fatalf("delivered row %q, want %q", got, want)
	}
}

// TestBenchSubscribeRate checks what --rate means in subscribe mode:
// publishes a second on the one publisher connection, each delivered to
// every subscriber, and that the table says so.
func TestBenchSubscribeRate(t *testing.T) {
	srv := echoServer(t)
	out := filepath.Join(t.TempDir(), "r.json")
	stdout, stderr, status := runBenchCmd(t, "--mode", "subscribe", "--conns", "3", "--rate", "50", "--duration", "400ms", "--progress", "0", "--out", out, wsURL(srv, "/ws"))
	if status != 0 || stderr != "" {
		t.Fatalf("exit status %d\n%s%s", status, stdout, stderr)
	}
	r := readBenchJSON(t, out)
	// 50/s over 0.4 s: 20 due (at 0 to 0.38 s; none due at or after the
	// end, even when the machine fires the window's deadline late); fewer
	// only when the machine stalls the publisher near the end. Per
	// subscriber it would be three times as many.
	if r.Sent < 10 || r.Sent > 20 || r.Expected != 3*r.Sent || r.Received != r.Expected {
		t.Fatalf("published %d at 50/s for 0.4 s, delivered %d of %d", r.Sent, r.Received, r.Expected)
	}
	if got, want := tableValue(t, stdout, "rate"), "50 publishes/s (150 deliveries/s to 3 subscribers)"; got != want {
		t.Fatalf("rate row %q, want %q", got, want)
	}
}

// alteringRelay serves duplex.v1 by relaying each connection to the
// duplex server at backend; every message push from the server passes
// through alter (n counts the connection's pushes from 1), which returns
// the messages to send on in its place.
func alteringRelay(t *testing.T, backend string, alter func(n int, p []byte) [][]byte) *httptest.Server {
	t.Helper()
	opts := &websocket.AcceptOptions{Subprotocols: []string{client.Subprotocol}}
	return wsServer(t, opts, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		up, _, err := websocket.Dial(ctx, backend, &websocket.DialOptions{Subprotocols: []string{client.Subprotocol}})
		if err != nil {
			t.Errorf("relay: %v", err)
			return
		}
		defer up.CloseNow()
		go func() { // client to server, unchanged
			for {
				typ, p, err := c.Read(ctx)
				if err != nil || up.Write(ctx, typ, p) != nil {
					cancel()
					return
				}
			}
		}()
		for n := 0; ; {
			typ, p, err := up.Read(ctx)
			if err != nil {
				return
			}
			out := [][]byte{p}
			if bytes.HasPrefix(p, []byte(`{"op":"message"`)) {
				n++
				out = alter(n, append([]byte(nil), p...))
			}
			for _, m := range out {
				if c.Write(ctx, typ, m) != nil {
					return
				}
			}
		}
	})
}

// TestBenchSubscribeDetectsFaults runs subscribe mode through a relay that
// changes one delivery or swaps two: the run fails with a note naming the
// fault.
func TestBenchSubscribeDetectsFaults(t *testing.T) {
	var held []byte
	cases := []struct {
		name    string
		alter   func(n int, p []byte) [][]byte
		wantErr string
	}{
		{"changed byte", func(n int, p []byte) [][]byte {
			if n == 5 {
				i := bytes.LastIndexByte(p, 'x') // in the padding
				p[i] = 'y'
			}
			return [][]byte{p}
		}, "subscriber 1: message 5 at offset 5 has different bytes than were published"},
		{"out of order", func(n int, p []byte) [][]byte {
			switch n {
			case 3:
				held = p
				return nil
			case 4:
				return [][]byte{p, held}
			}
			return [][]byte{p}
		}, "subscriber 1: message 4 at offset 4 came after offset 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			relay := alteringRelay(t, wsURL(echoServer(t), "/ws"), tc.alter)
			out := filepath.Join(t.TempDir(), "r.json")
			// One publish at a time (--rate), so that sequence numbers
			// and offsets are the same.
			stdout, stderr, status := runBenchCmd(t, "--mode", "subscribe", "--conns", "1", "--rate", "100", "--duration", "300ms", "--progress", "0", "--size", "100", "--out", out, wsURL(relay, "/ws"))
			if status != 1 {
				t.Fatalf("exit status %d, want 1\n%s%s", status, stdout, stderr)
			}
			r := readBenchJSON(t, out)
			if r.Errors != 1 || len(r.Notes) == 0 || r.Notes[0] != tc.wantErr {
				t.Fatalf("errors %d, notes %q; want the first note %q", r.Errors, r.Notes, tc.wantErr)
			}
			// The changed message arrived; the late one was dropped by
			// the client, as older than one it delivered: lost.
			lost := int64(0)
			if tc.name == "out of order" {
				lost = 1
			}
			if r.Received != r.Expected-lost || r.Lost != lost || len(r.Notes) != 1+int(lost) {
				t.Fatalf("delivered %d of %d, lost %d, notes %q; want %d lost", r.Received, r.Expected, r.Lost, r.Notes, lost)
			}
		})
	}
}

func TestBenchSubscribeRefused(t *testing.T) {
	ns := server.DefaultNamespaces()
	ns["api"] = pubsub.NamespaceOptions{} // only the HTTP API may publish
	srv := httptest.NewServer(server.New(server.Config{Namespaces: ns}).Handler())
	t.Cleanup(srv.Close)
	stdout, stderr, status := runBenchCmd(t, "--mode", "subscribe", "--conns", "2", "--duration", "200ms", "--progress", "0", "--channel", "api:x", wsURL(srv, "/ws"))
	if status != 1 || stdout != "" || !strings.HasPrefix(stderr, `duplex bench: the server refused to publish on "api:x": `) || !strings.Contains(stderr, "105") {
		t.Fatalf("exit status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "duplex bench: want one URL (ws:// or wss://)\n"},
		{[]string{"http://x/"}, "duplex bench: URL \"http://x/\": want ws://host/path or wss://host/path\n"},
		{[]string{"--mode", "chat", "ws://x/"}, "duplex bench: --mode \"chat\": want echo or subscribe\n"},
		{[]string{"--conns", "0", "ws://x/"}, "duplex bench: --conns 0: want 1 or more\n"},
		{[]string{"--rate", "-1", "ws://x/"}, "duplex bench: --rate -1: want 0 (as fast as possible) or more\n"},
		{[]string{"--duration", "0s", "ws://x/"}, "duplex bench: --duration 0s: want more than 0\n"},
		{[]string{"--size", "15", "ws://x/"}, "duplex bench: --size 15: at least 16 for binary messages (the bytes that carry the send time and sequence number)\n"},
		{[]string{"--size", "31", "--text", "ws://x/"}, "duplex bench: --size 31: at least 32 for text messages (the bytes that carry the send time and sequence number)\n"},
		{[]string{"--mode", "subscribe", "--size", "63", "ws://x/"}, "duplex bench: --size 63: at least 64 in subscribe mode (the JSON data that carries the send time and sequence number)\n"},
		{[]string{"--mode", "subscribe", "--text", "ws://x/"}, "duplex bench: --text: only for --mode echo (duplex.v1 messages are JSON text)\n"},
	}
	for _, tc := range cases {
		stdout, stderr, status := runBenchCmd(t, tc.args...)
		checkRun(t, stdout, stderr, status, "", tc.want, 2)
	}
	// A server that cannot be reached: exit status 1, the failure named.
	stdout, stderr, status := runBenchCmd(t, "--duration", "100ms", "ws://127.0.0.1:1/echo")
	if status != 1 || stdout != "" || !strings.HasPrefix(stderr, "duplex bench: connection ") {
		t.Fatalf("exit status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
}

func TestBenchStamps(t *testing.T) {
	for _, text := range []bool{false, true} {
		p := echoPayload(40)
		stampEcho(p, text, 123456789*time.Nanosecond, 1<<40+7)
		due, seq, ok := readStamp(p, text)
		if !ok || due != 123456789 || seq != 1<<40+7 {
			t.Fatalf("text=%v: read back %v %d %v", text, due, seq, ok)
		}
		if string(p[32:]) != string(echoPayload(40)[32:]) {
			t.Fatalf("text=%v: filler changed: %q", text, p[32:])
		}
	}
	if _, _, ok := readStamp([]byte("not hex at all, 32 bytes long!!!"), true); ok {
		t.Fatal("a text message without a stamp was read as one")
	}
	for _, size := range []int{64, 65, 200, 4096} {
		d := subscribeData(1<<63, time.Duration(1<<62), size)
		if len(d) != size || !json.Valid(d) {
			t.Fatalf("size %d: %d bytes, valid %v: %s", size, len(d), json.Valid(d), d)
		}
		var bd benchData
		if err := json.Unmarshal(d, &bd); err != nil || bd.Seq != 1<<63 || bd.T != 1<<62 {
			t.Fatalf("size %d: decoded %+v, %v", size, bd, err)
		}
	}
}

// countingListener counts the connections a test server accepted and
// those still open (not yet closed by the server).
type countingListener struct {
	net.Listener
	accepted, open atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	l.open.Add(1)
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// TestBenchSubscribePublisherFails: the publisher dials the URL the
// subscribers dialled, once they are all subscribed. A server that
// accepts the subscribers and refuses the publisher's handshake (403)
// fails the run at once with the refusal named, before anything is
// published (no progress line, no table, nothing on the channel), and
// the subscribers' connections are closed, nothing of the run left
// running.
func TestBenchSubscribePublisherFails(t *testing.T) {
	const conns = 3
	h := server.New(server.Config{Limits: server.Limits{MessageRate: -1}}).Handler()
	var upgrades, refused atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("observer") { // the test's own client
			h.ServeHTTP(w, r)
			return
		}
		if upgrades.Add(1) > conns {
			refused.Add(1)
			http.Error(w, "no publishers here", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	}))
	l := &countingListener{Listener: srv.Listener}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)

	// An observer on the channel sees anything published there.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	obs := client.New(wsURL(srv, "/ws?observer"), nil)
	defer obs.Close()
	var published atomic.Int64
	if _, err := obs.Subscribe(ctx, "load", func(client.Message) { published.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	// The run's signal.Notify starts os/signal's goroutine, once per
	// process, for good: not the run's.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	signal.Stop(sigs)
	goroutines := runtime.NumGoroutine()

	type result struct {
		stdout, stderr string
		status         int
	}
	done := make(chan result, 1)
	began := time.Now()
	go func() {
		var out, errb bytes.Buffer
		status := run([]string{"bench", "--mode", "subscribe", "--conns", fmt.Sprint(conns), "--channel", "load", "--progress", "50ms", wsURL(srv, "/ws")}, &out, &errb)
		done <- result{out.String(), errb.String(), status}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("duplex bench did not return within 15 s")
	}
	// At once: not after the setup's 30-second bound, not after retries.
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("the run took %v to fail", took)
	}
	checkRun(t, r.stdout, r.stderr, r.status, "",
		"duplex bench: publisher: websocket: handshake failed (status): server answered 403 Forbidden instead of 101 Switching Protocols\n", 1)
	if n := refused.Load(); n < 1 {
		t.Fatalf("the publisher's handshake was refused %d times", n)
	}
	// The subscribers' connections close (the observer's stays open), and
	// the run's goroutines end.
	deadline := time.Now().Add(5 * time.Second)
	for (l.open.Load() != 1 || runtime.NumGoroutine() > goroutines) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := l.open.Load(); n != 1 {
		t.Fatalf("%d connections still open of %d accepted, want only the observer's", n, l.accepted.Load())
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before the run:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
	}
	if obs.Ping(ctx) != nil || published.Load() != 0 {
		t.Fatalf("%d messages were published on the channel", published.Load())
	}
}
