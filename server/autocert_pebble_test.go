package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// startDNS answers every A query with 127.0.0.1 and every other query
// with nothing, over TCP (what Pebble's resolver client uses) and UDP on
// one port of 127.0.0.1, until the test ends; it returns its address.
// Pebble's validation authority resolves the names it checks through it.
func startDNS(t *testing.T) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", l.Addr().String())
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	for _, srv := range []*dns.Server{{Listener: l, Handler: handler}, {PacketConn: pc, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return l.Addr().String()
}

// TestAutocertPebble obtains a certificate end to end from Pebble, Let's
// Encrypt's test ACME server, run in the test: the first TLS handshake
// for the listed name makes autocert order a certificate; Pebble checks
// the name with TLS-ALPN-01 against the server's own listener (its
// resolver says the name is 127.0.0.1); the handshake then completes with
// the issued certificate, which chains to Pebble's root, and wss:// works
// with it. The certificate is kept in the cache directory, and a server
// started again on that directory serves it without asking Pebble.
func TestAutocertPebble(t *testing.T) {
	const host = "duplex.test"
	ctx := testContext(t)
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")      // validate at once, not after up to 5 s
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0") // no nonces refused on purpose (the client's retries take seconds)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port

	logger, serverLog := log.New(io.Discard, "", 0), slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = log.New(os.Stderr, "pebble ", log.Lmicroseconds)
		serverLog = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, 0, port, false, startDNS(t), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	acmeSrv := httptest.NewTLSServer(front.Handler())
	defer acmeSrv.Close()
	acmeCA := filepath.Join(t.TempDir(), "acme-ca.pem")
	if err := os.WriteFile(acmeCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: acmeSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)

	cache := t.TempDir()
	cfg := server.Config{
		Log:                  serverLog,
		AutocertHosts:        []string{host},
		AutocertCacheDir:     cache,
		AutocertEmail:        "ops@duplex.test",
		AutocertDirectoryURL: acmeSrv.URL + wfe.DirectoryPath,
		AutocertDirectoryCA:  acmeCA,
	}
	ts := startServerOn(t, cfg, l)
	addr := l.Addr().String()

	// The first handshake waits for the order, the challenge and the
	// certificate.
	start := time.Now()
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second}, Config: &tls.Config{ServerName: host, RootCAs: roots}}
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("first handshake for %s: %v", host, err)
	}
	leaf := c.(*tls.Conn).ConnectionState().PeerCertificates[0]
	c.Close()
	t.Logf("certificate for %s issued by %q in %v", host, leaf.Issuer.CommonName, time.Since(start).Round(time.Millisecond))
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != host {
		t.Fatalf("certificate names %v, want [%s]", leaf.DNSNames, host)
	}

	// wss:// with the issued certificate, through the name.
	ws, _, err := websocket.Dial(ctx, "wss://"+host+"/echo", &websocket.DialOptions{
		TLSConfig: &tls.Config{RootCAs: roots},
		Proxy:     noProxy,
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	echoOnce(ctx, t, ws, "over an ACME certificate")
	ws.Close(websocket.StatusNormalClosure, "")

	// The cache holds it: a new server on the same directory serves the
	// same certificate with the ACME server gone.
	if _, err := os.Stat(filepath.Join(cache, host)); err != nil {
		t.Fatalf("cache: %v", err)
	}
	acmeSrv.Close()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	again := startServer(t, cfg)
	c, err = dialer.DialContext(ctx, "tcp", strings.TrimPrefix(again.http, "http://"))
	if err != nil {
		t.Fatalf("handshake with the cached certificate: %v", err)
	}
	defer c.Close()
	if got := c.(*tls.Conn).ConnectionState().PeerCertificates[0]; !got.Equal(leaf) {
		t.Fatalf("restarted server presented serial %v, want the cached %v", got.SerialNumber, leaf.SerialNumber)
	}
}
