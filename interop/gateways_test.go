package interop

// Gateways (package bridge) with programs nobody here wrote: an MQTT client
// over WebSocket (npm mqtt) through the TCP bridge to a real Mosquitto
// broker, RESP commands over WebSocket to a real redis-server, and a shell
// script behind the process bridge talking to Python websockets and to a
// page in headless Chromium.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/bridge"
	"github.com/duplex-ws/duplex/websocket"
)

const (
	mosquittoPath   = "/usr/sbin/mosquitto"
	redisServerPath = "/usr/bin/redis-server"
	chatScript      = "gateway/chat.sh"
	mqttPeer        = "node/mqtt_client.js"
	chatPythonPeer  = "python/chat_client.py"
)

// requireGatewayDep is requirePeer for the gateway tests' programs:
// "mosquitto", "redis" or "mqtt.js". It skips when one is missing, and
// fails under CI=true.
func requireGatewayDep(t *testing.T, what string) {
	t.Helper()
	var missing string
	switch what {
	case "mosquitto":
		if _, err := os.Stat(mosquittoPath); err != nil {
			missing = mosquittoPath + " not found (Debian package mosquitto)"
		}
	case "redis":
		if _, err := os.Stat(redisServerPath); err != nil {
			missing = redisServerPath + " not found (Debian package redis-server)"
		}
	case "mqtt.js":
		requirePeer(t, "node")
		if _, err := os.Stat("node/node_modules/mqtt/package.json"); err != nil {
			missing = "interop/node/node_modules/mqtt not found (npm ci in interop/node)"
		}
	default:
		missing = "unknown dependency " + what
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (%s); with CI=true this fails instead of skipping; install it with: %s", what, missing, installHint)
	}
	t.Skipf("%s is not installed (%s); install it with: %s", what, missing, installHint)
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitTCP waits until something accepts connections at addr.
func waitTCP(ctx context.Context, t *testing.T, p *peerProc, addr string) {
	t.Helper()
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening: %v", p.name, p.err)
		case <-ctx.Done():
			t.Fatalf("%s does not listen on %s: %v", p.name, addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// gatewayServer serves h at path on an httptest server and returns its
// ws:// base URL.
func gatewayServer(t *testing.T, mux *http.ServeMux) string {
	t.Helper()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// testLog returns a logger whose lines go to the test's log when the test
// ends (handlers may still log after that, into the buffer).
func testLog(t *testing.T) *slog.Logger {
	buf := new(syncBuffer)
	t.Cleanup(func() {
		if s := buf.String(); s != "" {
			t.Logf("bridge log:\n%s", strings.TrimRight(s, "\n"))
		}
	})
	return slog.New(slog.NewTextHandler(buf, nil))
}

// TestGatewayMQTT: npm mqtt over WebSocket, through the bridge, to a real
// Mosquitto broker on TCP; a plain TCP MQTT client publishes to the same
// broker, and the WebSocket subscriber gets its message too.
func TestGatewayMQTT(t *testing.T) {
	requireGatewayDep(t, "mosquitto")
	requireGatewayDep(t, "mqtt.js")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	port := freePort(t)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n", port)), 0o644)
	broker := startPeer(ctx, t, "mosquitto", mosquittoPath, "-c", conf)
	brokerAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitTCP(ctx, t, broker, brokerAddr)

	var mu sync.Mutex
	var subprotocols []string
	mux := http.NewServeMux()
	mux.Handle("GET /mqtt", &bridge.TCPHandler{
		Target:       bridge.Target{Addr: brokerAddr},
		Subprotocols: []string{"mqtt"},
		RefuseText:   true, // MQTT over WebSocket is binary only
		OnConn: func(c *websocket.Conn) func() {
			mu.Lock()
			subprotocols = append(subprotocols, c.Subprotocol())
			mu.Unlock()
			return func() {}
		},
		Log: testLog(t),
	})
	base := gatewayServer(t, mux)

	topic := fmt.Sprintf("duplex/test/%d", time.Now().UnixNano())
	client := startPeer(ctx, t, "mqtt.js", "node", mqttPeer, base+"/mqtt", topic)
wait:
	for {
		select {
		case line, ok := <-client.lines:
			if !ok || line == "subscribed" {
				break wait
			}
		case <-ctx.Done():
			t.Fatalf("mqtt.js did not subscribe: %v", ctx.Err())
		}
	}
	if err := mqttPublishTCP(ctx, brokerAddr, topic+"/tcp", []byte("from a TCP client")); err != nil {
		t.Fatalf("TCP publisher: %v", err)
	}
	if err := client.wait(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(subprotocols) != 3 {
		t.Fatalf("%d bridged connections, want 3 (sub, pub, late)", len(subprotocols))
	}
	for _, p := range subprotocols {
		if p != "mqtt" {
			t.Fatalf("subprotocols %q, want mqtt for each", subprotocols)
		}
	}
}

// mqttPublishTCP publishes one QoS 0 message as a plain MQTT 3.1.1 client
// on TCP: CONNECT, CONNACK, PUBLISH, DISCONNECT.
func mqttPublishTCP(ctx context.Context, addr, topic string, payload []byte) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	packet := func(typ byte, body []byte) []byte {
		b := []byte{typ}
		n := len(body)
		for { // remaining length, 7 bits a byte
			x := byte(n % 128)
			n /= 128
			if n > 0 {
				x |= 0x80
			}
			b = append(b, x)
			if n == 0 {
				break
			}
		}
		return append(b, body...)
	}
	connect := append(append(str("MQTT"), 4, 0x02, 0, 30), str("duplex-tcp-pub")...)
	if _, err := c.Write(packet(0x10, connect)); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		return fmt.Errorf("CONNACK: %v", err)
	}
	if !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		return fmt.Errorf("CONNACK % x, want 20 02 00 00", ack)
	}
	if _, err := c.Write(packet(0x30, append(str(topic), payload...))); err != nil {
		return err
	}
	_, err = c.Write([]byte{0xe0, 0})
	return err
}

// TestGatewayRedis: RESP commands over WebSocket, through the bridge, to a
// real redis-server, get the exact answers.
func TestGatewayRedis(t *testing.T) {
	requireGatewayDep(t, "redis")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	port := freePort(t)
	dir := t.TempDir()
	server := startPeer(ctx, t, "redis-server", redisServerPath,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--protected-mode", "yes")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitTCP(ctx, t, server, addr)

	mux := http.NewServeMux()
	mux.Handle("GET /redis", &bridge.TCPHandler{Target: bridge.Target{Addr: addr}, Log: testLog(t)})
	base := gatewayServer(t, mux)
	c, _, err := websocket.Dial(ctx, base+"/redis", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()

	// The replies arrive as a byte stream cut anywhere into binary
	// messages: read until the expected bytes are there.
	var pending []byte
	expect := func(what string, want []byte) {
		t.Helper()
		for len(pending) < len(want) {
			typ, p, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("%s: read after %d bytes: %v", what, len(pending), err)
			}
			if typ != websocket.MessageBinary {
				t.Fatalf("%s: a %v message from the bridge, want binary", what, typ)
			}
			pending = append(pending, p...)
		}
		if !bytes.Equal(pending[:len(want)], want) {
			g := pending
			if len(g) > 200 {
				g = g[:200]
			}
			t.Fatalf("%s: got %q, want %q", what, g, want[:min(len(want), 200)])
		}
		pending = pending[len(want):]
	}
	send := func(typ websocket.MessageType, s string) {
		t.Helper()
		if err := c.Write(ctx, typ, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	resp := func(args ...string) string {
		s := fmt.Sprintf("*%d\r\n", len(args))
		for _, a := range args {
			s += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
		}
		return s
	}

	send(websocket.MessageText, "PING\r\n") // inline command, as text
	expect("PING", []byte("+PONG\r\n"))
	send(websocket.MessageBinary, resp("SET", "greeting", "h\u00e9llo"))
	expect("SET", []byte("+OK\r\n"))
	send(websocket.MessageBinary, resp("GET", "greeting"))
	expect("GET", []byte("$6\r\nh\u00e9llo\r\n"))
	// Three commands in one message (pipelining).
	send(websocket.MessageBinary, resp("INCR", "n")+resp("INCR", "n")+resp("INCRBY", "n", "40"))
	expect("INCR x3", []byte(":1\r\n:2\r\n:42\r\n"))
	// One command cut across two messages.
	cmd := resp("RPUSH", "list", "a", "b", "c")
	send(websocket.MessageBinary, cmd[:7])
	send(websocket.MessageBinary, cmd[7:])
	expect("RPUSH", []byte(":3\r\n"))
	send(websocket.MessageBinary, resp("LRANGE", "list", "0", "-1"))
	expect("LRANGE", []byte("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"))
	// A binary value of 1 MiB with every byte value, there and back.
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i*31 + 7)
	}
	send(websocket.MessageBinary, resp("SET", "big", string(big)))
	expect("SET big", []byte("+OK\r\n"))
	send(websocket.MessageBinary, resp("STRLEN", "big"))
	expect("STRLEN", []byte(":1048576\r\n"))
	send(websocket.MessageBinary, resp("GET", "big"))
	expect("GET big", append(append([]byte("$1048576\r\n"), big...), "\r\n"...))
	send(websocket.MessageBinary, resp("NOSUCHCOMMAND"))
	expect("unknown command", []byte("-ERR unknown command 'NOSUCHCOMMAND', with args beginning with: \r\n"))
	// QUIT: Redis answers and closes; the bridge closes with 1000.
	send(websocket.MessageBinary, resp("QUIT"))
	expect("QUIT", []byte("+OK\r\n"))
	_, _, err = c.Read(ctx)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "target closed the connection" {
		t.Fatalf("after QUIT: %v, want 1000 \"target closed the connection\"", err)
	}
}

// chatRoute serves interop/gateway/chat.sh at /chat with the process
// bridge, and a page for the browser at /.
func chatRoute(t *testing.T) (base string, h *bridge.ExecHandler, done chan struct{}) {
	t.Helper()
	sh, err := filepath.Abs(chatScript)
	if err != nil {
		t.Fatal(err)
	}
	h = &bridge.ExecHandler{Command: []string{sh}, ScriptName: "/chat", Log: testLog(t)}
	done = make(chan struct{}, 8)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /chat", func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		h.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, chatPage)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	return gatewayServer(t, mux), h, done
}

// TestGatewayChatPython: Python websockets holds a conversation with the
// shell script, to both of the script's endings.
func TestGatewayChatPython(t *testing.T) {
	requirePeer(t, "python")
	for _, ending := range []string{"bye", "fail"} {
		t.Run(ending, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			base, h, done := chatRoute(t)
			p := startPeer(ctx, t, "python client", systemPython, chatPythonPeer, base+"/chat?name=py", ending)
			if err := p.wait(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-ctx.Done():
				t.Fatal("the bridge's handler did not return")
			}
			if n := h.Running(); n != 0 {
				t.Fatalf("%d processes still running", n)
			}
		})
	}
}

// TestGatewayChatChromium: a page in headless Chromium holds the same
// conversations with the script, with the browser's WebSocket, to both of
// its endings: 1000 after "bye" and 1011 "exit status 7" after "fail".
func TestGatewayChatChromium(t *testing.T) {
	requirePeer(t, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	base, h, done := chatRoute(t)
	p := startPeer(ctx, t, "chromium", "node", browserPeer, "http"+strings.TrimPrefix(base, "ws")+"/")
	if err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the two conversations
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("the bridge's handler did not return")
		}
	}
	if n := h.Running(); n != 0 {
		t.Fatalf("%d processes still running", n)
	}
}

// chatPage talks to /chat twice, to both of the script's endings (1000
// after "bye", 1011 after "fail"), and sets window.interopResult for
// node/browser.js.
const chatPage = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>duplex process bridge</title></head>
<body>
<p id="status">running</p>
<script>
"use strict";
(function () {
  // open connects to /chat?name=NAME and returns helpers that read its
  // messages in order and its close.
  async function open(name) {
    var ws = new WebSocket("ws://" + location.host + "/chat?name=" + name);
    ws.binaryType = "arraybuffer";
    var queue = [], waiters = [], closed = null, closeWaiters = [];
    function wake() {
      while (waiters.length && (queue.length || closed)) {
        waiters.shift()(queue.length ? queue.shift() : null);
      }
    }
    ws.onmessage = function (e) { queue.push(e.data); wake(); };
    ws.onclose = function (e) {
      closed = { code: e.code, reason: e.reason };
      wake();
      closeWaiters.splice(0).forEach(function (w) { w(closed); });
    };
    function next() { return new Promise(function (r) { waiters.push(r); wake(); }); }
    await new Promise(function (resolve, reject) {
      ws.onopen = resolve;
      ws.onerror = function () { reject(new Error(name + ": WebSocket error before open")); };
    });
    return {
      send: function (m) { ws.send(m); },
      expect: async function (want) {
        var got = await next();
        if (got === null) throw new Error(name + ": closed (" + JSON.stringify(closed) + ") while waiting for " + JSON.stringify(want));
        if (typeof got !== "string") throw new Error(name + ": got a binary message, want text " + JSON.stringify(want));
        if (got !== want) throw new Error(name + ": got " + JSON.stringify(got) + ", want " + JSON.stringify(want));
      },
      expectClose: async function (code, reason) {
        var c = await new Promise(function (r) { if (closed) r(closed); else closeWaiters.push(r); });
        if (c.code !== code || c.reason !== reason) {
          throw new Error(name + ": closed with " + c.code + " " + JSON.stringify(c.reason) + ", want " + code + " " + JSON.stringify(reason));
        }
      }
    };
  }
  async function run() {
    var a = await open("browser");
    await a.expect("hello 127.0.0.1, you asked for name=browser on /chat");
    a.send("hi");
    await a.expect("1: HI");
    a.send("h\u00e9llo w\u00f6rld");
    await a.expect("2: H\u00e9LLO W\u00f6RLD");
    a.send(new TextEncoder().encode("bytes"));
    await a.expect("3: BYTES");
    a.send("bye");
    await a.expect("bye after 4 messages");
    await a.expectClose(1000, "exit status 0");

    // The script exits with status 7: the browser sees 1011.
    var b = await open("browser2");
    await b.expect("hello 127.0.0.1, you asked for name=browser2 on /chat");
    b.send("fail");
    await b.expect("failing");
    await b.expectClose(1011, "exit status 7");
  }
  run().then(function () {
    document.getElementById("status").textContent = "ok";
    window.interopResult = { ok: true };
  }, function (err) {
    document.getElementById("status").textContent = "failed";
    window.interopResult = { ok: false, error: String(err && err.message || err) };
  });
})();
</script>
</body>
</html>
`
