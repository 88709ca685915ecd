package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/redistest"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

func TestServeBrokerFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		arg, want string
		code      int
	}{
		{"kafka://127.0.0.1:9092", "duplex serve: flag --broker: \"kafka://127.0.0.1:9092\": want memory, nats://host:port[,nats://host:port…] or redis://host:port[/db]\n", 2},
		{"nats://127.0.0.1:1", "duplex serve: --broker: natsbroker: connect nats://127.0.0.1:1: nats: no servers available for connection\n", 1},
		{"redis://127.0.0.1:1", "duplex serve: --broker: redisbroker: connect redis://127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused\n", 1},
	} {
		var out, errb bytes.Buffer
		if code := run([]string{"serve", "--listen", "127.0.0.1:0", "--broker", tc.arg}, &out, &errb); code != tc.code || errb.String() != tc.want {
			t.Errorf("--broker %s: exit %d, stderr %q; want %d, %q", tc.arg, code, errb.String(), tc.code, tc.want)
		}
	}
}

// Two duplex serve processes with --broker nats://… share channels: a
// message published through one node's API is in the other's history.
func TestServeBrokerNATSTwoProcesses(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server not ready in 10s")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	url := fmt.Sprintf("nats://127.0.0.1:%d", ns.Addr().(*net.TCPAddr).Port)

	testTwoProcesses(t, url)
}

// Two duplex serve processes with --broker redis://… share channels.
func TestServeBrokerRedisTwoProcesses(t *testing.T) {
	testTwoProcesses(t, redistest.Start(t).URL()+"/2")
}

// testTwoProcesses starts two duplex serve with --broker url and checks that
// a message published through one node's API is in the other's history.
func testTwoProcesses(t *testing.T, url string) {
	_, addrA := startServe(t, "--broker", url)
	_, addrB := startServe(t, "--broker", url)
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	do := func(method, addr, path, body string) string {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return string(b)
	}
	got := do("POST", addrA, "/api/publish", `{"channel":"news","data":{"n":1}}`)
	m := regexp.MustCompile(`^\{"offset":1,"epoch":"([0-9a-z]+)"\}\n$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("publish on A: %q", got)
	}
	want := fmt.Sprintf(`{"messages":[{"offset":1,"data":{"n":1}}],"offset":1,"epoch":%q}`+"\n", m[1])
	if got := do("GET", addrB, "/api/channels/news/history", ""); got != want {
		t.Fatalf("history on B: %q, want %q", got, want)
	}
}
