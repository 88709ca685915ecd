package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
)

// TestServeLimitSettings: each limit setting, from a flag, the environment
// or the file, lands in server.Config.Limits; left alone, they are the
// server's defaults; -1 turns a limit off; slow and conflate-key land in
// the namespace.
func TestServeLimitSettings(t *testing.T) {
	want := server.Limits{
		MaxConnections: 10, MaxConnectionsPerIP: -1, MaxConnectionsPerUser: 3,
		AcceptRate: 0.5, AcceptBurst: 4, AcceptRatePerIP: -1, AcceptBurstPerIP: 2,
		TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1"}, LimitLoopback: true,
		IdleTimeout: 90 * time.Second, MessageRate: 20, MessageBurst: 40, MaxChannels: 8, MaxMessageSize: 2048,
	}
	tick := pubsub.NamespaceOptions{HistorySize: 1, HistoryTTL: 5 * time.Minute, SlowConsumer: pubsub.SlowConsumerConflate, ConflateKey: "symbol"}
	file := writeConfig(t, `max_connections: 10
max_connections_per_ip: -1
max_connections_per_user: 3
accept_rate: 0.5
accept_burst: 4
accept_rate_per_ip: -1
accept_burst_per_ip: 2
trusted_proxy: [10.0.0.0/8, 192.0.2.1]
limit_loopback: true
idle_timeout: 90s
message_rate: 20
message_burst: 40
max_channels: 8
max_message_size: 2048
namespace:
  tick: {history: 1, presence: "off", publish: api, slow: conflate, conflate_key: symbol}
`)
	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"flags", []string{"--max-connections", "10", "--max-connections-per-ip", "-1", "--max-connections-per-user", "3",
			"--accept-rate", "0.5", "--accept-burst", "4", "--accept-rate-per-ip", "-1", "--accept-burst-per-ip", "2",
			"--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "192.0.2.1", "--limit-loopback", "--idle-timeout", "90s",
			"--message-rate", "20", "--message-burst", "40", "--max-channels", "8", "--max-message-size", "2048",
			"--namespace", "tick:history=1,presence=off,publish=api,slow=conflate,conflate-key=symbol"}, nil},
		{"env", nil, []string{"DUPLEX_MAX_CONNECTIONS=10", "DUPLEX_MAX_CONNECTIONS_PER_IP=-1", "DUPLEX_MAX_CONNECTIONS_PER_USER=3",
			"DUPLEX_ACCEPT_RATE=0.5", "DUPLEX_ACCEPT_BURST=4", "DUPLEX_ACCEPT_RATE_PER_IP=-1", "DUPLEX_ACCEPT_BURST_PER_IP=2",
			"DUPLEX_TRUSTED_PROXY=10.0.0.0/8;192.0.2.1", "DUPLEX_LIMIT_LOOPBACK=true", "DUPLEX_IDLE_TIMEOUT=90s",
			"DUPLEX_MESSAGE_RATE=20", "DUPLEX_MESSAGE_BURST=40", "DUPLEX_MAX_CHANNELS=8", "DUPLEX_MAX_MESSAGE_SIZE=2048",
			"DUPLEX_NAMESPACE=tick:history=1,presence=off,publish=api,slow=conflate,conflate-key=symbol"}},
		{"file", []string{"--config", file}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := loadServe(t, tc.args, tc.env...)
			if !reflect.DeepEqual(c.Server.Limits, want) {
				t.Fatalf("limits %+v\nwant   %+v", c.Server.Limits, want)
			}
			if got := c.Server.Namespaces["tick"]; got != tick {
				t.Fatalf("namespace tick %+v, want %+v", got, tick)
			}
		})
	}
	c := loadServe(t, nil)
	got := c.Server.Limits
	got.TrustedProxies = nil // [] from the setting, nil in the defaults
	if !reflect.DeepEqual(got, server.DefaultLimits()) {
		t.Fatalf("defaults %+v\nwant     %+v", got, server.DefaultLimits())
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-channels", "0"}, `flag --max-channels: "0": want an integer, 1 or more, or -1 for no limit`},
		{[]string{"--accept-rate", "0"}, `flag --accept-rate: "0": want a number above 0 (events a second, 0.5 is one every two seconds), or -1 for no limit`},
		{[]string{"--message-burst", "-1"}, `flag --message-burst: "-1": want an integer, 1 or more`},
		{[]string{"--trusted-proxy", "proxy.internal"}, `flag --trusted-proxy: "proxy.internal": want an IP address or a network such as 10.0.0.0/8`},
		{[]string{"--idle-timeout", "0s"}, `flag --idle-timeout: "0s": want a duration above 0, such as 10s or 1m30s`},
		{[]string{"--namespace", "x:slow=fast"}, `flag --namespace: "x:slow=fast": slow=fast: want close, drop-oldest or conflate`},
		{[]string{"--namespace", "x:conflate-key=id"}, `flag --namespace: "x:conflate-key=id": conflate-key=id needs slow=conflate`},
	} {
		var out, errb strings.Builder
		want := "duplex serve: " + bad.want + "\n"
		if status := serveEnv(bad.args, nil, &out, &errb); status != 2 || errb.String() != want {
			t.Errorf("%q: status %d, stderr\n%q\nwant 2 and\n%q", bad.args, status, errb.String(), want)
		}
	}
}
