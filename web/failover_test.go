package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/pubsub/natsbroker"
	"github.com/duplex-ws/duplex/server"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startNATS runs an embedded nats-server with JetStream on 127.0.0.1,
// storing in a temporary directory, until the test ends; it returns its
// URL.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server not ready in 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return fmt.Sprintf("nats://127.0.0.1:%d", s.Addr().(*net.TCPAddr).Port)
}

// killSwitch holds every TCP connection of one node, accepted (HTTP,
// WebSocket) or dialed (to NATS), so that kill can drop them all at once
// as the death of the node's process would.
type killSwitch struct {
	mu     sync.Mutex
	conns  []net.Conn
	killed bool
}

// add keeps c, or closes it at once if the node is dead already.
func (k *killSwitch) add(c net.Conn) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.killed {
		c.Close()
		return false
	}
	k.conns = append(k.conns, c)
	return true
}

// kill resets every connection (SO_LINGER 0: no FIN, no WebSocket close
// frame) and refuses new ones; it returns how many it dropped.
func (k *killSwitch) kill() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.killed = true
	for _, c := range k.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	return len(k.conns)
}

// Dial implements nats.CustomDialer: the node's NATS connection dies with
// the node.
func (k *killSwitch) Dial(network, address string) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, 2*time.Second)
	if err != nil {
		return nil, err
	}
	if !k.add(c) {
		return nil, fmt.Errorf("dial %s: the node is dead", address)
	}
	return c, nil
}

// killableListener is a node's listener; its accepted connections go to
// the kill switch.
type killableListener struct {
	net.Listener
	k *killSwitch
}

func (l killableListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.k.add(c) {
			return c, err
		}
	}
}

// clusterNode is one server.New node of the test cluster.
type clusterNode struct {
	addr string // host:port
	l    net.Listener
	k    *killSwitch
}

// startClusterNode serves a node whose broker is the NATS broker on
// natsURL, with the connection options duplex serve --broker nats://…
// uses, dialed through the node's kill switch. Pages of any 127.0.0.1
// origin may connect.
func startClusterNode(t *testing.T, natsURL string) *clusterNode {
	t.Helper()
	k := &killSwitch{}
	nc, err := nats.Connect(natsURL, nats.Name("duplex"), nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond), nats.ReconnectBufSize(-1), nats.SetCustomDialer(k))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	b, err := natsbroker.New(nc, natsbroker.Options{Log: log})
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{
		Broker:         b,
		Namespaces:     map[string]pubsub.NamespaceOptions{"": {HistorySize: 1000, HistoryTTL: 10 * time.Minute}},
		OriginPatterns: []string{"127.0.0.1:*"},
		Version:        "test",
		Log:            log,
	})
	done := make(chan struct{})
	go func() { srv.Serve(killableListener{l, k}); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		b.Close()
		nc.Close()
	})
	return &clusterNode{addr: l.Addr().String(), l: l, k: k}
}

// kill makes the node vanish: its listener closes and every connection it
// had (clients, NATS) is reset. It returns how many connections it reset.
func (n *clusterNode) kill() int {
	n.l.Close()
	return n.k.kill()
}

// failoverEvent is what the page posts to /test/event.
type failoverEvent struct {
	Kind      string `json:"kind"` // "subscribed" or "disconnected"
	Recovered bool   `json:"recovered"`
	Offset    uint64 `json:"offset"` // subscribed: the channel's latest offset then
	Epoch     string `json:"epoch"`
	URL       string `json:"url"`
	Code      int    `json:"code"`
	Last      int    `json:"last"` // disconnected: the last number received
	Wall      int64  `json:"wall"` // the page's Date.now()

	arrived time.Time // when the test received it
}

// failoverResult is what the page posts to /test/result.
type failoverResult struct {
	Messages []struct {
		N      int    `json:"n"`
		Offset uint64 `json:"offset"`
		Epoch  string `json:"epoch"`
	} `json:"messages"`
	Subscribed []failoverEvent `json:"subscribed"`
	States     []struct {
		State string `json:"state"`
		URL   string `json:"url"`
		Code  int    `json:"code"`
	} `json:"states"`
}

// TestDuplexJSFailoverNATS is the node-death guarantee for duplex.js in
// Chromium: three server.New nodes share channels through one embedded
// nats-server; the page opens new Duplex([url1, url2, url3]) and
// subscribes; the test publishes 1..total through the HTTP API of the
// node the page is on, kills that node mid-stream (its listener closed,
// its TCP connections reset, its NATS link too), and goes on publishing
// through the node the page does not fail over to. The page must receive
// every number once, in order, after subscribing again on the next node
// with recovered:true.
func TestDuplexJSFailoverNATS(t *testing.T) {
	requireChromium(t)
	const (
		total    = 300
		killAt   = 100 // the kill comes right after this number is published
		interval = 15 * time.Millisecond
		channel  = "seq"
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	natsURL := startNATS(t)
	nodes := make([]*clusterNode, 3)
	urls := make([]string, len(nodes))
	for i := range nodes {
		nodes[i] = startClusterNode(t, natsURL)
		urls[i] = "ws://" + nodes[i].addr + "/ws"
	}

	// The page's site: the page, the SDK, and the two endpoints the page
	// posts to.
	events := make(chan failoverEvent, 16)
	results := make(chan failoverResult, 1)
	page, err := os.ReadFile("testdata/failover_test.html")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.Handle("GET /duplex.js", serveSDK())
	mux.HandleFunc("POST /test/event", func(w http.ResponseWriter, r *http.Request) {
		var ev failoverEvent
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ev.arrived = time.Now()
		select {
		case events <- ev:
		default:
			t.Errorf("too many events from the page; dropped %+v", ev)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /test/result", func(w http.ResponseWriter, r *http.Request) {
		var res failoverResult
		if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case results <- res:
		default:
			t.Errorf("a second result from the page")
		}
		w.WriteHeader(http.StatusNoContent)
	})
	site := httptest.NewServer(mux)
	t.Cleanup(site.Close)

	q := url.Values{"urls": {strings.Join(urls, ",")}, "channel": {channel}, "total": {fmt.Sprint(total)}, "wait": {"60000"}}
	browser := exec.CommandContext(ctx, "node", launcher, site.URL+"/?"+q.Encode())
	browser.WaitDelay = 5 * time.Second
	browserDone := make(chan struct{})
	var browserOut []byte
	var browserErr error
	go func() {
		browserOut, browserErr = browser.CombinedOutput()
		close(browserDone)
	}()
	t.Cleanup(func() {
		cancel()
		<-browserDone
		t.Logf("browser (exit: %v):\n%s", browserErr, browserOut)
	})
	nextEvent := func(what string) failoverEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-browserDone:
			t.Fatalf("the browser ended while the test waited for %s", what)
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
		panic("unreachable")
	}

	first := nextEvent("the first subscribe answer")
	victim := slices.Index(urls, first.URL)
	if first.Kind != "subscribed" || first.Recovered || first.Offset != 0 || first.Epoch == "" || victim < 0 {
		t.Fatalf("first event %+v: want a subscribe answer, offset 0, not recovered, on one of %q", first, urls)
	}
	next, other := (victim+1)%3, (victim+2)%3 // the page fails over to next

	// The publisher: the victim's API, then, once it is dead, the API of
	// the node the page does not move to. Each answer must be the number's
	// offset: nothing published twice, nothing skipped.
	httpc := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	var killed time.Time
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 1; n <= total; n++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("publishing %d: %v", n, ctx.Err())
		}
		via := nodes[victim]
		if n > killAt {
			via = nodes[other]
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+via.addr+"/api/publish",
			strings.NewReader(fmt.Sprintf(`{"channel":%q,"data":%d}`, channel, n)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpc.Do(req)
		if err != nil {
			t.Fatalf("publish %d: %v", n, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var pos pubsub.Position
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &pos) != nil || pos.Offset != uint64(n) || pos.Epoch != first.Epoch {
			t.Fatalf("publish %d through %s: %s %s; want offset %d in epoch %q", n, via.addr, resp.Status, body, n, first.Epoch)
		}
		if n == killAt {
			dropped := nodes[victim].kill()
			killed = time.Now()
			t.Logf("killed the node at %s after publishing %d: %d connections reset", nodes[victim].addr, n, dropped)
		}
	}

	// The page saw its connection end, then subscribed again on the next
	// node, recovered. (The two posts may overtake each other.)
	down, again := nextEvent("the disconnection"), nextEvent("the subscribe answer after the kill")
	if down.Kind == "subscribed" {
		down, again = again, down
	}
	if down.Kind != "disconnected" || down.URL != urls[victim] || down.Code != 1006 {
		t.Fatalf("after the kill: %+v; want disconnected from %s with 1006", down, urls[victim])
	}
	if again.Kind != "subscribed" || !again.Recovered || again.URL != urls[next] || again.Epoch != first.Epoch {
		t.Fatalf("after the kill: %+v; want a subscribe answer with recovered:true on %s in %q", again, urls[next], first.Epoch)
	}

	var res failoverResult
	select {
	case res = <-results:
	case <-browserDone:
		t.Fatal("the browser ended without a result")
	case <-ctx.Done():
		t.Fatalf("waiting for the page's result: %v", ctx.Err())
	}
	var got []int
	for i, m := range res.Messages {
		got = append(got, m.N)
		if m.Offset != uint64(m.N) || m.Epoch != first.Epoch {
			t.Errorf("message %d: number %d at offset %d in %q; want offset %d in %q", i, m.N, m.Offset, m.Epoch, m.N, first.Epoch)
		}
	}
	want := make([]int, total)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the page received %d messages %v\nwant 1..%d, each once, in order", len(got), got, total)
	}
	if len(res.Subscribed) != 2 {
		t.Fatalf("subscribe answers on the page: %+v; want two", res.Subscribed)
	}
	var opens []string
	for _, s := range res.States {
		if s.State == "open" {
			opens = append(opens, s.URL)
		}
	}
	if !slices.Equal(opens, []string{urls[victim], urls[next]}) {
		t.Fatalf("the page opened %q; want %q then %q", opens, urls[victim], urls[next])
	}

	t.Logf("failover: %v from the kill to the recovered subscribe answer (as the test received it); on the page, %d ms from the kill to the disconnection, %d ms from the disconnection to the answer",
		again.arrived.Sub(killed).Round(time.Millisecond), down.Wall-killed.UnixMilli(), again.Wall-down.Wall)
	t.Logf("the page had received 1..%d when its node died; 1..%d were published when it subscribed again: %d replayed by the new node",
		down.Last, again.Offset, int(again.Offset)-down.Last)
	select {
	case <-browserDone:
		if browserErr != nil {
			t.Fatalf("the browser: %v", browserErr)
		}
	case <-ctx.Done():
		t.Fatalf("waiting for the browser to end: %v", ctx.Err())
	}
}
