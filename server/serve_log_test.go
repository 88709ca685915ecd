package server_test

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/duplex-ws/duplex/server"
)

// TestListenAndServeBadSettingNoServingLine: with a certificate file that
// cannot be read, ListenAndServe returns the error before it takes the
// address, and logs no "duplex serving" line; Serve with good settings
// logs it once, with the listener's address and the TLS mode.
func TestListenAndServeBadSettingNoServingLine(t *testing.T) {
	// An address known to be free: taken, then released.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	missing := filepath.Join(t.TempDir(), "missing.pem")
	logs := newLogRecorder()
	s := server.New(server.Config{Listen: addr, TLSCert: missing, TLSKey: missing, Log: logs.logger(), Version: "test"})
	err = s.ListenAndServe()
	if want := "TLS certificate: open " + missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Fatalf("ListenAndServe: %v, want %q", err, want)
	}
	if got := logs.lines("duplex serving"); len(got) != 0 {
		t.Fatalf("logged %v for a server that does not serve", got)
	}
	// The address was not taken.
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the address of the failed ListenAndServe: %v", err)
	}
	l.Close()

	logs = newLogRecorder()
	ts := startServer(t, server.Config{Log: logs.logger()})
	ctx := testContext(t)
	got := logs.wait(ctx, t, "duplex serving", 1)
	if len(got) != 1 || "http://"+got[0]["addr"].(string) != ts.http || got[0]["tls"] != "off" {
		t.Fatalf("serving lines %v, want one with addr %s and tls=off", got, ts.http)
	}
}
