package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/duplex-ws/duplex/server"
)

// The checks and helpers of the authentication settings (auth-*,
// api-keys); the settings themselves are in serveSettings.

// applyAPIKeys sets the named API keys (each checked by checkAPIKey).
func applyAPIKeys(c *serveConfig, specs []string) {
	c.Server.APIKeys = nil
	for _, spec := range specs {
		k, _ := server.ParseAPIKey(spec)
		c.Server.APIKeys = append(c.Server.APIKeys, k)
	}
}

// checkAPIKey checks one api-keys item; its errors never show the secret.
func checkAPIKey(s string) error {
	if _, err := server.ParseAPIKey(s); err != nil {
		return fmt.Errorf("%v; want name=NAME,key=SECRET[,ops=OP|OP][,channels=PATTERN|PATTERN]", err)
	}
	return nil
}

func checkHMACSecret(s string) error {
	if s != "" && len(s) < 32 {
		return fmt.Errorf("want 32 bytes or more (HS256), got %d", len(s))
	}
	return nil
}

func checkPublicKeyFile(s string) error {
	if _, err := server.ReadPublicKeys(s); err != nil {
		return fmt.Errorf("want a PEM file of RSA or ECDSA P-256 public keys: %v", err)
	}
	return nil
}

func checkJWKSURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("want an http:// or https:// URL")
	}
	return nil
}

// leewaySetting declares a duration of 0 or more.
func leewaySetting(name string, def time.Duration, help string, apply func(*serveConfig, time.Duration)) *setting {
	parse := func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return 0, errors.New("want a duration of 0 or more, such as 0s or 30s")
		}
		return d, nil
	}
	return scalar(name, "duration", def, parse, func(d time.Duration) *yaml.Node { return strNode(d.String()) }, help, apply)
}
