package bridge

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// testCtx returns a context that ends with the test or after d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// served is a handler behind an httptest server; done receives one value
// each time ServeHTTP returns, so a test can wait for a connection's end.
type served struct {
	url  string
	done chan struct{}
}

func serve(t *testing.T, h http.Handler) *served {
	t.Helper()
	s := &served{done: make(chan struct{}, 64)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { s.done <- struct{}{} }()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return s
}

// waitDone waits for one ServeHTTP to return.
func (s *served) waitDone(ctx context.Context, t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-ctx.Done():
		t.Fatalf("handler still running: %v", ctx.Err())
	}
}

func dial(ctx context.Context, t *testing.T, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// readBytes reads binary messages until it has n bytes.
func readBytes(ctx context.Context, t *testing.T, c *websocket.Conn, n int) []byte {
	t.Helper()
	var got []byte
	for len(got) < n {
		typ, p, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", len(got), n, err)
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("got a %v message, want binary", typ)
		}
		got = append(got, p...)
	}
	return got
}

// readText reads one message and checks it is text.
func readText(ctx context.Context, t *testing.T, c *websocket.Conn) string {
	t.Helper()
	typ, p, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("got a %v message %q, want text", typ, p)
	}
	return string(p)
}

// expectClose reads until the connection ends and checks the peer's close.
func expectClose(ctx context.Context, t *testing.T, c *websocket.Conn, code websocket.StatusCode, reason string) {
	t.Helper()
	for {
		typ, p, err := c.Read(ctx)
		if err == nil {
			t.Fatalf("got a %v message %q, want close %v %q", typ, p, code, reason)
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended with %v, want close %v %q", err, code, reason)
		}
		if ce.Code != code || ce.Reason != reason {
			t.Fatalf("closed with %v %q, want %v %q", ce.Code, ce.Reason, code, reason)
		}
		return
	}
}

// tcpTarget is an in-process TCP target; each accepted connection is
// handed to handle.
type tcpTarget struct {
	ln    net.Listener
	addr  string
	conns chan net.Conn
}

func listenTarget(t *testing.T) *tcpTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tt := &tcpTarget{ln: ln, addr: ln.Addr().String(), conns: make(chan net.Conn, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(tt.conns)
				return
			}
			tt.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range tt.conns {
			c.Close()
		}
	})
	return tt
}

// accept waits for the bridge's connection to the target.
func (tt *tcpTarget) accept(ctx context.Context, t *testing.T) net.Conn {
	t.Helper()
	select {
	case c, ok := <-tt.conns:
		if !ok {
			t.Fatal("target listener closed")
		}
		t.Cleanup(func() { c.Close() })
		return c
	case <-ctx.Done():
		t.Fatalf("the bridge did not connect to the target: %v", ctx.Err())
	}
	return nil
}

// logBuffer collects slog output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
