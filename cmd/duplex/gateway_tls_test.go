package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// tlsEchoTarget starts a TLS echo server on 127.0.0.1 with a self-signed
// certificate, and returns its address and the certificate in PEM.
func tlsEchoTarget(t *testing.T) (addr string, caPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "duplex bridge test target"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestBridgeCommandTLSTarget: `duplex bridge --to tls://… --ca FILE`
// reaches a TLS target whose certificate FILE signs, bytes both ways;
// without --ca the certificate is not trusted and the client gets 1014.
func TestBridgeCommandTLSTarget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target, caPEM := tlsEchoTarget(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd, addr := startGateway(t, "duplex bridge listening", "bridge", "--to", "tls://"+target, "--ca", caFile)
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageBinary, []byte("over tls")); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < len("over tls") {
		typ, p, err := c.Read(ctx)
		if err != nil || typ != websocket.MessageBinary {
			t.Fatalf("read: %v %q, %v", typ, p, err)
		}
		got = append(got, p...)
	}
	if string(got) != "over tls" {
		t.Fatalf("got %q, want %q", got, "over tls")
	}
	c.Close(websocket.StatusNormalClosure, "")
	stopGateway(t, cmd)

	// The system's roots do not trust the target.
	cmd, addr = startGateway(t, "duplex bridge listening", "bridge", "--to", "tls://"+target)
	c2, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseNow()
	_, _, err = c2.Read(ctx)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusBadGateway || ce.Reason != "cannot reach the target" {
		t.Fatalf("without --ca: %v, want 1014 \"cannot reach the target\"", err)
	}
	stopGateway(t, cmd)
}
