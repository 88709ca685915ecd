package natsbroker

import (
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
)

// readyWithin polls b.Ready every 10 ms, within ctx, until ok accepts its
// answer, and returns that answer; every answer before must satisfy
// before.
func readyWithin(t *testing.T, b *Broker, what string, ok, before func(error) bool) error {
	t.Helper()
	ctx := testCtx(t)
	for {
		err := b.Ready()
		if ok(err) {
			return err
		}
		if !before(err) {
			t.Fatalf("Ready while waiting for %s: %v", what, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Ready still %v, waiting for %s", err, what)
		case <-time.After(10 * time.Millisecond): // the poll's period
		}
	}
}

// errIs accepts an error whose text is exactly s.
func errIs(s string) func(error) bool {
	return func(err error) bool { return err != nil && err.Error() == s }
}

func isNil(err error) bool { return err == nil }

// notReadyWhileBack accepts what Ready may say while NATS comes back.
func notReadyWhileBack(err error) bool {
	if err == nil {
		return false
	}
	for _, p := range []string{"NATS connection ", "JetStream not answering: ", "resuming after the NATS reconnection", "restarting the consumers of "} {
		if strings.HasPrefix(err.Error(), "natsbroker: "+p) {
			return true
		}
	}
	return false
}

// After a reconnection, Ready says the broker is resuming for as long as
// the resume has not finished (held here at its start), although the
// connection is up and JetStream answers; once it finished, a publish,
// a history read and the live delivery to the channel that had a
// subscriber work at their first attempt.
func TestReadyWaitsForResume(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	s := startNATS(t, dir, 0)
	b := dial(t, s, Options{})
	ev := newEvents()
	b.SetHandler(ev)
	const ch = "live:ready"
	if err := b.Subscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	m, err := b.Publish(ctx, ch, data(1), pubsub.HistoryOptions{Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	ev.waitLines(t, ctx, 1)
	if err := b.Ready(); err != nil {
		t.Fatalf("Ready before the outage: %v", err)
	}

	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	hook := func() {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
	}
	b.resumeHook.Store(&hook)
	s.stop()
	readyWithin(t, b, "the link down", errIs("natsbroker: NATS connection reconnecting"), isNil)
	s = startNATS(t, dir, s.port)
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the resume did not start")
	}
	// Connected, JetStream answering, the resume held: not ready, and it
	// stays so (200 polls) until the resume goes on.
	for range 200 {
		if err := b.Ready(); err == nil || err.Error() != "natsbroker: resuming after the NATS reconnection" {
			t.Fatalf("Ready while the resume is held: %v", err)
		}
		if _, err := b.js.AccountInfo(ctx); err != nil {
			t.Fatalf("JetStream while the resume is held: %v", err)
		}
	}
	b.resumeHook.Store(nil)
	close(gate)
	readyWithin(t, b, "ready", isNil, notReadyWhileBack)
	m2, err := b.Publish(ctx, ch, data(2), pubsub.HistoryOptions{Size: 10})
	if err != nil {
		t.Fatalf("first publish once ready: %v", err)
	}
	if m2.Offset != 2 || m2.Epoch != m.Epoch {
		t.Fatalf("first publish once ready at %d in %q, want 2 in %q", m2.Offset, m2.Epoch, m.Epoch)
	}
	lines := ev.waitLines(t, ctx, 2)
	if want := "message " + ch + " 2 " + string(data(2)); lines[1] != want {
		t.Fatalf("delivered after the outage %q, want %q (all: %q)", lines[1], want, lines)
	}
	res, err := b.History(ctx, ch, pubsub.HistoryRequest{})
	if err != nil || len(res.Messages) != 2 {
		t.Fatalf("history once ready: %+v, %v", res, err)
	}
}

// JetStream disabled on a server the broker stays connected to: Ready
// says JetStream does not answer, within the probe's reuse time and
// timeout; enabled again, Ready is nil.
func TestReadyJetStreamDisabled(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	b := dial(t, s, Options{})
	if err := b.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := s.srv.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// A server whose JetStream is disabled does not answer its API.
	down := errIs("natsbroker: JetStream not answering: no answer within 1s")
	readyWithin(t, b, "JetStream reported down", down, isNil)
	if d := time.Since(start); d > probeFresh+probeTimeout+time.Second {
		t.Fatalf("JetStream reported down after %v, want within %v", d, probeFresh+probeTimeout+time.Second)
	}
}
