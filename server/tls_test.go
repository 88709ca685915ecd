package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/testca"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// tlsFiles are the certificate and key files of a TLS test server.
type tlsFiles struct{ cert, key string }

// newTLSFiles writes leaf into a temporary directory.
func newTLSFiles(t *testing.T, leaf testca.Leaf) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	f := tlsFiles{cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	leaf.Write(t, f.cert, f.key)
	return f
}

// startTLSServer serves cfg with TLS from files; its URLs are https://
// and wss://.
func startTLSServer(t *testing.T, cfg server.Config, files tlsFiles) *testServer {
	t.Helper()
	cfg.TLSCert, cfg.TLSKey = files.cert, files.key
	ts := startServer(t, cfg)
	ts.http = "https://" + strings.TrimPrefix(ts.http, "http://")
	ts.ws = "wss://" + strings.TrimPrefix(ts.ws, "ws://")
	return ts
}

// dialTLS opens path over wss:// trusting ca, and returns the connection
// and the serial number of the certificate the server presented.
func dialTLS(ctx context.Context, t *testing.T, ts *testServer, ca *testca.CA, path string, subprotocols ...string) (*websocket.Conn, int64) {
	t.Helper()
	var serial atomic.Int64
	cfg := ca.ClientConfig()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		serial.Store(testca.Serial(cs))
		return nil
	}
	c, _, err := websocket.Dial(ctx, ts.ws+path, &websocket.DialOptions{TLSConfig: cfg, Proxy: noProxy, Subprotocols: subprotocols})
	if err != nil {
		t.Fatalf("dial %s: %v", ts.ws+path, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, serial.Load()
}

// echoOnce sends msg on an echo connection and checks that it comes back.
func echoOnce(ctx context.Context, t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	typ, p, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(p) != msg {
		t.Fatalf("echo of %q: %v %q %v", msg, typ, p, err)
	}
}

// TestTLSFromFiles: with TLSCert and TLSKey the server speaks wss:// (the
// echo service, and a duplex.v1 subscriber that receives an API publish)
// and https:// (the HTTP API), with the certificate of the files; a
// client that does not trust the CA refuses the server, and plain HTTP
// on the TLS port gets 400.
func TestTLSFromFiles(t *testing.T) {
	ctx := testContext(t)
	ca := testca.New(t)
	ts := startTLSServer(t, server.Config{}, newTLSFiles(t, ca.Issue(1001, "duplex test 1")))

	c, serial := dialTLS(ctx, t, ts, ca, "/echo")
	if serial != 1001 {
		t.Fatalf("certificate serial %d, want 1001", serial)
	}
	echoOnce(ctx, t, c, "over wss")
	c.Close(websocket.StatusNormalClosure, "")

	sub, _ := dialTLS(ctx, t, ts, ca, "/ws", server.Subprotocol)
	subscriber := &wsClient{t: t, ctx: ctx, conn: sub}
	subscriber.subscribe(1, "live:news")

	https := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: noProxy, TLSClientConfig: ca.ClientConfig()}}
	resp, err := https.Post(ts.http+"/api/publish", "application/json", strings.NewReader(`{"channel":"live:news","data":"hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), `{"offset":1,"epoch":`) || resp.TLS == nil || testca.Serial(*resp.TLS) != 1001 {
		t.Fatalf("POST /api/publish over https: %d %s", resp.StatusCode, body)
	}
	f := parseFrame(t, subscriber.next())
	if f.Op != "message" || f.Offset != 1 || string(f.Data) != `"hello"` {
		t.Fatalf("push over wss: %+v", f)
	}

	// The system's roots do not know the test CA.
	_, _, err = websocket.Dial(ctx, ts.ws+"/echo", &websocket.DialOptions{Proxy: noProxy})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("dial without the CA: %v, want an unknown authority error", err)
	}

	// Plain HTTP to the TLS port.
	status, _, got := (&testServer{http: "http://" + strings.TrimPrefix(ts.http, "https://")}).do(t, "GET", "/healthz", "", "", nil)
	if status != 400 || got != "Client sent an HTTP request to an HTTPS server.\n" {
		t.Fatalf("plain HTTP on the TLS port: %d %q", status, got)
	}
}

// logRecorder keeps a server's log lines (JSON) for tests that check
// them, and tells waiters of each new line.
type logRecorder struct {
	mu      sync.Mutex
	all     []map[string]any
	changed chan struct{} // closed and replaced at each line
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{})} }

func (r *logRecorder) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.all = append(r.all, m)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return len(p), nil
}

func (r *logRecorder) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(r, nil)) }

// lines returns the lines whose msg is msg, or, with a trailing "*",
// starts with the rest of msg.
func (r *logRecorder) lines(msg string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, m := range r.all {
		got, _ := m["msg"].(string)
		if got == msg || strings.HasSuffix(msg, "*") && strings.HasPrefix(got, strings.TrimSuffix(msg, "*")) {
			out = append(out, m)
		}
	}
	return out
}

// wait waits until n lines match msg (see lines) and returns them.
func (r *logRecorder) wait(ctx context.Context, t *testing.T, msg string, n int) []map[string]any {
	t.Helper()
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if l := r.lines(msg); len(l) >= n {
			return l
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("%d log lines %q, want %d", len(r.lines(msg)), msg, n)
		}
	}
}

// TestTLSReload: ReloadTLS switches to the certificate now in the files
// for new handshakes, and a connection opened before keeps working; a bad
// file or a key that does not match keeps the certificate in use and
// says what is wrong, naming the file.
func TestTLSReload(t *testing.T) {
	ctx := testContext(t)
	ca := testca.New(t)
	files := newTLSFiles(t, ca.Issue(1, "duplex test 1"))
	logs := newLogRecorder()
	ts := startTLSServer(t, server.Config{Log: logs.logger()}, files)

	before, serial := dialTLS(ctx, t, ts, ca, "/echo")
	if serial != 1 {
		t.Fatalf("first certificate: serial %d, want 1", serial)
	}
	echoOnce(ctx, t, before, "before the reload")

	ca.Issue(2, "duplex test 2").Write(t, files.cert, files.key)
	if err := ts.srv.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	echoOnce(ctx, t, before, "after the reload, on the connection opened before")
	after, serial := dialTLS(ctx, t, ts, ca, "/echo")
	if serial != 2 {
		t.Fatalf("after the reload: serial %d, want 2", serial)
	}
	echoOnce(ctx, t, after, "new connection")
	if l := logs.lines("TLS certificate reloaded"); len(l) != 1 || l[0]["serial"] != "2" || l[0]["subject"] != "CN=duplex test 2" {
		t.Fatalf("reload log lines %v", l)
	}

	// Bad files: the error names the file, certificate 2 stays.
	other := ca.Issue(3, "duplex test 3")
	for _, bad := range []struct {
		name       string
		cert, key  []byte
		remove     bool
		wantErrFmt string
	}{
		{"garbage certificate", []byte("not a certificate\n"), nil, false,
			"TLS certificate %[1]s with key %[2]s: tls: failed to find any PEM data in certificate input"},
		{"key of another certificate", other.CertPEM, nil, false,
			"TLS certificate %[1]s with key %[2]s: tls: private key does not match public key"},
		{"missing key file", nil, nil, true,
			"TLS key: open %[2]s: no such file or directory"},
	} {
		if bad.cert != nil {
			testca.WriteFile(t, files.cert, bad.cert)
		}
		if bad.remove {
			os.Remove(files.key)
		}
		err := ts.srv.ReloadTLS()
		if want := fmt.Sprintf(bad.wantErrFmt, files.cert, files.key); err == nil || err.Error() != want {
			t.Fatalf("%s: ReloadTLS() = %v, want %q", bad.name, err, want)
		}
		c, serial := dialTLS(ctx, t, ts, ca, "/echo")
		if serial != 2 {
			t.Fatalf("%s: serial %d after a failed reload, want 2 (kept)", bad.name, serial)
		}
		echoOnce(ctx, t, c, bad.name)
	}
	if l := logs.lines("TLS certificate not reloaded, the previous one stays in use"); len(l) != 3 {
		t.Fatalf("%d error lines for 3 failed reloads: %v", len(l), l)
	}
	echoOnce(ctx, t, before, "still open after three failed reloads")
	echoOnce(ctx, t, after, "this one too")
}

// TestTLSReloadWithoutFiles: ReloadTLS on a server without certificate
// files returns ErrNoTLSFiles.
func TestTLSReloadWithoutFiles(t *testing.T) {
	ts := startServer(t, server.Config{})
	if err := ts.srv.ReloadTLS(); !errors.Is(err, server.ErrNoTLSFiles) {
		t.Fatalf("ReloadTLS without TLS: %v", err)
	}
}

// TestTLSSettingErrors: TLS settings that are wrong or do not go together
// make Serve return at once with an error naming the file or setting.
func TestTLSSettingErrors(t *testing.T) {
	ca := testca.New(t)
	files := newTLSFiles(t, ca.Issue(1, "duplex test"))
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("nothing\n"), 0o600)
	missing := filepath.Join(dir, "missing.pem")
	aFile := filepath.Join(dir, "a-file")
	os.WriteFile(aFile, nil, 0o600)
	auto := func(c server.Config) server.Config {
		c.AutocertHosts = append([]string{"chat.example.com"}, c.AutocertHosts...)
		if c.AutocertCacheDir == "" {
			c.AutocertCacheDir = t.TempDir()
		}
		return c
	}
	for _, tc := range []struct {
		cfg  server.Config
		want string
	}{
		{server.Config{TLSCert: missing, TLSKey: files.key}, "TLS certificate: open " + missing + ": no such file or directory"},
		{server.Config{TLSCert: files.cert, TLSKey: missing}, "TLS key: open " + missing + ": no such file or directory"},
		{server.Config{TLSCert: garbage, TLSKey: files.key}, "TLS certificate " + garbage + " with key " + files.key + ": tls: failed to find any PEM data in certificate input"},
		{server.Config{TLSCert: files.cert, TLSKey: garbage}, "TLS certificate " + files.cert + " with key " + garbage + ": tls: failed to find any PEM data in key input"},
		{server.Config{TLSCert: files.cert}, "TLS: TLSCert and TLSKey go together: give both the certificate file and its private key file"},
		{server.Config{TLSKey: files.key}, "TLS: TLSCert and TLSKey go together: give both the certificate file and its private key file"},
		{auto(server.Config{TLSCert: files.cert, TLSKey: files.key}), "TLS: certificate files (TLSCert, TLSKey) and automatic certificates (AutocertHosts) exclude each other; choose one"},
		{server.Config{AutocertHosts: []string{"chat.example.com"}}, "TLS: autocert needs a cache directory (AutocertCacheDir) to keep its account key and certificates across restarts; without one every start asks for new certificates, and the CA's rate limits soon refuse them"},
		{server.Config{AutocertCacheDir: dir}, "TLS: autocert settings are given but AutocertHosts lists no host name"},
		{server.Config{AutocertHTTPListen: ":80"}, "TLS: autocert settings are given but AutocertHosts lists no host name"},
		{auto(server.Config{AutocertHosts: []string{"*.example.com"}}), `TLS: AutocertHosts: "*.example.com": wildcard names need the DNS-01 challenge, which autocert does not do`},
		{auto(server.Config{AutocertHosts: []string{"203.0.113.7"}}), `TLS: AutocertHosts: "203.0.113.7": an IP address, not a host name`},
		{auto(server.Config{AutocertHosts: []string{"example.com:443"}}), `TLS: AutocertHosts: "example.com:443": want a bare host name such as chat.example.com, no scheme, port or path`},
		{auto(server.Config{AutocertHosts: []string{"https://example.com"}}), `TLS: AutocertHosts: "https://example.com": want a bare host name such as chat.example.com, no scheme, port or path`},
		{auto(server.Config{AutocertHosts: []string{"localhost"}}), `TLS: AutocertHosts: "localhost": want a public host name, with a dot`},
		{auto(server.Config{AutocertHosts: []string{""}}), `TLS: AutocertHosts: an empty host name`},
		{auto(server.Config{AutocertCacheDir: filepath.Join(aFile, "cache")}), "TLS: autocert cache directory: mkdir " + aFile + ": not a directory"},
		{auto(server.Config{AutocertDirectoryCA: missing}), "TLS: autocert directory CA: open " + missing + ": no such file or directory"},
		{auto(server.Config{AutocertDirectoryCA: garbage}), "TLS: autocert directory CA " + garbage + ": no PEM certificate in it"},
	} {
		tc.cfg.Log = slog.New(slog.DiscardHandler)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		err = server.New(tc.cfg).Serve(l)
		l.Close()
		if err == nil || err.Error() != tc.want {
			t.Errorf("Serve:\n got  %v\n want %s", err, tc.want)
		}
	}
}

// TestAutocertHostPolicy: with AutocertHosts, a TLS handshake for a name
// that is not listed is refused (the server logs why) without asking the
// ACME server anything; a handshake without a name too.
func TestAutocertHostPolicy(t *testing.T) {
	var acmeRequests atomic.Int64
	acmeDir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acmeRequests.Add(1)
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer acmeDir.Close()
	logs := newLogRecorder()
	ts := startServer(t, server.Config{
		Log:                  logs.logger(),
		AutocertHosts:        []string{"chat.example.com"},
		AutocertCacheDir:     t.TempDir(),
		AutocertDirectoryURL: acmeDir.URL + "/directory",
	})
	addr := strings.TrimPrefix(ts.http, "http://")
	want := []string{`acme/autocert: host "other.example.com" not configured in HostWhitelist`, "acme/autocert: missing server name"}
	for i, name := range []string{"other.example.com", ""} {
		d := &net.Dialer{Timeout: 10 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			t.Fatalf("handshake for %q succeeded", name)
		}
		if !strings.Contains(err.Error(), "remote error: tls: internal error") {
			t.Fatalf("handshake for %q: %v, want the server's internal error alert", name, err)
		}
		// The server logs the handshake error after sending the alert
		// that ended the dial: wait for this handshake's line before the
		// next handshake, so that the lines cannot come in another order.
		got := logs.wait(testContext(t), t, "http: TLS handshake error from *", i+1)
		if msg := got[i]["msg"].(string); len(got) != i+1 || !strings.HasSuffix(msg, want[i]) {
			t.Fatalf("log line %q, want it to end with %q (all: %v)", msg, want[i], got)
		}
	}
	if n := acmeRequests.Load(); n != 0 {
		t.Fatalf("the ACME server was asked %d times, want 0", n)
	}
}
