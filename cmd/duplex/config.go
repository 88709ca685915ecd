package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// configEnv names the config file in the environment, as --config does on
// the command line.
const configEnv = "DUPLEX_CONFIG"

// resolved is a setting's value in effect and where it came from.
type resolved struct {
	s    *setting
	v    any
	from string // "default", "flag --x", "env DUPLEX_X" or "FILE:LINE"
}

// configInput is what the settings are read from, highest precedence
// first: flags, environment variables (all of the process's, "K=V"), the
// config file (named by --config, else by DUPLEX_CONFIG).
type configInput struct {
	settings   []*setting
	flags      map[*setting][]string // texts of the flags given, one per use
	configFlag string                // --config, "" when not given
	env        []string
}

// A configError is an invalid setting or config file: duplex serve prints
// it on one line and exits with status 2.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{fmt.Sprintf(format, args...)}
}

// fileEntry is a setting's key and value nodes in the config file.
type fileEntry struct{ key, val *yaml.Node }

// load resolves every setting: its flag if given, else its environment
// variable, else its key in the config file, else its default. Every
// source given is checked, even one a higher one overrides, and an unknown
// DUPLEX_ variable or file key is an error.
func (in *configInput) load() ([]resolved, error) {
	env, err := in.environment()
	if err != nil {
		return nil, err
	}
	path, from := in.configFlag, "flag --config"
	if path == "" {
		path, from = env[configEnv], "env "+configEnv
	}
	var file map[*setting]fileEntry
	if path != "" {
		if file, err = in.readFile(path, from); err != nil {
			return nil, err
		}
	}
	out := make([]resolved, 0, len(in.settings))
	for _, s := range in.settings {
		r := resolved{s: s, v: s.def, from: "default"}
		if e, ok := file[s]; ok {
			v, err := s.fromNode(s.Key(), e.val)
			if err != nil {
				return nil, fileValueError(path, s, e.val, err)
			}
			r.v, r.from = v, fmt.Sprintf("%s:%d", path, e.key.Line)
		}
		if text, ok := env[s.Env()]; ok {
			texts := []string{text}
			if s.list {
				texts = splitEnvList(text)
			}
			v, err := s.fromText(texts)
			if err != nil {
				return nil, textValueError("env "+s.Env(), s, err)
			}
			r.v, r.from = v, "env "+s.Env()
		}
		if texts, ok := in.flags[s]; ok {
			v, err := s.fromText(texts)
			if err != nil {
				return nil, textValueError("flag "+s.Flag(), s, err)
			}
			r.v, r.from = v, "flag "+s.Flag()
		}
		out = append(out, r)
	}
	return out, nil
}

// environment returns the DUPLEX_ variables of in.env, or an error for
// the first one (by name) that names no setting.
func (in *configInput) environment() (map[string]string, error) {
	known := map[string]bool{configEnv: true}
	var names []string
	for _, s := range in.settings {
		known[s.Env()] = true
		names = append(names, s.Env())
	}
	env := map[string]string{}
	var unknown []string
	for _, kv := range in.env {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "DUPLEX_") {
			continue
		}
		if !known[k] {
			unknown = append(unknown, k)
			continue
		}
		env[k] = v
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, configErrorf("env %s: unknown variable%s", unknown[0], didYouMean(unknown[0], append(names, configEnv)))
	}
	return env, nil
}

// yamlLine matches yaml.v3's syntax errors, to put the line after the file
// name as compilers do.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// readFile reads the config file: a YAML map of setting keys to values.
func (in *configInput) readFile(path, from string) (map[*setting]fileEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, configErrorf("%s: %v", from, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			return nil, configErrorf("%s:%s: %s", path, m[1], m[2])
		}
		return nil, configErrorf("%s: %s", path, strings.TrimPrefix(msg, "yaml: "))
	}
	if len(doc.Content) == 0 { // an empty file, or comments only
		return nil, nil
	}
	top := deref(doc.Content[0])
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil, nil
	}
	if top.Kind != yaml.MappingNode {
		return nil, configErrorf("%s:%d: want a map of settings (key: value), not a %s", path, top.Line, nodeKind(top))
	}
	byKey := map[string]*setting{}
	var keys []string
	for _, s := range in.settings {
		byKey[s.Key()] = s
		keys = append(keys, s.Key())
	}
	out := map[*setting]fileEntry{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := deref(top.Content[i]), deref(top.Content[i+1])
		name := scalarText(k)
		s, ok := byKey[name]
		if !ok {
			return nil, configErrorf("%s:%d: %s: unknown key%s", path, k.Line, name, didYouMean(name, keys))
		}
		if first, dup := out[s]; dup {
			return nil, configErrorf("%s:%d: %s: set twice (first on line %d)", path, k.Line, name, first.key.Line)
		}
		out[s] = fileEntry{k, v}
	}
	return out, nil
}

// splitEnvList splits an environment variable's list on ';', trimming
// spaces and dropping empty items.
func splitEnvList(text string) []string {
	items := []string{}
	for _, it := range strings.Split(text, ";") {
		if it = strings.TrimSpace(it); it != "" {
			items = append(items, it)
		}
	}
	return items
}

// textValueError is the one-line error of a flag's or an environment
// variable's bad value: source, value, what is wanted.
func textValueError(from string, s *setting, err error) error {
	var bad *badValue
	if !errors.As(err, &bad) {
		return configErrorf("%s: %v", from, err)
	}
	return configErrorf("%s: %s: %s", from, showValue(s, bad.value), bad.want)
}

// fileValueError is the one-line error of a bad value in the config file:
// file:line, key, value, what is wanted.
func fileValueError(path string, s *setting, n *yaml.Node, err error) error {
	var bad *badValue
	if !errors.As(err, &bad) {
		return configErrorf("%s:%d: %s: %v", path, n.Line, s.Key(), err)
	}
	line, key := bad.line, bad.key
	if line == 0 {
		line = n.Line
	}
	if key == "" {
		key = s.Key()
	}
	if bad.noValue {
		return configErrorf("%s:%d: %s: %s", path, line, key, bad.want)
	}
	return configErrorf("%s:%d: %s: %s: %s", path, line, key, showValue(s, bad.value), bad.want)
}

// showValue quotes a bad value for an error message, unless it is secret.
func showValue(s *setting, v string) string {
	if s.hide {
		return "(value not shown)"
	}
	return fmt.Sprintf("%q", v)
}

// didYouMean suggests the known name closest to a mistyped one, when one
// is close enough to be a typo.
func didYouMean(name string, known []string) string {
	best, bestD := "", 3
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "_")) }
	for _, k := range known {
		if d := editDistance(norm(name), norm(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// printConfig writes the configuration in effect as a config file, each
// value followed by its source, secrets redacted.
func printConfig(w io.Writer, values []resolved) error {
	top := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, r := range values {
		v := r.v
		if r.s.redact != nil {
			v = r.s.redact(v)
		}
		k, n := strNode(r.s.Key()), r.s.toNode(v)
		if n.Kind == yaml.ScalarNode || n.Style == yaml.FlowStyle {
			n.LineComment = r.from
		} else {
			k.LineComment = r.from
		}
		top.Content = append(top.Content, k, n)
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{top},
		HeadComment: "The configuration of duplex serve in effect (duplex serve --print-config).\n" +
			"After each value, where it came from: flag, env (environment variable), FILE:LINE or default.\n" +
			"Precedence: flag > env > file > default. Secrets are shown as " + redacted + "."}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}
