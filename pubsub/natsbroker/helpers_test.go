package natsbroker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/brokertest"
	"github.com/duplex-ws/duplex/pubsub"
	"github.com/nats-io/nats-server/v2/server"
)

// testCtx bounds a test in time.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	return brokertest.Context(t)
}

// natsServer is an embedded nats-server with JetStream on 127.0.0.1.
type natsServer struct {
	srv  *server.Server
	dir  string
	port int
}

// startNATS starts a NATS server with JetStream storing in dir, on port (0:
// any free port), shut down when the test ends.
func startNATS(t testing.TB, dir string, port int) *natsServer {
	t.Helper()
	if port == 0 {
		port = -1
	}
	opts := &server.Options{
		ServerName: "duplex-test",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server not ready in 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return &natsServer{srv: s, dir: dir, port: s.Addr().(*net.TCPAddr).Port}
}

func (s *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// stop shuts the server down and waits until it is gone.
func (s *natsServer) stop() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// dial returns a Broker on its own connection to s, closed when the test
// ends.
func dial(t testing.TB, s *natsServer, opts Options) *Broker {
	t.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	b, err := Dial(s.url(), opts)
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

// recorder is a pubsub.Subscriber that keeps its events and wakes waiters.
type recorder struct {
	mu     sync.Mutex
	evs    []*pubsub.Event
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) Deliver(e *pubsub.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) events() []*pubsub.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pubsub.Event(nil), r.evs...)
}

// messages returns the offsets and payloads received, as "offset:data".
func (r *recorder) messages() []string {
	var out []string
	for _, e := range r.events() {
		if e.Kind == pubsub.EventMessage {
			out = append(out, fmt.Sprintf("%d:%s", e.Message.Offset, e.Message.Data))
		}
	}
	return out
}

// presence returns the joins and leaves received, as "join client".
func (r *recorder) presence() []string {
	var out []string
	for _, e := range r.events() {
		if e.Kind != pubsub.EventMessage {
			out = append(out, e.Kind.String()+" "+e.Client.Client)
		}
	}
	return out
}

// waitFor waits until cond holds for r.
func (r *recorder) waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-r.notify:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; messages %q, presence %q", what, ctx.Err(), r.messages(), r.presence())
		}
	}
}

// wantOffsets returns "k:data(k)" for k in first..last.
func wantOffsets(first, last int) []string {
	var out []string
	for k := first; k <= last; k++ {
		out = append(out, fmt.Sprintf("%d:%s", k, data(k)))
	}
	return out
}
