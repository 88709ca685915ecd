package server_test

import (
	"fmt"
	"net/http"
	"testing"
)

// TestLostDuringLinkOutageNATS runs lostDuringLinkOutage on an embedded
// nats-server: B's consumer resumes after offset 1 once the link is back
// and /readyz says so, and a publish on B then succeeds at its first
// attempt.
func TestLostDuringLinkOutageNATS(t *testing.T) {
	n := startEmbeddedNATS(t, t.TempDir(), 0)
	proxy := startLinkProxy(t, fmt.Sprintf("127.0.0.1:%d", n.port))
	a := startNATSNode(t, n.url())
	b := startNATSNode(t, "nats://"+proxy.addr())
	lostDuringLinkOutage(t, a, b, proxy, linkOutage{
		whileCut: func() {
			waitReadyz(t, b, http.StatusServiceUnavailable, notReadyBody("natsbroker: NATS connection reconnecting"), is(http.StatusOK, readyBody))
		},
		restored: func() { waitReadyz(t, b, http.StatusOK, readyBody, natsReadyz) },
		publish12: func(epoch string) {
			if p := publishWhenBack(t, b, "small:lost", `{"n":12}`); p.Offset != 12 || p.Epoch != epoch {
				t.Fatalf("publish on B once ready at %+v, want 12 in %q", p, epoch)
			}
		},
	})
}
