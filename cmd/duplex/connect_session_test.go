package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// TestConnectPingIntervalStaysAlive: with --ping-interval, a session with
// our echo service sends keepalive pings, gets its pongs, and stays up
// across several intervals: messages still go both ways and it ends
// cleanly when input ends.
func TestConnectPingIntervalStaysAlive(t *testing.T) {
	pings := make(chan struct{}, 64)
	echo := &server.EchoHandler{Accept: websocket.AcceptOptions{Options: websocket.Options{
		OnPing: func([]byte) {
			select {
			case pings <- struct{}{}:
			default:
			}
		},
	}}}
	srv := httptest.NewServer(echo)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := connectCmd(ctx, "--ping-interval", "50ms", "--ping-timeout", "5s", wsURL(srv, "/echo"))
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
	lines := bufio.NewReader(stdout)
	roundTrip := func(msg string) {
		t.Helper()
		if _, err := stdin.Write([]byte(msg + "\n")); err != nil {
			t.Fatal(err)
		}
		got, err := lines.ReadString('\n')
		if err != nil || got != msg+"\n" {
			t.Fatalf("got %q, %v; want %q (stderr %q)", got, err, msg+"\n", errb.String())
		}
	}
	roundTrip("before")
	// Five keepalive pings: five intervals at least, each answered in time
	// (a missing pong would end the session with status 4).
	for i := range 5 {
		select {
		case <-pings:
		case <-ctx.Done():
			t.Fatalf("the echo saw %d pings, want 5", i)
		}
	}
	roundTrip("after")
	stdin.Close()
	rest, _ := lines.ReadString(0)
	err = cmd.Wait()
	status := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	checkRun(t, rest, errb.String(), status, "", "", 0)
}

// TestConnectInAShellPipeline: duplex connect as a script uses it, from
// sh, with its answers and its exit status.
func TestConnectInAShellPipeline(t *testing.T) {
	// "duplex" on PATH is this test binary, which runs main with
	// DUPLEX_RUN_MAIN=1.
	bin := t.TempDir()
	if err := os.Symlink(os.Args[0], filepath.Join(bin, "duplex")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "DUPLEX_RUN_MAIN=1",
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	shell := func(script string) (stdout, stderr string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-c", script)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("sh -c %q: %v (stderr %q)", script, err, errb.String())
		}
		return out.String(), errb.String()
	}

	echo := echoServer(t)
	out, errOut := shell(`printf "a\nb\n" | duplex connect ` + wsURL(echo, "/echo") + `; echo "exit=$?"`)
	checkRun(t, out, errOut, 0, "a\nb\nexit=0\n", "", 0)

	// A server that closes with its own code: status 3, the code on stderr.
	bye := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, p, err := c.Read(ctx); err == nil {
			c.Write(ctx, websocket.MessageText, append([]byte("re: "), p...))
		}
		c.Close(4001, "bye")
	})
	out, errOut = shell(`printf "hi\n" | duplex connect ` + wsURL(bye, "/") + `; echo "exit=$?"`)
	checkRun(t, out, errOut, 0, "re: hi\nexit=3\n", "duplex connect: closed by the server: 4001 \"bye\"\n", 0)

	// Nothing listens: status 1, and why.
	l := httptest.NewServer(http.NotFoundHandler())
	host := l.Listener.Addr().String()
	l.Close()
	out, errOut = shell(`duplex connect ws://` + host + `/ </dev/null; echo "exit=$?"`)
	checkRun(t, out, errOut, 0, "exit=1\n",
		`duplex connect: handshake failed (transport): request failed: Get "http://`+host+`/": dial tcp `+host+": connect: connection refused\n", 0)
}
