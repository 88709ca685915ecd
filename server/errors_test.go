package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// failingBroker is an in-memory broker whose channel "bare:fail" cannot be
// published to or subscribed to, as when a remote broker is down.
type failingBroker struct {
	*pubsub.MemoryBroker
}

var errBrokerDown = errors.New("broker unavailable")

func (b failingBroker) Publish(ctx context.Context, channel string, data []byte, opts pubsub.HistoryOptions) (*pubsub.Message, error) {
	if channel == "bare:fail" {
		return nil, errBrokerDown
	}
	return b.MemoryBroker.Publish(ctx, channel, data, opts)
}

func (b failingBroker) Subscribe(ctx context.Context, channel string) error {
	if channel == "bare:fail" {
		return errBrokerDown
	}
	return b.MemoryBroker.Subscribe(ctx, channel)
}

// errorCase is a command that gets an error answer, after setup commands
// that succeed.
type errorCase struct {
	name  string
	setup []string // commands whose answers are read and ignored
	cmd   string
	// want is the exact answer; when it ends with "…", the answer must
	// start with what comes before (the rest quotes a JSON decoder's error).
	want string
}

var long256 = strings.Repeat("a", 256)

var errorCases = []errorCase{
	// 100: internal errors, from the broker.
	{"100 publish", nil, `{"id":1,"op":"publish","channel":"bare:fail","data":1}`, `{"id":1,"error":{"code":100,"message":"broker unavailable"}}`},
	{"100 subscribe", nil, `{"id":1,"op":"subscribe","channel":"bare:fail"}`, `{"id":1,"error":{"code":100,"message":"broker unavailable"}}`},

	// 101: not JSON, not an object.
	{"101 not JSON", nil, `not json`, `{"id":0,"error":{"code":101,"message":"a command must be a JSON object: …`},
	{"101 empty", nil, ``, `{"id":0,"error":{"code":101,"message":"a command must be a JSON object: …`},
	{"101 truncated", nil, `{"id":1,"op":"ping"`, `{"id":0,"error":{"code":101,"message":"a command must be a JSON object: …`},
	{"101 array", nil, `[{"id":1,"op":"ping"}]`, `{"id":0,"error":{"code":101,"message":"a command must be a JSON object: …`},
	{"101 string", nil, `"ping"`, `{"id":0,"error":{"code":101,"message":"a command must be a JSON object: …`},
	{"101 number", nil, `42`, `{"id":0,"error":{"code":101,"message":"a command must be a JSON object: …`},
	{"101 null", nil, `null`, `{"id":0,"error":{"code":101,"message":"id must be an integer from 1 to 2^53-1, got none"}}`},
	// 101: id missing or not a positive integer up to 2^53-1.
	{"101 missing id", nil, `{"op":"ping"}`, `{"id":0,"error":{"code":101,"message":"id must be an integer from 1 to 2^53-1, got none"}}`},
	{"101 id 0", nil, `{"id":0,"op":"ping"}`, `{"id":0,"error":{"code":101,"message":"id must be an integer from 1 to 2^53-1, got 0"}}`},
	{"101 id 2^53", nil, `{"id":9007199254740992,"op":"ping"}`, `{"id":0,"error":{"code":101,"message":"id must be an integer from 1 to 2^53-1, got 9007199254740992"}}`},
	{"101 string id", nil, `{"id":"7","op":"ping"}`, `{"id":0,"error":{"code":101,"message":"id must be an integer from 1 to 2^53-1, got \"7\""}}`},
	{"101 negative id", nil, `{"id":-7,"op":"ping"}`, `{"id":0,"error":{"code":101,"message":"id must be an integer from 1 to 2^53-1, got -7"}}`},
	{"101 fractional id", nil, `{"id":7.5,"op":"ping"}`, `{"id":0,"error":{"code":101,"message":"id must be an integer from 1 to 2^53-1, got 7.5"}}`},
	{"101 null id", nil, `{"id":null,"op":"ping"}`, `{"id":0,"error":{"code":101,"message":"id must be an integer from 1 to 2^53-1, got null"}}`},
	// 101: a field of the wrong type, or missing.
	{"101 channel type", nil, `{"id":3,"op":"subscribe","channel":7}`, `{"id":3,"error":{"code":101,"message":"malformed command: …`},
	{"101 op type", nil, `{"id":3,"op":["ping"]}`, `{"id":3,"error":{"code":101,"message":"malformed command: …`},
	{"101 limit type", nil, `{"id":3,"op":"history","channel":"news","limit":"2"}`, `{"id":3,"error":{"code":101,"message":"malformed command: …`},
	{"101 since type", nil, `{"id":3,"op":"subscribe","channel":"news","since":41}`, `{"id":3,"error":{"code":101,"message":"malformed command: …`},
	{"101 user type", nil, `{"id":3,"op":"connect","user":7}`, `{"id":3,"error":{"code":101,"message":"malformed command: …`},
	{"101 op missing", nil, `{"id":3,"channel":"news"}`, `{"id":3,"error":{"code":101,"message":"op is missing"}}`},
	{"101 publish without data", nil, `{"id":3,"op":"publish","channel":"news"}`, `{"id":3,"error":{"code":101,"message":"publish needs data (any JSON value)"}}`},
	{"101 since without epoch", nil, `{"id":3,"op":"subscribe","channel":"news","since":{"offset":4}}`, `{"id":3,"error":{"code":101,"message":"since needs an offset and an epoch"}}`},
	{"101 history since without epoch", nil, `{"id":3,"op":"history","channel":"news","since":{"offset":4}}`, `{"id":3,"error":{"code":101,"message":"since needs an offset and an epoch"}}`},
	{"101 negative limit", nil, `{"id":3,"op":"history","channel":"news","limit":-1}`, `{"id":3,"error":{"code":101,"message":"limit must not be negative"}}`},

	// 102: unknown op (names are case-sensitive).
	{"102", nil, `{"id":4,"op":"fly"}`, `{"id":4,"error":{"code":102,"message":"unknown op \"fly\""}}`},
	{"102 case", nil, `{"id":4,"op":"Ping"}`, `{"id":4,"error":{"code":102,"message":"unknown op \"Ping\""}}`},

	// 103: invalid channel names, for every op that takes one.
	{"103 space", nil, `{"id":5,"op":"subscribe","channel":"a b"}`, `{"id":5,"error":{"code":103,"message":"invalid channel name \"a b\": byte 1 (' ') is not a letter, digit or one of _-.:@/="}}`},
	{"103 empty", nil, `{"id":5,"op":"subscribe","channel":""}`, `{"id":5,"error":{"code":103,"message":"invalid channel name: empty"}}`},
	{"103 missing", nil, `{"id":5,"op":"subscribe"}`, `{"id":5,"error":{"code":103,"message":"invalid channel name: empty"}}`},
	{"103 too long", nil, `{"id":5,"op":"subscribe","channel":"` + long256 + `"}`, `{"id":5,"error":{"code":103,"message":"invalid channel name: 256 bytes, at most 255"}}`},
	{"103 wildcard publish", nil, `{"id":5,"op":"publish","channel":"news.*","data":1}`, `{"id":5,"error":{"code":103,"message":"invalid channel name \"news.*\": byte 5 ('*') is not a letter, digit or one of _-.:@/="}}`},
	{"103 unsubscribe", nil, `{"id":5,"op":"unsubscribe","channel":"a b"}`, `{"id":5,"error":{"code":103,"message":"invalid channel name \"a b\": byte 1 (' ') is not a letter, digit or one of _-.:@/="}}`},
	{"103 presence", nil, `{"id":5,"op":"presence","channel":""}`, `{"id":5,"error":{"code":103,"message":"invalid channel name: empty"}}`},
	{"103 history", nil, `{"id":5,"op":"history","channel":"é"}`, `{"id":5,"error":{"code":103,"message":"invalid channel name \"é\": byte 0 ('Ã') is not a letter, digit or one of _-.:@/="}}`},

	// 104: unknown namespace.
	{"104 subscribe", nil, `{"id":6,"op":"subscribe","channel":"nope:x"}`, `{"id":6,"error":{"code":104,"message":"unknown namespace \"nope\" (channel \"nope:x\")"}}`},
	{"104 publish", nil, `{"id":6,"op":"publish","channel":"nope:x","data":1}`, `{"id":6,"error":{"code":104,"message":"unknown namespace \"nope\" (channel \"nope:x\")"}}`},
	{"104 unsubscribe", nil, `{"id":6,"op":"unsubscribe","channel":"nope:x"}`, `{"id":6,"error":{"code":104,"message":"unknown namespace \"nope\" (channel \"nope:x\")"}}`},
	{"104 presence", nil, `{"id":6,"op":"presence","channel":"nope:x"}`, `{"id":6,"error":{"code":104,"message":"unknown namespace \"nope\" (channel \"nope:x\")"}}`},
	{"104 history", nil, `{"id":6,"op":"history","channel":"nope:x"}`, `{"id":6,"error":{"code":104,"message":"unknown namespace \"nope\" (channel \"nope:x\")"}}`},

	// 105: clients may not publish in feed.
	{"105", nil, `{"id":7,"op":"publish","channel":"feed:x","data":{"a":1}}`, `{"id":7,"error":{"code":105,"message":"permission denied: clients may not publish in namespace \"feed\""}}`},

	// 106: connect twice, after subscribe, or with a user or info too big.
	{"106 twice", []string{`{"id":1,"op":"connect","user":"a"}`}, `{"id":8,"op":"connect","user":"b"}`, `{"id":8,"error":{"code":106,"message":"connect was already sent"}}`},
	{"106 after subscribe", []string{`{"id":1,"op":"subscribe","channel":"bare:x"}`}, `{"id":8,"op":"connect","user":"b"}`, `{"id":8,"error":{"code":106,"message":"connect must come before any subscribe"}}`},
	{"106 user too long", nil, `{"id":8,"op":"connect","user":"` + strings.Repeat("u", 129) + `"}`, `{"id":8,"error":{"code":106,"message":"user is 129 bytes, at most 128"}}`},
	{"106 info too big", nil, `{"id":8,"op":"connect","user":"u","info":"` + strings.Repeat("i", 1023) + `"}`, `{"id":8,"error":{"code":106,"message":"info is 1025 bytes, at most 1024"}}`},

	// 107, 108.
	{"107", []string{`{"id":1,"op":"subscribe","channel":"bare:x"}`}, `{"id":9,"op":"subscribe","channel":"bare:x"}`, `{"id":9,"error":{"code":107,"message":"already subscribed to \"bare:x\""}}`},
	{"107 with since", []string{`{"id":1,"op":"subscribe","channel":"bare:x"}`}, `{"id":9,"op":"subscribe","channel":"bare:x","since":{"offset":0,"epoch":"e"}}`, `{"id":9,"error":{"code":107,"message":"already subscribed to \"bare:x\""}}`},
	{"108", nil, `{"id":10,"op":"unsubscribe","channel":"bare:x"}`, `{"id":10,"error":{"code":108,"message":"not subscribed to \"bare:x\""}}`},
	{"108 after unsubscribe", []string{`{"id":1,"op":"subscribe","channel":"bare:x"}`, `{"id":2,"op":"unsubscribe","channel":"bare:x"}`}, `{"id":10,"op":"unsubscribe","channel":"bare:x"}`, `{"id":10,"error":{"code":108,"message":"not subscribed to \"bare:x\""}}`},

	// 109, 110.
	{"109", nil, `{"id":11,"op":"history","channel":"bare:x","limit":1}`, `{"id":11,"error":{"code":109,"message":"history is off in this namespace (channel \"bare:x\")"}}`},
	{"110", nil, `{"id":12,"op":"presence","channel":"live:x"}`, `{"id":12,"error":{"code":110,"message":"presence is off in this namespace (channel \"live:x\")"}}`},
}

// Every error of docs/protocol.md is answered with its code, the id of the
// command (0 when it cannot be attributed) and its message, and the
// connection goes on.
func TestErrorAnswers(t *testing.T) {
	broker := failingBroker{pubsub.NewMemoryBroker()}
	t.Cleanup(func() { broker.Close() })
	ts := startServer(t, server.Config{Broker: broker})
	ctx := testContext(t)
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(ctx, t)
			for _, cmd := range tc.setup {
				if f := parseFrame(t, c.call(cmd)); f.Error != nil {
					t.Fatalf("setup %s failed: %+v", cmd, f.Error)
				}
			}
			got := c.call(tc.cmd)
			if prefix, ok := strings.CutSuffix(tc.want, "…"); ok {
				if !strings.HasPrefix(got, prefix) || !strings.HasSuffix(got, `"}}`) {
					t.Fatalf("%s\ngot  %s\nwant %s…\"}}", tc.cmd, got, prefix)
				}
			} else if got != tc.want {
				t.Fatalf("%s\ngot  %s\nwant %s", tc.cmd, got, tc.want)
			}
			// The connection goes on.
			c.expectCall(`{"id":99,"op":"ping"}`, `{"id":99,"result":{}}`)
		})
	}
}

// A command over the server's read limit closes the connection with 1009.
func TestCommandOverReadLimitCloses1009(t *testing.T) {
	ts := startServer(t, server.Config{Limits: server.Limits{MaxMessageSize: 1024}})
	ctx := testContext(t)
	c := ts.dial(ctx, t)
	fits := `{"id":1,"op":"publish","channel":"bare:x","data":"` + strings.Repeat("d", 1024-52) + `"}`
	if len(fits) != 1024 {
		t.Fatalf("command of %d bytes", len(fits))
	}
	if got := c.call(fits); !strings.HasPrefix(got, `{"id":1,"result":{"offset":1,"epoch":"`) {
		t.Fatalf("a command of exactly the limit: got %s", got)
	}
	c.send(`{"id":2,"op":"publish","channel":"bare:x","data":"` + strings.Repeat("d", 1024-51) + `"}`)
	_, _, err := c.conn.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("over the limit: %v, want close 1009", err)
	}
}
