package server_test

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startWithoutJetStream starts, on n's port, a nats-server without
// JetStream: the nodes' links come back, JetStream does not answer.
func (n *embeddedNATS) startWithoutJetStream() {
	n.t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: n.port, NoLog: true, NoSigs: true})
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

// NATS comes back first without JetStream: the nodes' links are up but
// /readyz stays 503 and says JetStream is not answering. Then NATS comes
// back with JetStream on its store: /readyz says 200 only once the resume
// finished, and from then on the first publish, the first subscribe and
// the live delivery to the subscriber from before the outage work at
// their first attempt, on both nodes.
func TestNATSReadyAfterOutageWithoutJetStream(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	n := startEmbeddedNATS(t, dir, 0)
	a, b := startNATSNode(t, n.url()), startNATSNode(t, n.url())
	const ch = "live:js"
	raw := b.dial(ctx, t)
	r := raw.subscribe(1, ch)
	e := r.Epoch
	if p := a.publishAPI(t, ch, `{"n":1}`); p.Offset != 1 || p.Epoch != e {
		t.Fatalf("publish at %+v, want 1 in %q", p, e)
	}
	raw.expect(push(ch, 1, e, `{"n":1}`))

	n.stop()
	for _, node := range []*testServer{a, b} {
		waitReadyz(t, node, http.StatusServiceUnavailable, notReadyBody("natsbroker: NATS connection reconnecting"), natsReadyz)
	}
	n.startWithoutJetStream()
	noJS := notReadyBody("natsbroker: JetStream not answering: nats: API error: code=503 err_code=10076 description=jetstream not enabled")
	for _, node := range []*testServer{a, b} {
		waitReadyz(t, node, http.StatusServiceUnavailable, noJS, natsReadyz)
	}
	// It stays so: 50 polls of each node over at least a second, longer
	// than the probe's answer is reused.
	for range 50 {
		for _, node := range []*testServer{a, b} {
			if st, _, body := node.do(t, "GET", "/readyz", "", "", nil); st != http.StatusServiceUnavailable || body != noJS {
				t.Fatalf("GET /readyz with NATS up without JetStream: %d %q, want 503 %q", st, body, noJS)
			}
		}
		time.Sleep(20 * time.Millisecond) // the poll's period, not a synchronization
	}
	status, _, body, err := a.tryDo("POST", "/api/publish", "application/json", `{"channel":"live:js","data":{"n":0}}`, nil)
	if err != nil || status != http.StatusInternalServerError {
		t.Fatalf("API publish without JetStream: %d %q %v", status, body, err)
	}

	n.stop()
	n.restart(dir)
	for _, node := range []*testServer{a, b} {
		waitReadyz(t, node, http.StatusOK, readyBody, natsReadyz)
	}
	// Ready: every first attempt succeeds.
	if p := publishWhenBack(t, a, ch, `{"n":2}`); p.Offset != 2 || p.Epoch != e {
		t.Fatalf("first publish once ready at %+v, want 2 in %q", p, e)
	}
	raw.expect(push(ch, 2, e, `{"n":2}`))
	other := b.dial(ctx, t)
	if r := other.subscribe(1, "live:other"); r.Offset != 0 || r.Recovered {
		t.Fatalf("first subscribe once ready: %+v", r)
	}
	o := other.subscribe(2, ch)
	if o.Offset != 2 || o.Epoch != e {
		t.Fatalf("subscribe to %s once ready at %+v, want 2 in %q", ch, o, e)
	}
	if p := publishWhenBack(t, b, ch, `{"n":3}`); p.Offset != 3 || p.Epoch != e {
		t.Fatalf("publish on B once ready at %+v, want 3 in %q", p, e)
	}
	raw.expect(push(ch, 3, e, `{"n":3}`))
	other.expect(push(ch, 3, e, `{"n":3}`))
	late := a.dial(ctx, t)
	late.send(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":%q,"since":{"offset":1,"epoch":%q}}`, ch, e))
	late.expect(fmt.Sprintf(`{"id":1,"result":{"recovered":true,"offset":3,"epoch":%q}}`, e))
	late.expect(push(ch, 2, e, `{"n":2}`))
	late.expect(push(ch, 3, e, `{"n":3}`))
}
