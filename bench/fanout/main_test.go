package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestPayload checks that the data of a publish is valid JSON of exactly
// the asked size and that the subscriber's parser reads back what the push
// carries.
func TestPayload(t *testing.T) {
	for _, size := range []int{40, 64, 200} {
		data := appendData(nil, 12345, size)
		if len(data) != size {
			t.Fatalf("size %d: data is %d bytes: %s", size, len(data), data)
		}
		var v struct{ S, T uint64 }
		if err := json.Unmarshal(data, &v); err != nil || v.S != 12345 {
			t.Fatalf("size %d: %s: %v %+v", size, data, err, v)
		}
		push := append([]byte(`{"op":"message","channel":"fanout:1","offset":777,"epoch":"abc","data":`), data...)
		push = append(push, '}')
		off, ok1 := number(push, keyOffset)
		seq, ok2 := number(push, keyData)
		ts, ok3 := number(push, keyT)
		if !ok1 || !ok2 || !ok3 || off != 777 || seq != 12345 || ts != v.T {
			t.Fatalf("parsed offset %d %v, seq %d %v, t %d %v from %s", off, ok1, seq, ok2, ts, ok3, push)
		}
	}
	if _, ok := number([]byte(`{"op":"join"}`), keyOffset); ok {
		t.Fatal("number found an offset in a join")
	}
}

// TestParseBrokers checks the -brokers list: known names in the order
// given, spaces ignored, unknown names and repeats refused with a message
// that names them.
func TestParseBrokers(t *testing.T) {
	for in, want := range map[string]string{
		"memory":            "memory",
		"memory,nats,redis": "memory nats redis",
		"redis, nats":       "redis nats",
	} {
		got, err := parseBrokers(in)
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("parseBrokers(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"kafka":       `"kafka" is not a broker (memory, nats or redis)`,
		"":            `"" is not a broker (memory, nats or redis)`,
		"nats,,redis": `"" is not a broker (memory, nats or redis)`,
		"nats,nats":   "nats appears twice",
	} {
		if _, err := parseBrokers(in); err == nil || err.Error() != want {
			t.Errorf("parseBrokers(%q): error %v, want %q", in, err, want)
		}
	}
}
