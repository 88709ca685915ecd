package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/pubsub/natsbroker"
	"github.com/duplex-ws/duplex/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestParseNATSBroker(t *testing.T) {
	for _, tc := range []struct {
		url, servers string
		opts         natsbroker.Options
	}{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222", natsbroker.Options{}},
		{"nats://a:4222?", "nats://a:4222", natsbroker.Options{}},
		{"nats://a:4222,nats://b:4222,nats://c:4222?replicas=3", "nats://a:4222,nats://b:4222,nats://c:4222", natsbroker.Options{Replicas: 3}},
		{"nats://a:4222?prefix=blue-1_x&replicas=1", "nats://a:4222", natsbroker.Options{Replicas: 1, Prefix: "blue-1_x"}},
		{"nats://u:p@a:4222?replicas=5", "nats://u:p@a:4222", natsbroker.Options{Replicas: 5}},
	} {
		servers, opts, err := server.ParseNATSBroker(tc.url)
		if err != nil || servers != tc.servers || opts != tc.opts {
			t.Errorf("ParseNATSBroker(%q) = %q, %+v, %v; want %q, %+v", tc.url, servers, opts, err, tc.servers, tc.opts)
		}
	}
	for u, want := range map[string]string{
		"nats://a:4222?replicas=0":               `broker "nats://a:4222?replicas=0": replicas=0: want a number from 1 to 5`,
		"nats://a:4222?replicas=6":               `broker "nats://a:4222?replicas=6": replicas=6: want a number from 1 to 5`,
		"nats://a:4222?replicas=three":           `broker "nats://a:4222?replicas=three": replicas=three: want a number from 1 to 5`,
		"nats://a:4222?replicas=3&replicas=3":    `broker "nats://a:4222?replicas=3&replicas=3": option replicas given 2 times`,
		"nats://a:4222?prefix=a.b":               `broker "nats://a:4222?prefix=a.b": prefix=a.b: only letters, digits, '-' and '_'`,
		"nats://a:4222?prefix=":                  `broker "nats://a:4222?prefix=": prefix=: want letters, digits, '-' and '_'`,
		"nats://a:4222?storage=memory":           `broker "nats://a:4222?storage=memory": unknown option "storage": want replicas or prefix`,
		"nats://a:4222?replicas=%zz":             `broker "nats://a:4222?replicas=%zz": options "replicas=%zz": invalid URL escape "%zz"`,
		"nats://a:4222?replicas=3,nats://b:4222": `broker "nats://a:4222?replicas=3,nats://b:4222": replicas=3,nats://b:4222: want a number from 1 to 5`,
		"nats://a:4222,tls://b:4222?replicas=3":  `broker "nats://a:4222,tls://b:4222?replicas=3": every URL of a NATS cluster starts with nats://`,
	} {
		if _, _, err := server.ParseNATSBroker(u); err == nil || err.Error() != want {
			t.Errorf("ParseNATSBroker(%q): %v, want %q", u, err, want)
		}
		if b, err := server.OpenBroker(u); err == nil || err.Error() != want {
			t.Errorf("OpenBroker(%q) = %v, %v; want error %q", u, b, err, want)
		}
	}
}

// OpenBroker with ?prefix= names the streams and the presence bucket with
// it; ?replicas=3 on a single nats-server fails at once, saying why.
func TestOpenBrokerNATSOptions(t *testing.T) {
	url := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := server.OpenBroker(url + "?prefix=blue")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Publish(ctx, "chat:x", []byte(`{"n":1}`), pubsub.HistoryOptions{Size: 1}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(ctx, "blue-presence"); err != nil {
		t.Errorf("bucket blue-presence: %v", err)
	}
	st, err := js.Stream(ctx, "blue-chat")
	if err != nil {
		t.Fatalf("stream blue-chat: %v", err)
	}
	if subj := st.CachedInfo().Config.Subjects; len(subj) != 1 || subj[0] != "blue.ch.chat.>" {
		t.Errorf("stream blue-chat subjects %q, want blue.ch.chat.>", subj)
	}
	if _, err := js.Stream(ctx, "duplex-chat"); err != jetstream.ErrStreamNotFound {
		t.Errorf("stream duplex-chat: %v, want not found", err)
	}

	r, err := server.OpenBroker(url + "?replicas=3&prefix=red")
	want := "natsbroker: presence bucket red-presence: nats: API error: code=500 err_code=10074 description=replicas > 1 not supported in non-clustered mode"
	if err == nil || err.Error() != want {
		if r != nil {
			r.Close()
		}
		t.Fatalf("OpenBroker with replicas=3 on one server: %v, want %q", err, want)
	}
}
