package server_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/pubsub/natsbroker"
	"github.com/duplex-ws/duplex/server"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startNATS runs a nats-server with JetStream on 127.0.0.1, storing in a
// temporary directory, until the test ends; it returns its URL.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server not ready in 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return fmt.Sprintf("nats://127.0.0.1:%d", s.Addr().(*net.TCPAddr).Port)
}

// startNode serves a node whose broker is OpenBroker(url), closed after
// the server's shutdown.
func startNode(t *testing.T, url string) *testServer {
	t.Helper()
	b, err := server.OpenBroker(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() }) // runs after the server's Shutdown
	return startServer(t, server.Config{Broker: b})
}

func TestOpenBroker(t *testing.T) {
	for _, u := range []string{"", "memory"} {
		b, err := server.OpenBroker(u)
		if err != nil {
			t.Fatalf("OpenBroker(%q): %v", u, err)
		}
		if _, ok := b.(*pubsub.MemoryBroker); !ok {
			t.Errorf("OpenBroker(%q) = %T, want *pubsub.MemoryBroker", u, b)
		}
		b.Close()
	}
	for u, want := range map[string]string{
		"tcp://127.0.0.1:6379":                    `broker "tcp://127.0.0.1:6379": want memory, nats://host:port or redis://host:port`,
		"nats://127.0.0.1:4222,tls://127.0.0.1:1": `broker "nats://127.0.0.1:4222,tls://127.0.0.1:1": every URL of a NATS cluster starts with nats://`,
		"nats://127.0.0.1:1":                      "natsbroker: connect nats://127.0.0.1:1: nats: no servers available for connection",
		"Memory":                                  `broker "Memory": want memory, nats://host:port or redis://host:port`,
	} {
		b, err := server.OpenBroker(u)
		if err == nil || err.Error() != want {
			t.Errorf("OpenBroker(%q) = %v, %v; want error %q", u, b, err, want)
		}
	}
	url := startNATS(t)
	b, err := server.OpenBroker(url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, ok := b.(*natsbroker.Broker); !ok {
		t.Fatalf("OpenBroker(%q) = %T, want *natsbroker.Broker", url, b)
	}
}

// Three nodes share channels through one NATS: a message published on any
// node reaches the subscribers of the others in offset order, each once;
// presence is the same on every node; a client recovers against another
// node than the one it left.
func TestThreeNodesNATS(t *testing.T) {
	threeNodes(t, startNATS(t))
}

// connectAs sends connect with user and returns the client id.
func connectAs(t *testing.T, c *wsClient, user string) string {
	t.Helper()
	got := c.call(fmt.Sprintf(`{"id":1,"op":"connect","user":%q}`, user))
	var ans struct {
		Result struct {
			Client string `json:"client"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(got), &ans); err != nil || ans.Result.Client == "" {
		t.Fatalf("connect answer %s", got)
	}
	return ans.Result.Client
}

// waitJoin reads c's pushes until the join of client, which must come
// before any other push but other joins.
func waitJoin(t *testing.T, c *wsClient, client string) {
	t.Helper()
	for {
		got := c.next()
		f := parseFrame(t, got)
		if f.Op != "join" {
			t.Fatalf("got %s while waiting for the join of %s", got, client)
		}
		if strings.Contains(string(f.Client), `"client":"`+client+`"`) {
			return
		}
	}
}
