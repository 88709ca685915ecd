package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// testTimeout bounds each test (one connection running the whole scenario).
const testTimeout = 5 * time.Minute

var closers = []string{closerGo, closerPeer}

func TestGoServerPythonClient(t *testing.T) {
	for _, closer := range closers {
		t.Run("closer="+closer, func(t *testing.T) {
			requirePeer(t, "python")
			goServer(t, closer, "python client", func(base string) []string {
				return []string{systemPython, pythonPeer, "client", wsURL(base, closer)}
			})
		})
	}
}

func TestGoClientPythonServer(t *testing.T) {
	for _, closer := range closers {
		t.Run("closer="+closer, func(t *testing.T) {
			requirePeer(t, "python")
			goClient(t, closer, "python server", []string{systemPython, pythonPeer, "server", "0"})
		})
	}
}

func TestGoServerNodeClient(t *testing.T) {
	for _, closer := range closers {
		t.Run("closer="+closer, func(t *testing.T) {
			requirePeer(t, "node")
			goServer(t, closer, "node client", func(base string) []string {
				return []string{"node", nodePeer, "client", wsURL(base, closer)}
			})
		})
	}
}

func TestGoClientNodeServer(t *testing.T) {
	for _, closer := range closers {
		t.Run("closer="+closer, func(t *testing.T) {
			requirePeer(t, "node")
			goClient(t, closer, "node server", []string{"node", nodePeer, "server", "0"})
		})
	}
}

// TestGoServerChromium runs the client side in a page of headless Chromium
// with the browser's WebSocket. A browser cannot send fragmented messages,
// so it sends the fragmented entries whole; it receives ours fragmented.
func TestGoServerChromium(t *testing.T) {
	for _, closer := range closers {
		t.Run("closer="+closer, func(t *testing.T) {
			requirePeer(t, "chromium")
			goServer(t, closer, "chromium page", func(base string) []string {
				return []string{"node", browserPeer, base + "/?closer=" + closer}
			})
		})
	}
}

func wsURL(httpBase, closer string) string {
	return "ws" + strings.TrimPrefix(httpBase, "http") + "/interop?closer=" + closer
}

// goRun is the Go side of one test: its options, the messages of the
// scenario, and whether to record the bytes of the WebSocket connection.
type goRun struct {
	opts websocket.Options
	seq  []message
	tap  bool
}

// plainRun is the Go side of the plain scenario (no compression).
func plainRun() goRun { return goRun{opts: connOptions, seq: sequence()} }

// runInfo is what the Go side saw of the connection, for checks made after
// both sides finished.
type runInfo struct {
	mu sync.Mutex
	// extensions is the Sec-WebSocket-Extensions answer of the handshake:
	// the one the Go server sent, or the one the Go client received.
	extensions string
	// wire holds the bytes of the WebSocket connection when goRun.tap is
	// set (nil until the connection exists).
	wire *tapConn
	// ok is true when both sides succeeded.
	ok bool
	// whole is true when the Go side sent every message as one frame,
	// the fragmented entries too (the event-loop server cannot fragment).
	whole bool
}

func (ri *runInfo) answer() string {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.extensions
}

// goServer serves the plain scenario at /interop (and the browser page at
// /) on an httptest server, starts the peer client given by
// argv(serverURL), and checks both sides.
func goServer(t *testing.T, closer, name string, argv func(base string) []string) {
	goServerRun(t, closer, name, argv, plainRun())
}

// goServerRun is goServer with the Go side run.
func goServerRun(t *testing.T, closer, name string, argv func(base string) []string, run goRun) *runInfo {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	info := new(runInfo)
	var taps *tapListener
	var accepted atomic.Int32
	goResult := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/interop", func(w http.ResponseWriter, r *http.Request) {
		if accepted.Add(1) != 1 {
			http.Error(w, "one connection per test", http.StatusServiceUnavailable)
			return
		}
		if taps != nil {
			info.mu.Lock()
			info.wire = taps.conn(r.RemoteAddr)
			info.mu.Unlock()
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Options: run.opts})
		if err != nil {
			goResult <- fmt.Errorf("Accept: %w", err)
			return
		}
		defer c.CloseNow()
		// Accept writes the 101 response from w's header: what it holds now
		// is what was sent.
		info.mu.Lock()
		info.extensions = w.Header().Get("Sec-WebSocket-Extensions")
		info.mu.Unlock()
		if got := r.URL.Query().Get("closer"); got != closer {
			goResult <- fmt.Errorf("the peer connected with closer=%q, want %q", got, closer)
			return
		}
		goResult <- runGoSide(ctx, c, "server", closer, run.seq)
	})
	handlePage(mux)
	srv := httptest.NewUnstartedServer(mux)
	if run.tap {
		taps = newTapListener(srv.Listener)
		srv.Listener = taps
	}
	srv.Start()
	defer srv.Close()
	defer cancel() // runs before srv.Close: unblocks the handler on failure

	p := startPeer(ctx, t, name, argv(srv.URL)...)

	goErr, peerErr := awaitSides(ctx, p, goResult, func() bool { return accepted.Load() > 0 })
	report(t, name, goErr, peerErr)
	info.mu.Lock()
	info.ok = goErr == nil && peerErr == nil
	info.mu.Unlock()
	return info
}

// handlePage serves the browser page at / on mux (and an empty favicon).
func handlePage(mux *http.ServeMux) {
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, browserPage)
	})
}

// awaitSides waits for the Go server side's result and for the peer client
// p to exit. If the peer exits without ever connecting (connected reports
// false), the Go side will never report: it stops waiting for it then.
func awaitSides(ctx context.Context, p *peerProc, goResult <-chan error, connected func() bool) (goErr, peerErr error) {
	goDone, peerDone := false, false
	peerExited := p.done
	for !goDone || !peerDone {
		select {
		case goErr = <-goResult:
			goDone = true
		case <-peerExited:
			peerErr = p.wait(ctx)
			peerDone = true
			peerExited = nil // never selected again
			if !goDone && !connected() {
				goErr = errors.New("the peer never connected")
				goDone = true
			}
		case <-ctx.Done():
			if !goDone {
				goErr = fmt.Errorf("Go side did not finish: %w", ctx.Err())
			}
			if !peerDone {
				peerErr = fmt.Errorf("%s did not finish: %w", p.name, ctx.Err())
			}
			goDone, peerDone = true, true
		}
	}
	return goErr, peerErr
}

// goClient starts the peer server argv, dials it with the Go client and
// checks both sides, with the plain scenario.
func goClient(t *testing.T, closer, name string, argv []string) {
	goClientRun(t, closer, name, argv, plainRun())
}

// goClientRun is goClient with the Go side run.
func goClientRun(t *testing.T, closer, name string, argv []string, run goRun) *runInfo {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	info := new(runInfo)
	p := startPeer(ctx, t, name, argv...)
	port, err := p.waitListening(ctx)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("ws://127.0.0.1:%d/interop?closer=%s", port, closer)
	opts := &websocket.DialOptions{Options: run.opts}
	if run.tap {
		opts.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := newTapConn(nc)
			info.mu.Lock()
			info.wire = tc
			info.mu.Unlock()
			return tc, nil
		}
	}
	var goErr error
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		goErr = fmt.Errorf("Dial %s: %w", url, err)
	} else {
		info.mu.Lock()
		info.extensions = resp.Header.Get("Sec-WebSocket-Extensions")
		info.mu.Unlock()
		goErr = runGoSide(ctx, c, "client", closer, run.seq)
		c.CloseNow()
	}
	var peerErr error
	if goErr != nil {
		// The peer is likely stuck or failed too: give it a moment to say why.
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		peerErr = p.wait(wctx)
		wcancel()
	} else {
		peerErr = p.wait(ctx)
	}
	report(t, name, goErr, peerErr)
	info.mu.Lock()
	info.ok = goErr == nil && peerErr == nil
	info.mu.Unlock()
	return info
}

func report(t *testing.T, name string, goErr, peerErr error) {
	t.Helper()
	if goErr != nil {
		t.Errorf("Go side: %v", goErr)
	}
	if peerErr != nil {
		t.Errorf("%s: %v", name, peerErr)
	}
}
