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
	}
	for _, tc := range good {
		name, got, err := ParseNamespace(tc.spec)
		if err != nil || name != tc.name || got != tc.want {
			t.Errorf("ParseNamespace(%q) = %q, %+v, %v; want %q, %+v", tc.spec, name, got, err, tc.name, tc.want)
		}
	}
	bad := map[string]string{
		":history=1":     `namespace ":history=1": missing a name before ':' (use "default" for the default namespace)`,
		"a b:history=1":  `namespace "a b:history=1": invalid name "a b"`,
		"x:history":      `namespace "x:history": "history" is not key=value`,
		"x:history=-1":   `namespace "x:history=-1": history=-1: want a number of messages, 0 or more`,
		"x:ttl=5":        `namespace "x:ttl=5": ttl=5: want a duration such as 90s or 10m`,
		"x:presence=yes": `namespace "x:presence=yes": presence=yes: want on or off`,
		"x:publish=all":  `namespace "x:publish=all": publish=all: want clients or api`,
		"x:colour=blue":  `namespace "x:colour=blue": unknown key "colour" (history, ttl, presence, publish, anonymous)`,
		"x:anonymous=1":  `namespace "x:anonymous=1": anonymous=1: want on or off`,
		"x:history=1,,":  `namespace "x:history=1,,": "" is not key=value`,
	}
	for spec, want := range bad {
		if _, _, err := ParseNamespace(spec); err == nil || err.Error() != want {
			t.Errorf("ParseNamespace(%q) error = %v, want %q", spec, err, want)
		}
	}
}
