package bridge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestParseTarget(t *testing.T) {
	good := []struct {
		in, addr, str string
		tls           bool
	}{
		{"tcp://127.0.0.1:1883", "127.0.0.1:1883", "tcp://127.0.0.1:1883", false},
		{"tcp://localhost:6379/", "localhost:6379", "tcp://localhost:6379", false},
		{"tcp://[::1]:5900", "[::1]:5900", "tcp://[::1]:5900", false},
		{"tls://example.com:8883", "example.com:8883", "tls://example.com:8883", true},
		{"tls://127.0.0.1:8883?insecure=true&servername=broker", "127.0.0.1:8883", "tls://127.0.0.1:8883", true},
	}
	for _, g := range good {
		tg, err := ParseTarget(g.in)
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", g.in, err)
			continue
		}
		if tg.Addr != g.addr || (tg.TLS != nil) != g.tls || tg.String() != g.str {
			t.Errorf("ParseTarget(%q) = %q tls=%v %q, want %q tls=%v %q", g.in, tg.Addr, tg.TLS != nil, tg.String(), g.addr, g.tls, g.str)
		}
	}
	tg, _ := ParseTarget("tls://127.0.0.1:8883?insecure=true&servername=broker")
	if !tg.TLS.InsecureSkipVerify || tg.TLS.ServerName != "broker" {
		t.Errorf("insecure/servername not applied: %+v", tg.TLS)
	}
	bad := []string{
		"127.0.0.1:1883", "http://127.0.0.1:80", "tcp://127.0.0.1", "tcp://:1883", "tcp://127.0.0.1:0",
		"tcp://127.0.0.1:70000", "tcp://127.0.0.1:1883?insecure=true", "tls://127.0.0.1:1?bogus=1",
		"tls://127.0.0.1:1?insecure=maybe", "tls://127.0.0.1:1?ca=/nonexistent/ca.pem", "tcp://u:p@127.0.0.1:1",
		"tcp://127.0.0.1:1/path",
	}
	for _, b := range bad {
		if _, err := ParseTarget(b); err == nil {
			t.Errorf("ParseTarget(%q) succeeded, want an error", b)
		}
	}
}

// TestTCPBytesBothWays: binary and text messages reach the target as
// bytes, in order; the target's bytes come back as binary messages.
func TestTCPBytesBothWays(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	tt := listenTarget(t)
	s := serve(t, &TCPHandler{Target: Target{Addr: tt.addr}, Log: quietLog()})
	c := dial(ctx, t, s.url, nil)
	tc := tt.accept(ctx, t)

	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320000 bytes, streamed through 32 KiB
	if err := c.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2, 0xff}); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("PING é\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageBinary, big); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{0, 1, 2, 0xff}, "PING é\r\n"...), big...)
	got := make([]byte, len(want))
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(tc, got); err != nil {
		t.Fatalf("target read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("target got different bytes (%d)", len(got))
	}

	down := bytes.Repeat([]byte{7, 8, 9}, 100000)
	go tc.Write(down)
	if back := readBytes(ctx, t, c, len(down)); !bytes.Equal(back, down) {
		t.Fatalf("client got different bytes")
	}
}

func TestTCPSubprotocols(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	tt := listenTarget(t)
	s := serve(t, &TCPHandler{Target: Target{Addr: tt.addr}, Subprotocols: []string{"mqttv3.1", "mqtt"}, Log: quietLog()})
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"mqtt"}, "mqtt"},
		{[]string{"mqtt", "mqttv3.1"}, "mqttv3.1"}, // the route's preference wins
		{[]string{"xmpp"}, ""},
		{nil, ""},
	} {
		c := dial(ctx, t, s.url, &websocket.DialOptions{Subprotocols: tc.offer})
		if got := c.Subprotocol(); got != tc.want {
			t.Errorf("offered %q: subprotocol %q, want %q", tc.offer, got, tc.want)
		}
		tt.accept(ctx, t)
		c.Close(websocket.StatusNormalClosure, "")
	}
}

// TestTCPTargetEOF: the target sends its last bytes and closes: the client
// gets them, then 1000.
func TestTCPTargetEOF(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	tt := listenTarget(t)
	s := serve(t, &TCPHandler{Target: Target{Addr: tt.addr}, Log: quietLog()})
	c := dial(ctx, t, s.url, nil)
	tc := tt.accept(ctx, t)
	tc.Write([]byte("+OK bye\r\n"))
	tc.(*net.TCPConn).CloseWrite()
	if got := readBytes(ctx, t, c, 9); string(got) != "+OK bye\r\n" {
		t.Fatalf("got %q", got)
	}
	expectClose(ctx, t, c, websocket.StatusNormalClosure, "target closed the connection")
	s.waitDone(ctx, t)
}

// TestTCPTargetUnreachable: nothing listens at the target: 1014.
func TestTCPTargetUnreachable(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs logBuffer
	s := serve(t, &TCPHandler{Target: Target{Addr: addr}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	c := dial(ctx, t, s.url, nil)
	expectClose(ctx, t, c, websocket.StatusBadGateway, "cannot reach the target")
	s.waitDone(ctx, t)
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("log does not say why: %s", logs.String())
	}
}

// TestTCPTargetReset: the target resets the connection: 1014.
func TestTCPTargetReset(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	tt := listenTarget(t)
	s := serve(t, &TCPHandler{Target: Target{Addr: tt.addr}, Log: quietLog()})
	c := dial(ctx, t, s.url, nil)
	tc := tt.accept(ctx, t).(*net.TCPConn)
	// A byte that makes it through shows the bridge is connected and
	// pumping before the reset.
	tc.Write([]byte{1})
	readBytes(ctx, t, c, 1)
	tc.SetLinger(0)
	tc.Close() // RST
	expectClose(ctx, t, c, websocket.StatusBadGateway, "target connection failed")
	s.waitDone(ctx, t)
}

// TestTCPClientClose: the client's close reaches the target as EOF (a
// FIN, not a reset), after every byte sent before it.
func TestTCPClientClose(t *testing.T) {
	for _, drop := range []bool{false, true} {
		ctx := testCtx(t, 20*time.Second)
		tt := listenTarget(t)
		s := serve(t, &TCPHandler{Target: Target{Addr: tt.addr}, Log: quietLog()})
		c := dial(ctx, t, s.url, nil)
		tc := tt.accept(ctx, t)
		if err := c.Write(ctx, websocket.MessageBinary, []byte("QUIT\r\n")); err != nil {
			t.Fatal(err)
		}
		// Wait for the bytes before closing, so that a dropped
		// connection cannot lose them.
		got := make([]byte, 6)
		tc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(tc, got); err != nil || string(got) != "QUIT\r\n" {
			t.Fatalf("target read %q, %v", got, err)
		}
		if drop {
			c.CloseNow()
		} else if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
			t.Fatalf("close: %v", err)
		}
		n, err := tc.Read(make([]byte, 1))
		if n != 0 || err != io.EOF {
			t.Fatalf("drop=%v: target read %d, %v; want 0, EOF", drop, n, err)
		}
		s.waitDone(ctx, t)
	}
}

// TestTCPRefuseText: with RefuseText a text message ends the connection
// with 1003 and the target sees nothing of it.
func TestTCPRefuseText(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	tt := listenTarget(t)
	s := serve(t, &TCPHandler{Target: Target{Addr: tt.addr}, RefuseText: true, Log: quietLog()})
	c := dial(ctx, t, s.url, nil)
	tc := tt.accept(ctx, t)
	c.Write(ctx, websocket.MessageBinary, []byte("ok"))
	c.Write(ctx, websocket.MessageText, []byte("not ok"))
	expectClose(ctx, t, c, websocket.StatusUnsupportedData, "text messages are not accepted on this route")
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(tc)
	if string(all) != "ok" || err != nil {
		t.Fatalf("target got %q, %v; want \"ok\" then EOF", all, err)
	}
}

// TestTCPBackpressureToTarget: a target that never reads. The client's
// writes block once the socket buffers on the way are full; the bridge
// queues nothing: the heap does not grow with what was sent.
func TestTCPBackpressureToTarget(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	tt := listenTarget(t)
	s := serve(t, &TCPHandler{Target: Target{Addr: tt.addr}, ProbeInterval: 100 * time.Millisecond, Log: quietLog()})
	c := dial(ctx, t, s.url, nil)
	tc := tt.accept(ctx, t) // and never read

	before := heapAfterGC()
	msg := make([]byte, 64<<10)
	const most = 512 << 20
	sent := 0
	blocked := false
	for sent < most {
		wctx, cancel := context.WithTimeout(ctx, 1*time.Second)
		err := c.Write(wctx, websocket.MessageBinary, msg)
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("write after %d bytes: %v, want a blocked write", sent, err)
			}
			blocked = true
			break
		}
		sent += len(msg)
	}
	if !blocked {
		t.Fatalf("the client wrote %d bytes to a target that reads nothing without blocking", sent)
	}
	grew := int64(heapAfterGC()) - int64(before)
	t.Logf("client blocked after %d bytes (socket buffers); heap grew by %d bytes", sent, grew)
	if grew > 8<<20 {
		t.Fatalf("heap grew by %d bytes while %d bytes were held up: the bridge buffers", grew, sent)
	}

	// The client leaves while the target still reads nothing: the bridge
	// notices (it pings the client) and closes the target's connection.
	c.CloseNow()
	s.waitDone(ctx, t)
	tc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, tc); err != nil {
		t.Fatalf("target: %v, want EOF after the held-up bytes", err)
	}
}

// TestTCPBackpressureToClient: a client that never reads. The target's
// writes block; the bridge queues nothing.
func TestTCPBackpressureToClient(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	tt := listenTarget(t)
	s := serve(t, &TCPHandler{Target: Target{Addr: tt.addr}, Log: quietLog()})
	c := dial(ctx, t, s.url, nil)
	_ = c // never read
	tc := tt.accept(ctx, t)

	before := heapAfterGC()
	chunk := make([]byte, 64<<10)
	const most = 512 << 20
	sent := 0
	blocked := false
	for sent < most {
		tc.SetWriteDeadline(time.Now().Add(1 * time.Second))
		n, err := tc.Write(chunk)
		sent += n
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("target write after %d bytes: %v", sent, err)
			}
			blocked = true
			break
		}
	}
	if !blocked {
		t.Fatalf("the target wrote %d bytes to a client that reads nothing without blocking", sent)
	}
	grew := int64(heapAfterGC()) - int64(before)
	t.Logf("target blocked after %d bytes; heap grew by %d bytes", sent, grew)
	if grew > 8<<20 {
		t.Fatalf("heap grew by %d bytes while %d bytes were held up: the bridge buffers", grew, sent)
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestTCPTLSTarget: tls:// targets, verified with a CA file, with
// insecure=true, and refused (1014) when the certificate is not trusted.
func TestTCPTLSTarget(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	dir := t.TempDir()
	cert, caPEM := selfSigned(t)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, caPEM, 0o600)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }() // TLS echo
		}
	}()
	addr := ln.Addr().String()

	for _, q := range []string{"?ca=" + caFile, "?insecure=true"} {
		tg, err := ParseTarget("tls://" + addr + q)
		if err != nil {
			t.Fatal(err)
		}
		s := serve(t, &TCPHandler{Target: tg, Log: quietLog()})
		c := dial(ctx, t, s.url, nil)
		c.Write(ctx, websocket.MessageBinary, []byte("over tls"))
		if got := readBytes(ctx, t, c, 8); string(got) != "over tls" {
			t.Fatalf("%s: got %q", q, got)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}

	tg, _ := ParseTarget("tls://" + addr) // system roots: not trusted
	s := serve(t, &TCPHandler{Target: tg, Log: quietLog()})
	c := dial(ctx, t, s.url, nil)
	expectClose(ctx, t, c, websocket.StatusBadGateway, "cannot reach the target")
}

// selfSigned makes a CA certificate valid for 127.0.0.1.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "duplex test target"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestTCPOnConnAndShutdown: OnConn sees the connection, and closing it
// (as a server does on shutdown) ends the bridge and the target's side.
func TestTCPOnConnAndShutdown(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	tt := listenTarget(t)
	conns := make(chan *websocket.Conn, 1)
	untracked := make(chan struct{}, 1)
	s := serve(t, &TCPHandler{Target: Target{Addr: tt.addr}, Log: quietLog(),
		OnConn: func(c *websocket.Conn) func() {
			conns <- c
			return func() { untracked <- struct{}{} }
		}})
	c := dial(ctx, t, s.url, nil)
	tc := tt.accept(ctx, t)
	var sc *websocket.Conn
	select {
	case sc = <-conns:
	case <-ctx.Done():
		t.Fatal("OnConn not called")
	}
	go sc.Close(websocket.StatusGoingAway, "server shutting down")
	expectClose(ctx, t, c, websocket.StatusGoingAway, "server shutting down")
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := tc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("target read %d, %v; want EOF", n, err)
	}
	s.waitDone(ctx, t)
	select {
	case <-untracked:
	default:
		t.Fatal("OnConn's done function not called")
	}
}
