package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
)

// update rewrites the generated files (docs/configuration.md, the golden
// --print-config outputs) instead of comparing with them:
// go test ./cmd/duplex/ -run 'TestConfigurationDoc|TestServePrintConfig' -update
var update = flag.Bool("update", false, "rewrite docs/configuration.md and the golden files of duplex serve's settings")

// configurationDoc is docs/configuration.md, generated from serveSettings.
func configurationDoc(t *testing.T) string {
	t.Helper()
	example, err := os.ReadFile("testdata/duplex.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`# Configuration

<!-- Generated from the settings declared in cmd/duplex/settings.go by
go test ./cmd/duplex/ -run TestConfigurationDoc -update
Do not edit by hand: TestConfigurationDoc fails when this file is stale. -->

Every setting of ` + "`duplex serve`" + ` has three names, derived from one another:

- a flag, ` + "`--send-queue 512`" + `;
- an environment variable, ` + "`DUPLEX_SEND_QUEUE=512`" + ` (` + "`DUPLEX_`" + `, then the name in upper case with ` + "`_`" + ` for ` + "`-`" + `);
- a key of the config file, ` + "`send_queue: 512`" + ` (the name with ` + "`_`" + ` for ` + "`-`" + `), a YAML file named by
  ` + "`--config FILE`" + ` or ` + "`DUPLEX_CONFIG=FILE`" + ` (the flag wins).

## Precedence

Each setting takes its value from the first source that gives it: **flag > environment variable >
config file > default**. A source replaces the whole value of a lower one: a list (` + "`origin`" + `,
` + "`bridge`" + `, …) given by a flag is not merged with the file's list. Every source given is checked,
even one that a higher source overrides.

## Values

| Value | Flag and environment variable | Config file |
| --- | --- | --- |
| string | as is | a YAML string |
| integer | decimal, e.g. ` + "`512`" + ` | a YAML integer |
| number | decimal, e.g. ` + "`2.5`" + ` | a YAML number |
| duration | Go syntax: ` + "`90s`" + `, ` + "`10m`" + `, ` + "`1h30m`" + ` | the same, e.g. ` + "`ttl: 10m`" + ` |
| true or false | ` + "`--pprof`" + ` alone means true; ` + "`--pprof=false`" + `; env ` + "`true`" + `, ` + "`false`" + `, ` + "`1`" + `, ` + "`0`" + ` | ` + "`true`" + ` or ` + "`false`" + ` |
| list | repeat the flag; in the environment, items separated by ` + "`;`" + ` | a YAML list (one value alone is a list of one) |
| namespaces | ` + "`--namespace NAME:key=value,...`" + `, repeatable; in the environment separated by ` + "`;`" + ` | a map of names to maps of the keys, below |

Namespaces in the file:

` + "```yaml" + `
namespace:
  default: {history: 100, ttl: 5m}                    # "default" is the default namespace
  ticker: {history: 1, presence: "off", publish: api}
` + "```" + `

with the keys of ` + "`--namespace`" + ` (its row below), written with ` + "`_`" + ` for ` + "`-`" + `. Keys left out take the
values of the default namespace (` + "`" + server.FormatNamespace(pubsub.DefaultNamespace) + "`" + `). The namespaces given
are added to the built-in ones, the default namespace and ` + "`chat`" + ` (` + "`" + server.FormatNamespace(server.DefaultNamespaces()[server.ChatNamespace]) + "`" + `),
and replace those of the same name.

## Errors

An invalid setting stops ` + "`duplex serve`" + ` at start with exit status 2 and one line naming where the
value came from, the value and what is wanted:

` + "```" + `
duplex serve: flag --send-queue: "0": want an integer, 1 or more
duplex serve: env DUPLEX_HANDSHAKE_TIMEOUT: "10": want a duration above 0, such as 10s or 1m30s
duplex serve: duplex.yaml:7: namespace.ticker.history: "lots": want a number of messages, 0 or more
` + "```" + `

A key of the file that names no setting, and an environment variable starting with ` + "`DUPLEX_`" + ` that
names none (other than ` + "`DUPLEX_CONFIG`" + `), are errors too, so that a typo does not go unnoticed:

` + "```" + `
duplex serve: duplex.yaml:3: send_queu: unknown key (did you mean send_queue?)
duplex serve: env DUPLEX_SEND_QUEU: unknown variable (did you mean DUPLEX_SEND_QUEUE?)
` + "```" + `

Settings that name files are read at start as well, so that a file the server could not use stops it
there rather than once serving: ` + "`tls_cert`" + ` and ` + "`tls_key`" + ` must be readable PEM files holding a
certificate chain and its private key, ` + "`autocert_directory_ca`" + ` a readable PEM file of certificates, and
` + "`autocert_cache_dir`" + ` a directory that exists or can be made (0700) and written to:

` + "```" + `
duplex serve: flag --tls-cert: "cert.pem": want a readable PEM certificate file: open: no such file or directory
duplex serve: env DUPLEX_TLS_KEY: "key.pem": want a readable PEM private key file: open: permission denied
duplex serve: duplex.yaml:2: tls_cert: "cert.pem": want a PEM certificate chain whose private key is in tls-key (key.pem): tls: private key does not match public key
duplex serve: flag --autocert-cache-dir: "/var/lib/duplex": want a directory that exists or can be made: mkdir: permission denied
duplex serve: flag --autocert-directory-ca: "ca.pem": want a PEM file of root certificates: no certificate in it
` + "```" + `

Secret values (` + secretKeys() + `) are not repeated in error messages.

## Printing the configuration

` + "`duplex serve --print-config`" + ` (with the other flags, environment and file it would run with) checks
the configuration as serving would, files included, and prints it as a config file and exits with
status 0; a configuration that would not start gets the error line and status 2, and nothing printed. After each value, a comment
says where it came from (` + "`flag --listen`" + `, ` + "`env DUPLEX_API_KEY`" + `, ` + "`duplex.yaml:4`" + ` or ` + "`default`" + `). Secrets
are printed as ` + "`REDACTED`" + ` and passwords in broker URLs as ` + "`xxxxx`" + `; a secret set to ` + "`REDACTED`" + ` is
refused, so that a printed configuration fed back as a file cannot run with a placeholder for a key.

## Signals

` + "`SIGTERM`" + ` drains: ` + "`duplex serve`" + ` stops accepting, ` + "`/readyz`" + ` answers 503, and WebSocket connections are
closed with 1012 (service restart) ` + "`drain_batch`" + ` at a time every ` + "`drain_interval`" + `, so that clients
reconnect to other nodes a few at a time; at ` + "`drain_timeout`" + ` what is still open is cut, and the process
exits. A second ` + "`SIGTERM`" + ` or a ` + "`SIGINT`" + ` during the drain cuts it at once: what is still open is closed
without a closing handshake, and the exit status is 1. Otherwise ` + "`SIGINT`" + ` (Ctrl-C) closes every connection at once with 1001 and waits ` + "`shutdown_timeout`" + ` for
requests in flight. ` + "`SIGHUP`" + ` rereads ` + "`tls_cert`" + ` and ` + "`tls_key`" + `: new handshakes get the new certificate,
open connections stay; a bad file is logged and the old certificate stays in use.

## Settings

| Key | Flag | Environment variable | Value | Default | Meaning |
| --- | --- | --- | --- | --- | --- |
`)
	for _, s := range serveSettings {
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s | %s | %s |\n", s.Key(), s.Flag(), s.Env(), s.form, docDefault(s), docCell(s.help))
	}
	b.WriteString(`
Two flags are not settings: ` + "`--config FILE`" + ` (or ` + "`DUPLEX_CONFIG`" + `) names the config file, and
` + "`--print-config`" + ` prints the configuration instead of serving.

## Example file

` + "```yaml\n")
	b.Write(example)
	b.WriteString("```\n")
	return b.String()
}

// secretKeys lists the file keys of the secret settings.
func secretKeys() string {
	var keys []string
	for _, s := range serveSettings {
		if s.hide {
			keys = append(keys, "`"+s.Key()+"`")
		}
	}
	return strings.Join(keys, ", ")
}

// docDefault is a setting's default as docs/configuration.md shows it.
func docDefault(s *setting) string {
	switch s.form {
	case "list":
		return "none"
	case "namespaces":
		return "default and chat"
	}
	v := s.toNode(s.def).Value
	if v == "" {
		return "none"
	}
	return "`" + v + "`"
}

// docCell makes help text fit a Markdown table cell: the backquotes of
// flag.UnquoteUsage removed, pipes escaped.
func docCell(help string) string {
	return strings.NewReplacer("`", "", "|", `\|`).Replace(help)
}

// TestConfigurationDoc fails when docs/configuration.md does not match the
// settings declared in settings.go; -update rewrites it.
func TestConfigurationDoc(t *testing.T) {
	want := configurationDoc(t)
	path := filepath.Join("..", "..", "docs", "configuration.md")
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("docs/configuration.md is stale: run go test ./cmd/duplex/ -run TestConfigurationDoc -update")
	}
}

// TestConfigurationExampleLoads: the example file of the doc is valid and
// its values are read.
func TestConfigurationExampleLoads(t *testing.T) {
	var out, errb strings.Builder
	if code := serveEnv([]string{"--config", "testdata/duplex.example.yaml", "--print-config"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, line := range []string{
		"send_queue: 512 # testdata/duplex.example.yaml:11\n",
		"  ticker: {history: 1, ttl: 5m0s, presence: \"off\", publish: api, anonymous: \"on\", slow: conflate}\n",
		"auth_jwks_url: https://id.example.com/.well-known/jwks.json # testdata/duplex.example.yaml:19\n",
		"api_key: REDACTED # testdata/duplex.example.yaml:9\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("--print-config lacks %q:\n%s", line, out.String())
		}
	}
}
