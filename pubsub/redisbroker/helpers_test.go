package redisbroker

import (
	"context"
	"log/slog"
	"testing"

	"github.com/duplex-ws/duplex/internal/brokertest"
	"github.com/duplex-ws/duplex/internal/redistest"
)

// testCtx bounds a test in time.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	return brokertest.Context(t)
}

// dial returns a Broker on its own client of s, closed when the test ends.
func dial(t testing.TB, s *redistest.Server, opts Options) *Broker {
	t.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	b, err := Dial(s.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// events records what a broker delivers, as lines, and wakes waiters; the
// recording is shared with the other broker's tests.
type events struct{ *brokertest.Events }

func newEvents() *events { return &events{brokertest.NewEvents()} }

func (e *events) snapshot() []string { return e.Lines() }

// waitLines waits until n lines were recorded and returns them.
func (e *events) waitLines(t testing.TB, ctx context.Context, n int) []string {
	t.Helper()
	return e.WaitLines(t, ctx, n)
}

// data returns the payload of the nth test message.
func data(n int) []byte { return brokertest.Data(n) }
