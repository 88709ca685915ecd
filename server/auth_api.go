package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// The operations of the HTTP API, as APIKey.Ops names them.
const (
	APIOpPublish  = "publish"  // POST /api/publish
	APIOpChannels = "channels" // GET /api/channels
	APIOpPresence = "presence" // GET /api/channels/{name}/presence
	APIOpHistory  = "history"  // GET /api/channels/{name}/history
)

// apiOps lists the operations in the order messages name them.
var apiOps = []string{APIOpPublish, APIOpChannels, APIOpPresence, APIOpHistory}

// minAPIKeyLen is the shortest API key accepted, so a key cannot be
// guessed by trying.
const minAPIKeyLen = 16

// APIKey is one key of the HTTP API and what it may do, so that each
// backend gets a key of its own, limited to its job (a feed that only
// publishes to its channels, a dashboard that only reads), and can be
// revoked alone.
type APIKey struct {
	// Name identifies the key in error answers and logs; the key itself is
	// never shown.
	Name string
	// Key is the secret, sent as "Authorization: apikey <Key>"; at least 16
	// bytes.
	Key string
	// Ops are the operations the key may use, among "publish", "channels",
	// "presence" and "history"; empty means all of them.
	Ops []string
	// Channels are patterns (docs/protocol.md, "Channel patterns"): the key
	// may publish to and read the presence and history of the channels
	// that match one, and GET /api/channels lists those channels only;
	// empty means every channel.
	Channels []string
}

// check reports what is wrong with a key.
func (k *APIKey) check() error {
	if k.Name == "" {
		return fmt.Errorf("an API key has no name")
	}
	if strings.ContainsAny(k.Name, ",;|") {
		return fmt.Errorf("API key name %q has one of , ; |", k.Name)
	}
	if len(k.Key) < minAPIKeyLen {
		return fmt.Errorf("API key %q is %d bytes, at least %d wanted", k.Name, len(k.Key), minAPIKeyLen)
	}
	for _, op := range k.Ops {
		if !slices.Contains(apiOps, op) {
			return fmt.Errorf("API key %q: unknown operation %q (%s)", k.Name, op, strings.Join(apiOps, ", "))
		}
	}
	return nil
}

// allowsOp reports whether the key may use op.
func (k *APIKey) allowsOp(op string) bool {
	return len(k.Ops) == 0 || slices.Contains(k.Ops, op)
}

// allowsChannel reports whether the key may touch channel.
func (k *APIKey) allowsChannel(channel string) bool {
	return len(k.Channels) == 0 || matchAnyChannel(k.Channels, channel)
}

// ParseAPIKey reads an API key as `duplex serve --api-keys` takes it:
// comma-separated key=value pairs,
//
//	name=NAME            what error answers and logs call the key (required)
//	key=SECRET           the secret, 16 bytes or more, without ',' or ';' (required)
//	ops=OP|OP...         operations among publish, channels, presence, history (default: all)
//	channels=PAT|PAT...  channel patterns the key may touch (default: all)
//
// so "name=feed,key=…,ops=publish,channels=news:*|live:*" is a key that
// may only publish, to the news and live namespaces. The key is checked as
// Config.APIKeys are.
func ParseAPIKey(spec string) (APIKey, error) {
	var k APIKey
	seen := map[string]bool{}
	for _, kv := range strings.Split(spec, ",") {
		name, v, ok := strings.Cut(kv, "=")
		if !ok {
			return APIKey{}, fmt.Errorf("an item is not key=value (name, key, ops, channels)")
		}
		if seen[name] {
			return APIKey{}, fmt.Errorf("%s is given twice", name)
		}
		seen[name] = true
		switch name {
		case "name":
			k.Name = v
		case "key":
			k.Key = v
		case "ops":
			k.Ops = strings.Split(v, "|")
		case "channels":
			k.Channels = strings.Split(v, "|")
		default:
			return APIKey{}, fmt.Errorf("unknown key %q (name, key, ops, channels)", name)
		}
	}
	if k.Key == "" {
		return APIKey{}, fmt.Errorf("no key=SECRET")
	}
	return k, k.check()
}

// apiKeyring holds the API's keys by the SHA-256 of their secret, so that
// a key is compared in constant time whatever its length and whichever key
// it resembles.
type apiKeyring struct {
	keys   []APIKey
	hashes [][sha256.Size]byte
}

// newAPIKeyring checks keys (names and secrets unique) and returns them
// ready for lookups.
func newAPIKeyring(keys []APIKey) (*apiKeyring, error) {
	kr := &apiKeyring{}
	for _, k := range keys {
		if err := k.check(); err != nil {
			return nil, err
		}
		for _, o := range kr.keys {
			if o.Name == k.Name {
				return nil, fmt.Errorf("two API keys are named %q", k.Name)
			}
			if o.Key == k.Key {
				return nil, fmt.Errorf("API keys %q and %q are the same secret", o.Name, k.Name)
			}
		}
		kr.keys = append(kr.keys, k)
		kr.hashes = append(kr.hashes, sha256.Sum256([]byte(k.Key)))
	}
	return kr, nil
}

// lookup returns the key whose secret is secret, or nil. Every key is
// compared, in constant time, whatever matches.
func (kr *apiKeyring) lookup(secret string) *APIKey {
	h := sha256.Sum256([]byte(secret))
	found := -1
	for i := range kr.hashes {
		if subtle.ConstantTimeCompare(h[:], kr.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil
	}
	return &kr.keys[found]
}

// apiKeyOf returns the key of a request's "Authorization: apikey <key>"
// header, or nil.
func (kr *apiKeyring) keyOf(r *http.Request) *APIKey {
	scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "apikey") {
		return nil
	}
	return kr.lookup(got)
}

// apiForbidden is the answer to a key used beyond its limits.
func apiForbidden(format string, a ...any) *protoError {
	return &protoError{Code: codePermissionDenied, Message: fmt.Sprintf(format, a...)}
}
