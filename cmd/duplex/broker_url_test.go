package main

import (
	"bytes"
	"testing"
)

// Bad options of a NATS broker URL stop duplex serve before it connects
// (exit 2), naming the option.
func TestServeBrokerNATSOptionErrors(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"nats://127.0.0.1:1?replicas=9", `duplex serve: flag --broker: "nats://127.0.0.1:1?replicas=9": replicas=9: want a number from 1 to 5` + "\n"},
		{"nats://127.0.0.1:1?prefix=a.b", `duplex serve: flag --broker: "nats://127.0.0.1:1?prefix=a.b": prefix=a.b: only letters, digits, '-' and '_'` + "\n"},
		{"nats://127.0.0.1:1?ttl=1h", `duplex serve: flag --broker: "nats://127.0.0.1:1?ttl=1h": unknown option "ttl": want replicas or prefix` + "\n"},
	} {
		var out, errb bytes.Buffer
		if code := run([]string{"serve", "--listen", "127.0.0.1:0", "--broker", tc.arg}, &out, &errb); code != 2 || errb.String() != tc.want {
			t.Errorf("--broker %s: exit %d, stderr %q; want 2, %q", tc.arg, code, errb.String(), tc.want)
		}
	}
	// A good one is used: the connection is tried (and refused here).
	var out, errb bytes.Buffer
	want := "duplex serve: --broker: natsbroker: connect nats://127.0.0.1:1: nats: no servers available for connection\n"
	if code := run([]string{"serve", "--listen", "127.0.0.1:0", "--broker", "nats://127.0.0.1:1?replicas=3&prefix=blue"}, &out, &errb); code != 1 || errb.String() != want {
		t.Errorf("--broker with good options: exit %d, stderr %q; want 1, %q", code, errb.String(), want)
	}
}
