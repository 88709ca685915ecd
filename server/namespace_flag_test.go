package server

import (
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
)

func TestParseNamespace(t *testing.T) {
	good := []struct {
		spec string
		name string
		want pubsub.NamespaceOptions
	}{
		{"default", "", pubsub.DefaultNamespace},
		{"default:history=0", "", pubsub.NamespaceOptions{HistoryTTL: 5 * time.Minute, Presence: true, ClientPublish: true}},
		{"ticker:history=1,presence=off,publish=api", "ticker", pubsub.NamespaceOptions{HistorySize: 1, HistoryTTL: 5 * time.Minute}},
		{"logs:ttl=90s,history=1000,publish=clients,presence=on", "logs", pubsub.NamespaceOptions{HistorySize: 1000, HistoryTTL: 90 * time.Second, Presence: true, ClientPublish: true}},
		{"x:ttl=0", "x", pubsub.NamespaceOptions{HistorySize: 100, Presence: true, ClientPublish: true}},
		{"pub:anonymous=on,publish=api", "pub", pubsub.NamespaceOptions{HistorySize: 100, HistoryTTL: 5 * time.Minute, Presence: true, Anonymous: true}},
		{"priv:anonymous=off", "priv", pubsub.DefaultNamespace},
		{"x:slow=close", "x", pubsub.DefaultNamespace},
		{"x:slow=drop-oldest", "x", pubsub.NamespaceOptions{HistorySize: 100, HistoryTTL: 5 * time.Minute, Presence: true, ClientPublish: true, SlowConsumer: pubsub.SlowConsumerDropOldest}},
		{"x:conflate-key=symbol,slow=conflate", "x", pubsub.NamespaceOptions{HistorySize: 100, HistoryTTL: 5 * time.Minute, Presence: true, ClientPublish: true, SlowConsumer: pubsub.SlowConsumerConflate, ConflateKey: "symbol"}},
		{"ticker:history=1,publish=api,presence=off,slow=conflate", "ticker", pubsub.NamespaceOptions{HistorySize: 1, HistoryTTL: 5 * time.Minute, SlowConsumer: pubsub.SlowConsumerConflate}},
	}
	for _, tc := range good {
		name, got, err := ParseNamespace(tc.spec)
		if err != nil || name != tc.name || got != tc.want {
			t.Errorf("ParseNamespace(%q) = %q, %+v, %v; want %q, %+v", tc.spec, name, got, err, tc.name, tc.want)
		}
	}
	bad := map[string]string{
		":history=1":                         `namespace ":history=1": missing a name before ':' (use "default" for the default namespace)`,
		"a b:history=1":                      `namespace "a b:history=1": invalid name "a b"`,
		"x:history":                          `namespace "x:history": "history" is not key=value`,
		"x:history=-1":                       `namespace "x:history=-1": history=-1: want a number of messages, 0 or more`,
		"x:ttl=5":                            `namespace "x:ttl=5": ttl=5: want a duration such as 90s or 10m`,
		"x:presence=yes":                     `namespace "x:presence=yes": presence=yes: want on or off`,
		"x:publish=all":                      `namespace "x:publish=all": publish=all: want clients or api`,
		"x:anonymous=1":                      `namespace "x:anonymous=1": anonymous=1: want on or off`,
		"x:colour=blue":                      `namespace "x:colour=blue": unknown key "colour" (history, ttl, presence, publish, anonymous, slow, conflate-key)`,
		"x:slow=drop":                        `namespace "x:slow=drop": slow=drop: want close, drop-oldest or conflate`,
		"x:conflate-key=":                    `namespace "x:conflate-key=": conflate-key is empty: want the name of a field of the messages' data`,
		"x:conflate-key=id,slow=drop-oldest": `namespace "x:conflate-key=id,slow=drop-oldest": conflate-key=id needs slow=conflate`,
		"x:history=1,,":                      `namespace "x:history=1,,": "" is not key=value`,
	}
	for spec, want := range bad {
		if _, _, err := ParseNamespace(spec); err == nil || err.Error() != want {
			t.Errorf("ParseNamespace(%q) error = %v, want %q", spec, err, want)
		}
	}
}
