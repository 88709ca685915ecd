package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// writeConfig writes a config file in a test's temporary directory.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "duplex.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadServe resolves duplex serve's settings from args and env, failing
// the test on an error.
func loadServe(t *testing.T, args []string, env ...string) *serveConfig {
	t.Helper()
	var out, errb strings.Builder
	cfg, _, status, ok := serveConfigFrom(args, env, &out, &errb)
	if !ok {
		t.Fatalf("%v %v: status %d, stderr %q", args, env, status, errb.String())
	}
	return cfg
}

// TestServeSettingsEachSource: every kind of setting read from a flag
// alone, an environment variable alone and the file alone lands in the
// same place of server.Config.
func TestServeSettingsEachSource(t *testing.T) {
	type want struct {
		listen    string
		readLimit int64
		handshake time.Duration
		origins   []string
		apiKey    string
		sendQueue int
		pprof     bool
		ns        map[string]pubsub.NamespaceOptions
		execs     int
		broker    string
	}
	ticker := pubsub.NamespaceOptions{HistorySize: 1, HistoryTTL: 5 * time.Minute, Presence: false, ClientPublish: false}
	nsWant := server.DefaultNamespaces()
	nsWant["ticker"] = ticker
	w := want{"127.0.0.1:7001", 4096, 3 * time.Second, []string{"a.example", "*.b.example"}, "k1", 7, true, nsWant, 2, "redis://127.0.0.1:6379/3"}
	file := writeConfig(t, `listen: 127.0.0.1:7001
read_limit: 4096
handshake_timeout: 3s
origin: [a.example, "*.b.example"]
api_key: k1
send_queue: 7
pprof: true
namespace:
  ticker: {history: 1, presence: "off", publish: api}
exec: [/a=./a.sh]
exec_binary: /b=./b.sh
broker: redis://127.0.0.1:6379/3
`)
	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"flags", []string{"--listen", "127.0.0.1:7001", "--read-limit", "4096", "--handshake-timeout", "3s", "--origin", "a.example", "--origin", "*.b.example",
			"--api-key", "k1", "--send-queue", "7", "--pprof", "--namespace", "ticker:history=1,presence=off,publish=api",
			"--exec", "/a=./a.sh", "--exec-binary", "/b=./b.sh", "--broker", "redis://127.0.0.1:6379/3"}, nil},
		{"env", nil, []string{"DUPLEX_LISTEN=127.0.0.1:7001", "DUPLEX_READ_LIMIT=4096", "DUPLEX_HANDSHAKE_TIMEOUT=3s", "DUPLEX_ORIGIN=a.example; *.b.example",
			"DUPLEX_API_KEY=k1", "DUPLEX_SEND_QUEUE=7", "DUPLEX_PPROF=true", "DUPLEX_NAMESPACE=ticker:history=1,presence=off,publish=api",
			"DUPLEX_EXEC=/a=./a.sh", "DUPLEX_EXEC_BINARY=/b=./b.sh", "DUPLEX_BROKER=redis://127.0.0.1:6379/3", "HOME=/nowhere"}},
		{"file", []string{"--config", file}, nil},
		{"file from DUPLEX_CONFIG", nil, []string{"DUPLEX_CONFIG=" + file}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := loadServe(t, tc.args, tc.env...)
			got := want{c.Server.Listen, c.Server.ReadLimit, c.Server.HandshakeTimeout, c.Server.OriginPatterns, c.Server.APIKey,
				c.Server.SendQueue, c.Server.Pprof, c.Server.Namespaces, len(c.Server.Execs), c.Broker}
			if !reflect.DeepEqual(got, w) {
				t.Fatalf("got  %+v\nwant %+v", got, w)
			}
			if e := c.Server.Execs; e[0].Path != "/a" || e[0].Binary || !e[1].Binary || e[1].Path != "/b" || e[0].MaxProcesses != 64 {
				t.Fatalf("exec routes %+v", e)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		c := loadServe(t, nil)
		if c.Server.Listen != ":8080" || c.Server.ReadLimit != 32<<20 || c.Server.HandshakeTimeout != 10*time.Second || c.ShutdownTimeout != 10*time.Second ||
			len(c.Server.OriginPatterns) != 0 || c.Server.APIKey != "" || c.Server.SendQueue != server.DefaultSendQueue || c.Server.Pprof ||
			!reflect.DeepEqual(c.Server.Namespaces, server.DefaultNamespaces()) || c.Broker != "memory" || c.LogFormat != "text" || c.LogLevel != "info" ||
			c.Server.Compression.Enabled {
			t.Fatalf("defaults: %+v", c)
		}
	})
}

// TestServeSettingsPrecedence: flag > env > file > default, setting by
// setting; a list from a higher source replaces the lower one's.
func TestServeSettingsPrecedence(t *testing.T) {
	file := writeConfig(t, "listen: 127.0.0.1:1001\nsend_queue: 11\nread_limit: 111\norigin: [file.example]\n")
	env := []string{"DUPLEX_CONFIG=" + file, "DUPLEX_LISTEN=127.0.0.1:1002", "DUPLEX_SEND_QUEUE=12", "DUPLEX_ORIGIN=env.example"}
	c := loadServe(t, []string{"--listen", "127.0.0.1:1003", "--origin", "flag.example"}, env...)
	if c.Server.Listen != "127.0.0.1:1003" || c.Server.SendQueue != 12 || c.Server.ReadLimit != 111 ||
		!reflect.DeepEqual(c.Server.OriginPatterns, []string{"flag.example"}) || c.Server.HandshakeTimeout != 10*time.Second {
		t.Fatalf("flag > env > file > default: %+v", c.Server)
	}
	// --config wins over DUPLEX_CONFIG.
	other := writeConfig(t, "send_queue: 21\n")
	c = loadServe(t, []string{"--config", other}, "DUPLEX_CONFIG="+file)
	if c.Server.SendQueue != 21 || c.Server.Listen != ":8080" {
		t.Fatalf("--config over DUPLEX_CONFIG: %+v", c.Server)
	}
	// An empty environment list replaces the file's.
	c = loadServe(t, nil, "DUPLEX_CONFIG="+file, "DUPLEX_ORIGIN=")
	if len(c.Server.OriginPatterns) != 0 {
		t.Fatalf("empty DUPLEX_ORIGIN: %q", c.Server.OriginPatterns)
	}
	// The last use of a scalar flag wins, as with package flag.
	c = loadServe(t, []string{"--send-queue", "5", "--send-queue", "6"})
	if c.Server.SendQueue != 6 {
		t.Fatalf("repeated --send-queue: %d", c.Server.SendQueue)
	}
}

// TestServeSettingErrors: each bad input exits 2 with its one line.
func TestServeSettingErrors(t *testing.T) {
	dir := t.TempDir()
	file := func(content string) string {
		t.Helper()
		f, err := os.CreateTemp(dir, "c*.yaml")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(content)
		f.Close()
		return f.Name()
	}
	missing := filepath.Join(dir, "missing.yaml")
	type tc struct {
		args []string
		env  []string
		want string // %s is the config file's path
	}
	cases := []tc{
		{[]string{"--send-queue", "0"}, nil, `flag --send-queue: "0": want an integer, 1 or more`},
		{[]string{"--send-queue", "many"}, nil, `flag --send-queue: "many": want an integer, 1 or more`},
		{[]string{"--read-limit", "0"}, nil, `flag --read-limit: "0": want a number of bytes, 1 or more, or -1 for no limit`},
		{[]string{"--listen", "8080"}, nil, `flag --listen: "8080": want host:port, such as :8080 or 127.0.0.1:8080`},
		{[]string{"--origin", "ok.example", "--origin", "[bad"}, nil, `flag --origin: "[bad": want a host pattern such as example.com or *.example.com`},
		{[]string{"--pprof=maybe"}, nil, `flag --pprof: "maybe": want true or false`},
		{[]string{"--compression", "max"}, nil, `flag --compression: "max": want off, on or takeover`},
		{[]string{"--exec", "bot.sh"}, nil, `flag --exec: "bot.sh": want PATH=VALUE`},
		{[]string{"--bridge", "/x=udp://h:1"}, nil, `flag --bridge: "/x=udp://h:1": target "udp://h:1": scheme must be tcp:// or tls://`},
		{[]string{"--namespace", "ticker:history=lots"}, nil, `flag --namespace: "ticker:history=lots": history=lots: want a number of messages, 0 or more`},
		{[]string{"--api-key", "REDACTED"}, nil, `flag --api-key: (value not shown): want the secret itself, not the REDACTED that --print-config writes in its place`},
		{[]string{"--auth-hmac-secret", "short"}, nil, `flag --auth-hmac-secret: (value not shown): want 32 bytes or more (HS256), got 5`},
		{[]string{"--auth-public-key", missing}, nil, `flag --auth-public-key: "` + missing + `": want a PEM file of RSA or ECDSA P-256 public keys: open ` + missing + `: no such file or directory`},
		{[]string{"--auth-jwks-url", "id.example.com/jwks"}, nil, `flag --auth-jwks-url: "id.example.com/jwks": want an http:// or https:// URL`},
		{[]string{"--auth-leeway", "-1s"}, nil, `flag --auth-leeway: "-1s": want a duration of 0 or more, such as 0s or 30s`},
		{nil, []string{"DUPLEX_API_KEYS=name=feed,key=0123456789abcdef;name=x,key=tooshort"}, `env DUPLEX_API_KEYS: (value not shown): API key "x" is 8 bytes, at least 16 wanted; want name=NAME,key=SECRET[,ops=OP|OP][,channels=PATTERN|PATTERN]`},
		{[]string{"--broker", "kafka://h:1"}, nil, `flag --broker: "kafka://h:1": want memory, nats://host:port[,nats://host:port…] or redis://host:port[/db]`},
		{[]string{"--log-level", "loud"}, nil, `flag --log-level: "loud": want debug, info, warn or error`},
		{nil, []string{"DUPLEX_HANDSHAKE_TIMEOUT=10"}, `env DUPLEX_HANDSHAKE_TIMEOUT: "10": want a duration above 0, such as 10s or 1m30s`},
		{nil, []string{"DUPLEX_SHUTDOWN_TIMEOUT=-1s"}, `env DUPLEX_SHUTDOWN_TIMEOUT: "-1s": want a duration above 0, such as 10s or 1m30s`},
		{nil, []string{"DUPLEX_ORIGIN=a.example;[b"}, `env DUPLEX_ORIGIN: "[b": want a host pattern such as example.com or *.example.com`},
		{nil, []string{"DUPLEX_DEMO=yes"}, `env DUPLEX_DEMO: "yes": want true or false`},
		{nil, []string{"DUPLEX_SEND_QUEU=1"}, `env DUPLEX_SEND_QUEU: unknown variable (did you mean DUPLEX_SEND_QUEUE?)`},
		{nil, []string{"DUPLEX_NOPE=1", "DUPLEX_ALSO_NOPE=1"}, `env DUPLEX_ALSO_NOPE: unknown variable`},
		{nil, []string{"DUPLEX_CONFIG=" + missing}, `env DUPLEX_CONFIG: open ` + missing + `: no such file or directory`},
		{[]string{"--config", missing}, nil, `flag --config: open ` + missing + `: no such file or directory`},
		// A bad value is refused even where a higher source overrides it.
		{[]string{"--send-queue", "3"}, []string{"DUPLEX_SEND_QUEUE=0"}, `env DUPLEX_SEND_QUEUE: "0": want an integer, 1 or more`},
		{[]string{"--config", file("listen: :1\nsend_queue: 0\n")}, nil, `%s:2: send_queue: "0": want an integer, 1 or more`},
		{[]string{"--config", file("listen: :1\nsend_queu: 1\n")}, nil, `%s:2: send_queu: unknown key (did you mean send_queue?)`},
		{[]string{"--config", file("send-queue: 1\n")}, nil, `%s:1: send-queue: unknown key (did you mean send_queue?)`},
		{[]string{"--config", file("tls: {}\n")}, nil, `%s:1: tls: unknown key`},
		{[]string{"--config", file("listen: :1\nlisten: :2\n")}, nil, `%s:2: listen: set twice (first on line 1)`},
		{[]string{"--config", file("listen: [a, b]\n")}, nil, `%s:1: listen: want a single value, not a list`},
		{[]string{"--config", file("origin: {a: b}\n")}, nil, `%s:1: origin: want a list, not a map`},
		{[]string{"--config", file("origin:\n  - [a]\n")}, nil, `%s:2: origin: want a list of single values, not of a list`},
		{[]string{"--config", file("handshake_timeout:\n")}, nil, `%s:1: handshake_timeout: "": want a duration above 0, such as 10s or 1m30s`},
		{[]string{"--config", file("api_key: REDACTED\n")}, nil, `%s:1: api_key: (value not shown): want the secret itself, not the REDACTED that --print-config writes in its place`},
		{[]string{"--config", file("- listen\n")}, nil, `%s:1: want a map of settings (key: value), not a list`},
		{[]string{"--config", file("listen: :1\n  send_queue: 2\n")}, nil, `%s:2: mapping values are not allowed in this context`},
		{[]string{"--config", file("namespace: [a]\n")}, nil, `%s:1: namespace: want a map of namespace names to their settings, not a list`},
		{[]string{"--config", file("namespace:\n  ticker:\n    history: lots\n")}, nil, `%s:3: namespace.ticker.history: "lots": want a number of messages, 0 or more`},
		{[]string{"--config", file("namespace:\n  ticker: {ttl: soon}\n")}, nil, `%s:2: namespace.ticker.ttl: "soon": want a duration such as 90s or 10m`},
		{[]string{"--config", file("namespace:\n  ticker: {presence: maybe}\n")}, nil, `%s:2: namespace.ticker.presence: "maybe": want on or off`},
		{[]string{"--config", file("namespace:\n  ticker: {publish: all}\n")}, nil, `%s:2: namespace.ticker.publish: "all": want clients or api`},
		{[]string{"--config", file("namespace:\n  ticker: {ttl: \"1m,history=5\"}\n")}, nil, `%s:2: namespace.ticker.ttl: "1m,history=5": want a value without "," or "="`},
		{[]string{"--config", file("namespace:\n  ticker:\n    histroy: 1\n")}, nil, `%s:3: namespace.ticker.histroy: unknown key (history, ttl, presence, publish, anonymous, slow, conflate_key)`},
		{[]string{"--config", file("namespace:\n  ticker: {history: 1, history: 2}\n")}, nil, `%s:2: namespace.ticker.history: set twice (first on line 2)`},
		{[]string{"--config", file("namespace:\n  ticker: 1\n")}, nil, `%s:2: namespace.ticker: want a map of the namespace's settings, not a single value`},
		{[]string{"--tls-cert", "c.pem"}, nil, `flag --tls-cert: "c.pem": want tls-key too, the certificate's private key`},
		{nil, []string{"DUPLEX_TLS_KEY=k.pem"}, `env DUPLEX_TLS_KEY: "k.pem": want tls-cert too, the certificate of that key`},
		{[]string{"--config", file("autocert_host: [a.example.com]\ntls_cert: c.pem\ntls_key: k.pem\n")}, nil, `%s:1: autocert_host: "a.example.com": want either autocert-host or tls-cert and tls-key, not both`},
		{[]string{"--autocert-host", "a.example.com", "--autocert-host", "b.example.com"}, nil, `flag --autocert-host: "a.example.com;b.example.com": want autocert-cache-dir too: without it every start asks the CA for new certificates, and its rate limits soon refuse them`},
		{[]string{"--config", file("listen: :443\nautocert_email: ops@example.com\n")}, nil, `%s:2: autocert_email: "ops@example.com": want autocert-host too, the host names to get certificates for`},
		{[]string{"--autocert-host", "https://a.example.com"}, nil, `flag --autocert-host: "https://a.example.com": want a bare public host name such as chat.example.com (no scheme, port, path or wildcard)`},
		{[]string{"--autocert-host", "*.example.com"}, nil, `flag --autocert-host: "*.example.com": want a bare public host name such as chat.example.com (no scheme, port, path or wildcard)`},
		{[]string{"--autocert-host", "10.0.0.1"}, nil, `flag --autocert-host: "10.0.0.1": want a host name, not an IP address`},
		{[]string{"--autocert-host", "localhost"}, nil, `flag --autocert-host: "localhost": want a public host name, with a dot`},
		{[]string{"--autocert-email", "ops"}, nil, `flag --autocert-email: "ops": want an email address such as ops@example.com`},
		{[]string{"--autocert-http-listen", "80"}, nil, `flag --autocert-http-listen: "80": want host:port, such as :8080 or 127.0.0.1:8080`},
		{[]string{"--autocert-directory-url", "acme.example.com"}, nil, `flag --autocert-directory-url: "acme.example.com": want an https:// URL`},
		{[]string{"--drain-batch", "0"}, nil, `flag --drain-batch: "0": want an integer, 1 or more`},
		{nil, []string{"DUPLEX_DRAIN_INTERVAL=0s"}, `env DUPLEX_DRAIN_INTERVAL: "0s": want a duration above 0, such as 10s or 1m30s`},
		{[]string{"--config", file("namespace:\n  \"a:b\": {}\n")}, nil, `%s:2: namespace: "a:b": want a namespace name (letters, digits, and _-.; "default" for the default namespace)`},
	}
	for _, c := range cases {
		want := c.want
		if strings.Contains(want, "%s") {
			want = strings.Replace(want, "%s", c.args[1], 1)
		}
		want = "duplex serve: " + want + "\n"
		var out, errb strings.Builder
		if status := serveEnv(c.args, c.env, &out, &errb); status != 2 || errb.String() != want || out.Len() != 0 {
			t.Errorf("%q %q: status %d, stderr\n%q\nwant 2 and\n%q", c.args, c.env, status, errb.String(), want)
		}
	}
}

// TestServePrintConfig: --print-config's output, exact, for a file, the
// environment and flags together; and the output read back as a config
// file gives the same configuration.
func TestServePrintConfig(t *testing.T) {
	args := []string{"--config", "testdata/print-config.yaml", "--listen", "127.0.0.1:9000", "--namespace", "ticker:history=1,publish=api", "--print-config"}
	env := []string{"DUPLEX_API_KEY=s3cret", "DUPLEX_ORIGIN=a.example;*.b.example", "DUPLEX_BROKER=redis://user:pw@127.0.0.1:6379/2", "DUPLEX_PPROF=1"}
	var out, errb strings.Builder
	if status := serveEnv(args, env, &out, &errb); status != 0 || errb.Len() != 0 {
		t.Fatalf("status %d, stderr %q", status, errb.String())
	}
	golden := "testdata/print-config.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Fatalf("--print-config:\n%s\nwant (%s):\n%s", out.String(), golden, want)
	}

	// Read back (with the secret given again), the printed file configures
	// what the sources did.
	first := loadServe(t, args[:len(args)-1], env...)
	printed := writeConfig(t, strings.Replace(out.String(), "api_key: REDACTED", "api_key: s3cret", 1))
	second := loadServe(t, []string{"--config", printed}, "DUPLEX_BROKER=redis://user:pw@127.0.0.1:6379/2")
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("read back:\n%+v\nwant\n%+v", second, first)
	}
}

// TestServeFileNamespaces: namespaces from the config file are those of
// the running server: history kept per channel and presence off.
func TestServeFileNamespaces(t *testing.T) {
	cfg := writeConfig(t, "namespace:\n  short:\n    history: 2\n    presence: \"off\"\n")
	_, addr := startServe(t, "--config", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i := 1; i <= 3; i++ {
		if st, body := do("POST", "/api/publish", `{"channel":"short:x","data":`+string(rune('0'+i))+`}`); st != 200 {
			t.Fatalf("publish %d: %d %s", i, st, body)
		}
	}
	st, body := do("GET", "/api/channels/short:x/history", "")
	if st != 200 || !regexp.MustCompile(`^\{"messages":\[\{"offset":2,"data":2\},\{"offset":3,"data":3\}\],"offset":3,"epoch":"[0-9a-z]+"\}\n$`).MatchString(body) {
		t.Fatalf("history of short:x: %d %s, want the last 2 of 3", st, body)
	}
	if st, body := do("GET", "/api/channels/short:x/presence", ""); st != 404 || !strings.Contains(body, `"code":110`) {
		t.Fatalf("presence of short:x: %d %s, want 404 code 110", st, body)
	}
	// The built-in namespaces are still there: chat keeps 50.
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Subprotocols: []string{"duplex.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"id":1,"op":"presence","channel":"chat:r"}`)); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.Read(ctx); err != nil || string(p) != `{"id":1,"result":{"clients":[]}}` {
		t.Fatalf("presence of chat:r: %s %v", p, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// TestServeEnvTypoInProcess: a mistyped variable in the real environment
// stops duplex serve before it listens.
func TestServeEnvTypoInProcess(t *testing.T) {
	t.Setenv("DUPLEX_SEND_QUEUEE", "10")
	var out, errb strings.Builder
	if status := run([]string{"serve", "--listen", "127.0.0.1:0"}, &out, &errb); status != 2 ||
		errb.String() != "duplex serve: env DUPLEX_SEND_QUEUEE: unknown variable (did you mean DUPLEX_SEND_QUEUE?)\n" {
		t.Fatalf("status %d, stderr %q", status, errb.String())
	}
}

// TestSettingKindsNotYetInTheTable: a number setting and a secret list
// behave as the others, from every source and in --print-config.
func TestSettingKindsNotYetInTheTable(t *testing.T) {
	var got struct {
		rate float64
		keys []string
	}
	settings := []*setting{
		floatSetting("rate", 2.5, "a number above 0", func(f float64) bool { return f > 0 }, "`messages` per second",
			func(c *serveConfig, v float64) { got.rate = v }),
		listSetting("keys", func(s string) error { return nil }, "`keys`",
			func(c *serveConfig, v []string) { got.keys = v }).secret(),
	}
	load := func(flags map[*setting][]string, env []string) ([]resolved, error) {
		in := &configInput{settings: settings, flags: flags, env: env}
		return in.load()
	}
	file := writeConfig(t, "rate: 100\nkeys: [a, b]\n")
	values, err := load(map[*setting][]string{}, []string{"DUPLEX_CONFIG=" + file})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range values {
		r.s.apply(nil, r.v)
	}
	if got.rate != 100 || !reflect.DeepEqual(got.keys, []string{"a", "b"}) {
		t.Fatalf("from the file: %+v", got)
	}
	var out strings.Builder
	if err := printConfig(&out, values); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "\nrate: 100 # "+file+":1\nkeys: # "+file+":2\n  - REDACTED\n  - REDACTED\n") {
		t.Fatalf("--print-config:\n%s", out.String())
	}
	values, err = load(map[*setting][]string{settings[0]: {"0.5"}}, []string{"DUPLEX_KEYS=c;d"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range values {
		r.s.apply(nil, r.v)
	}
	if got.rate != 0.5 || !reflect.DeepEqual(got.keys, []string{"c", "d"}) {
		t.Fatalf("from flag and env: %+v", got)
	}
	for _, tc := range []struct {
		flags map[*setting][]string
		env   []string
		want  string
	}{
		{map[*setting][]string{settings[0]: {"0"}}, nil, `flag --rate: "0": want a number above 0`},
		{map[*setting][]string{settings[0]: {"NaN"}}, nil, `flag --rate: "NaN": want a number above 0`},
		{nil, []string{"DUPLEX_KEYS=c;REDACTED"}, `env DUPLEX_KEYS: (value not shown): want the secret itself, not the REDACTED that --print-config writes in its place`},
		{nil, []string{"DUPLEX_CONFIG=" + writeConfig(t, "keys:\n  - REDACTED\n")}, `PATH:2: keys: (value not shown): want the secret itself, not the REDACTED that --print-config writes in its place`},
	} {
		_, err := load(tc.flags, tc.env)
		want := tc.want
		if strings.HasPrefix(want, "PATH") {
			want = strings.Replace(want, "PATH", strings.TrimPrefix(tc.env[0], "DUPLEX_CONFIG="), 1)
		}
		if err == nil || err.Error() != want {
			t.Errorf("%v %v: %v, want %s", tc.flags, tc.env, err, want)
		}
	}
}

// TestServeTLSAndDrainSettings: the TLS, autocert and drain settings land
// in server.Config.
func TestServeTLSAndDrainSettings(t *testing.T) {
	c := loadServe(t, []string{"--tls-cert", "testdata/cert.pem", "--tls-key", "testdata/key.pem", "--drain-batch", "7", "--drain-interval", "50ms", "--drain-timeout", "3s"})
	if c.Server.TLSCert != "testdata/cert.pem" || c.Server.TLSKey != "testdata/key.pem" || c.Server.DrainBatch != 7 || c.Server.DrainInterval != 50*time.Millisecond || c.Server.DrainTimeout != 3*time.Second {
		t.Fatalf("%+v", c.Server)
	}
	cache := filepath.Join(t.TempDir(), "autocert")
	file := writeConfig(t, "autocert_host: [a.example.com, b.example.com]\nautocert_cache_dir: "+cache+"\nautocert_email: ops@example.com\n"+
		"autocert_http_listen: \":80\"\nautocert_directory_url: https://acme.example.com/dir\nautocert_directory_ca: testdata/cert.pem\n")
	c = loadServe(t, []string{"--config", file})
	if s := c.Server; !reflect.DeepEqual(s.AutocertHosts, []string{"a.example.com", "b.example.com"}) || s.AutocertCacheDir != cache ||
		s.AutocertEmail != "ops@example.com" || s.AutocertHTTPListen != ":80" || s.AutocertDirectoryURL != "https://acme.example.com/dir" || s.AutocertDirectoryCA != "testdata/cert.pem" {
		t.Fatalf("%+v", s)
	}
	c = loadServe(t, nil)
	if s := c.Server; s.DrainBatch != server.DefaultDrainBatch || s.DrainInterval != server.DefaultDrainInterval || s.DrainTimeout != server.DefaultDrainTimeout || s.TLSCert != "" {
		t.Fatalf("defaults %+v", s)
	}
}

// TestEveryConfigFieldHasASetting: each field of server.Config (and of its
// structs, Limits and Auth) is set by a setting (c.Server.FIELD in the
// settings files), or is listed here as no setting, with why; a field
// added to server.Config without a setting of duplex serve fails here.
func TestEveryConfigFieldHasASetting(t *testing.T) {
	notSettings := map[string]string{
		"Version":         "the binary's version",
		"Broker":          "opened from the broker setting",
		"Log":             "built from log-format and log-level",
		"Auth.PublicKeys": "parsed keys, for Go embedders (auth-public-key gives files)",
		"Auth.JWKSClient": "an *http.Client, for Go embedders",
	}
	files, err := filepath.Glob("settings*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("settings files: %v %v", files, err)
	}
	var src strings.Builder
	for _, f := range append(files, "serve.go") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	serverPkg := reflect.TypeOf(server.Config{}).PkgPath()
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			path := prefix + f.Name
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == serverPkg {
				walk(f.Type, path+".")
				continue
			}
			_, listed := notSettings[path]
			used := strings.Contains(src.String(), "c.Server."+path+" ") || strings.Contains(src.String(), "c.Server."+path+",")
			switch {
			case listed && used:
				t.Errorf("server.Config.%s is listed as no setting but a setting sets it", path)
			case !listed && !used:
				t.Errorf("server.Config.%s has no setting of duplex serve: declare one in settings.go (or list it in this test with why)", path)
			}
		}
	}
	walk(reflect.TypeOf(server.Config{}), "")
}
