package main

import (
	"context"
	"crypto/tls"
	"errors"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/testca"
	"github.com/duplex-ws/duplex/websocket"
)

// waitExit waits for a duplex serve process to exit and returns its status.
func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("duplex serve did not exit within %v", within)
		return -1
	}
}

// TestServeTLSReloadOnSIGHUP: --tls-cert and --tls-key serve wss://; after
// the files are replaced and SIGHUP is sent, new handshakes get the new
// certificate while a connection opened before keeps working.
func TestServeTLSReloadOnSIGHUP(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(1, "duplex serve test 1").Write(t, cert, key)
	cmd, addr := startServe(t, "--tls-cert", cert, "--tls-key", key)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	dial := func() (*websocket.Conn, int64) {
		t.Helper()
		var serial atomic.Int64
		cfg := ca.ClientConfig()
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			serial.Store(testca.Serial(cs))
			return nil
		}
		c, _, err := websocket.Dial(ctx, "wss://"+addr+"/echo", &websocket.DialOptions{TLSConfig: cfg})
		if err != nil {
			t.Fatal(err)
		}
		return c, serial.Load()
	}
	echo := func(c *websocket.Conn, msg string) {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.Read(ctx); err != nil || string(p) != msg {
			t.Fatalf("echo of %q: %q %v", msg, p, err)
		}
	}
	first, serial := dial()
	defer first.CloseNow()
	if serial != 1 {
		t.Fatalf("serial %d, want 1", serial)
	}
	echo(first, "before")

	ca.Issue(2, "duplex serve test 2").Write(t, cert, key)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for {
		c, serial := dial()
		c.CloseNow()
		if serial == 2 {
			break
		}
		if serial != 1 {
			t.Fatalf("serial %d, want 1 then 2", serial)
		}
		select {
		case <-ctx.Done():
			t.Fatal("still the old certificate after SIGHUP")
		case <-time.After(20 * time.Millisecond):
		}
	}
	echo(first, "after")
	first.Close(websocket.StatusNormalClosure, "")
}

// TestServeSignalsCloseCodes: SIGTERM drains (every client gets 1012 and
// the process exits 0), SIGINT closes at once with 1001.
func TestServeSignalsCloseCodes(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		code websocket.StatusCode
	}{
		{syscall.SIGTERM, websocket.StatusServiceRestart},
		{syscall.SIGINT, websocket.StatusGoingAway},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			cmd, addr := startServe(t, "--drain-batch", "1", "--drain-interval", "10ms")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var conns []*websocket.Conn
			for range 3 {
				c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Subprotocols: []string{"duplex.v1"}})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				conns = append(conns, c)
			}
			// A round trip on each, so that the server tracks all three.
			for i, c := range conns {
				if err := c.Write(ctx, websocket.MessageText, []byte(`{"id":1,"op":"ping"}`)); err != nil {
					t.Fatal(err)
				}
				if _, p, err := c.Read(ctx); err != nil || string(p) != `{"id":1,"result":{}}` {
					t.Fatalf("ping %d: %s %v", i, p, err)
				}
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			for i, c := range conns {
				_, p, err := c.Read(ctx)
				if got := websocket.CloseStatus(err); got != tc.code {
					t.Fatalf("connection %d: %q %v, want close %d", i, p, err, tc.code)
				}
			}
			if status := waitExit(t, cmd, 15*time.Second); status != 0 {
				t.Fatalf("exit status %d, want 0", status)
			}
		})
	}
}

// TestServeSecondSignalEndsDrain: a drain that would take 40 s (one
// connection every 20 s) ends at once on a second SIGTERM or a SIGINT:
// the connection of the first batch got its 1012, the two still open are
// closed without a closing handshake (1006 for their clients), and the
// process exits with status 1 within seconds.
func TestServeSecondSignalEndsDrain(t *testing.T) {
	for _, second := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(second.String(), func(t *testing.T) {
			cmd, addr := startServe(t, "--drain-batch", "1", "--drain-interval", "20s", "--drain-timeout", "120s")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ends := make(chan websocket.StatusCode, 3)
			for i := range 3 {
				c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Subprotocols: []string{"duplex.v1"}})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				// A round trip, so that the server tracks it.
				if err := c.Write(ctx, websocket.MessageText, []byte(`{"id":1,"op":"ping"}`)); err != nil {
					t.Fatal(err)
				}
				if _, p, err := c.Read(ctx); err != nil || string(p) != `{"id":1,"result":{}}` {
					t.Fatalf("ping %d: %s %v", i, p, err)
				}
				go func() {
					_, _, err := c.Read(ctx)
					ends <- websocket.CloseStatus(err)
				}()
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-ends:
				if code != websocket.StatusServiceRestart {
					t.Fatalf("first batch: close %d, want 1012", code)
				}
			case <-ctx.Done():
				t.Fatal("no 1012 after SIGTERM")
			}
			start := time.Now()
			if err := cmd.Process.Signal(second); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				select {
				case code := <-ends:
					if code != websocket.StatusAbnormalClosure {
						t.Fatalf("connection %d left: close %d, want none (1006)", i, code)
					}
				case <-ctx.Done():
					t.Fatalf("connection %d still open after the second signal", i)
				}
			}
			if status := waitExit(t, cmd, 10*time.Second); status != 1 {
				t.Fatalf("exit status %d, want 1", status)
			}
			t.Logf("exited %v after the second signal", time.Since(start).Round(time.Millisecond))
		})
	}
}
