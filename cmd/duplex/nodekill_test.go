package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/internal/redistest"
)

// natsServerPath returns Debian's nats-server. Without it the test is
// skipped, except under CI=true, where scripts/install-test-deps.sh must
// have installed it and its absence is a failure.
func natsServerPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/nats-server", "/usr/bin/nats-server"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nats-server is missing (scripts/install-test-deps.sh installs it)")
	}
	t.Skip("nats-server is not installed (scripts/install-test-deps.sh installs it)")
	return ""
}

// startNATSServer runs a nats-server process with JetStream on a
// temporary directory and a free loopback port, and returns its URL once
// it is ready. It is killed when the test ends.
func startNATSServer(t *testing.T) string {
	t.Helper()
	bin := natsServerPath(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--addr", "127.0.0.1", "--port", strconv.Itoa(port), "--jetstream", "--store_dir", t.TempDir())
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Server is ready") {
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
		t.Fatal("nats-server did not report it was ready in 10s")
	}
	return fmt.Sprintf("nats://127.0.0.1:%d", port)
}

// killSubscriber is one Go SDK client of the node-kill scenario and what
// its callbacks saw.
type killSubscriber struct {
	c     *client.Client
	start string // the node it connected to first
	done  chan struct{}

	mu           sync.Mutex
	got          []int // the numbers delivered, in order
	dups         int   // numbers delivered a second time
	subs         []client.SubscribedEvent
	disconnected time.Time // first Disconnected
	lastBefore   int       // the last number delivered before it
	resubscribed time.Time // first OnSubscribed after a reconnection
	gotAtResub   int       // how many numbers were delivered before it
	firstAfter   time.Time // first message delivered after resubscribed (replayed)
}

// TestNodeKillNATS is the node-death guarantee with real processes on
// NATS: nodeKill with a nats-server with JetStream.
func TestNodeKillNATS(t *testing.T) {
	nodeKill(t, startNATSServer(t))
}

// TestNodeKillRedis is the node-death guarantee with real processes on
// Redis: nodeKill with a redis-server.
func TestNodeKillRedis(t *testing.T) {
	nodeKill(t, redistest.Start(t).URL())
}

// nodeKill runs three duplex serve --broker brokerURL nodes; six Go SDK
// subscribers, two on each node, each given every node's URL; the HTTP
// API of a surviving node publishes 1..N at a steady pace, and one node is
// SIGKILLed mid-stream. The killed node's subscribers fail over to another
// node and recover (recovered:true) the numbers published while they were
// away (at least one: the client waits at least 100 ms before it
// reconnects, and a number is published every 15 ms), which are
// delivered after the recovered subscription; in the end every
// subscriber has had every number exactly once, in order. It logs how long failover took and
// how many messages were replayed.
func nodeKill(t *testing.T, brokerURL string) {
	const (
		total    = 300
		killAt   = 100
		interval = 15 * time.Millisecond
		nodes    = 3
		perNode  = 2
		channel  = "seq"
	)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	var procs []*exec.Cmd
	var urls, addrs []string
	for range nodes {
		cmd, addr := startServe(t, "--broker", brokerURL, "--namespace", "default:history=1000,ttl=10m,presence=on,publish=clients")
		procs = append(procs, cmd)
		addrs = append(addrs, addr)
		urls = append(urls, "ws://"+addr+"/ws")
	}
	const victim = nodes - 1 // the node killed; the API of node 0 publishes

	subs := make([]*killSubscriber, nodes*perNode)
	for i := range subs {
		s := &killSubscriber{start: urls[i%nodes], done: make(chan struct{})}
		subs[i] = s
		s.c = client.New(s.start, &client.Options{
			URLs: urls,
			OnState: func(st client.State, err error) {
				s.mu.Lock()
				defer s.mu.Unlock()
				if st == client.StateDisconnected && s.disconnected.IsZero() {
					s.disconnected = time.Now()
					if len(s.got) > 0 {
						s.lastBefore = s.got[len(s.got)-1]
					}
				}
			},
		})
		t.Cleanup(func() { s.c.Close() })
		handler := func(m client.Message) {
			var n int
			if err := m.Decode(&n); err != nil {
				t.Errorf("subscriber %d: message %s: %v", i, m.Data, err)
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if slices.Contains(s.got, n) {
				s.dups++
			}
			s.got = append(s.got, n)
			if !s.resubscribed.IsZero() && s.firstAfter.IsZero() {
				s.firstAfter = time.Now()
			}
			if n == total {
				close(s.done)
			}
		}
		onSubscribed := func(ev client.SubscribedEvent) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.subs = append(s.subs, ev)
			if ev.Resubscribed && s.resubscribed.IsZero() {
				s.resubscribed = time.Now()
				s.gotAtResub = len(s.got)
			}
		}
		if _, err := s.c.Subscribe(ctx, channel, handler, &client.SubscribeOptions{OnSubscribed: onSubscribed}); err != nil {
			t.Fatalf("subscriber %d on %s: %v", i, s.start, err)
		}
	}

	// The publisher: the HTTP API of node 0, one number every interval.
	// Each answer must be the number's offset: nothing published twice,
	// nothing skipped.
	httpc := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	var killed time.Time
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	for n := 1; n <= total; n++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("publishing %d: %v", n, ctx.Err())
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addrs[0]+"/api/publish",
			strings.NewReader(fmt.Sprintf(`{"channel":%q,"data":%d}`, channel, n)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpc.Do(req)
		if err != nil {
			t.Fatalf("publish %d: %v", n, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var pos client.Position
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &pos) != nil || pos.Offset != uint64(n) {
			t.Fatalf("publish %d: %d %s", n, resp.StatusCode, b)
		}
		if n == killAt {
			if err := procs[victim].Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = time.Now()
		}
	}
	published := time.Since(start)

	for i, s := range subs {
		select {
		case <-s.done:
		case <-ctx.Done():
			s.mu.Lock()
			t.Fatalf("subscriber %d (started on %s, now %s): %d numbers, last %v, subscribed events %+v",
				i, s.start, s.c.URL(), len(s.got), s.got[max(0, len(s.got)-3):], s.subs)
		}
	}
	procs[victim].Wait()

	want := make([]int, total)
	for i := range want {
		want[i] = i + 1
	}
	for i, s := range subs {
		s.mu.Lock()
		if s.dups != 0 || !slices.Equal(s.got, want) {
			t.Errorf("subscriber %d: %d numbers delivered (%d repeated), want 1..%d once each in order", i, len(s.got), s.dups, total)
		}
		onVictim := s.start == urls[victim]
		switch {
		case onVictim:
			if len(s.subs) != 2 || !s.subs[1].Resubscribed || !s.subs[1].Recovered || s.subs[1].Err != nil {
				t.Errorf("subscriber %d (on the killed node): subscribed events %+v, want a first one and one recovered", i, s.subs)
			}
			if u := s.c.URL(); u == urls[victim] {
				t.Errorf("subscriber %d is still on the killed node", i)
			}
			// Replayed: what was published between the last number
			// delivered before the disconnection and the position of the
			// recovered subscription, delivered after it.
			if len(s.subs) == 2 {
				at := int(s.subs[1].Position.Offset)
				if s.disconnected.IsZero() || at-s.lastBefore < 1 || s.gotAtResub != s.lastBefore {
					t.Errorf("subscriber %d (on the killed node): %d numbers delivered before the recovered subscription at %d, last %d before the disconnection (at %v): want at least one number published while it was away, replayed after it",
						i, s.gotAtResub, at, s.lastBefore, s.disconnected)
				}
			}
			t.Logf("subscriber %d: %s → %s; after the kill: disconnected in %v, resubscribed (recovered) in %v, first replayed message in %v; %d messages replayed",
				i, s.start, s.c.URL(), s.disconnected.Sub(killed).Round(time.Millisecond),
				s.resubscribed.Sub(killed).Round(time.Millisecond), s.firstAfter.Sub(killed).Round(time.Millisecond),
				int(s.subs[len(s.subs)-1].Position.Offset)-s.lastBefore)
		default:
			if len(s.subs) != 1 || !s.disconnected.IsZero() {
				t.Errorf("subscriber %d (on a surviving node): subscribed events %+v, disconnected at %v; want no reconnection", i, s.subs, s.disconnected)
			}
		}
		s.mu.Unlock()
	}
	t.Logf("%d numbers published in %v; node %d killed after %d", total, published.Round(time.Millisecond), victim, killAt)
}
