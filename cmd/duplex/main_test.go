package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionAndHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "duplex ") {
		t.Fatalf("version: code %d out %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"serve", "--help"}, &out, &errb); code != 0 {
		t.Fatalf("serve --help: code %d", code)
	}
	for _, flag := range []string{"-listen", "-read-limit", "-handshake-timeout", "-shutdown-timeout", "-origin", "/echo"} {
		if !strings.Contains(errb.String(), flag) {
			t.Errorf("serve --help does not explain %s:\n%s", flag, errb.String())
		}
	}
	errb.Reset()
	if code := run([]string{"bogus"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "bogus"`) {
		t.Fatalf("bogus: code %d err %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"serve", "--listen", "127.0.0.1:0", "extra"}, &out, &errb); code != 2 {
		t.Fatalf("extra argument: code %d", code)
	}
}
