package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// TestMain lets a test run this binary's main in a child process.
func TestMain(m *testing.M) {
	if os.Getenv("DUPLEX_RUN_MAIN") == "1" {
		// duplex serve refuses DUPLEX_ variables that name no setting.
		os.Unsetenv("DUPLEX_RUN_MAIN")
		os.Args = append([]string{"duplex"}, os.Args[1:]...)
		main()
		return
	}
	os.Exit(m.Run())
}

// startServe runs `duplex serve --listen ADDR args...` in a child process
// and returns once it reports that it listens.
func startServe(t *testing.T, args ...string) (cmd *exec.Cmd, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	cmd = exec.Command(os.Args[0], append([]string{"serve", "--listen", addr}, args...)...)
	cmd.Env = append(os.Environ(), "DUPLEX_RUN_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`duplex serving.*addr=` + regexp.QuoteMeta(addr))
		for sc.Scan() {
			if re.MatchString(sc.Text()) {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("duplex serve did not report it was listening")
	}
	return cmd, addr
}

func TestServeEchoesAndStopsOnSIGTERM(t *testing.T) {
	cmd, addr := startServe(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("ping?")); err != nil {
		t.Fatal(err)
	}
	if typ, p, err := c.Read(ctx); err != nil || typ != websocket.MessageText || string(p) != "ping?" {
		t.Fatalf("echo: %v %q %v", typ, p, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("duplex serve exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("duplex serve did not exit after SIGTERM")
	}
}

// TestServeFlagsConfigureChannels checks --namespace and --api-key end to
// end: a namespace only the API may publish to, fed through the API with the
// key, reaches a duplex.v1 subscriber; a client's publish there is refused.
func TestServeFlagsConfigureChannels(t *testing.T) {
	_, addr := startServe(t, "--api-key", "s3cret", "--namespace", "ticker:history=1,presence=off,publish=api")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Subprotocols: []string{"duplex.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	roundTrip := func(cmd, wantPrefix string) string {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(cmd)); err != nil {
			t.Fatal(err)
		}
		_, p, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(p), wantPrefix) {
			t.Fatalf("answer to %s: %s, want prefix %s", cmd, p, wantPrefix)
		}
		return string(p)
	}
	roundTrip(`{"id":1,"op":"subscribe","channel":"ticker:ACME"}`, `{"id":1,"result":{"recovered":false,"offset":0,"epoch":"`)
	roundTrip(`{"id":2,"op":"publish","channel":"ticker:ACME","data":1}`, `{"id":2,"error":{"code":105,`)

	publish := func(key string) int {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/api/publish", strings.NewReader(`{"channel":"ticker:ACME","data":{"price":12.5}}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "apikey "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := publish("wrong"); st != http.StatusUnauthorized {
		t.Fatalf("publish with a wrong key: status %d, want 401", st)
	}
	if st := publish(""); st != http.StatusUnauthorized {
		t.Fatalf("publish without a key: status %d, want 401", st)
	}
	if st := publish("s3cret"); st != http.StatusOK {
		t.Fatalf("publish with the key: status %d, want 200", st)
	}
	_, p, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\{"op":"message","channel":"ticker:ACME","offset":1,"epoch":"[0-9a-z]+","data":\{"price":12.5\}\}$`).Match(p) {
		t.Fatalf("push: %s", p)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestServeRejectsBadNamespaceFlag(t *testing.T) {
	var out, errb strings.Builder
	if code := run([]string{"serve", "--namespace", "ticker:history=lots"}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	want := "duplex serve: flag --namespace: \"ticker:history=lots\": history=lots: want a number of messages, 0 or more\n"
	if errb.String() != want {
		t.Fatalf("stderr %q, want %q", errb.String(), want)
	}
}

// TestServeCompressionFlag: --compression on negotiates permessage-deflate
// without context takeover either way (what a browser's offer gets), and a
// compressible message survives the echo; a bad mode is refused at start.
func TestServeCompressionFlag(t *testing.T) {
	_, addr := startServe(t, "--compression", "on")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/echo", &websocket.DialOptions{Options: websocket.Options{
		Compression: websocket.CompressionOptions{Enabled: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if got, want := resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate; server_no_context_takeover; client_no_context_takeover"; got != want {
		t.Fatalf("extensions %q, want %q", got, want)
	}
	msg := strings.Repeat(`{"symbol":"ACME","price":123.45}`, 50)
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.Read(ctx); err != nil || string(p) != msg {
		t.Fatalf("echo: %d bytes, %v", len(p), err)
	}
	c.Close(websocket.StatusNormalClosure, "")

	var out, errb strings.Builder
	if code := run([]string{"serve", "--compression", "max"}, &out, &errb); code != 2 || errb.String() != "duplex serve: flag --compression: \"max\": want off, on or takeover\n" {
		t.Fatalf("bad mode: exit %d, stderr %q", code, errb.String())
	}
}
