package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// TestDrainAPIPublishesInFlight: the HTTP API of a draining node finishes
// the publishes in flight. Two nodes share a NATS broker; Go SDK
// subscribers are on node 1. Three POST /api/publish requests to node 1
// have sent their headers (the handler is reading their bodies, which
// the client holds back) and four clients publish to node 1 as fast as
// they can when node 1 drains. The held bodies are completed after the
// listener has closed: each request still gets 200, and Drain waits for
// them. Every publish answered 200 is delivered exactly once to every
// subscriber, which moved to node 2 on its 1012; no request that failed
// is delivered (none is half applied); and every request begun after the
// listener closed fails to connect.
func TestDrainAPIPublishesInFlight(t *testing.T) {
	const (
		subscribers = 4
		held        = 3
		streams     = 4
		perStream   = 150 // the namespace keeps 1000 messages, enough to recover them all
	)
	ctx := testContext(t)
	url := startNATS(t)
	n1 := startDrainNode(t, url, server.Config{DrainBatch: 2, DrainInterval: 100 * time.Millisecond, DrainTimeout: 30 * time.Second})
	n2 := startDrainNode(t, url, server.Config{})
	url1, url2 := n1.ws+"/ws", n2.ws+"/ws"
	addr1 := strings.TrimPrefix(n1.http, "http://")

	type subscriber struct {
		c    *client.Client
		end  chan struct{} // closed when the marker "end" arrives
		mu   sync.Mutex
		got  []string
		err  error // what ended the first connection
		seen bool
	}
	subs := make([]*subscriber, subscribers)
	for i := range subs {
		s := &subscriber{end: make(chan struct{})}
		subs[i] = s
		s.c = client.New(url1, &client.Options{URLs: []string{url2}, OnState: func(st client.State, err error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if st == client.StateDisconnected && !s.seen {
				s.seen, s.err = true, err
			}
		}})
		t.Cleanup(func() { s.c.Close() })
		if _, err := s.c.Subscribe(ctx, "live:api", func(m client.Message) {
			if string(m.Data) == `"end"` {
				close(s.end)
				return
			}
			s.mu.Lock()
			s.got = append(s.got, string(m.Data))
			s.mu.Unlock()
		}, nil); err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
	}

	// One TCP connection per request, so that a request after the
	// listener's close has to connect.
	httpc := &http.Client{Transport: &http.Transport{Proxy: noProxy, DisableKeepAlives: true, ExpectContinueTimeout: 30 * time.Second}}
	post := func(ctx context.Context, body io.Reader, expect bool) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", n1.http+"/api/publish", body)
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Content-Type", "application/json")
		if expect {
			req.Header.Set("Expect", "100-continue")
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	// The held requests: headers sent, and the handler reading the body
	// (it asked for it with 100 Continue), which waits on a pipe.
	type heldReq struct {
		w      *io.PipeWriter
		result chan string
	}
	holds := make([]heldReq, held)
	for i := range holds {
		r, w := io.Pipe()
		h := heldReq{w: w, result: make(chan string, 1)}
		holds[i] = h
		reading := make(chan struct{})
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got100Continue: func() { close(reading) }})
		go func() {
			status, body, err := post(tctx, r, true)
			h.result <- fmt.Sprintf("%d %s %v", status, strings.TrimSpace(body), err)
		}()
		select {
		case <-reading:
		case <-ctx.Done():
			t.Fatalf("held request %d: no 100 Continue", i)
		}
	}

	// The streams: each publishes "s-k" until a request fails after the
	// listener closed.
	var listenerClosed atomic.Bool
	type outcome struct {
		data     string
		ok       bool
		err      error
		afterEnd bool // begun after the listener was seen closed
	}
	results := make(chan outcome, streams*perStream)
	started := make(chan struct{}, streams*perStream)
	var wg sync.WaitGroup
	for s := range streams {
		wg.Go(func() {
			for k := range perStream {
				data := fmt.Sprintf(`"%d-%d"`, s, k)
				after := listenerClosed.Load()
				status, body, err := post(ctx, strings.NewReader(`{"channel":"live:api","data":`+data+`}`), false)
				o := outcome{data: data, err: err, afterEnd: after}
				if err == nil {
					if status != http.StatusOK || !strings.HasPrefix(body, `{"offset":`) {
						t.Errorf("publish %s: %d %s", data, status, body)
					}
					o.ok = status == http.StatusOK
				}
				results <- o
				started <- struct{}{}
				if err != nil && after {
					return
				}
			}
		})
	}
	// Drain once the streams are under way.
	for range streams * 5 {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("streams do not publish")
		}
	}
	drained := make(chan error, 1)
	go func() { drained <- n1.srv.Drain(ctx) }()

	// The listener closes at once: poll until a connection is refused (a
	// connection caught in the close may be reset instead).
	for {
		c, err := net.DialTimeout("tcp", addr1, time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if err == nil {
			c.Close()
		}
		if ctx.Err() != nil {
			t.Fatal("node 1 still accepts connections")
		}
		time.Sleep(5 * time.Millisecond)
	}
	listenerClosed.Store(true)

	// The subscribers get their 1012 while the held requests keep Drain
	// waiting.
	for i, s := range subs {
		for {
			s.mu.Lock()
			seen, err := s.seen, s.err
			s.mu.Unlock()
			if seen {
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != websocket.StatusServiceRestart {
					t.Fatalf("subscriber %d disconnected with %v, want close 1012", i, err)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("subscriber %d not disconnected", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) with requests in flight", err)
	default:
	}
	// Complete the held bodies: each publish is answered 200.
	acked := map[string]bool{}
	for i, h := range holds {
		data := fmt.Sprintf(`"held-%d"`, i)
		if _, err := io.WriteString(h.w, `{"channel":"live:api","data":`+data+`}`); err != nil {
			t.Fatalf("held request %d: %v", i, err)
		}
		h.w.Close()
		if got := <-h.result; !strings.HasPrefix(got, `200 {"offset":`) || !strings.HasSuffix(got, "} <nil>") {
			t.Fatalf("held request %d after the listener closed: %s, want 200 and a position", i, got)
		}
		acked[data] = true
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	wg.Wait()
	close(results)

	failed := map[string]bool{}
	refusedAfter, beforeClose := 0, 0
	for o := range results {
		switch {
		case o.ok:
			acked[o.data] = true
			if !o.afterEnd {
				beforeClose++
			}
		case o.err != nil:
			failed[o.data] = true
			if o.afterEnd {
				if !errors.Is(o.err, syscall.ECONNREFUSED) {
					t.Errorf("publish %s begun after the listener closed failed with %v, want connection refused", o.data, o.err)
				}
				refusedAfter++
			}
		}
		if o.afterEnd && o.ok {
			t.Errorf("publish %s begun after the listener closed was answered 200", o.data)
		}
	}
	if refusedAfter != streams {
		t.Errorf("%d publishes refused after the close, want one per stream (%d)", refusedAfter, streams)
	}

	// Every acknowledged publish, and nothing else, reaches every
	// subscriber, now on node 2, once; then the marker.
	n2.publishAPI(t, "live:api", `"end"`)
	want := make([]string, 0, len(acked))
	for d := range acked {
		want = append(want, d)
	}
	slices.Sort(want)
	for i, s := range subs {
		select {
		case <-s.end:
		case <-ctx.Done():
			t.Fatalf("subscriber %d: no end marker", i)
		}
		s.mu.Lock()
		got := slices.Clone(s.got)
		s.mu.Unlock()
		for _, d := range got {
			if failed[d] {
				t.Errorf("subscriber %d received %s, whose publish failed", i, d)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("subscriber %d: %d messages, want the %d acknowledged once each", i, len(got), len(want))
		}
		if u := s.c.URL(); u != url2 {
			t.Errorf("subscriber %d is on %s, want node 2", i, u)
		}
	}
	t.Logf("%d publishes answered 200 (%d held in flight across the close, %d streamed before it), %d failed (%d refused after the close)",
		len(acked), held, beforeClose, len(failed), refusedAfter)
}
