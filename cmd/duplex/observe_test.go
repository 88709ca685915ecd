package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// Bad --log-format and --log-level values stop duplex serve with status 2
// and a message naming the flag.
func TestServeLogFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "xml"}, "duplex serve: flag --log-format: \"xml\": want json or text\n"},
		{[]string{"--log-level", "loud"}, "duplex serve: flag --log-level: \"loud\": want debug, info, warn or error\n"},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"serve", "--listen", "127.0.0.1:0"}, tc.args...)
		if code := run(args, &out, &errb); code != 2 || errb.String() != tc.want {
			t.Errorf("%v: status %d, stderr %q; want 2, %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

// With --log-format json every log line is a JSON object, a connection has
// an open and a close line, and --pprof serves /debug/pprof/ beside
// /metrics; without --pprof the profiles are not there.
func TestServeJSONLogsAndPprof(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(os.Args[0], "serve", "--listen", addr, "--log-format", "json", "--pprof")
	cmd.Env = append(os.Environ(), "DUPLEX_RUN_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan map[string]any, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"not json": sc.Text()}
			}
			lines <- m
		}
	}()
	next := func() map[string]any {
		t.Helper()
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("duplex serve's stderr ended")
			}
			return m
		case <-ctx.Done():
			t.Fatal("timed out waiting for a log line")
		}
		return nil
	}
	if m := next(); m["msg"] != "duplex serving" || m["addr"] != addr || m["level"] != "INFO" {
		t.Fatalf("first line %v, want the JSON line duplex serving with addr %s", m, addr)
	}

	for path, want := range map[string]int{"/debug/pprof/": 200, "/metrics": 200, "/healthz": 200, "/readyz": 200} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}

	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := next(); m["msg"] != "connection opened" || m["endpoint"] != "echo" || !strings.HasPrefix(m["remote"].(string), "127.0.0.1:") {
		t.Fatalf("after dialing /echo: %v, want a connection opened line", m)
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if m := next(); m["msg"] != "connection closed" || m["code"] != float64(1000) || m["by"] != "client" || m["messages_in"] != float64(0) {
		t.Fatalf("after closing: %v, want a connection closed line with code 1000", m)
	}
}

// Without --pprof, /debug/pprof/ is not served.
func TestServePprofOffByDefault(t *testing.T) {
	_, addr := startServe(t)
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ without --pprof: %d, want 404", resp.StatusCode)
	}
}
