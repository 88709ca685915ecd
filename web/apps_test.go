package web_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/server"
)

// The apps' end-to-end test runs testdata/apps_e2e.mjs, which opens the
// pages of the real server (`duplex serve --demo` as server.New builds it)
// in headless Chromium and checks what they show. The script asks this side
// for what a page cannot do itself: cutting its channel connection. Beside
// it run a server without the demo (the ticker page's notice) and a test
// WebSocket endpoint that shows what close the echo tester sent.
const (
	appsScript     = "testdata/apps_e2e.mjs"
	playwrightDir  = "../interop/node/node_modules/playwright-core"
	screenshotsDir = "../docs/screenshots"
)

// wsGate is a listener that remembers its connections and can cut those
// whose first request is GET /ws, and hold new ones until it opens again.
type wsGate struct {
	net.Listener

	mu    sync.Mutex
	conns map[*gateConn]struct{}
	hold  chan struct{} // non-nil: new /ws connections wait until it is closed
}

type gateConn struct {
	net.Conn
	g       *wsGate
	sniffed bool // the first read was seen (only the server's goroutine reads)
	ws      bool // under g.mu
}

func newWSGate(l net.Listener) *wsGate {
	return &wsGate{Listener: l, conns: map[*gateConn]struct{}{}}
}

func (g *wsGate) Accept() (net.Conn, error) {
	c, err := g.Listener.Accept()
	if err != nil {
		return nil, err
	}
	gc := &gateConn{Conn: c, g: g}
	g.mu.Lock()
	g.conns[gc] = struct{}{}
	g.mu.Unlock()
	return gc, nil
}

// Read marks the connection as a /ws one from its request line, and holds
// it while the gate is shut.
func (c *gateConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.sniffed && n > 0 {
		c.sniffed = true
		if bytes.HasPrefix(p[:n], []byte("GET /ws ")) || bytes.HasPrefix(p[:n], []byte("GET /ws?")) {
			c.g.mu.Lock()
			c.ws = true
			hold := c.g.hold
			c.g.mu.Unlock()
			if hold != nil {
				<-hold
			}
		}
	}
	return n, err
}

func (c *gateConn) Close() error {
	c.g.mu.Lock()
	delete(c.g.conns, c)
	c.g.mu.Unlock()
	return c.Conn.Close()
}

// shutAndCut holds new /ws connections and cuts the open ones (TCP close,
// no closing handshake); it returns how many it cut.
func (g *wsGate) shutAndCut() int {
	g.mu.Lock()
	g.hold = make(chan struct{})
	var cut []net.Conn
	for c := range g.conns {
		if c.ws {
			cut = append(cut, c.Conn)
		}
	}
	g.mu.Unlock()
	for _, c := range cut {
		c.Close()
	}
	return len(cut)
}

// open lets held /ws connections through.
func (g *wsGate) open() {
	g.mu.Lock()
	if g.hold != nil {
		close(g.hold)
		g.hold = nil
	}
	g.mu.Unlock()
}

// closeEcho is a WebSocket endpoint for the echo tester's test: it records
// the close frame the page sends and answers with a close frame of the same
// code and reason, so the test sees that the code and reason typed in the
// page reach the server, and that the page shows the server's answer.
// Duplex's endpoints answer a close with its code only (RFC 6455 §5.5.1
// leaves that to the server), hence this minimal one on the raw connection.
type closeEcho struct {
	mu   sync.Mutex
	seen []closeFrame
}

// closeFrame is the status code and reason of a close frame.
type closeFrame struct {
	Code   int
	Reason string
}

func (e *closeEcho) frames() []closeFrame {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]closeFrame(nil), e.seen...)
}

func (e *closeEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "a WebSocket endpoint", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:]))
	if brw.Flush() != nil {
		return
	}
	for {
		op, payload, err := readClientFrame(brw.Reader)
		if err != nil {
			return
		}
		if op != 0x8 { // not a close: ignored
			continue
		}
		f := closeFrame{Code: 1005} // no status code
		if len(payload) >= 2 {
			f = closeFrame{Code: int(binary.BigEndian.Uint16(payload)), Reason: string(payload[2:])}
		}
		e.mu.Lock()
		e.seen = append(e.seen, f)
		e.mu.Unlock()
		// The same payload back, unmasked (at most 125 bytes: one length byte),
		// then the server closes TCP first (RFC 6455 §7.1.1).
		brw.Write(append([]byte{0x88, byte(len(payload))}, payload...))
		brw.Flush()
		return
	}
}

// readClientFrame reads one frame from a client (masked, as RFC 6455 §5.3
// requires) and returns its opcode and unmasked payload.
func readClientFrame(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 == 0 {
		return 0, nil, errors.New("an unmasked client frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, err = io.ReadFull(r, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, err = io.ReadFull(r, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if err != nil {
		return 0, nil, err
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("a frame of %d bytes", n)
	}
	var mask [4]byte
	if _, err := io.ReadFull(r, mask[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return h[0] & 0x0f, payload, nil
}

// serveTest runs serve on a new 127.0.0.1 listener until the test ends,
// then shutdown, and returns the listener's http:// base URL.
func serveTest(t *testing.T, serve func(net.Listener) error, shutdown func(context.Context) error) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown(ctx)
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

// appsCommand is what the script asks for.
type appsCommand struct {
	Op      string   `json:"op"`
	Channel string   `json:"channel"`
	Texts   []string `json:"texts"`
}

// TestApps runs the web apps in headless Chromium against the real server
// with its demo publisher: two pages chat in one room, and one that leaves
// shows closing then closed; a page whose connection the server cuts
// reconnects and shows, once each, the messages published meanwhile over
// the HTTP API; the echo tester round-trips text and binary, sends the
// close code and reason typed in (closeEcho receives them) and shows those
// the server answered with; the ticker's prices move, and without --demo
// the ticker page says to start the server with it.
// It takes a screenshot of each page and checks its size; with
// DUPLEX_UPDATE_SCREENSHOTS=1 in the environment it saves them in
// docs/screenshots/, where the README shows them.
func TestApps(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate := newWSGate(l)
	defer gate.open()
	srv := server.New(server.Config{Demo: true, Version: "test", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(gate) }()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	base := "http://" + l.Addr().String()

	// A server without --demo, for the ticker page's notice.
	plain := server.New(server.Config{Version: "test", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	plainBase := serveTest(t, plain.Serve, plain.Shutdown)
	// The echo tester's close goes to closeEcho, which records it.
	recorder := &closeEcho{}
	recMux := http.NewServeMux()
	recMux.Handle("GET /close-echo", recorder)
	recServer := &http.Server{Handler: recMux, ReadHeaderTimeout: 10 * time.Second}
	closeURL := strings.Replace(serveTest(t, recServer.Serve, recServer.Shutdown), "http:", "ws:", 1) + "/close-echo"

	// The screenshots go to a temporary directory and are checked there;
	// with DUPLEX_UPDATE_SCREENSHOTS=1 they replace those in docs/ (which
	// differ on every run: times, ports, prices), so that a test run does
	// not leave the tree modified.
	shots := t.TempDir()
	if os.Getenv("DUPLEX_UPDATE_SCREENSHOTS") == "1" {
		if shots, err = filepath.Abs(screenshotsDir); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"landing.png", "chat.png", "chat-phone.png", "echo.png", "ticker.png"}
	for _, n := range names {
		os.Remove(filepath.Join(shots, n)) // a stale one must not pass for a new one
	}

	cmd := exec.CommandContext(ctx, "node", appsScript, playwrightDir, base, shots, plainBase, closeURL)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	verdicts := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "PASS "):
			verdicts[strings.TrimPrefix(line, "PASS ")] = ""
		case strings.HasPrefix(line, "FAIL "):
			name, why, _ := strings.Cut(strings.TrimPrefix(line, "FAIL "), ": ")
			verdicts[name] = why
		case strings.HasPrefix(line, "CMD "):
			answer := runAppsCommand(ctx, gate, base, strings.TrimPrefix(line, "CMD "))
			b, _ := json.Marshal(answer)
			if _, err := stdin.Write(append(b, '\n')); err != nil {
				t.Errorf("answering the script: %v", err)
			}
		default:
			t.Logf("script: %s", line)
		}
	}
	err = cmd.Wait()
	t.Logf("node %s (exit: %v):\n%s", appsScript, err, stderr.Bytes())
	if ctx.Err() != nil {
		t.Fatalf("the script did not finish in time: %v", ctx.Err())
	}

	for _, name := range []string{"landing", "chat-two-pages", "chat-recovery", "echo", "ticker", "ticker-without-demo"} {
		t.Run(name, func(t *testing.T) {
			why, ok := verdicts[name]
			if !ok {
				t.Fatalf("the script sent no verdict for %s", name)
			}
			if why != "" {
				t.Fatal(why)
			}
		})
	}
	// The close the page sent, as the server read it (the script checked
	// that the page shows the answer: the same code and reason).
	t.Run("echo-close-reached-server", func(t *testing.T) {
		got, want := recorder.frames(), []closeFrame{{Code: 4000, Reason: "bye now"}}
		if !slices.Equal(got, want) {
			t.Errorf("close frames received: %+v, want %+v", got, want)
		}
	})
	t.Run("screenshots", func(t *testing.T) {
		for _, n := range names {
			wantW, wantH := 1280, 800
			if strings.HasSuffix(n, "-phone.png") {
				wantW, wantH = 390, 844
			}
			f, err := os.Open(filepath.Join(shots, n))
			if err != nil {
				t.Errorf("%s: %v", n, err)
				continue
			}
			cfg, err := png.DecodeConfig(f)
			f.Close()
			if err != nil || cfg.Width != wantW || cfg.Height != wantH {
				t.Errorf("%s: %dx%d (%v), want a %dx%d PNG", n, cfg.Width, cfg.Height, err, wantW, wantH)
			}
		}
	})
}

// runAppsCommand does what the script asked and returns the answer.
// "drop-ws-and-publish" cuts the open /ws connections, publishes each text
// as {"user":"backend","text":…} over POST /api/publish while the page's
// reconnection is held, then lets it through.
func runAppsCommand(ctx context.Context, gate *wsGate, base, line string) map[string]any {
	var c appsCommand
	if err := json.Unmarshal([]byte(line), &c); err != nil {
		return map[string]any{"error": err.Error()}
	}
	if c.Op != "drop-ws-and-publish" {
		return map[string]any{"error": "unknown op " + c.Op}
	}
	killed := gate.shutAndCut()
	defer gate.open()
	var offsets []int64
	for _, text := range c.Texts {
		body, _ := json.Marshal(map[string]any{"channel": c.Channel, "data": map[string]string{"user": "backend", "text": text}})
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/publish", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return map[string]any{"error": err.Error()}
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			Offset int64 `json:"offset"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil {
			return map[string]any{"error": fmt.Sprintf("POST /api/publish: %s %s", resp.Status, b)}
		}
		offsets = append(offsets, out.Offset)
	}
	return map[string]any{"killed": killed, "offsets": offsets}
}
