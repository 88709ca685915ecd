package bridge

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/duplex-ws/duplex/websocket"
)

// benchSetup starts a WebSocket-to-TCP bridge in front of an in-process TCP
// target whose connections are handed to target, and dials it: our bridge
// (benchBridge) or websockify (benchWebsockify), so that both run the same
// benchmark bodies.
type benchSetup func(b *testing.B, target func(net.Conn)) *websocket.Conn

// benchBridge starts a TCPHandler in front of an in-process TCP target
// whose connections are handed to target, and dials it.
func benchBridge(b *testing.B, target func(net.Conn)) *websocket.Conn {
	b.Helper()
	srv := httptest.NewServer(&TCPHandler{Target: Target{Addr: benchTarget(b, target)}, Log: quietLog()})
	b.Cleanup(srv.Close)
	c, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.CloseNow() })
	return c
}

// benchTarget listens on loopback, hands each connection to target, and
// returns the address.
func benchTarget(b *testing.B, target func(net.Conn)) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); target(c) }()
		}
	}()
	return ln.Addr().String()
}

const benchMsg = 64 << 10

// BenchmarkTCPBridgeUpload: 64 KiB binary messages from the client to a
// TCP sink, through the bridge. The timer stops when the sink has counted
// every byte.
func BenchmarkTCPBridgeUpload(b *testing.B) { benchUpload(b, benchBridge) }

// BenchmarkTCPBridgeDownload: a TCP source writes 64 KiB chunks; the
// client reads them through the bridge (one binary message per chunk the
// bridge reads, up to its 32 KiB buffer).
func BenchmarkTCPBridgeDownload(b *testing.B) { benchDownload(b, benchBridge) }

// BenchmarkTCPBridgeEcho: 64 KiB messages to a TCP echo target and back,
// writer and reader running at once; bytes counted one way.
func BenchmarkTCPBridgeEcho(b *testing.B) { benchEcho(b, benchBridge) }

func benchUpload(b *testing.B, setup benchSetup) {
	got := make(chan int64, 1)
	want := make(chan int64, 1)
	c := setup(b, func(tc net.Conn) {
		total := <-want
		n, _ := io.CopyN(io.Discard, tc, total)
		got <- n
	})
	ctx := context.Background()
	msg := make([]byte, benchMsg)
	b.SetBytes(benchMsg)
	b.ReportAllocs()
	want <- int64(b.N) * benchMsg
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
			b.Fatal(err)
		}
	}
	if n := <-got; n != int64(b.N)*benchMsg {
		b.Fatalf("sink got %d bytes, want %d", n, int64(b.N)*benchMsg)
	}
}

func benchDownload(b *testing.B, setup benchSetup) {
	want := make(chan int64, 1)
	c := setup(b, func(tc net.Conn) {
		total := <-want
		chunk := make([]byte, benchMsg)
		for total > 0 {
			n := min(total, benchMsg)
			if _, err := tc.Write(chunk[:n]); err != nil {
				return
			}
			total -= n
		}
		// Stay open until the bridge leaves: websockify drops what it
		// has queued for the client when the target closes first.
		io.Copy(io.Discard, tc)
	})
	ctx := context.Background()
	b.SetBytes(benchMsg)
	b.ReportAllocs()
	total := int64(b.N) * benchMsg
	want <- total
	b.ResetTimer()
	for total > 0 {
		_, p, err := c.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		total -= int64(len(p))
	}
}

func benchEcho(b *testing.B, setup benchSetup) {
	c := setup(b, func(tc net.Conn) { io.Copy(tc, tc) })
	ctx := context.Background()
	msg := make([]byte, benchMsg)
	b.SetBytes(benchMsg)
	b.ReportAllocs()
	total := int64(b.N) * benchMsg
	errc := make(chan error, 1)
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for total > 0 {
		_, p, err := c.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		total -= int64(len(p))
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkTCPDirectUpload is the baseline: the same 64 KiB writes on a
// plain loopback TCP connection to the same kind of sink, no bridge.
func BenchmarkTCPDirectUpload(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	total := int64(b.N) * benchMsg
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- 0
			return
		}
		defer c.Close()
		n, _ := io.CopyN(io.Discard, c, total)
		got <- n
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, benchMsg)
	b.SetBytes(benchMsg)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	if n := <-got; n != total {
		b.Fatalf("sink got %d bytes, want %d", n, total)
	}
}
