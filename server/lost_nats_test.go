package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
)

// A node's link to NATS is down while another node publishes more than
// the channel's history keeps (3 in namespace small): once the link is
// back and /readyz says so, the node delivers what the stream still
// holds, and its subscribers are told, once, which messages are lost (a
// lost push; the Go SDK's OnSubscribed with Recovered false), before the
// messages after the gap, each exactly once and in order; subscribers of
// the other node got everything.
func TestLostDuringLinkOutageNATS(t *testing.T) {
	n := startEmbeddedNATS(t, t.TempDir(), 0)
	proxy := startLinkProxy(t, fmt.Sprintf("127.0.0.1:%d", n.port))
	a := startNATSNode(t, n.url())
	b := startNATSNode(t, "nats://"+proxy.addr())
	ctx := testContext(t)
	const ch = "small:lost"

	subA, logA := sdkSubscribe(ctx, t, a, ch)
	subB, logB := sdkSubscribe(ctx, t, b, ch)
	raw := b.dial(ctx, t)
	r := raw.subscribe(1, ch)
	if r.Offset != 0 || r.Recovered {
		t.Fatalf("subscribed at %+v, want offset 0", r)
	}
	epoch := r.Epoch
	a.publishAPI(t, ch, `{"n":1}`)
	raw.expect(push(ch, 1, epoch, `{"n":1}`))
	logB.waitFor(ctx, t, `message 1 {"n":1}`)

	proxy.cut()
	waitReadyz(t, b, http.StatusServiceUnavailable, notReadyBody("natsbroker: NATS connection reconnecting"), is(http.StatusOK, readyBody))
	for k := 2; k <= 11; k++ {
		a.publishAPI(t, ch, fmt.Sprintf(`{"n":%d}`, k))
	}
	logA.waitFor(ctx, t, `message 11 {"n":11}`)

	proxy.restore()
	waitReadyz(t, b, http.StatusOK, readyBody, natsReadyz)
	// B's consumer resumed after offset 1: 9..11 are still in the
	// stream, 2..8 are not.
	wait, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	bounded := *raw
	bounded.ctx = wait
	bounded.expect(fmt.Sprintf(`{"op":"lost","channel":%q,"from":2,"offset":8,"epoch":%q}`, ch, epoch))
	for k := 9; k <= 11; k++ {
		bounded.expect(push(ch, uint64(k), epoch, fmt.Sprintf(`{"n":%d}`, k)))
	}
	// Ready: a publish on B succeeds at its first attempt.
	if p := publishWhenBack(t, b, ch, `{"n":12}`); p.Offset != 12 || p.Epoch != epoch {
		t.Fatalf("publish on B once ready at %+v, want 12 in %q", p, epoch)
	}
	raw.expect(push(ch, 12, epoch, `{"n":12}`))
	a.publishAPI(t, ch, `{"n":13}`)
	raw.expect(push(ch, 13, epoch, `{"n":13}`))

	gotB := logB.waitFor(wait, t, `message 13 {"n":13}`)
	wantB := []string{"subscribed resubscribed=false recovered=false offset=0", `message 1 {"n":1}`,
		"subscribed resubscribed=true recovered=false offset=8 lost=2..8"}
	for k := 9; k <= 13; k++ {
		wantB = append(wantB, fmt.Sprintf(`message %d {"n":%d}`, k, k))
	}
	if !slices.Equal(gotB, wantB) {
		t.Errorf("the subscriber on the cut node saw:\n\t%s\nwant:\n\t%s", strings.Join(gotB, "\n\t"), strings.Join(wantB, "\n\t"))
	}
	gotA := logA.waitFor(ctx, t, `message 13 {"n":13}`)
	wantA := []string{"subscribed resubscribed=false recovered=false offset=0"}
	for k := 1; k <= 13; k++ {
		wantA = append(wantA, fmt.Sprintf(`message %d {"n":%d}`, k, k))
	}
	if !slices.Equal(gotA, wantA) {
		t.Errorf("the subscriber on the other node saw:\n\t%s\nwant:\n\t%s", strings.Join(gotA, "\n\t"), strings.Join(wantA, "\n\t"))
	}
	want := client.Position{Offset: 13, Epoch: epoch}
	if p := subB.Position(); p != want {
		t.Errorf("position of the subscription on the cut node %+v, want %+v", p, want)
	}
	if p := subA.Position(); p != want {
		t.Errorf("position of the subscription on the other node %+v, want %+v", p, want)
	}
	// Nothing more came to the raw subscriber (a duplicate would be
	// next): a ping is answered at once.
	raw.expectCall(`{"id":2,"op":"ping"}`, `{"id":2,"result":{}}`)
}
