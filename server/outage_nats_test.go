package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/pubsub/natsbroker"
	"github.com/duplex-ws/duplex/server"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// embeddedNATS is a nats-server with JetStream on 127.0.0.1 that a test
// stops and starts again on the same port, with its store or an empty one.
type embeddedNATS struct {
	t    *testing.T
	srv  *natsserver.Server
	port int
}

// startEmbeddedNATS starts a nats-server storing in dir on port (0: a free
// one), shut down when the test ends.
func startEmbeddedNATS(t *testing.T, dir string, port int) *embeddedNATS {
	t.Helper()
	n := &embeddedNATS{t: t, port: port}
	n.start(dir)
	t.Cleanup(n.stop)
	return n
}

func (n *embeddedNATS) start(dir string) {
	n.t.Helper()
	port := n.port
	if port == 0 {
		port = -1
	}
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		n.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		n.t.Fatal("nats-server not ready in 10s")
	}
	n.srv, n.port = s, s.Addr().(*net.TCPAddr).Port
}

// stop shuts the server down and waits until it is gone.
func (n *embeddedNATS) stop() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// restart starts the server again on its port, storing in dir: the
// directory it had keeps its data, another one is an empty store.
func (n *embeddedNATS) restart(dir string) {
	n.t.Helper()
	n.start(dir)
}

func (n *embeddedNATS) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// startNATSNode serves a node whose broker is natsbroker.Dial(url), as
// duplex serve --broker url makes it, but logging to t.Log, and closed
// after the server's shutdown.
func startNATSNode(t *testing.T, url string) *testServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := natsbroker.Dial(url, natsbroker.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() }) // runs after the server's Shutdown
	return startServer(t, server.Config{Broker: b})
}

// natsReadyz accepts what GET /readyz may answer while a node's NATS link
// goes down or comes back: ready, or not ready because of the link, of
// JetStream not answering yet, or of the resume after the reconnection
// not finished yet.
func natsReadyz(status int, body string) bool {
	if status == http.StatusOK && body == readyBody {
		return true
	}
	if status != http.StatusServiceUnavailable {
		return false
	}
	for _, p := range []string{"NATS connection ", "JetStream not answering: ", "resuming after the NATS reconnection", "restarting the consumers of "} {
		if strings.HasPrefix(body, `{"ready":false,"not_ready":{"broker":"natsbroker: `+p) {
			return true
		}
	}
	return false
}

// publishWhenBack publishes data to channel through node's API once
// /readyz said 200, and returns the position: the first attempt must
// succeed, a ready node does not answer that the broker is still coming
// back.
func publishWhenBack(t *testing.T, node *testServer, channel, data string) pubsub.Position {
	t.Helper()
	p, err := node.tryPublishAPI(channel, data)
	if err != nil {
		t.Fatalf("first publish once /readyz said 200: %v", err)
	}
	return p
}

// sdkSub is a Go SDK client subscribed to a channel, with a log of what
// its application sees: "message EPOCH:OFFSET DATA",
// "subscribed resubscribed=… recovered=… at EPOCH:OFFSET" (followed by
// " lost FROM..TO after OLDEPOCH:OFFSET" for a report of a new epoch), and
// the states the client went through.
type sdkSub struct {
	c   *client.Client
	sub *client.Subscription
	log *sdkLog

	mu     sync.Mutex
	states []client.State
}

// newSDKSub subscribes a Go SDK client of url to channel; it reconnects
// within 50 to 250 ms.
func newSDKSub(ctx context.Context, t *testing.T, url, channel string) *sdkSub {
	t.Helper()
	s := &sdkSub{log: newSDKLog()}
	s.c = client.New(url, &client.Options{
		Dial:       *dialOptions(new(net.Conn), 0),
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 250 * time.Millisecond,
		OnState: func(st client.State, _ error) {
			s.mu.Lock()
			s.states = append(s.states, st)
			s.mu.Unlock()
		},
	})
	t.Cleanup(func() { s.c.Close() })
	sub, err := s.c.Subscribe(ctx, channel, func(m client.Message) {
		s.log.add(fmt.Sprintf("message %s:%d %s", m.Epoch, m.Offset, m.Data))
	}, &client.SubscribeOptions{OnSubscribed: func(ev client.SubscribedEvent) {
		line := fmt.Sprintf("subscribed resubscribed=%t recovered=%t at %s:%d", ev.Resubscribed, ev.Recovered, ev.Position.Epoch, ev.Position.Offset)
		if g := ev.Lost; g != nil {
			line += fmt.Sprintf(" lost %d..%d", g.From, g.To)
			if g.Old != nil {
				line += fmt.Sprintf(" after %s:%d", g.Old.Epoch, g.Old.Offset)
			}
		}
		s.log.add(line)
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.sub = sub
	return s
}

// disconnected reports whether the client ever lost its connection.
func (s *sdkSub) disconnected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.states, client.StateDisconnected)
}

// expect waits, for at most 20 s, until the application has seen want
// (and nothing else).
func (s *sdkSub) expect(ctx context.Context, t *testing.T, who string, want []string) {
	t.Helper()
	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got := s.log.waitFor(wait, t, want[len(want)-1])
	if !slices.Equal(got, want) {
		t.Fatalf("%s saw:\n\t%s\nwant:\n\t%s", who, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// sdkMessage is the sdkSub line of a message.
func sdkMessage(epoch string, offset uint64, data string) string {
	return fmt.Sprintf("message %s:%d %s", epoch, offset, data)
}

// sdkSubscribed is the sdkSub line of a subscription established.
func sdkSubscribed(resubscribed, recovered bool, epoch string, offset uint64) string {
	return fmt.Sprintf("subscribed resubscribed=%t recovered=%t at %s:%d", resubscribed, recovered, epoch, offset)
}

// sdkNewEpoch is the sdkSub line of the report that the channel's history
// was lost after offset of old, and goes on in epoch from its start.
func sdkNewEpoch(epoch, old string, offset uint64) string {
	return fmt.Sprintf("subscribed resubscribed=true recovered=false at %s:0 lost 1..0 after %s:%d", epoch, old, offset)
}

// newEpochPush is the lost push that tells a subscriber of channel that
// its history was lost after offset of old, and goes on in epoch from its
// start.
func newEpochPush(channel, epoch, old string, offset uint64) string {
	return fmt.Sprintf(`{"op":"lost","channel":%q,"from":1,"offset":0,"epoch":%q,"old":{"offset":%d,"epoch":%q}}`, channel, epoch, offset, old)
}

// outageCluster is what the NATS outage tests share: a nats-server, nodes
// A and B, and on channel live:feed a raw subscriber on A (exact bytes),
// a Go SDK subscriber on B that stays connected, and a Go SDK subscriber
// of B through a proxy the test cuts during the outage, so that it
// reconnects once NATS is back. A raw client on B is present in chat:room.
type outageCluster struct {
	nats      *embeddedNATS
	a, b      *testServer
	raw       *wsClient
	stay      *sdkSub
	proxy     *linkProxy
	back      *sdkSub
	presentID string
	epoch     string
}

const outageChannel = "live:feed"

func startOutageCluster(ctx context.Context, t *testing.T, dir string) *outageCluster {
	t.Helper()
	n := startEmbeddedNATS(t, dir, 0)
	oc := &outageCluster{nats: n, a: startNATSNode(t, n.url()), b: startNATSNode(t, n.url())}
	oc.raw = oc.a.dial(ctx, t)
	r := oc.raw.subscribe(1, outageChannel)
	if r.Offset != 0 || r.Recovered {
		t.Fatalf("subscribed at %+v, want offset 0", r)
	}
	oc.epoch = r.Epoch
	oc.stay = newSDKSub(ctx, t, oc.b.ws+"/ws", outageChannel)
	oc.proxy = startLinkProxy(t, strings.TrimPrefix(oc.b.http, "http://"))
	oc.back = newSDKSub(ctx, t, "ws://"+oc.proxy.addr()+"/ws", outageChannel)
	present := oc.b.dial(ctx, t)
	oc.presentID = connectAs(t, present, "pat")
	present.subscribe(2, "chat:room")
	oc.waitPresence(ctx, t)
	return oc
}

// waitPresence polls A's presence of chat:room, for at most 20 s, until it
// lists the client present on B.
func (oc *outageCluster) waitPresence(ctx context.Context, t *testing.T) {
	t.Helper()
	want := `{"clients":[{"client":"` + oc.presentID + `","user":"pat"}]}` + "\n"
	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		status, _, body, err := oc.a.tryDo("GET", "/api/channels/chat:room/presence", "", "", nil)
		if err == nil && status == http.StatusOK && body == want {
			return
		}
		select {
		case <-wait.Done():
			t.Fatalf("presence of chat:room on A: %d %q (%v), want %q", status, body, err, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// publish publishes {"n":k} through A's API and checks its position.
func (oc *outageCluster) publish(t *testing.T, k int, want pubsub.Position) {
	t.Helper()
	if p := oc.a.publishAPI(t, outageChannel, fmt.Sprintf(`{"n":%d}`, k)); p != want {
		t.Fatalf("publish %d at %+v, want %+v", k, p, want)
	}
}

// down stops NATS and cuts the reconnecting subscriber's link to B, then
// checks what the nodes still serve: /readyz says the broker is not
// ready, echo, ping and the subscriptions' connections are up, and what
// needs the broker fails at once with error 100 (500 on the API).
func (oc *outageCluster) down(ctx context.Context, t *testing.T) {
	t.Helper()
	oc.nats.stop()
	oc.proxy.cut()
	notReady := notReadyBody("natsbroker: NATS connection reconnecting")
	waitReadyz(t, oc.a, http.StatusServiceUnavailable, notReady, natsReadyz)
	waitReadyz(t, oc.b, http.StatusServiceUnavailable, notReady, natsReadyz)
	if status, _, body := oc.b.do(t, "GET", "/healthz", "", "", nil); status != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /healthz during the outage: %d %q", status, body)
	}

	// Every answer within 5 s: nothing waits for NATS.
	quick, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	echo, err := oc.a.dialPath(quick, t, "/echo", 0)
	if err != nil {
		t.Fatal(err)
	}
	echo.expectCall("still here", "still here")
	c := oc.a.dial(quick, t)
	c.expectCall(`{"id":1,"op":"ping"}`, `{"id":1,"result":{}}`)
	for _, tc := range []struct{ cmd, prefix string }{
		{`{"id":2,"op":"publish","channel":"live:feed","data":{"n":0}}`, `natsbroker: publish to "live:feed": `},
		{`{"id":3,"op":"history","channel":"live:feed","limit":5}`, `natsbroker: history of "live:feed": `},
		{`{"id":4,"op":"subscribe","channel":"live:other"}`, `natsbroker: `},
		{`{"id":5,"op":"presence","channel":"chat:room"}`, `natsbroker: presence of "chat:room": `},
	} {
		got := c.call(tc.cmd)
		f := parseFrame(t, got)
		if f.Error == nil || f.Error.Code != 100 || !strings.HasPrefix(f.Error.Message, tc.prefix) || f.Result != nil {
			t.Fatalf("%s during the outage: %s, want error 100 %q…", tc.cmd, got, tc.prefix)
		}
		t.Logf("during the outage, %s → %s", tc.cmd, got)
	}
	c.expectCall(`{"id":6,"op":"ping"}`, `{"id":6,"result":{}}`)
	status, _, body, err := oc.a.tryDo("POST", "/api/publish", "application/json", `{"channel":"live:feed","data":{"n":0}}`, nil)
	if err != nil || status != http.StatusInternalServerError || !strings.HasPrefix(body, `{"error":{"code":100,"message":"natsbroker: publish to \"live:feed\": `) {
		t.Fatalf("API publish during the outage: %d %q %v", status, body, err)
	}
	if oc.stay.c.State() != client.StateConnected || oc.stay.disconnected() {
		t.Fatalf("the subscriber that stays connected is %v (disconnected before: %v)", oc.stay.c.State(), oc.stay.disconnected())
	}
}

// up starts NATS again, storing in dir, and waits until both nodes are
// ready again.
func (oc *outageCluster) up(ctx context.Context, t *testing.T, dir string) {
	t.Helper()
	oc.nats.restart(dir)
	waitReadyz(t, oc.a, http.StatusOK, readyBody, natsReadyz)
	waitReadyz(t, oc.b, http.StatusOK, readyBody, natsReadyz)
}

// NATS restarted on the same store: history and the epoch are kept. The
// subscriber that stayed connected and the one that reconnects after the
// outage each get every message, published before and after, once and in
// order, and neither is told recovered:false; presence is as before.
func TestNATSOutageSameStore(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	oc := startOutageCluster(ctx, t, dir)
	e := oc.epoch
	for k := 1; k <= 3; k++ {
		oc.publish(t, k, pubsub.Position{Offset: uint64(k), Epoch: e})
		oc.raw.expect(push(outageChannel, uint64(k), e, fmt.Sprintf(`{"n":%d}`, k)))
	}
	before := []string{sdkSubscribed(false, false, e, 0)}
	for k := 1; k <= 3; k++ {
		before = append(before, sdkMessage(e, uint64(k), fmt.Sprintf(`{"n":%d}`, k)))
	}
	oc.stay.expect(ctx, t, "the subscriber that stays connected", before)
	oc.back.expect(ctx, t, "the subscriber that reconnects", before)

	oc.down(ctx, t)
	oc.up(ctx, t, dir)

	if p := publishWhenBack(t, oc.a, outageChannel, `{"n":4}`); p != (pubsub.Position{Offset: 4, Epoch: e}) {
		t.Fatalf("first publish after the outage at %+v, want 4 in %q", p, e)
	}
	oc.publish(t, 5, pubsub.Position{Offset: 5, Epoch: e})
	// Then the reconnecting subscriber's link comes back: it recovers 4
	// and 5 on B.
	oc.proxy.restore()
	afterBack := append(slices.Clone(before), sdkSubscribed(true, true, e, 5))
	for k := 4; k <= 5; k++ {
		afterBack = append(afterBack, sdkMessage(e, uint64(k), fmt.Sprintf(`{"n":%d}`, k)))
	}
	oc.back.expect(ctx, t, "the subscriber that reconnects", afterBack)
	oc.publish(t, 6, pubsub.Position{Offset: 6, Epoch: e})

	after := slices.Clone(before)
	for k := 4; k <= 6; k++ {
		oc.raw.expect(push(outageChannel, uint64(k), e, fmt.Sprintf(`{"n":%d}`, k)))
		after = append(after, sdkMessage(e, uint64(k), fmt.Sprintf(`{"n":%d}`, k)))
	}
	oc.stay.expect(ctx, t, "the subscriber that stays connected", after)
	oc.back.expect(ctx, t, "the subscriber that reconnects", append(afterBack, sdkMessage(e, 6, `{"n":6}`)))
	if oc.stay.disconnected() {
		t.Fatal("the subscriber that stays connected lost its connection")
	}
	oc.waitPresence(ctx, t)

	// A client that left before the outage recovers across it, on A.
	late := oc.a.dial(ctx, t)
	late.send(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":%q,"since":{"offset":2,"epoch":%q}}`, outageChannel, e))
	late.expect(fmt.Sprintf(`{"id":1,"result":{"recovered":true,"offset":6,"epoch":%q}}`, e))
	for k := 3; k <= 6; k++ {
		late.expect(push(outageChannel, uint64(k), e, fmt.Sprintf(`{"n":%d}`, k)))
	}
}

// NATS restarted on an empty store (its data lost): the channel starts a
// new epoch at offset 1. The subscribers that stayed connected are told
// once, before the new epoch's first message, that the old epoch is gone
// after its offset 3 (a lost push with "old"; recovered:false for the Go
// SDK), then get the new epoch's messages from offset 1; the one that
// reconnects after the outage, resuming from the old epoch, is told
// recovered:false and then gets the new epoch's messages; a client
// resuming from the old epoch on either node gets recovered:false;
// presence is written again.
func TestNATSOutageEmptyStore(t *testing.T) {
	ctx := testContext(t)
	oc := startOutageCluster(ctx, t, t.TempDir())
	old := oc.epoch
	for k := 1; k <= 3; k++ {
		oc.publish(t, k, pubsub.Position{Offset: uint64(k), Epoch: old})
		oc.raw.expect(push(outageChannel, uint64(k), old, fmt.Sprintf(`{"n":%d}`, k)))
	}
	before := []string{sdkSubscribed(false, false, old, 0)}
	for k := 1; k <= 3; k++ {
		before = append(before, sdkMessage(old, uint64(k), fmt.Sprintf(`{"n":%d}`, k)))
	}
	oc.stay.expect(ctx, t, "the subscriber that stays connected", before)
	oc.back.expect(ctx, t, "the subscriber that reconnects", before)

	oc.down(ctx, t)
	oc.up(ctx, t, t.TempDir())

	p := publishWhenBack(t, oc.a, outageChannel, `{"n":4}`)
	if p.Offset != 1 || p.Epoch == old || p.Epoch == "" {
		t.Fatalf("first publish after the outage at %+v, want offset 1 in a new epoch (was %q)", p, old)
	}
	e := p.Epoch
	oc.publish(t, 5, pubsub.Position{Offset: 2, Epoch: e})
	oc.proxy.restore()
	afterBack := append(slices.Clone(before), sdkSubscribed(true, false, e, 2))
	oc.back.expect(ctx, t, "the subscriber that reconnects", afterBack)
	oc.publish(t, 6, pubsub.Position{Offset: 3, Epoch: e})

	oc.raw.expect(newEpochPush(outageChannel, e, old, 3))
	after := append(slices.Clone(before), sdkNewEpoch(e, old, 3))
	for k := 4; k <= 6; k++ {
		oc.raw.expect(push(outageChannel, uint64(k-3), e, fmt.Sprintf(`{"n":%d}`, k)))
		after = append(after, sdkMessage(e, uint64(k-3), fmt.Sprintf(`{"n":%d}`, k)))
	}
	oc.stay.expect(ctx, t, "the subscriber that stays connected", after)
	if pos := oc.stay.sub.Position(); pos != (client.Position{Offset: 3, Epoch: e}) {
		t.Fatalf("position of the subscriber that stayed connected: %+v", pos)
	}
	oc.back.expect(ctx, t, "the subscriber that reconnects", append(afterBack, sdkMessage(e, 3, `{"n":6}`)))
	if oc.stay.disconnected() {
		t.Fatal("the subscriber that stays connected lost its connection")
	}
	if pos := oc.back.sub.Position(); pos != (client.Position{Offset: 3, Epoch: e}) {
		t.Fatalf("position of the subscriber that reconnected: %+v", pos)
	}
	oc.waitPresence(ctx, t)

	for _, node := range []*testServer{oc.a, oc.b} {
		late := node.dial(ctx, t)
		late.send(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":%q,"since":{"offset":3,"epoch":%q}}`, outageChannel, old))
		late.expect(fmt.Sprintf(`{"id":1,"result":{"recovered":false,"offset":3,"epoch":%q}}`, e))
	}
}
