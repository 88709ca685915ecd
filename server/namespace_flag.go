package server

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
)

// ParseNamespace reads a namespace setting as `duplex serve --namespace`
// takes it: "NAME:key=value,key=value", where NAME "default" stands for the
// default namespace (channels without ':'), and the keys are
//
//	history=N        messages kept per channel (0: none)
//	ttl=DURATION     how long a message is kept (Go syntax: 90s, 10m; 0: no limit)
//	presence=on|off  presence, join and leave
//	publish=clients|api  whether clients may publish, or only the HTTP API
//	anonymous=on|off     whether connections without a token may use it
//	                     when the server authenticates clients
//	slow=close|drop-oldest|conflate  what a subscriber's full send queue does
//	                 with the namespace's messages (pubsub.SlowConsumerPolicy)
//	conflate-key=FIELD  with slow=conflate, the top-level field of the data
//	                 whose value, with the channel, keys the conflation
//
// Keys left out take the values of pubsub.DefaultNamespace, so
// "ticker:history=1,publish=api,slow=conflate" is a namespace whose
// channels keep their latest price, that only the API feeds, and whose
// slow subscribers get only the newest price of each channel.
func ParseNamespace(spec string) (name string, opts pubsub.NamespaceOptions, err error) {
	name, settings, _ := strings.Cut(spec, ":")
	if name == "" {
		return "", opts, fmt.Errorf("namespace %q: missing a name before ':' (use \"default\" for the default namespace)", spec)
	}
	if name == "default" {
		name = ""
	} else if err := pubsub.ValidateChannel(name); err != nil || strings.Contains(name, ":") {
		return "", opts, fmt.Errorf("namespace %q: invalid name %q", spec, name)
	}
	opts = pubsub.DefaultNamespace
	if settings == "" {
		return name, opts, nil
	}
	for _, kv := range strings.Split(settings, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", opts, fmt.Errorf("namespace %q: %q is not key=value", spec, kv)
		}
		switch k {
		case "history":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return "", opts, fmt.Errorf("namespace %q: history=%s: want a number of messages, 0 or more", spec, v)
			}
			opts.HistorySize = n
		case "ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return "", opts, fmt.Errorf("namespace %q: ttl=%s: want a duration such as 90s or 10m", spec, v)
			}
			opts.HistoryTTL = d
		case "presence":
			switch v {
			case "on":
				opts.Presence = true
			case "off":
				opts.Presence = false
			default:
				return "", opts, fmt.Errorf("namespace %q: presence=%s: want on or off", spec, v)
			}
		case "publish":
			switch v {
			case "clients":
				opts.ClientPublish = true
			case "api":
				opts.ClientPublish = false
			default:
				return "", opts, fmt.Errorf("namespace %q: publish=%s: want clients or api", spec, v)
			}
		case "anonymous":
			switch v {
			case "on":
				opts.Anonymous = true
			case "off":
				opts.Anonymous = false
			default:
				return "", opts, fmt.Errorf("namespace %q: anonymous=%s: want on or off", spec, v)
			}
		case "slow":
			p, err := pubsub.ParseSlowConsumerPolicy(v)
			if err != nil {
				return "", opts, fmt.Errorf("namespace %q: slow=%s: want close, drop-oldest or conflate", spec, v)
			}
			opts.SlowConsumer = p
		case "conflate-key":
			if v == "" {
				return "", opts, fmt.Errorf("namespace %q: conflate-key is empty: want the name of a field of the messages' data", spec)
			}
			opts.ConflateKey = v
		default:
			return "", opts, fmt.Errorf("namespace %q: unknown key %q (history, ttl, presence, publish, anonymous, slow, conflate-key)", spec, k)
		}
	}
	if opts.ConflateKey != "" && opts.SlowConsumer != pubsub.SlowConsumerConflate {
		return "", opts, fmt.Errorf("namespace %q: conflate-key=%s needs slow=conflate", spec, opts.ConflateKey)
	}
	return name, opts, nil
}

// FormatNamespace writes opts as ParseNamespace reads them after the
// name's colon, every key given ("history=100,ttl=5m0s,presence=on,
// publish=clients,anonymous=off,slow=close"; conflate-key only when
// set), so that `duplex serve --print-config` shows each namespace whole.
// A key added to ParseNamespace belongs here too
// (TestFormatNamespaceCoversEveryField fails otherwise).
func FormatNamespace(opts pubsub.NamespaceOptions) string {
	onOff := map[bool]string{true: "on", false: "off"}
	publish := map[bool]string{true: "clients", false: "api"}
	s := fmt.Sprintf("history=%d,ttl=%s,presence=%s,publish=%s,anonymous=%s,slow=%s",
		opts.HistorySize, opts.HistoryTTL, onOff[opts.Presence], publish[opts.ClientPublish], onOff[opts.Anonymous], opts.SlowConsumer)
	if opts.ConflateKey != "" {
		s += ",conflate-key=" + opts.ConflateKey
	}
	return s
}
