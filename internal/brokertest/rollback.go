package brokertest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/duplex-ws/duplex/pubsub"
)

// HubSubscriber is a pubsub.Subscriber of a Hub that records what it
// receives as lines: "EPOCH:OFFSET DATA" for a message, "lost
// EPOCH:FROM..TO" for a loss within an epoch and "lost EPOCH:FROM..TO
// after OLDEPOCH:OFFSET" for a new epoch, "join CLIENT" and "leave
// CLIENT" for presence; tests compare exact lines without sleeping.
type HubSubscriber struct {
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
}

// NewHubSubscriber returns a HubSubscriber that has received nothing.
func NewHubSubscriber() *HubSubscriber { return &HubSubscriber{notify: make(chan struct{}, 1)} }

// Deliver implements pubsub.Subscriber.
func (s *HubSubscriber) Deliver(e *pubsub.Event) {
	var line string
	switch e.Kind {
	case pubsub.EventMessage:
		line = MessageLine(e.Message.Position(), e.Message.Data)
	case pubsub.EventLost:
		line = fmt.Sprintf("lost %s:%d..%d", e.Lost.Epoch, e.Lost.From, e.Lost.To)
		if o := e.Lost.Old; o != (pubsub.Position{}) {
			line += fmt.Sprintf(" after %s:%d", o.Epoch, o.Offset)
		}
	default:
		line = e.Kind.String() + " " + e.Client.Client
	}
	s.mu.Lock()
	s.lines = append(s.lines, line)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// MessageLine is the HubSubscriber line of a message with data at p.
func MessageLine(p pubsub.Position, data []byte) string {
	return fmt.Sprintf("%s:%d %s", p.Epoch, p.Offset, data)
}

// Lines returns what was received so far.
func (s *HubSubscriber) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

// Wait waits until n lines were received and returns them; the test
// fails if ctx ends first.
func (s *HubSubscriber) Wait(t testing.TB, ctx context.Context, n int) []string {
	t.Helper()
	for {
		if got := s.Lines(); len(got) >= n {
			return got
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			t.Fatalf("waiting for %d deliveries: %v; got %q", n, ctx.Err(), s.Lines())
		}
	}
}

// Logs collects the records of one or more loggers as text lines without
// their time, so tests check exactly what an operator reads.
type Logs struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{} // made on first use
}

// Logger returns a logger that writes to l, from level Info.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// Write implements io.Writer; the handler writes a record per call.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.notify != nil {
		close(l.notify)
		l.notify = nil
	}
	return l.buf.Write(p)
}

// Wait waits until n lines contain substr and returns them; the test
// fails if ctx ends first.
func (l *Logs) Wait(t testing.TB, ctx context.Context, substr string, n int) []string {
	t.Helper()
	for {
		l.mu.Lock()
		if l.notify == nil {
			l.notify = make(chan struct{})
		}
		wrote := l.notify
		l.mu.Unlock()
		if got := l.Lines(substr); len(got) >= n {
			return got
		}
		select {
		case <-wrote:
		case <-ctx.Done():
			t.Fatalf("waiting for %d log lines with %q: %v; got %q", n, substr, ctx.Err(), l.Lines(substr))
		}
	}
}

// Lines returns the lines written so far that contain substr.
func (l *Logs) Lines(substr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for line := range strings.Lines(l.buf.String()) {
		if strings.Contains(line, substr) {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	return out
}
