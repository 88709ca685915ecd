package websocket_test

// Server-side and Dial tests for gaps a review found: CheckOrigin and
// default ports in the origin check, a wrapped ResponseWriter, the bytes
// net/http buffered before the hijack, and proxies taken from the
// environment. The raw peer (rawPeer) and the echo server (confServer) come
// from the conformance helpers.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// ---------------------------------------------------------------------------
// 4. AcceptOptions.CheckOrigin and default ports.

func TestGapsCheckOrigin(t *testing.T) {
	var calls atomic.Int32
	var allow atomic.Bool
	var seen atomic.Value // the Origin CheckOrigin was asked about
	s := newConfServer(t, echoStream, &websocket.AcceptOptions{
		OriginPatterns: []string{"*.trusted.example"},
		CheckOrigin: func(r *http.Request) bool {
			calls.Add(1)
			seen.Store(r.Header.Get("Origin"))
			return allow.Load()
		},
	})
	cases := []struct {
		name   string
		origin string // "" for no Origin header
		allow  bool
		calls  int32
		status int
	}{
		{name: "cross-origin, CheckOrigin says yes", origin: "http://evil.example", allow: true, calls: 1, status: 101},
		{name: "cross-origin, CheckOrigin says no", origin: "http://evil.example", allow: false, calls: 1, status: 403},
		{name: "cross-origin other port, CheckOrigin says no", origin: "http://127.0.0.1:1", allow: false, calls: 1, status: 403},
		{name: "same-origin is not asked", origin: "http://{host}", allow: false, calls: 0, status: 101},
		{name: "a matching pattern is not asked", origin: "https://app.trusted.example", allow: false, calls: 0, status: 101},
		{name: "no Origin is not asked", origin: "", allow: false, calls: 0, status: 101},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls.Store(0)
			seen.Store("")
			allow.Store(tc.allow)
			origin := strings.ReplaceAll(tc.origin, "{host}", s.addr)
			lines := baseHandshake()
			if origin != "" {
				lines = append(lines, "Origin: "+origin)
			}
			p := dialRaw(t, s.addr)
			resp := p.request("GET", "HTTP/1.1", s.addr, lines)
			if got := calls.Load(); got != tc.calls {
				t.Errorf("CheckOrigin called %d times, want %d", got, tc.calls)
			}
			if tc.calls > 0 && seen.Load() != origin {
				t.Errorf("CheckOrigin saw Origin %q, want %q", seen.Load(), origin)
			}
			if tc.status == 101 {
				checkSwitching(t, resp)
				p.echo(opText, []byte("origin ok"))
				return
			}
			if resp.Status != tc.status || resp.Body != "Origin \""+origin+"\" is not allowed to connect to \""+s.addr+"\"\n" {
				t.Fatalf("answer %d %q, want %d with the origin refusal", resp.Status, resp.Body, tc.status)
			}
			var he *websocket.HandshakeError
			if err := s.endErr(t, p); !errors.As(err, &he) || he.Check != websocket.CheckOrigin || he.Status != 403 {
				t.Fatalf("Accept returned %v, want a *HandshakeError{CheckOrigin, 403}", err)
			}
		})
	}
}

func TestGapsOriginDefaultPorts(t *testing.T) {
	s := newConfServer(t, echoStream, nil)
	cases := []struct {
		origin, host string
		status       int
	}{
		{"http://example.com", "example.com:80", 101},
		{"https://example.com:443", "example.com", 101},
		{"http://example.com:80", "example.com", 101},
		{"https://example.com", "example.com:443", 101},
		{"http://example.com:8080", "example.com", 403},
		{"http://example.com", "example.com:8080", 403},
		{"https://example.com:8443", "example.com:443", 403},
	}
	for _, tc := range cases {
		t.Run(tc.origin+" to "+tc.host, func(t *testing.T) {
			p := dialRaw(t, s.addr)
			resp := p.request("GET", "HTTP/1.1", tc.host, append(baseHandshake(), "Origin: "+tc.origin))
			if tc.status == 101 {
				checkSwitching(t, resp)
				p.echo(opText, []byte("same origin"))
				return
			}
			if resp.Status != tc.status {
				t.Fatalf("status %d (%q), want %d", resp.Status, resp.Body, tc.status)
			}
			var he *websocket.HandshakeError
			if err := s.endErr(t, p); !errors.As(err, &he) || he.Check != websocket.CheckOrigin {
				t.Fatalf("Accept returned %v, want a *HandshakeError{CheckOrigin}", err)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 5. A wrapped ResponseWriter with Unwrap and no Hijack of its own.

// gapsWrappedWriter wraps a ResponseWriter the way logging middleware does,
// hiding its Hijack method; http.ResponseController finds it through Unwrap.
type gapsWrappedWriter struct{ rw http.ResponseWriter }

func (w *gapsWrappedWriter) Header() http.Header         { return w.rw.Header() }
func (w *gapsWrappedWriter) Write(b []byte) (int, error) { return w.rw.Write(b) }
func (w *gapsWrappedWriter) WriteHeader(status int)      { w.rw.WriteHeader(status) }
func (w *gapsWrappedWriter) Unwrap() http.ResponseWriter { return w.rw }

// gapsOpaqueWriter wraps a ResponseWriter without Unwrap: nothing can
// reach the connection through it.
type gapsOpaqueWriter struct{ rw http.ResponseWriter }

func (w *gapsOpaqueWriter) Header() http.Header         { return w.rw.Header() }
func (w *gapsOpaqueWriter) Write(b []byte) (int, error) { return w.rw.Write(b) }
func (w *gapsOpaqueWriter) WriteHeader(status int)      { w.rw.WriteHeader(status) }

func TestGapsWrappedResponseWriter(t *testing.T) {
	if _, ok := any(&gapsWrappedWriter{}).(http.Hijacker); ok {
		t.Fatal("the wrapper must not have a Hijack method of its own")
	}
	errs := make(chan error, 16)
	wrap := func(w http.ResponseWriter) http.ResponseWriter { return w }
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ww := wrap(w)
		mu.Unlock()
		c, err := websocket.Accept(ww, r, nil)
		select {
		case errs <- err:
		default: // never block the handler, even after a failed subtest
		}
		if err != nil {
			return
		}
		defer c.CloseNow()
		echoWholeMessages(context.Background(), c)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	setWrap := func(f func(http.ResponseWriter) http.ResponseWriter) {
		mu.Lock()
		wrap = f
		mu.Unlock()
		for len(errs) > 0 { // left by an earlier subtest that failed
			<-errs
		}
	}
	awaitErr := func() error {
		select {
		case err := <-errs:
			return err
		case <-time.After(rawTimeout):
			t.Fatal("handler did not run")
			return nil
		}
	}

	for _, tc := range []struct {
		name string
		wrap func(http.ResponseWriter) http.ResponseWriter
	}{
		{"one wrapper", func(w http.ResponseWriter) http.ResponseWriter { return &gapsWrappedWriter{w} }},
		{"two wrappers", func(w http.ResponseWriter) http.ResponseWriter { return &gapsWrappedWriter{&gapsWrappedWriter{w}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setWrap(tc.wrap)
			p := dialRaw(t, addr)
			p.handshake(addr)
			if err := awaitErr(); err != nil {
				t.Fatalf("Accept through the wrapper: %v", err)
			}
			p.echo(opText, []byte("through the wrapper"))
			p.echo(opBinary, payloadOf(70000))
		})
	}

	// Without Unwrap the connection cannot be taken over: 500, CheckHijack.
	t.Run("no Unwrap", func(t *testing.T) {
		setWrap(func(w http.ResponseWriter) http.ResponseWriter { return &gapsOpaqueWriter{w} })
		p := dialRaw(t, addr)
		resp := p.request("GET", "HTTP/1.1", addr, baseHandshake())
		var he *websocket.HandshakeError
		if err := awaitErr(); !errors.As(err, &he) || he.Check != websocket.CheckHijack || he.Status != 500 {
			t.Fatalf("Accept = %v, want a *HandshakeError{CheckHijack, 500}", err)
		}
		if resp.Status != 500 || resp.Body != "the connection cannot be taken over for WebSocket\n" {
			t.Fatalf("answer %d %q, want 500 with the hijack refusal", resp.Status, resp.Body)
		}
	})
}

// ---------------------------------------------------------------------------
// 6. Frames sent in the same TCP write as the handshake: net/http has read
// them into its buffer before the hijack, and Accept must hand that buffer
// to the Conn so that no byte is lost.

func TestGapsFramesWithTheHandshake(t *testing.T) {
	big := payloadOf(10000) // longer than net/http's 4 KiB read buffer
	for _, mode := range echoModes {
		t.Run(mode.String(), func(t *testing.T) {
			s := newConfServer(t, mode, nil)
			p := dialRaw(t, s.addr)
			var req bytes.Buffer
			req.WriteString("GET / HTTP/1.1\r\nHost: " + s.addr + "\r\n")
			for _, l := range baseHandshake() {
				req.WriteString(l + "\r\n")
			}
			req.WriteString("\r\n")
			req.Write(encodeFrames(
				frame(opText, []byte("early bird")),
				fragment(opBinary, big[:3000]),
				frame(opPing, []byte("p")),
				outFrame{fin: true, op: opCont, payload: big[3000:]},
			))
			p.write(req.Bytes())
			checkSwitching(t, p.readResponse())
			p.expectMessage(opText, []byte("early bird"))
			pong := p.readFrame(rawTimeout)
			if pong.op != opPong || string(pong.payload) != "p" {
				t.Fatalf("got %v, want the pong for the early ping", pong)
			}
			p.expectMessage(opBinary, big)
			p.echo(opText, []byte("and after"))
		})
	}
}

// ---------------------------------------------------------------------------
// 7. Dial takes its proxy from the environment (HTTP_PROXY) when
// DialOptions.Proxy is nil. http.ProxyFromEnvironment reads the environment
// once per process, so the Dial runs in a child process: this test binary
// run again with gapsProxyChildEnv set.

const gapsProxyChildEnv = "DUPLEX_GAPS_PROXY_CHILD"

// gapsProxyHost resolves nowhere (.invalid is reserved, RFC 6761), so only
// a proxy can reach it; and a proxy is never used for loopback addresses.
const gapsProxyHost = "duplex-proxy-test.invalid"

// gapsForwardProxy is an HTTP proxy that forwards every request, whatever
// its host, to one target address, and records the requests it saw.
type gapsForwardProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	seen   []*http.Request
}

func gapsStartForwardProxy(t *testing.T, target string) *gapsForwardProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &gapsForwardProxy{ln: ln, target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); px.serve(c) }()
		}
	}()
	return px
}

func (px *gapsForwardProxy) requests() []*http.Request {
	px.mu.Lock()
	defer px.mu.Unlock()
	return append([]*http.Request(nil), px.seen...)
}

func (px *gapsForwardProxy) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	px.mu.Lock()
	px.seen = append(px.seen, req.Clone(context.Background()))
	px.mu.Unlock()
	target, err := net.DialTimeout("tcp", px.target, 5*time.Second)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer target.Close()
	target.SetDeadline(time.Now().Add(30 * time.Second))
	req.RequestURI = "" // forward in origin form; Write keeps Upgrade and Connection
	if err := req.Write(target); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(target, br); done <- struct{}{} }()
	go func() { io.Copy(c, target); done <- struct{}{} }()
	<-done
}

// gapsRunProxyChild runs TestGapsProxyFromEnvironmentChild in a child
// process with the proxy variables set as given (and every other proxy
// variable removed), bounded in time, and returns its output.
func gapsRunProxyChild(t *testing.T, mode string, env ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0],
		"-test.run=^TestGapsProxyFromEnvironmentChild$", "-test.count=1", "-test.v", "-test.timeout=30s")
	cmd.WaitDelay = 5 * time.Second
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD", gapsProxyChildEnv:
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, gapsProxyChildEnv+"="+mode)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestGapsProxyFromEnvironment(t *testing.T) {
	var hosts sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host, true)
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		echoWholeMessages(context.Background(), c)
	}))
	defer srv.Close()
	px := gapsStartForwardProxy(t, srv.Listener.Addr().String())
	proxyURL := "http://" + px.ln.Addr().String()

	t.Run("HTTP_PROXY used", func(t *testing.T) {
		out, err := gapsRunProxyChild(t, "proxied", "HTTP_PROXY="+proxyURL, "NO_PROXY=localhost,127.0.0.1,example.org")
		if err != nil || !strings.Contains(out, "CHILD-OK") {
			t.Fatalf("child process failed: %v\n%s", err, out)
		}
		reqs := px.requests()
		if len(reqs) != 1 {
			t.Fatalf("proxy saw %d requests, want 1", len(reqs))
		}
		r := reqs[0]
		if want := "http://" + gapsProxyHost + "/echo"; r.Method != "GET" || r.RequestURI != want || r.Host != gapsProxyHost {
			t.Errorf("proxy saw %s %s (Host %s), want GET %s (absolute form)", r.Method, r.RequestURI, r.Host, want)
		}
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || r.Header.Get("Sec-WebSocket-Key") == "" {
			t.Errorf("proxied request lacks the WebSocket headers: %v", r.Header)
		}
		if _, ok := hosts.Load(gapsProxyHost); !ok {
			t.Errorf("the server never saw a request for %s", gapsProxyHost)
		}
	})

	t.Run("NO_PROXY matching skips the proxy", func(t *testing.T) {
		before := len(px.requests())
		out, err := gapsRunProxyChild(t, "direct", "HTTP_PROXY="+proxyURL, "NO_PROXY=.invalid")
		if err != nil || !strings.Contains(out, "CHILD-OK") {
			t.Fatalf("child process failed: %v\n%s", err, out)
		}
		if n := len(px.requests()) - before; n != 0 {
			t.Errorf("proxy saw %d requests although NO_PROXY matches the host", n)
		}
	})
}

// TestGapsProxyFromEnvironmentChild is the child process of
// TestGapsProxyFromEnvironment; on its own it skips.
func TestGapsProxyFromEnvironmentChild(t *testing.T) {
	mode := os.Getenv(gapsProxyChildEnv)
	if mode == "" {
		t.Skip("runs only as the child process of TestGapsProxyFromEnvironment")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+gapsProxyHost+"/echo", nil)
	if mode == "direct" {
		// Not proxied, the name cannot be resolved.
		var he *websocket.HandshakeError
		if c != nil || resp != nil || !errors.As(err, &he) || he.Check != websocket.CheckTransport {
			t.Fatalf("direct Dial returned a Conn: %v, a response: %v, error %v; want a transport HandshakeError", c != nil, resp != nil, err)
		}
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) {
			t.Fatalf("direct Dial failed with %v, want a DNS error", err)
		}
		t.Log("CHILD-OK")
		return
	}
	if err != nil {
		t.Fatalf("Dial through HTTP_PROXY: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	msg := []byte("through the environment's proxy")
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		t.Fatal(err)
	}
	typ, got, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %v %q %v", typ, got, err)
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Log("CHILD-OK")
}
