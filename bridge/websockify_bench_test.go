package bridge

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// The same benchmarks through websockify (Debian package websockify), the
// Python bridge Duplex's is compared with in docs/benchmarks.md. They are
// skipped when websockify is not installed; they are run by hand:
//
//	go test -run '^$' -bench 'TCPBridge|TCPDirect|Websockify' -count 5 ./bridge/

// BenchmarkWebsockifyUpload is BenchmarkTCPBridgeUpload through websockify.
func BenchmarkWebsockifyUpload(b *testing.B) { benchUpload(b, benchWebsockify) }

// BenchmarkWebsockifyDownload is BenchmarkTCPBridgeDownload through
// websockify.
func BenchmarkWebsockifyDownload(b *testing.B) { benchDownload(b, benchWebsockify) }

// BenchmarkWebsockifyEcho is BenchmarkTCPBridgeEcho through websockify.
func BenchmarkWebsockifyEcho(b *testing.B) { benchEcho(b, benchWebsockify) }

// benchWebsockify runs `websockify 127.0.0.1:PORT 127.0.0.1:TARGET` as a
// child process in front of an in-process TCP target, and dials it.
func benchWebsockify(b *testing.B, target func(net.Conn)) *websocket.Conn {
	b.Helper()
	path, err := exec.LookPath("websockify")
	if err != nil {
		b.Skip("websockify is not installed (Debian package websockify)")
	}
	taddr := benchTarget(b, target)
	// A free port for websockify: taken, then released for it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(path, addr, taddr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// websockify forks a process per connection: a group of their own, so
	// that all are stopped together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	// websockify prints its settings before it listens, so readiness is
	// only known by connecting: retry until it accepts, for 10 s at most.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
		if err == nil {
			b.Cleanup(func() { c.CloseNow() })
			return c
		}
		select {
		case <-tick.C:
		case <-exited:
			b.Fatalf("websockify exited: %s", out.String())
		case <-ctx.Done():
			b.Fatalf("websockify did not accept a connection: %v; output: %s", err, out.String())
		}
	}
}
