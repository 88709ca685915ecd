package server

import (
	"context"
	"testing"

	"github.com/duplex-ws/duplex/pubsub"
)

// FuzzCommand feeds arbitrary client messages to a duplex.v1 session's
// command handler: whatever arrives, it must not panic, and it must answer
// (every message gets at least one queued answer, or the error budget
// closes the connection).
func FuzzCommand(f *testing.F) {
	for _, seed := range []string{
		`{"id":1,"op":"connect","user":"alice","info":{"c":1}}`,
		`{"id":2,"op":"subscribe","channel":"news"}`,
		`{"id":3,"op":"subscribe","channel":"chat:lobby","since":{"offset":1,"epoch":"x"}}`,
		`{"id":4,"op":"publish","channel":"news","data":{"a":[1,2,"3"]}}`,
		`{"id":5,"op":"history","channel":"news","limit":2,"since":{"offset":0,"epoch":"e"}}`,
		`{"id":6,"op":"presence","channel":"news"}`,
		`{"id":7,"op":"unsubscribe","channel":"news"}`,
		`{"id":8,"op":"ping"}`,
		`{"id":9007199254740992,"op":"ping"}`,
		`{"id":"1"}`, `[]`, `null`, `{`, ``, `{"id":1,"op":"subscribe","channel":"a b"}`,
	} {
		f.Add([]byte(seed))
	}
	hub := pubsub.NewHub(pubsub.Config{Namespaces: DefaultNamespaces()})
	defer hub.Close()
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSession(&ChannelHandler{Hub: hub, SendQueue: 4096}, nil)
		defer hub.UnsubscribeAll(ctx, s)
		// Twice: a second command meets the state the first one left.
		for range 2 {
			before := s.queue.len()
			if !s.handle(ctx, data) {
				return // the error budget is spent: the connection closes
			}
			if s.queue.len() == before {
				t.Fatalf("no answer queued for %q", data)
			}
		}
	})
}
