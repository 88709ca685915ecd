package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// fileChecks are the checks of the settings that name files: each reads
// its file at start, as the server would later, so that a missing,
// unreadable or invalid one stops duplex serve with status 2 and a line
// naming the setting, rather than failing once serving. Each returns the
// setting to report and what is wanted, or "" when all is well.
var fileChecks = []func(c *serveConfig) (setting, want string){
	checkTLSFiles,
	checkAutocertCacheDir,
	checkAutocertDirectoryCA,
}

// checkFiles applies fileChecks, after the rules between settings (which
// make sure that tls-cert and tls-key come together, and autocert
// settings with autocert-host).
func (c *serveConfig) checkFiles(fail func(name, want string) error) error {
	for _, check := range fileChecks {
		if name, want := check(c); name != "" {
			return fail(name, want)
		}
	}
	return nil
}

// checkTLSFiles reads the certificate chain and its key, and checks that
// they go together.
func checkTLSFiles(c *serveConfig) (string, string) {
	if c.Server.TLSCert == "" || c.Server.TLSKey == "" {
		return "", ""
	}
	certPEM, err := os.ReadFile(c.Server.TLSCert)
	if err != nil {
		return "tls-cert", "want a readable PEM certificate file: " + fileError(err)
	}
	keyPEM, err := os.ReadFile(c.Server.TLSKey)
	if err != nil {
		return "tls-key", "want a readable PEM private key file: " + fileError(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return "tls-cert", fmt.Sprintf("want a PEM certificate chain whose private key is in tls-key (%s): %v", c.Server.TLSKey, err)
	}
	return "", ""
}

// checkAutocertCacheDir makes the cache directory as the server would
// (0700), and checks that it is one.
func checkAutocertCacheDir(c *serveConfig) (string, string) {
	dir := c.Server.AutocertCacheDir
	if len(c.Server.AutocertHosts) == 0 || dir == "" {
		return "", ""
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "autocert-cache-dir", "want a directory that exists or can be made: " + fileError(err)
	}
	f, err := os.CreateTemp(dir, ".duplex-check-*")
	if err != nil {
		return "autocert-cache-dir", "want a directory this process can write to: " + fileError(err)
	}
	f.Close()
	os.Remove(f.Name())
	return "", ""
}

// checkAutocertDirectoryCA reads the ACME directory's root certificates.
func checkAutocertDirectoryCA(c *serveConfig) (string, string) {
	file := c.Server.AutocertDirectoryCA
	if len(c.Server.AutocertHosts) == 0 || file == "" {
		return "", ""
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return "autocert-directory-ca", "want a readable PEM file of root certificates: " + fileError(err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return "autocert-directory-ca", "want a PEM file of root certificates: no certificate in it"
	}
	return "", ""
}

// fileError is what went wrong with a file, without its name (the error
// line shows it as the setting's value).
func fileError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}
