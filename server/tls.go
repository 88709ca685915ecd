package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ErrNoTLSFiles is what ReloadTLS returns when the server has no
// certificate files to read again: TLS is off, or its certificates come
// from autocert, which renews them by itself.
var ErrNoTLSFiles = errors.New("no TLS certificate files to reload (Config.TLSCert and Config.TLSKey are not set)")

// tlsState is a server's TLS: the configuration of its listener, and the
// certificate read from files or the ACME manager behind it.
type tlsState struct {
	config *tls.Config

	// Certificate files (Config.TLSCert, Config.TLSKey).
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
	reloadMu          sync.Mutex // one ReloadTLS at a time

	// Automatic certificates (Config.AutocertHosts).
	manager    *autocert.Manager
	httpListen string       // Config.AutocertHTTPListen
	httpServer *http.Server // its HTTP-01 and redirect server, nil without one
}

// mode names the server's TLS for its start log line.
func (t *tlsState) mode() string {
	switch {
	case t == nil:
		return "off"
	case t.manager != nil:
		return "autocert"
	}
	return "files"
}

// setupTLS checks the TLS settings of cfg and prepares the listener's
// configuration: nil without TLS. A certificate file that cannot be read
// or parsed, or settings that do not go together, are an error naming the
// file or the setting.
func setupTLS(cfg *Config) (*tlsState, error) {
	files := cfg.TLSCert != "" || cfg.TLSKey != ""
	auto := len(cfg.AutocertHosts) > 0
	switch {
	case files && auto:
		return nil, errors.New("TLS: certificate files (TLSCert, TLSKey) and automatic certificates (AutocertHosts) exclude each other; choose one")
	case files && (cfg.TLSCert == "" || cfg.TLSKey == ""):
		return nil, errors.New("TLS: TLSCert and TLSKey go together: give both the certificate file and its private key file")
	case !auto && (cfg.AutocertCacheDir != "" || cfg.AutocertEmail != "" || cfg.AutocertHTTPListen != "" || cfg.AutocertDirectoryURL != "" || cfg.AutocertDirectoryCA != ""):
		return nil, errors.New("TLS: autocert settings are given but AutocertHosts lists no host name")
	case files:
		t := &tlsState{certFile: cfg.TLSCert, keyFile: cfg.TLSKey}
		cert, err := loadKeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, err
		}
		t.cert.Store(cert)
		t.config = &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"},
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return t.cert.Load(), nil
			},
		}
		return t, nil
	case auto:
		return setupAutocert(cfg)
	}
	return nil, nil
}

// loadKeyPair reads a certificate chain and its key, both PEM; an error
// names the file at fault.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

// certAttrs describes a certificate in log lines.
func certAttrs(c *x509.Certificate) []any {
	return []any{"subject", c.Subject.String(), "serial", c.SerialNumber.String(),
		"dns_names", c.DNSNames, "not_after", c.NotAfter.UTC().Format(time.RFC3339)}
}

// CheckAutocertHost checks a name of Config.AutocertHosts: a DNS name
// with a dot, not an IP address, a wildcard, a URL or a host:port, none
// of which autocert can get a certificate for. The server checks its
// names when it starts; a configuration layer can check each at its
// source.
func CheckAutocertHost(h string) error {
	switch {
	case h == "":
		return errors.New("an empty host name")
	case strings.Contains(h, "://") || strings.ContainsAny(h, ":/"):
		return fmt.Errorf("%q: want a bare host name such as chat.example.com, no scheme, port or path", h)
	case strings.Contains(h, "*"):
		return fmt.Errorf("%q: wildcard names need the DNS-01 challenge, which autocert does not do", h)
	case net.ParseIP(h) != nil:
		return fmt.Errorf("%q: an IP address, not a host name", h)
	case !strings.Contains(strings.Trim(h, "."), "."):
		return fmt.Errorf("%q: want a public host name, with a dot", h)
	}
	return nil
}

// setupAutocert prepares automatic certificates for cfg.AutocertHosts.
func setupAutocert(cfg *Config) (*tlsState, error) {
	for _, h := range cfg.AutocertHosts {
		if err := CheckAutocertHost(h); err != nil {
			return nil, fmt.Errorf("TLS: AutocertHosts: %w", err)
		}
	}
	if cfg.AutocertCacheDir == "" {
		return nil, errors.New("TLS: autocert needs a cache directory (AutocertCacheDir) to keep its account key and certificates across restarts; without one every start asks for new certificates, and the CA's rate limits soon refuse them")
	}
	if err := os.MkdirAll(cfg.AutocertCacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("TLS: autocert cache directory: %w", err)
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(cfg.AutocertCacheDir),
		HostPolicy: autocert.HostWhitelist(cfg.AutocertHosts...),
		Email:      cfg.AutocertEmail,
	}
	if cfg.AutocertDirectoryURL != "" || cfg.AutocertDirectoryCA != "" {
		m.Client = &acme.Client{DirectoryURL: cfg.AutocertDirectoryURL}
		if cfg.AutocertDirectoryCA != "" {
			pem, err := os.ReadFile(cfg.AutocertDirectoryCA)
			if err != nil {
				return nil, fmt.Errorf("TLS: autocert directory CA: %w", err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("TLS: autocert directory CA %s: no PEM certificate in it", cfg.AutocertDirectoryCA)
			}
			m.Client.HTTPClient = &http.Client{Transport: &http.Transport{
				Proxy:           http.ProxyFromEnvironment,
				TLSClientConfig: &tls.Config{RootCAs: roots},
			}}
		}
	}
	t := &tlsState{manager: m, httpListen: cfg.AutocertHTTPListen}
	t.config = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1", acme.ALPNProto}, // TLS-ALPN-01 on this listener
		GetCertificate: m.GetCertificate,
	}
	if cfg.AutocertHTTPListen != "" {
		t.httpServer = &http.Server{
			Handler:           m.HTTPHandler(nil), // HTTP-01, and a redirect to https:// for the rest
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
		}
	}
	return t, nil
}

// serveTLS wraps l in TLS and starts the HTTP-01 listener, when the server
// has them.
func (s *Server) serveTLS(l net.Listener) (net.Listener, error) {
	if s.tls == nil {
		return l, nil
	}
	if hs := s.tls.httpServer; hs != nil {
		hl, err := net.Listen("tcp", s.tls.httpListen)
		if err != nil {
			return nil, fmt.Errorf("TLS: autocert HTTP listener: %w", err)
		}
		s.cfg.Log.Info("autocert HTTP-01 listener", "addr", hl.Addr().String())
		go func() {
			if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.cfg.Log.Error("autocert HTTP-01 listener failed", "err", err)
			}
		}()
	}
	if c := s.tls.cert.Load(); c != nil {
		s.cfg.Log.Info("TLS certificate loaded", certAttrs(c.Leaf)...)
	}
	return tls.NewListener(l, s.tls.config), nil
}

// ReloadTLS reads the certificate files (Config.TLSCert, Config.TLSKey)
// again, so that a renewed certificate is served without a restart: TLS
// handshakes from now on present the new certificate, and connections
// already open are left as they are. When a file cannot be read or does
// not hold a matching certificate and key, the certificate in use stays
// and the error is returned; either way the outcome is logged. It returns
// ErrNoTLSFiles when there are no files (TLS off, or autocert). `duplex
// serve` calls it on SIGHUP.
func (s *Server) ReloadTLS() error {
	if s.tls == nil || s.tls.certFile == "" {
		s.cfg.Log.Warn("TLS certificate not reloaded", "err", ErrNoTLSFiles)
		return ErrNoTLSFiles
	}
	s.tls.reloadMu.Lock()
	defer s.tls.reloadMu.Unlock()
	cert, err := loadKeyPair(s.tls.certFile, s.tls.keyFile)
	if err != nil {
		s.cfg.Log.Error("TLS certificate not reloaded, the previous one stays in use", "err", err)
		return err
	}
	s.tls.cert.Store(cert)
	s.cfg.Log.Info("TLS certificate reloaded", certAttrs(cert.Leaf)...)
	return nil
}
