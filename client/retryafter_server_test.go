package client_test

import (
	"errors"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// TestRetryAfterFromAcceptRate runs a server that accepts one WebSocket
// connection a second (bucket of one): a second client, refused with 503
// and Retry-After: 1, waits about that second and then connects, with one
// refused attempt in between, where the short backoff alone would have
// dialled a few dozen times.
func TestRetryAfterFromAcceptRate(t *testing.T) {
	ts := serveConfig(t, "127.0.0.1:0", server.Config{Limits: server.Limits{MessageRate: -1, AcceptRate: 1, AcceptBurst: 1}})

	first := newRecorder()
	newClient(t, ts.url, first, nil) // takes the bucket's token
	first.waitState(t, client.StateConnected)

	second := newRecorder()
	newClient(t, ts.url, second, nil) // backoff 5 to 50 ms
	err := second.waitState(t, client.StateDisconnected)
	refused := time.Now()
	var he *websocket.HandshakeError
	if !errors.As(err, &he) || he.Status != 503 {
		t.Fatalf("second client disconnected with %v, want a 503 refusal", err)
	}
	second.waitState(t, client.StateConnected)
	if waited := time.Since(refused); waited < 800*time.Millisecond {
		t.Fatalf("connected %v after the refusal; Retry-After asked for 1 s", waited)
	}
	if n := ts.l.count(); n != 3 {
		t.Fatalf("the server accepted %d TCP connections, want 3: the first client, the refused attempt, the one after Retry-After", n)
	}
}
