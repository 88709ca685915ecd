package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// connectCmd prepares `duplex connect args...` in a child process.
func connectCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"connect"}, args...)...)
	// Under -race, a child would sleep a second at exit for nothing.
	cmd.Env = append(os.Environ(), "DUPLEX_RUN_MAIN=1", "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return cmd
}

// runConnect runs `duplex connect args...` with stdin as its standard
// input (a pipe, so pipe mode) and returns what it wrote and its exit
// status.
func runConnect(t *testing.T, stdin string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := connectCmd(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		status = ee.ExitCode()
	default:
		t.Fatalf("duplex connect %v: %v (stderr: %s)", args, err, errb.String())
	}
	return out.String(), errb.String(), status
}

// echoServer serves duplex's routes (GET /echo among them) on 127.0.0.1.
func echoServer(t *testing.T) *httptest.Server {
	t.Helper()
	// duplex bench publishes as fast as the server answers: above the
	// default message rate, as with `duplex serve --message-rate -1`.
	srv := httptest.NewServer(server.New(server.Config{Limits: server.Limits{MessageRate: -1}}).Handler())
	t.Cleanup(srv.Close)
	return srv
}

// wsURL turns an httptest server's URL into a ws:// one with path.
func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

// wsServer serves handler for WebSocket connections on 127.0.0.1.
func wsServer(t *testing.T, opts *websocket.AcceptOptions, handler func(c *websocket.Conn, r *http.Request)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		handler(c, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func checkRun(t *testing.T, gotOut, gotErr string, gotStatus int, wantOut, wantErr string, wantStatus int) {
	t.Helper()
	if gotOut != wantOut || gotErr != wantErr || gotStatus != wantStatus {
		t.Fatalf("got stdout %q, stderr %q, exit status %d\nwant stdout %q, stderr %q, exit status %d",
			gotOut, gotErr, gotStatus, wantOut, wantErr, wantStatus)
	}
}

func TestConnectPipeTextLines(t *testing.T) {
	srv := echoServer(t)
	// Lines end with "\n" or "\r\n"; an empty line is an empty message; a
	// last line without "\n" is sent too.
	out, errOut, status := runConnect(t, "hello\nwörld\r\n\nlast", wsURL(srv, "/echo"))
	checkRun(t, out, errOut, status, "hello\nwörld\n\nlast\n", "", 0)

	// No input at all: the connection opens and closes cleanly.
	out, errOut, status = runConnect(t, "", wsURL(srv, "/echo"))
	checkRun(t, out, errOut, status, "", "", 0)

	// Many lines: every answer arrives before the close.
	var in strings.Builder
	for i := range 500 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	out, errOut, status = runConnect(t, in.String(), wsURL(srv, "/echo"))
	checkRun(t, out, errOut, status, in.String(), "", 0)
}

func TestConnectPipeBinaryAndHex(t *testing.T) {
	srv := echoServer(t)
	url := wsURL(srv, "/echo")

	// --binary: a byte stream both ways, every byte value intact.
	all := make([]byte, 256*64)
	for i := range all {
		all[i] = byte(i)
	}
	out, errOut, status := runConnect(t, string(all), "--binary", url)
	checkRun(t, out, errOut, status, string(all), "", 0)

	// --hex: hex lines in, binary messages, hex lines out.
	out, errOut, status = runConnect(t, "00ff10\n68 69 0A\n\n0x7f\n", "--hex", url)
	checkRun(t, out, errOut, status, "00ff10\n68690a\n\n7f\n", "", 0)

	// A bad hex line is reported and skipped.
	out, errOut, status = runConnect(t, "0g\n01\n", "--hex", url)
	checkRun(t, out, errOut, status, "01\n", `duplex connect: line 1: invalid hex, not sent: "0g\n"`+"\n", 0)

	// Without a mode flag, a line that is not UTF-8 goes as binary.
	out, errOut, status = runConnect(t, "ok\n\xff\xfe\n", url)
	checkRun(t, out, errOut, status, "ok\n\xff\xfe\n", "", 0)
}

// TestConnectPipeMessageTypes checks what goes on the wire: text lines as
// text, --binary and --hex as binary, and how each kind is written out.
func TestConnectPipeMessageTypes(t *testing.T) {
	got := make(chan string, 16)
	srv := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c.Write(ctx, websocket.MessageText, []byte("hi"))
		c.Write(ctx, websocket.MessageBinary, []byte{0, 1})
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				got <- fmt.Sprintf("end %d", websocket.CloseStatus(err))
				return
			}
			got <- fmt.Sprintf("%v %q", typ, p)
		}
	})
	expect := func(want ...string) {
		t.Helper()
		for _, w := range want {
			select {
			case g := <-got:
				if g != w {
					t.Fatalf("server got %s, want %s", g, w)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("server did not get %s", w)
			}
		}
	}
	url := wsURL(srv, "/")
	out, errOut, status := runConnect(t, "a\n", url)
	checkRun(t, out, errOut, status, "hi\n\x00\x01\n", "", 0)
	expect(`text "a"`, "end 1000")

	out, errOut, status = runConnect(t, "ab", "--binary", url)
	checkRun(t, out, errOut, status, "hi\x00\x01", "", 0)
	expect(`binary "ab"`, "end 1000")

	out, errOut, status = runConnect(t, "6162\n", "--hex", url)
	checkRun(t, out, errOut, status, "6869\n0001\n", "", 0)
	expect(`binary "ab"`, "end 1000")
}

// TestConnectSendsHeadersAndClose checks -H, --origin, --subprotocol and
// the close sent at the end of input with --close-code and --close-reason.
func TestConnectSendsHeadersAndClose(t *testing.T) {
	closed := make(chan string, 1)
	srv := wsServer(t, &websocket.AcceptOptions{Subprotocols: []string{"chat.v2", "chat.v1"}, OriginPatterns: []string{"app.example"}},
		func(c *websocket.Conn, r *http.Request) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf("token=%s multi=%q origin=%s offer=%q proto=%s ext=%q",
				r.Header.Get("X-Token"), r.Header.Values("X-Multi"), r.Header.Get("Origin"),
				r.Header.Values("Sec-WebSocket-Protocol"), c.Subprotocol(), r.Header.Values("Sec-WebSocket-Extensions"))))
			for {
				if _, _, err := c.Read(ctx); err != nil {
					var ce *websocket.CloseError
					errors.As(err, &ce)
					closed <- fmt.Sprintf("%v", ce)
					return
				}
			}
		})
	out, errOut, status := runConnect(t, "",
		"-H", "X-Token: abc", "-H", "X-Multi: 1", "-H", "X-Multi:2", "--origin", "https://app.example",
		"--subprotocol", "chat.v0", "--subprotocol", "chat.v1", "--compress",
		"--close-code", "4000", "--close-reason", "done", wsURL(srv, "/"))
	checkRun(t, out, errOut, status, `token=abc multi=["1" "2"] origin=https://app.example offer=["chat.v0, chat.v1"] proto=chat.v1 ext=["permessage-deflate; client_max_window_bits"]`+"\n", "", 0)
	select {
	case got := <-closed:
		if want := `websocket: closed by peer: 4000: "done"`; got != want {
			t.Fatalf("server saw %s, want %s", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not see the close")
	}
}

// TestConnectExitStatusWhenServerCloses checks the exit status and the
// message for each way the server can end the connection. Standard input
// stays open, so the server is the one that ends it.
func TestConnectExitStatusWhenServerCloses(t *testing.T) {
	for _, tc := range []struct {
		name       string
		end        func(c *websocket.Conn)
		wantStatus int
		wantErr    string
	}{
		{"4001", func(c *websocket.Conn) { c.Close(4001, "bye") }, 3, `duplex connect: closed by the server: 4001 "bye"` + "\n"},
		{"1008", func(c *websocket.Conn) { c.Close(websocket.StatusPolicyViolation, "") }, 3, "duplex connect: closed by the server: 1008 (policy violation)\n"},
		{"1000", func(c *websocket.Conn) { c.Close(websocket.StatusNormalClosure, "see you") }, 0, ""},
		{"1001", func(c *websocket.Conn) { c.Close(websocket.StatusGoingAway, "") }, 0, ""},
		{"1005", func(c *websocket.Conn) { c.Close(websocket.StatusNoStatusRcvd, "") }, 0, ""},
		{"drop", func(c *websocket.Conn) { c.CloseNow() }, 4, "duplex connect: connection lost: transport closed without a close frame\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if _, p, err := c.Read(ctx); err != nil || string(p) != "hi" {
					return
				}
				c.Write(ctx, websocket.MessageText, []byte("ho"))
				tc.end(c)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := connectCmd(ctx, wsURL(srv, "/"))
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			io.WriteString(stdin, "hi\n")
			err = cmd.Wait()
			status := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				status = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			checkRun(t, out.String(), errb.String(), status, "ho\n", tc.wantErr, tc.wantStatus)
		})
	}
}

// TestConnectPipeInterrupt checks that SIGINT ends the input: the close
// goes out with --close-code and the exit status is 0.
func TestConnectPipeInterrupt(t *testing.T) {
	closed := make(chan string, 1)
	srv := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c.Write(ctx, websocket.MessageText, []byte("ready"))
		_, _, err := c.Read(ctx)
		closed <- fmt.Sprint(err)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := connectCmd(ctx, "--close-code", "4002", "--close-reason", "interrupted", wsURL(srv, "/"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Once a message is shown, the signal handler is in place.
	line := make([]byte, len("ready\n"))
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("first output %q, %v", line, err)
	}
	cmd.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil || len(rest) != 0 || errb.Len() != 0 {
		t.Fatalf("after SIGINT: %v, more output %q, stderr %q", err, rest, errb.String())
	}
	if got, want := <-closed, `websocket: closed by peer: 4002: "interrupted"`; got != want {
		t.Fatalf("server saw %s, want %s", got, want)
	}
}

// TestConnectKeepalive checks --ping-interval: against a server that never
// answers pings, the connection fails with exit status 4.
func TestConnectKeepalive(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			return
		}
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(sum[:]))
		io.Copy(io.Discard, conn) // reads the pings, answers none
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := connectCmd(ctx, "--ping-interval", "50ms", "--ping-timeout", "200ms", "ws://"+l.Addr().String()+"/")
	stdin, err := cmd.StdinPipe() // stays open: only keepalive can end it
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("duplex connect: %v, want exit status 4", err)
	}
	checkRun(t, out.String(), errb.String(), ee.ExitCode(), "", "duplex connect: connection failed: no pong received within the keepalive timeout\n", 4)
}

func TestConnectHandshakeFailures(t *testing.T) {
	srv := echoServer(t)
	host := strings.TrimPrefix(srv.URL, "http://")

	// The server refuses: its status and reason are shown.
	out, errOut, status := runConnect(t, "hi\n", "--origin", "http://evil.example", wsURL(srv, "/echo"))
	checkRun(t, out, errOut, status, "",
		fmt.Sprintf("duplex connect: handshake refused: 403 Forbidden: Origin %q is not allowed to connect to %q\n", "http://evil.example", host), 1)

	// Not a WebSocket endpoint: the first line of the page is shown.
	out, errOut, status = runConnect(t, "hi\n", wsURL(srv, "/nowhere"))
	checkRun(t, out, errOut, status, "", "duplex connect: handshake refused: 404 Not Found: 404 page not found\n", 1)

	// Nothing listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	out, errOut, status = runConnect(t, "hi\n", "ws://"+addr+"/")
	want := fmt.Sprintf("duplex connect: handshake failed (transport): request failed: Get %q: dial tcp %s: connect: connection refused\n", "http://"+addr+"/", addr)
	checkRun(t, out, errOut, status, "", want, 1)

	// A server that never answers the handshake: --timeout.
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, errOut, status = runConnect(t, "", "--timeout", "300ms", "ws://"+l.Addr().String()+"/")
	if status != 1 || !strings.HasPrefix(errOut, "duplex connect: handshake failed (transport): request failed: ") ||
		!strings.HasSuffix(errOut, "context deadline exceeded (see --timeout)\n") {
		t.Fatalf("silent server: exit status %d, stderr %q", status, errOut)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("--timeout 300ms took %v", d)
	}
}

func TestConnectUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "duplex connect: missing URL"},
		{[]string{"ws://a/", "ws://b/"}, `duplex connect: unexpected argument "ws://b/" after the URL`},
		{[]string{"ftp://a/"}, `duplex connect: URL "ftp://a/": the scheme must be ws, wss, http or https`},
		{[]string{"ws:///x"}, `duplex connect: URL "ws:///x" has no host`},
		{[]string{"-H", "NoColon", "ws://a/"}, `duplex connect: -H "NoColon": want 'Name: value'`},
		{[]string{"ws://a/", "--close-code", "1006"}, "duplex connect: close code 1006 cannot be sent (use 1000-1003, 1007-1014 or 3000-4999)"},
		{[]string{"--close-reason", strings.Repeat("x", 124), "ws://a/"}, "duplex connect: close reason of 124 bytes is longer than 123"},
		{[]string{"--timeout", "0s", "ws://a/"}, "duplex connect: --timeout and --close-timeout must be positive"},
	} {
		out, errOut, status := runConnect(t, "", tc.args...)
		checkRun(t, out, errOut, status, "", tc.want+"\nRun duplex connect --help for the flags.\n", 2)
	}
	out, errOut, status := runConnect(t, "", "--no-such-flag", "ws://a/")
	if out != "" || status != 2 || !strings.HasPrefix(errOut, "flag provided but not defined: -no-such-flag\nUsage: duplex connect [flags] URL\n") {
		t.Fatalf("unknown flag: stdout %q, exit status %d, stderr %q", out, status, errOut)
	}
	// --help documents the commands and the exit statuses.
	out, errOut, status = runConnect(t, "", "--help")
	for _, want := range []string{"/close [code [reason]]", "/ping", "/binary HEX", "/quit", "Exit status:", "  3  the server closed with another code", "-subprotocol name", "-insecure"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	if out != "" || status != 0 {
		t.Fatalf("--help: stdout %q, exit status %d", out, status)
	}
}

// TestConnectInsecure checks that a self-signed certificate is refused, and
// accepted with --insecure.
func TestConnectInsecure(t *testing.T) {
	srv := httptest.NewUnstartedServer(server.New(server.Config{}).Handler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused certificate
	srv.StartTLS()
	defer srv.Close()
	url := "wss" + strings.TrimPrefix(srv.URL, "https") + "/echo"
	out, errOut, status := runConnect(t, "hi\n", url)
	if out != "" || status != 1 || !strings.HasPrefix(errOut, "duplex connect: handshake failed (transport): request failed: ") ||
		!strings.HasSuffix(errOut, "x509: certificate signed by unknown authority\n") {
		t.Fatalf("self-signed without --insecure: stdout %q, exit status %d, stderr %q", out, status, errOut)
	}
	out, errOut, status = runConnect(t, "hi\n", "--insecure", url)
	checkRun(t, out, errOut, status, "hi\n", "", 0)
}

// TestConnectFlagsAfterURL checks that flags may follow the URL, as with
// wscat and websocat.
func TestConnectFlagsAfterURL(t *testing.T) {
	srv := echoServer(t)
	out, errOut, status := runConnect(t, "6869\n", wsURL(srv, "/echo"), "--hex", "--compress", "--ping-interval", "1s")
	checkRun(t, out, errOut, status, "6869\n", "", 0)
}
