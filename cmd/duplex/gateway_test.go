package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// startGateway runs `duplex CMD --listen ADDR args...` in a child process
// and returns once its log says it listens (the line that matches ready).
func startGateway(t *testing.T, ready string, cmdName string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(os.Args[0], append([]string{cmdName, "--listen", addr}, args...)...)
	cmd.Env = append(os.Environ(), "DUPLEX_RUN_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(ready + `.*addr=` + regexp.QuoteMeta(addr))
		for sc.Scan() {
			t.Logf("%s: %s", cmdName, sc.Text())
			if re.MatchString(sc.Text()) {
				close(up)
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case <-up:
	case <-time.After(10 * time.Second):
		t.Fatalf("duplex %s did not report it was listening", cmdName)
	}
	return cmd, addr
}

// stopGateway sends SIGTERM and checks the exit status is 0.
func stopGateway(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit after SIGTERM")
	}
}

func TestBridgeCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	cmd, addr := startGateway(t, "duplex bridge listening", "bridge", "--to", "tcp://"+ln.Addr().String(), "--subprotocol", "mqtt")
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != "mqtt" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	c.Write(ctx, websocket.MessageBinary, []byte("echo me"))
	if _, p, err := c.Read(ctx); err != nil || string(p) != "echo me" {
		t.Fatalf("got %q, %v", p, err)
	}
	ended := make(chan error, 1)
	go func() { _, _, err := c.Read(ctx); ended <- err }() // answers the close
	stopGateway(t, cmd)
	if err := <-ended; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("after SIGTERM: %v, want 1001", err)
	}
}

func TestBridgeCommandBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bridge"},
		{"bridge", "--to", "127.0.0.1:1"},
		{"bridge", "--to", "tcp://127.0.0.1:1", "--insecure"},
		{"bridge", "--to", "tcp://127.0.0.1:1", "extra"},
		{"exec", "--listen", "127.0.0.1:0"},
		{"exec", "--max-processes", "0", "--", "cat"},
		{"serve", "--bridge", "/x=http://a:1"},
		{"serve", "--exec", "x=./a.sh"},
	} {
		var out, errOut bytesBuffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%q: status %d, want 2 (stderr %q)", args, code, errOut.String())
		}
	}
}

type bytesBuffer struct{ b []byte }

func (b *bytesBuffer) Write(p []byte) (int, error) { b.b = append(b.b, p...); return len(p), nil }
func (b *bytesBuffer) String() string              { return string(b.b) }

// TestExecCommand: a conversation, then SIGTERM to duplex exec kills the
// connection's process (its pid is gone) and closes with 1001.
func TestExecCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, addr := startGateway(t, "duplex exec listening", "exec", "--kill-timeout", "200ms", "--",
		"sh", "-c", `echo $$; while read l; do echo "you said $l"; done`)
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/anything?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, p, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(string(p))
	c.Write(ctx, websocket.MessageText, []byte("hi"))
	if _, p, err := c.Read(ctx); err != nil || string(p) != "you said hi" {
		t.Fatalf("got %q, %v", p, err)
	}
	ended := make(chan error, 1)
	go func() { _, _, err := c.Read(ctx); ended <- err }() // answers the close
	stopGateway(t, cmd)
	if err := <-ended; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("after SIGTERM: %v, want 1001", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still exists after duplex exec exited: %v", pid, err)
	}
}

// TestServeGatewayRoutes: --bridge and --exec routes in duplex serve.
func TestServeGatewayRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); c.Write([]byte("+PONG\r\n")) }()
		}
	}()
	dir := t.TempDir()
	bot := dir + "/bot.sh"
	os.WriteFile(bot, []byte("#!/bin/sh\necho \"hello from $SCRIPT_NAME\"\nexit 4\n"), 0o755)
	cmd, addr := startServe(t, "--bridge", "/redis=tcp://"+ln.Addr().String(), "--exec", "/chat-bot="+bot)
	defer stopGateway(t, cmd)

	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/redis", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, p, err := c.Read(ctx); err != nil || string(p) != "+PONG\r\n" {
		t.Fatalf("bridge: %q, %v", p, err)
	}
	_, _, err = c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("bridge: %v, want 1000 after the target closed", err)
	}

	b, _, err := websocket.Dial(ctx, "ws://"+addr+"/chat-bot", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.CloseNow()
	if _, p, err := b.Read(ctx); err != nil || string(p) != "hello from /chat-bot" {
		t.Fatalf("exec: %q, %v", p, err)
	}
	_, _, err = b.Read(ctx)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusInternalError || ce.Reason != "exit status 4" {
		t.Fatalf("exec: %v, want 1011 exit status 4", err)
	}
}
