package nstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// EtcdTLS are the PEM files of a TLS etcd made by a test: a CA, the
// server's certificate for 127.0.0.1, and a client certificate of the CA.
type EtcdTLS struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// MakeEtcdTLS generates a CA and, signed by it, a server certificate for
// 127.0.0.1 (and ips) and a client certificate, in a temporary directory.
func MakeEtcdTLS(t testing.TB, ips ...net.IP) *EtcdTLS {
	t.Helper()
	dir := t.TempDir()
	f := &EtcdTLS{CA: filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem")}
	caKey, ca, err := makeCert(nil, nil, &x509.Certificate{Subject: pkix.Name{CommonName: "mvlan test CA"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, f.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tmpl      *x509.Certificate
		cert, key string
	}{
		{&x509.Certificate{Subject: pkix.Name{CommonName: "etcd"}, IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...), DNSNames: []string{"localhost"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}, f.ServerCert, f.ServerKey},
		{&x509.Certificate{Subject: pkix.Name{CommonName: "mvlan"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, f.ClientCert, f.ClientKey},
	} {
		c.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if _, _, err := makeCert(ca, caKey, c.tmpl, c.cert, c.key); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// makeCert signs tmpl with parent's key (self-signed when parent is nil)
// and writes the certificate to certFile and, unless keyFile is "", its
// key; the CA's key stays in memory.
func makeCert(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate, certFile, keyFile string) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, nil, err
	}
	if keyFile != "" {
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
			return nil, nil, err
		}
	}
	return key, cert, nil
}

// clientConfig is a TLS configuration with the client certificate that
// trusts only the test's CA.
func (f *EtcdTLS) clientConfig() (*tls.Config, error) {
	pemCA, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemCA) {
		return nil, errors.New("no CA certificate")
	}
	cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
