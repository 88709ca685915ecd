package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/duplex-ws/duplex/internal/testca"
)

// TestServeFileSettingErrors: a setting that names a file the server
// would fail on once serving (a certificate or key that is missing, not
// PEM or not a pair; the ACME directory's CA file; an autocert cache
// directory that cannot be made) stops duplex serve at start with status
// 2 and one line naming its source, the value and the problem, with and
// without --print-config, which prints nothing then.
func TestServeFileSettingErrors(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	ca := testca.New(t)
	ca.Issue(1, "one").Write(t, p("cert1.pem"), p("key1.pem"))
	ca.Issue(2, "two").Write(t, p("cert2.pem"), p("key2.pem"))
	testca.WriteFile(t, p("junk.pem"), []byte("not PEM\n"))
	testca.WriteFile(t, p("afile"), []byte("x"))
	missing := p("missing.pem")
	file := writeConfig(t, "tls_cert: "+missing+"\ntls_key: "+p("key1.pem")+"\n")
	auto := []string{"--autocert-host", "a.example.com", "--autocert-cache-dir"}

	cases := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--tls-cert", missing, "--tls-key", p("key1.pem")}, nil,
			`flag --tls-cert: "` + missing + `": want a readable PEM certificate file: open: no such file or directory`},
		{[]string{"--config", file}, nil,
			file + `:1: tls_cert: "` + missing + `": want a readable PEM certificate file: open: no such file or directory`},
		{[]string{"--tls-cert", p("cert1.pem")}, []string{"DUPLEX_TLS_KEY=" + missing},
			`env DUPLEX_TLS_KEY: "` + missing + `": want a readable PEM private key file: open: no such file or directory`},
		{[]string{"--tls-cert", dir, "--tls-key", p("key1.pem")}, nil,
			`flag --tls-cert: "` + dir + `": want a readable PEM certificate file: read: is a directory`},
		{[]string{"--tls-cert", p("junk.pem"), "--tls-key", p("key1.pem")}, nil,
			`flag --tls-cert: "` + p("junk.pem") + `": want a PEM certificate chain whose private key is in tls-key (` + p("key1.pem") + `): tls: failed to find any PEM data in certificate input`},
		{[]string{"--tls-cert", p("cert1.pem"), "--tls-key", p("key2.pem")}, nil,
			`flag --tls-cert: "` + p("cert1.pem") + `": want a PEM certificate chain whose private key is in tls-key (` + p("key2.pem") + `): tls: private key does not match public key`},
		{[]string{"--tls-cert", p("cert1.pem")}, nil, // the rule between settings comes first
			`flag --tls-cert: "` + p("cert1.pem") + `": want tls-key too, the certificate's private key`},
		{append(auto, p("afile")), nil,
			`flag --autocert-cache-dir: "` + p("afile") + `": want a directory that exists or can be made: mkdir: not a directory`},
		{append(auto, filepath.Join(p("afile"), "sub")), nil,
			`flag --autocert-cache-dir: "` + filepath.Join(p("afile"), "sub") + `": want a directory that exists or can be made: mkdir: not a directory`},
		{append(auto, p("cache"), "--autocert-directory-ca", missing), nil,
			`flag --autocert-directory-ca: "` + missing + `": want a readable PEM file of root certificates: open: no such file or directory`},
		{append(auto, p("cache"), "--autocert-directory-ca", p("junk.pem")), nil,
			`flag --autocert-directory-ca: "` + p("junk.pem") + `": want a PEM file of root certificates: no certificate in it`},
	}
	for _, c := range cases {
		want := "duplex serve: " + c.want + "\n"
		for _, args := range [][]string{c.args, append(c.args[:len(c.args):len(c.args)], "--print-config")} {
			var out, errb strings.Builder
			if status := serveEnv(args, c.env, &out, &errb); status != 2 || errb.String() != want || out.Len() != 0 {
				t.Errorf("%q %q: status %d, stdout %q, stderr\n%q\nwant 2, nothing and\n%q", args, c.env, status, out.String(), errb.String(), want)
			}
		}
	}

	// Good files pass, and the cache directory is made 0700.
	cache := p("cache2")
	var out, errb strings.Builder
	args := append(auto, cache, "--autocert-directory-ca", p("cert1.pem"), "--print-config")
	if status := serveEnv(args, nil, &out, &errb); status != 0 || errb.Len() != 0 {
		t.Fatalf("%q: status %d, stderr %q", args, status, errb.String())
	}
	if fi, err := os.Stat(cache); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache directory: %v %v, want a directory 0700", fi, err)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Fatalf("cache directory holds %v after the check, want nothing", entries)
	}
	out.Reset()
	args = []string{"--tls-cert", p("cert1.pem"), "--tls-key", p("key1.pem"), "--print-config"}
	if status := serveEnv(args, nil, &out, &errb); status != 0 || errb.Len() != 0 || !strings.Contains(out.String(), "\ntls_cert: "+p("cert1.pem")+" # flag --tls-cert\n") {
		t.Fatalf("%q: status %d, stderr %q, stdout\n%s", args, status, errb.String(), out.String())
	}
}
