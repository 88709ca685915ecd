package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// TestMain lets a test run this binary's main in a child process.
func TestMain(m *testing.M) {
	if os.Getenv("DUPLEX_RUN_MAIN") == "1" {
		os.Args = append([]string{"duplex"}, os.Args[1:]...)
		main()
		return
	}
	os.Exit(m.Run())
}

func TestServeEchoesAndStopsOnSIGTERM(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(os.Args[0], "serve", "--listen", addr)
	cmd.Env = append(os.Environ(), "DUPLEX_RUN_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
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
