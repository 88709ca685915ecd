package main

// The settings of duplex serve: one declaration each, in serveSettings.
//
// How to add a setting: append a declaration to serveSettings, e.g.
//
//	intSetting("send-queue", server.DefaultSendQueue, "an integer, 1 or more", atLeast(1),
//		"outgoing `messages` a connection may have waiting; ...",
//		func(c *serveConfig, v int) { c.Server.SendQueue = v }),
//
// The name gives the others: flag --send-queue, environment variable
// DUPLEX_SEND_QUEUE, key send_queue in the --config file. The constructor
// (stringSetting, intSetting, floatSetting, durationSetting, boolSetting,
// listSetting, namespaceSetting) reads the value from each source and
// checks it; a check's error says what is wanted ("want 1 or more"), and
// duplex serve prints it after the setting's source and the bad value.
// The apply function puts the value where it goes, most often a field of
// server.Config (TestEveryConfigFieldHasASetting fails for a field no
// setting sets); a rule between settings goes in crossChecks, and what
// needs several settings to build goes in serveConfig.finish. Add
// .secret() to a string or list that --print-config must not show (keys,
// passwords): it prints REDACTED, errors do not echo the value, and
// REDACTED itself is refused. The help text is the flag's usage (a `word`
// in backquotes names the value) and the setting's meaning in
// docs/configuration.md; rewrite that file with
// `go test ./cmd/duplex/ -run TestConfigurationDoc -update`
// (TestConfigurationDoc fails while it is stale).

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/duplex-ws/duplex/bridge"
	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
)

// serveSettings are the settings of duplex serve, in the order of --help,
// --print-config and docs/configuration.md.
var serveSettings = []*setting{
	stringSetting("listen", ":8080", checkListen,
		"TCP `address` to listen on, host:port (\":8080\" means every interface)",
		func(c *serveConfig, v string) { c.Server.Listen = v }),
	stringSetting("tls-cert", "", nil,
		"PEM `file` of the server's certificate chain; with tls-key, the server speaks https:// and wss:// on the listen address, and rereads both files on SIGHUP (connections stay open)",
		func(c *serveConfig, v string) { c.Server.TLSCert = v }),
	stringSetting("tls-key", "", nil,
		"PEM `file` of the certificate's private key (with tls-cert)",
		func(c *serveConfig, v string) { c.Server.TLSKey = v }),
	listSetting("autocert-host", checkAutocertHost,
		"public host `name` for which the server obtains and renews its certificate itself with ACME (Let's Encrypt unless autocert-directory-url says otherwise), instead of tls-cert; the CA checks the name with TLS-ALPN-01 on the listen address, which must be reachable on port 443 (or HTTP-01, see autocert-http-listen); repeatable",
		func(c *serveConfig, v []string) { c.Server.AutocertHosts = v }),
	stringSetting("autocert-cache-dir", "", nil,
		"`directory` (created 0700) where autocert keeps its account key and certificates across restarts; required with autocert-host",
		func(c *serveConfig, v string) { c.Server.AutocertCacheDir = v }),
	stringSetting("autocert-email", "", checkEmail,
		"contact `address` of the ACME account, to which the CA may write about certificate problems",
		func(c *serveConfig, v string) { c.Server.AutocertEmail = v }),
	stringSetting("autocert-http-listen", "", optional(checkListen),
		"second `address` (usually :80) that answers ACME HTTP-01 challenges and redirects other GET and HEAD requests to https://",
		func(c *serveConfig, v string) { c.Server.AutocertHTTPListen = v }),
	stringSetting("autocert-directory-url", "", optional(checkHTTPURL),
		"ACME directory `URL` (default: Let's Encrypt's production one), e.g. Let's Encrypt's staging directory, or a private ACME CA",
		func(c *serveConfig, v string) { c.Server.AutocertDirectoryURL = v }),
	stringSetting("autocert-directory-ca", "", nil,
		"PEM `file` of the root certificates trusted for the ACME directory's HTTPS (a private ACME CA; default: the system's roots)",
		func(c *serveConfig, v string) { c.Server.AutocertDirectoryCA = v }),
	intSetting("read-limit", int64(32<<20), "a number of bytes, 1 or more, or -1 for no limit", func(n int64) bool { return n >= 1 || n == -1 },
		"largest message accepted on /echo and the bridge and exec routes, which stream messages through a fixed buffer, in `bytes`; a larger one is refused with close code 1009 (-1: no limit). /ws, /chat and the API have max-message-size",
		func(c *serveConfig, v int64) { c.Server.ReadLimit = v }),
	durationSetting("handshake-timeout", 10*time.Second,
		"`time` allowed for a client to send the upgrade request's headers (a duration such as 10s)",
		func(c *serveConfig, v time.Duration) { c.Server.HandshakeTimeout = v }),
	durationSetting("shutdown-timeout", 10*time.Second,
		"on SIGINT, how long to wait for requests in flight after closing every connection with 1001 at once (a `duration` such as 10s; SIGTERM drains instead, see drain-batch)",
		func(c *serveConfig, v time.Duration) { c.ShutdownTimeout = v }),
	intSetting("drain-batch", server.DefaultDrainBatch, "an integer, 1 or more", atLeast(1),
		"on SIGTERM, WebSocket `connections` closed at a time with 1012 (service restart), one batch every drain-interval, so that clients reconnect to other nodes a few at a time (batches grow if the last would start after half of drain-timeout)",
		func(c *serveConfig, v int) { c.Server.DrainBatch = v }),
	durationSetting("drain-interval", server.DefaultDrainInterval,
		"on SIGTERM, the `time` between two batches of closes",
		func(c *serveConfig, v time.Duration) { c.Server.DrainInterval = v }),
	durationSetting("drain-timeout", server.DefaultDrainTimeout,
		"on SIGTERM, the `deadline` of the drain: connections and requests still open then are closed without a closing handshake, and duplex serve exits",
		func(c *serveConfig, v time.Duration) { c.Server.DrainTimeout = v }),
	listSetting("origin", checkOrigin,
		"host `pattern` (path.Match syntax, e.g. *.example.com) whose pages may connect across origins; repeatable. By default only same-origin pages may",
		func(c *serveConfig, v []string) { c.Server.OriginPatterns = v }),
	stringSetting("api-key", "", nil,
		"`key` the HTTP API requires as \"Authorization: apikey <key>\"; without one, the API answers loopback clients only",
		func(c *serveConfig, v string) { c.Server.APIKey = v }).secret(),
	listSetting("api-keys", checkAPIKey,
		"an HTTP API key with a name and limits, `name=NAME,key=SECRET[,ops=OP|OP][,channels=PATTERN|PATTERN]`: the secret 16 bytes or more without , or ;, ops among publish, channels, presence, history (default all), channel patterns where * matches anything (default all); repeatable, and api-key still works beside",
		applyAPIKeys).secret(),
	stringSetting("auth-hmac-secret", "", checkHMACSecret,
		"shared `secret` (32 bytes or more) verifying HS256 client tokens. Any of auth-hmac-secret, auth-public-key, auth-jwks-url turns on client authentication: /ws and /chat/ then take a JWT, and namespaces refuse clients without one unless anonymous=on",
		func(c *serveConfig, v string) { c.Server.Auth.HMACSecret = v }).secret(),
	listSetting("auth-public-key", checkPublicKeyFile,
		"PEM `file` of public keys verifying client tokens: an RSA key (2048 bits or more) RS256 ones, an ECDSA P-256 key ES256 ones; repeatable",
		func(c *serveConfig, v []string) { c.Server.Auth.PublicKeyFiles = v }),
	stringSetting("auth-jwks-url", "", checkJWKSURL,
		"`URL` of a JSON Web Key Set (an identity provider's jwks_uri) whose RSA and P-256 keys verify RS256 and ES256 client tokens by their kid; fetched at start, every auth-jwks-refresh, and when a token names a kid it lacks",
		func(c *serveConfig, v string) { c.Server.Auth.JWKSURL = v }),
	durationSetting("auth-jwks-refresh", server.DefaultJWKSRefresh,
		"how often the JWKS is fetched (a `duration`)",
		func(c *serveConfig, v time.Duration) { c.Server.Auth.JWKSRefresh = v }),
	durationSetting("auth-jwks-unknown-kid", server.DefaultJWKSUnknownKID,
		"shortest `time` between two fetches of the JWKS caused by tokens whose kid it lacks",
		func(c *serveConfig, v time.Duration) { c.Server.Auth.JWKSUnknownKID = v }),
	stringSetting("auth-issuer", "", nil,
		"`issuer` client tokens must have as iss (default: any)",
		func(c *serveConfig, v string) { c.Server.Auth.Issuer = v }),
	stringSetting("auth-audience", "", nil,
		"`audience` client tokens must have in aud (default: any)",
		func(c *serveConfig, v string) { c.Server.Auth.Audience = v }),
	leewaySetting("auth-leeway", 0,
		"clock difference with the token issuer tolerated on exp and nbf (a `duration`, 0 or more); a connection then lasts that long past its token's exp",
		func(c *serveConfig, v time.Duration) { c.Server.Auth.Leeway = v }),
	stringSetting("compression", "off", checkCompression,
		"permessage-deflate: `mode` off; on (no context takeover: each push compressed once for all subscribers, no per-connection state); takeover (best ratio for small similar messages, about 147 KiB per connection)",
		func(c *serveConfig, v string) { c.Server.Compression, _ = server.CompressionMode(v) }),
	intSetting("send-queue", server.DefaultSendQueue, "an integer, 1 or more", atLeast(1),
		"outgoing `messages` a connection may have waiting; when it is full, the namespace's slow policy applies (by default the client is closed with 1013, slow consumer)",
		func(c *serveConfig, v int) { c.Server.SendQueue = v }),
	namespaceSetting("namespace",
		"channel namespace `NAME:key=value,...` with keys history (messages kept), ttl (e.g. 10m), presence (on|off), publish (clients|api), anonymous (on|off: whether clients without a token may use it when authentication is on), slow (what a subscriber's full send queue does: close with 1013, drop-oldest and send a lost push, or conflate to the newest message per key) and conflate-key (with slow=conflate, the top-level data field that keys it, with the channel); NAME \"default\" is the default namespace; repeatable. The default namespace (history=100,ttl=5m,presence=on,publish=clients,slow=close) and chat (history=50,ttl=10m) exist unless replaced",
		func(c *serveConfig, v map[string]pubsub.NamespaceOptions) { c.Server.Namespaces = v }),
	intSetting("max-connections", server.DefaultLimits().MaxConnections, limitWant, limitOK,
		"WebSocket `connections` the server holds at most, every endpoint together; beyond, a handshake gets 503 with Retry-After (-1: no limit)",
		func(c *serveConfig, v int) { c.Server.Limits.MaxConnections = v }),
	intSetting("max-connections-per-ip", server.DefaultLimits().MaxConnectionsPerIP, limitWant, limitOK,
		"WebSocket `connections` of one client address at most (IPv6: per /64); beyond, a handshake gets 429 with Retry-After (-1: no limit)",
		func(c *serveConfig, v int) { c.Server.Limits.MaxConnectionsPerIP = v }),
	intSetting("max-connections-per-user", server.DefaultLimits().MaxConnectionsPerUser, limitWant, limitOK,
		"/ws `connections` of one user id at most on this node, counting only users a token proved (with authentication off, the user a client names is not counted); beyond, a token in the upgrade request gets 429, one in connect error 122 and the connection closed with 1008 (-1: no limit)",
		func(c *serveConfig, v int) { c.Server.Limits.MaxConnectionsPerUser = v }),
	floatSetting("accept-rate", server.DefaultLimits().AcceptRate, rateWant, rateOK,
		"new WebSocket connections a second the server accepts, all clients together (a `rate`, token bucket with accept-burst); beyond, 503 with Retry-After (-1: no limit)",
		func(c *serveConfig, v float64) { c.Server.Limits.AcceptRate = v }),
	intSetting("accept-burst", server.DefaultLimits().AcceptBurst, "an integer, 1 or more", atLeast(1),
		"`connections` accepted at once beyond accept-rate (the bucket's size)",
		func(c *serveConfig, v int) { c.Server.Limits.AcceptBurst = v }),
	floatSetting("accept-rate-per-ip", server.DefaultLimits().AcceptRatePerIP, rateWant, rateOK,
		"new WebSocket connections a second one client address may open (a `rate`, token bucket with accept-burst-per-ip); beyond, 429 with Retry-After (-1: no limit)",
		func(c *serveConfig, v float64) { c.Server.Limits.AcceptRatePerIP = v }),
	intSetting("accept-burst-per-ip", server.DefaultLimits().AcceptBurstPerIP, "an integer, 1 or more", atLeast(1),
		"`connections` one client address may open at once beyond accept-rate-per-ip",
		func(c *serveConfig, v int) { c.Server.Limits.AcceptBurstPerIP = v }),
	listSetting("trusted-proxy", checkTrustedProxy,
		"`address` or network (10.0.0.0/8) of a reverse proxy whose X-Forwarded-For names the client, for the per-address limits; repeatable. Without any, the client is the TCP peer",
		func(c *serveConfig, v []string) { c.Server.Limits.TrustedProxies = v }),
	boolSetting("limit-loopback", false,
		"apply the per-address limits to loopback clients (127.0.0.0/8, ::1) too; off, clients on this machine (a load test, a local proxy not listed as trusted-proxy) are limited only in total",
		func(c *serveConfig, v bool) { c.Server.Limits.LimitLoopback = v }),
	durationSetting("idle-timeout", server.DefaultLimits().IdleTimeout,
		"a WebSocket connection on which nothing happened for this `duration` is closed with 1001 \"idle timeout\": on /ws and /chat no message and no answer to the server's pings came; on /echo and the bridge and exec routes no message went either way and no ping was answered; the server pings after half of it",
		func(c *serveConfig, v time.Duration) { c.Server.Limits.IdleTimeout = v }),
	floatSetting("message-rate", server.DefaultLimits().MessageRate, rateWant, rateOK,
		"messages a second one /ws, /chat or /echo connection may send (a `rate`, token bucket with message-burst); beyond, a command is answered with error 120, and a client that keeps at it is closed with 1008; on /echo the first message beyond closes with 1008 (-1: no limit)",
		func(c *serveConfig, v float64) { c.Server.Limits.MessageRate = v }),
	intSetting("message-burst", server.DefaultLimits().MessageBurst, "an integer, 1 or more", atLeast(1),
		"`messages` one connection may send at once beyond message-rate",
		func(c *serveConfig, v int) { c.Server.Limits.MessageBurst = v }),
	intSetting("max-message-size", int64(server.DefaultMaxMessageSize), "a number of bytes, 1 or more, or -1 for no limit", func(n int64) bool { return n >= 1 || n == -1 },
		"largest /ws command, /chat message and HTTP API body accepted, in `bytes`; a larger WebSocket message closes its connection with 1009, a larger API body gets 413 (-1: no limit)",
		func(c *serveConfig, v int64) { c.Server.Limits.MaxMessageSize = v }),
	intSetting("max-channels", server.DefaultLimits().MaxChannels, limitWant, limitOK,
		"`channels` one /ws connection may be subscribed to at once; beyond, subscribe is answered with error 121 (-1: no limit)",
		func(c *serveConfig, v int) { c.Server.Limits.MaxChannels = v }),
	listSetting("bridge", checkBridge,
		"a WebSocket-to-TCP route `PATH=URL`, e.g. /mqtt=tcp://127.0.0.1:1883?subprotocol=mqtt (tls:// with ?ca=FILE or ?insecure=true for TLS to the target; &text=refuse closes with 1003 on a text message); repeatable",
		func(c *serveConfig, v []string) { c.bridges = v }),
	listSetting("exec", checkExec,
		"a WebSocket-to-process route `PATH=COMMAND [ARGS]`, e.g. /chat-bot=./bot.sh: one process per connection, lines of stdout and stdin as text messages; repeatable",
		func(c *serveConfig, v []string) { c.execs = v }),
	listSetting("exec-binary", checkExec,
		"like exec, `PATH=COMMAND [ARGS]`, with raw bytes both ways in binary messages; repeatable",
		func(c *serveConfig, v []string) { c.binaryExecs = v }),
	intSetting("exec-max-processes", bridge.DefaultMaxProcesses, "an integer, 1 or more", atLeast(1),
		"`processes` each exec route may run at once; beyond, the handshake is refused with 503",
		func(c *serveConfig, v int) { c.execMaxProcesses = v }),
	stringSetting("broker", "memory", checkBroker,
		"where channels live: `URL` memory (this process only), nats://host:port (NATS JetStream, shared by every node pointed at it; comma-separate the URLs of a NATS cluster; ?replicas=N (1 to 5) and &prefix=NAME after the last URL set the streams' replicas and the prefix of their names) or redis://host:port[/db] (Redis, shared by every node pointed at the same database)",
		func(c *serveConfig, v string) { c.Broker = v }).redactWith(redactURLs),
	stringSetting("log-format", "text", checkLogFormat,
		"log `format`: text (key=value lines) or json (one JSON object a line); a line per connection opened and closed, none per message",
		func(c *serveConfig, v string) { c.LogFormat = v }),
	stringSetting("log-level", "info", checkLogLevel,
		"least `level` logged: debug, info, warn or error",
		func(c *serveConfig, v string) { c.LogLevel = v }),
	boolSetting("pprof", false,
		"serve the runtime profiles of net/http/pprof under /debug/pprof/ on the listen address (keep that path away from the public)",
		func(c *serveConfig, v bool) { c.Server.Pprof = v }),
	boolSetting("demo", false,
		"run a demo publisher of stock quotes on channels ticker:SYMBOL (namespace ticker: history=1,presence=off,publish=api,anonymous=on,slow=conflate) for the page /ticker/",
		func(c *serveConfig, v bool) { c.Server.Demo = v }),
}

// serveConfig is what the settings fill in: the server's Config and what
// the command does around the server.
type serveConfig struct {
	Server          server.Config
	ShutdownTimeout time.Duration
	Broker          string // a URL for server.OpenBroker
	LogFormat       string // for newLogger
	LogLevel        string

	bridges, execs, binaryExecs []string // route specs, checked
	execMaxProcesses            int
}

// crossChecks are the rules between settings, checked after each
// setting's own: the first broken one is reported on the line of the
// setting named first, from its source.
var crossChecks = []struct {
	setting string // reported with its source and value
	broken  func(c *serveConfig) bool
	want    string
}{
	{"tls-cert", func(c *serveConfig) bool { return c.Server.TLSCert != "" && c.Server.TLSKey == "" }, "want tls-key too, the certificate's private key"},
	{"tls-key", func(c *serveConfig) bool { return c.Server.TLSKey != "" && c.Server.TLSCert == "" }, "want tls-cert too, the certificate of that key"},
	{"autocert-host", func(c *serveConfig) bool { return len(c.Server.AutocertHosts) > 0 && c.Server.TLSCert != "" },
		"want either autocert-host or tls-cert and tls-key, not both"},
	{"autocert-host", func(c *serveConfig) bool { return len(c.Server.AutocertHosts) > 0 && c.Server.AutocertCacheDir == "" },
		"want autocert-cache-dir too: without it every start asks the CA for new certificates, and its rate limits soon refuse them"},
}

// autocertOnly are the settings that mean nothing without autocert-host.
var autocertOnly = []string{"autocert-cache-dir", "autocert-email", "autocert-http-listen", "autocert-directory-url", "autocert-directory-ca"}

// check applies crossChecks, refuses autocert settings without
// autocert-host, then reads the files settings name (fileChecks).
func (c *serveConfig) check(values []resolved) error {
	byName := map[string]resolved{}
	for _, r := range values {
		byName[r.s.name] = r
	}
	fail := func(name, want string) error {
		r := byName[name]
		shown := showValue(r.s, fmt.Sprint(r.v))
		if l, ok := r.v.([]string); ok {
			shown = showValue(r.s, strings.Join(l, ";"))
		}
		return configErrorf("%s: %s: %s", sourceOf(r), shown, want)
	}
	for _, x := range crossChecks {
		if x.broken(c) {
			return fail(x.setting, x.want)
		}
	}
	if len(c.Server.AutocertHosts) == 0 {
		for _, name := range autocertOnly {
			if r := byName[name]; r.v != "" {
				return fail(name, "want autocert-host too, the host names to get certificates for")
			}
		}
	}
	return c.checkFiles(fail)
}

// sourceOf names where a value came from as errors do: "flag --x",
// "env DUPLEX_X", "FILE:LINE: key".
func sourceOf(r resolved) string {
	if strings.HasPrefix(r.from, "flag ") || strings.HasPrefix(r.from, "env ") || r.from == "default" {
		return r.from
	}
	return r.from + ": " + r.s.Key()
}

// finish turns what needs several settings into server.Config: the
// gateway routes.
func (c *serveConfig) finish() {
	for _, spec := range c.bridges {
		r, _ := server.ParseBridgeRoute(spec) // checked by checkBridge
		c.Server.Bridges = append(c.Server.Bridges, r)
	}
	for i, list := range [][]string{c.execs, c.binaryExecs} {
		for _, spec := range list {
			r, _ := server.ParseExecRoute(spec) // checked by checkExec
			r.Binary = i == 1
			r.MaxProcesses = c.execMaxProcesses
			c.Server.Execs = append(c.Server.Execs, r)
		}
	}
}

// redacted is what --print-config writes instead of a secret.
const redacted = "REDACTED"

// A setting is one setting of duplex serve under its three names.
type setting struct {
	name   string // the flag's name; env and file names derive from it
	form   string // what a value looks like, for docs/configuration.md
	help   string
	def    any
	list   bool // repeatable flag, sequence in the file, ;-separated in env
	isBool bool

	// fromText reads the value from a flag's texts (one per use) or an
	// environment variable's (its ;-separated items for a list, else the
	// whole text). A *badValue error names the bad text.
	fromText func(texts []string) (any, error)
	// fromNode reads the value from the config file; key is its name
	// there. Errors are *badValue with the line.
	fromNode func(key string, n *yaml.Node) (any, error)
	// toNode writes a value for --print-config.
	toNode func(v any) *yaml.Node
	// redact, when set, returns what --print-config shows of a value.
	redact func(v any) any
	// hide reports whether a bad value must not be echoed in errors.
	hide  bool
	apply func(c *serveConfig, v any)
}

// Flag is the setting's command-line flag, with its dashes.
func (s *setting) Flag() string { return "--" + s.name }

// Env is the setting's environment variable.
func (s *setting) Env() string {
	return "DUPLEX_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

// Key is the setting's key in the config file.
func (s *setting) Key() string { return strings.ReplaceAll(s.name, "-", "_") }

// secret marks a string or list setting as secret: --print-config shows
// REDACTED for its value (each item of a list), errors do not echo it, and
// the value REDACTED is refused, so that a printed configuration fed back
// as a file cannot run with the placeholder for a key.
func (s *setting) secret() *setting {
	s.hide = true
	refuse := func(v any, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		items, _ := v.([]string)
		if str, ok := v.(string); ok {
			items = []string{str}
		}
		for _, it := range items {
			if it == redacted {
				return nil, &badValue{value: it, want: "want the secret itself, not the " + redacted + " that --print-config writes in its place"}
			}
		}
		return v, nil
	}
	fromText, fromNode := s.fromText, s.fromNode
	s.fromText = func(texts []string) (any, error) { return refuse(fromText(texts)) }
	s.fromNode = func(key string, n *yaml.Node) (any, error) {
		v, err := refuse(fromNode(key, n))
		if bad, ok := err.(*badValue); ok && bad.line == 0 {
			bad.line = n.Line
		}
		return v, err
	}
	return s.redactWith(func(v any) any {
		switch v := v.(type) {
		case string:
			if v == "" {
				return v
			}
			return redacted
		case []string:
			out := make([]string, len(v))
			for i := range out {
				out[i] = redacted
			}
			return out
		}
		panic(fmt.Sprintf("setting %s: secret() takes strings and lists; use redactWith", s.name))
	})
}

// redactWith sets what --print-config shows of a value.
func (s *setting) redactWith(f func(any) any) *setting {
	s.redact = f
	return s
}

// A badValue is a value a setting refused.
type badValue struct {
	line    int    // in the config file; 0 elsewhere
	key     string // the key path in the file, when it is not the setting's own
	value   string
	want    string // "want …", or what is wrong
	noValue bool   // want is the whole message (a file node of the wrong shape)
}

func (e *badValue) Error() string { return fmt.Sprintf("%q: %s", e.value, e.want) }

// scalar builds a setting of one value of type T from text.
func scalar[T any](name, form string, def T, parse func(string) (T, error), node func(T) *yaml.Node, help string, apply func(*serveConfig, T)) *setting {
	return &setting{
		name: name, form: form, help: help, def: def,
		fromText: func(texts []string) (any, error) {
			t := texts[len(texts)-1]
			v, err := parse(t)
			if err != nil {
				return nil, &badValue{value: t, want: err.Error()}
			}
			return v, nil
		},
		fromNode: func(key string, n *yaml.Node) (any, error) {
			if n.Kind != yaml.ScalarNode {
				return nil, &badValue{line: n.Line, want: "want a single value, not a " + nodeKind(n), noValue: true}
			}
			v, err := parse(scalarText(n))
			if err != nil {
				return nil, &badValue{line: n.Line, value: scalarText(n), want: err.Error()}
			}
			return v, nil
		},
		toNode: func(v any) *yaml.Node { return node(v.(T)) },
		apply:  func(c *serveConfig, v any) { apply(c, v.(T)) },
	}
}

// stringSetting declares a string; check, when set, refuses bad ones.
func stringSetting(name, def string, check func(string) error, help string, apply func(*serveConfig, string)) *setting {
	parse := func(s string) (string, error) {
		if check != nil {
			if err := check(s); err != nil {
				return "", err
			}
		}
		return s, nil
	}
	return scalar(name, "string", def, parse, strNode, help, apply)
}

// intSetting declares an integer; ok tells the valid ones, described by want.
func intSetting[T int | int64](name string, def T, want string, ok func(T) bool, help string, apply func(*serveConfig, T)) *setting {
	parse := func(s string) (T, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || int64(T(n)) != n || !ok(T(n)) {
			return 0, errors.New("want " + want)
		}
		return T(n), nil
	}
	return scalar(name, "integer", def, parse, func(v T) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(int64(v), 10)}
	}, help, apply)
}

// atLeast is the check of an integer setting with a lower bound.
func atLeast[T int | int64](min T) func(T) bool { return func(n T) bool { return n >= min } }

// floatSetting declares a number; ok tells the valid ones, described by want.
func floatSetting(name string, def float64, want string, ok func(float64) bool, help string, apply func(*serveConfig, float64)) *setting {
	parse := func(s string) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || !ok(f) {
			return 0, errors.New("want " + want)
		}
		return f, nil
	}
	return scalar(name, "number", def, parse, func(f float64) *yaml.Node {
		// Untagged: "100" is read back as a number all the same.
		return &yaml.Node{Kind: yaml.ScalarNode, Value: strconv.FormatFloat(f, 'g', -1, 64)}
	}, help, apply)
}

// durationSetting declares a duration above 0, in Go's syntax (90s, 10m).
func durationSetting(name string, def time.Duration, help string, apply func(*serveConfig, time.Duration)) *setting {
	parse := func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			return 0, errors.New("want a duration above 0, such as 10s or 1m30s")
		}
		return d, nil
	}
	return scalar(name, "duration", def, parse, func(d time.Duration) *yaml.Node { return strNode(d.String()) }, help, apply)
}

// boolSetting declares an on/off setting: a flag without a value sets it.
func boolSetting(name string, def bool, help string, apply func(*serveConfig, bool)) *setting {
	parse := func(s string) (bool, error) {
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return false, errors.New("want true or false")
		}
		return b, nil
	}
	s := scalar(name, "true or false", def, parse, func(b bool) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
	}, help, apply)
	s.isBool = true
	return s
}

// listSetting declares a list of strings, each checked by check. The
// default is an empty list.
func listSetting(name string, check func(string) error, help string, apply func(*serveConfig, []string)) *setting {
	item := func(t string, line int) error {
		if err := check(t); err != nil {
			return &badValue{line: line, value: t, want: err.Error()}
		}
		return nil
	}
	return &setting{
		name: name, form: "list", help: help, def: []string{}, list: true,
		fromText: func(texts []string) (any, error) {
			for _, t := range texts {
				if err := item(t, 0); err != nil {
					return nil, err
				}
			}
			return texts, nil
		},
		fromNode: func(key string, n *yaml.Node) (any, error) {
			var items []*yaml.Node
			switch n.Kind {
			case yaml.ScalarNode:
				if n.Tag != "!!null" {
					items = []*yaml.Node{n}
				}
			case yaml.SequenceNode:
				items = n.Content
			default:
				return nil, &badValue{line: n.Line, want: "want a list, not a " + nodeKind(n), noValue: true}
			}
			v := []string{}
			for _, it := range items {
				it = deref(it)
				if it.Kind != yaml.ScalarNode {
					return nil, &badValue{line: it.Line, want: "want a list of single values, not of a " + nodeKind(it), noValue: true}
				}
				if err := item(scalarText(it), it.Line); err != nil {
					return nil, err
				}
				v = append(v, scalarText(it))
			}
			return v, nil
		},
		toNode: func(v any) *yaml.Node {
			seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			if len(v.([]string)) == 0 {
				seq.Style = yaml.FlowStyle
			}
			for _, s := range v.([]string) {
				seq.Content = append(seq.Content, strNode(s))
			}
			return seq
		},
		apply: func(c *serveConfig, v any) { apply(c, v.([]string)) },
	}
}

// namespaceSetting declares the channel namespaces: NAME:key=value,… on
// the command line and in the environment, a map of maps in the file.
// Namespaces given replace the default ones of the same name and keep the
// others (server.DefaultNamespaces).
func namespaceSetting(name, help string, apply func(*serveConfig, map[string]pubsub.NamespaceOptions)) *setting {
	return &setting{
		name: name, form: "namespaces", help: help, def: server.DefaultNamespaces(), list: true,
		fromText: func(texts []string) (any, error) {
			m := server.DefaultNamespaces()
			for _, spec := range texts {
				name, opts, err := server.ParseNamespace(spec)
				if err != nil {
					return nil, &badValue{value: spec, want: strings.TrimPrefix(err.Error(), fmt.Sprintf("namespace %q: ", spec))}
				}
				m[name] = opts
			}
			return m, nil
		},
		fromNode: namespacesFromNode,
		toNode:   namespacesNode,
		apply:    func(c *serveConfig, v any) { apply(c, v.(map[string]pubsub.NamespaceOptions)) },
	}
}

// namespacesFromNode reads the file's form of the namespaces, a map of
// names to maps of the keys of --namespace (with _ for -):
//
//	namespace:
//	  default: {history: 100}
//	  ticker: {history: 1, presence: "off", publish: api}
//
// server.ParseNamespace checks each namespace, and an error about one key
// is reported on that key's line.
func namespacesFromNode(key string, n *yaml.Node) (any, error) {
	m := server.DefaultNamespaces()
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return m, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, &badValue{line: n.Line, want: "want a map of namespace names to their settings, not a " + nodeKind(n), noValue: true}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := deref(n.Content[i]), deref(n.Content[i+1])
		nsName := scalarText(kn)
		nsKey := key + "." + nsName
		if _, _, err := server.ParseNamespace(nsName + ":"); err != nil || strings.Contains(nsName, ":") {
			return nil, &badValue{line: kn.Line, key: key, value: nsName, want: "want a namespace name (letters, digits, and _-.; \"default\" for the default namespace)"}
		}
		type entry struct {
			fileKey, value string
			k, v           *yaml.Node
		}
		var entries []entry
		switch {
		case vn.Kind == yaml.ScalarNode && vn.Tag == "!!null":
		case vn.Kind == yaml.MappingNode:
			seen := map[string]int{}
			for j := 0; j+1 < len(vn.Content); j += 2 {
				k, v := deref(vn.Content[j]), deref(vn.Content[j+1])
				kname := scalarText(k)
				if first, dup := seen[kname]; dup {
					return nil, &badValue{line: k.Line, key: nsKey + "." + kname, want: fmt.Sprintf("set twice (first on line %d)", first), noValue: true}
				}
				seen[kname] = k.Line
				if v.Kind != yaml.ScalarNode {
					return nil, &badValue{line: v.Line, key: nsKey + "." + kname, want: "want a single value, not a " + nodeKind(v), noValue: true}
				}
				if strings.ContainsAny(kname, ",=") || strings.ContainsAny(scalarText(v), ",=") {
					return nil, &badValue{line: v.Line, key: nsKey + "." + kname, value: scalarText(v), want: `want a value without "," or "="`}
				}
				entries = append(entries, entry{kname, scalarText(v), k, v})
			}
		default:
			return nil, &badValue{line: vn.Line, key: nsKey, want: "want a map of the namespace's settings, not a " + nodeKind(vn), noValue: true}
		}
		parts := make([]string, len(entries))
		for j, e := range entries {
			parts[j] = strings.ReplaceAll(e.fileKey, "_", "-") + "=" + e.value
		}
		spec := nsName + ":" + strings.Join(parts, ",")
		name, opts, err := server.ParseNamespace(spec)
		if err != nil {
			// Point at the key the error is about, when it names one.
			msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("namespace %q: ", spec))
			for j, e := range entries {
				if rest, ok := strings.CutPrefix(msg, parts[j]+": "); ok {
					return nil, &badValue{line: e.v.Line, key: nsKey + "." + e.fileKey, value: e.value, want: rest}
				}
				unknown := fmt.Sprintf("unknown key %q", strings.ReplaceAll(e.fileKey, "_", "-"))
				if rest, ok := strings.CutPrefix(msg, unknown); ok {
					return nil, &badValue{line: e.k.Line, key: nsKey + "." + e.fileKey, want: "unknown key" + strings.ReplaceAll(rest, "-", "_"), noValue: true}
				}
			}
			return nil, &badValue{line: kn.Line, key: nsKey, want: msg, noValue: true}
		}
		m[name] = opts
	}
	return m, nil
}

// namespacesNode writes namespaces as the file takes them, "default" first
// and the others by name, each with every key (server.FormatNamespace).
func namespacesNode(v any) *yaml.Node {
	m := v.(map[string]pubsub.NamespaceOptions)
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, name := range names {
		key := name
		if key == "" {
			key = "default"
		}
		ns := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
		for _, kv := range strings.Split(server.FormatNamespace(m[name]), ",") {
			k, v, _ := strings.Cut(kv, "=")
			val := strNode(v)
			if _, err := strconv.Atoi(v); err == nil {
				val = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: v}
			}
			ns.Content = append(ns.Content, strNode(strings.ReplaceAll(k, "-", "_")), val)
		}
		out.Content = append(out.Content, strNode(key), ns)
	}
	return out
}

// strNode is a string for --print-config, quoted when YAML 1.1 readers
// would take it for a boolean (on, off, yes, no).
func strNode(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	switch strings.ToLower(s) {
	case "on", "off", "yes", "no", "y", "n":
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// scalarText is a scalar's text as written, "" for null.
func scalarText(n *yaml.Node) string {
	if n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

// deref follows YAML aliases.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "map"
	case yaml.SequenceNode:
		return "list"
	}
	return "single value"
}

// The checks of string settings; each error says what is wanted.

// What the limit settings take (docs/operations.md, "Limits").
const (
	limitWant = "an integer, 1 or more, or -1 for no limit"
	rateWant  = "a number above 0 (events a second, 0.5 is one every two seconds), or -1 for no limit"
)

func limitOK(n int) bool    { return n >= 1 || n == -1 }
func rateOK(f float64) bool { return f > 0 || f == -1 }
func checkTrustedProxy(s string) error {
	if err := (server.Limits{TrustedProxies: []string{s}}).Validate(); err != nil {
		return errors.New("want an IP address or a network such as 10.0.0.0/8")
	}
	return nil
}

func checkListen(s string) error {
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		return errors.New("want host:port, such as :8080 or 127.0.0.1:8080")
	}
	return nil
}

func checkOrigin(s string) error {
	if _, err := path.Match(s, ""); err != nil || s == "" {
		return errors.New("want a host pattern such as example.com or *.example.com")
	}
	return nil
}

// optional lets a string setting be empty, and checks it otherwise.
func optional(check func(string) error) func(string) error {
	return func(s string) error {
		if s == "" {
			return nil
		}
		return check(s)
	}
}

func checkHTTPURL(s string) error {
	if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("want an https:// URL")
	}
	return nil
}

func checkEmail(s string) error {
	if s != "" && (!strings.Contains(s, "@") || strings.ContainsAny(s, " \t<>")) {
		return errors.New("want an email address such as ops@example.com")
	}
	return nil
}

// checkAutocertHost takes a name ACME can issue a certificate for: a DNS
// name with a dot, not an IP address, a wildcard, a URL or a host:port.
func checkAutocertHost(h string) error {
	switch {
	case h == "" || strings.ContainsAny(h, ":/ ") || strings.Contains(h, "*"):
		return errors.New("want a bare public host name such as chat.example.com (no scheme, port, path or wildcard)")
	case net.ParseIP(h) != nil:
		return errors.New("want a host name, not an IP address")
	case !strings.Contains(strings.Trim(h, "."), "."):
		return errors.New("want a public host name, with a dot")
	}
	return nil
}

func checkCompression(s string) error {
	if _, err := server.CompressionMode(s); err != nil || s == "" {
		return errors.New("want off, on or takeover")
	}
	return nil
}

func checkBridge(s string) error {
	if _, err := server.ParseBridgeRoute(s); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), fmt.Sprintf("%q: ", s)))
	}
	return nil
}

func checkExec(s string) error {
	if _, err := server.ParseExecRoute(s); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), fmt.Sprintf("%q: ", s)))
	}
	return nil
}

func checkBroker(s string) error {
	want := errors.New("want memory, nats://host:port[,nats://host:port…] or redis://host:port[/db]")
	switch {
	case s == "memory":
		return nil
	case strings.HasPrefix(s, "nats://"):
		servers, _, _ := strings.Cut(s, "?")
		for _, u := range strings.Split(servers, ",") {
			if _, err := url.Parse(u); err != nil || !strings.HasPrefix(u, "nats://") {
				return want
			}
		}
		if _, _, err := server.ParseNATSBroker(s); err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), fmt.Sprintf("broker %q: ", s)))
		}
		return nil
	case strings.HasPrefix(s, "redis://") || strings.HasPrefix(s, "rediss://"):
		if _, err := url.Parse(s); err != nil {
			return want
		}
		return nil
	}
	return want
}

// redactURLs hides the passwords of a broker's URLs.
func redactURLs(v any) any {
	parts := strings.Split(v.(string), ",")
	for i, p := range parts {
		if u, err := url.Parse(p); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

func checkLogFormat(s string) error {
	if s != "text" && s != "json" {
		return errors.New("want json or text")
	}
	return nil
}

func checkLogLevel(s string) error {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(s)); err != nil {
		return errors.New("want debug, info, warn or error")
	}
	return nil
}
