package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestMetricsTLS: with --web-config-file (exporter-toolkit format: a
// certificate and a bcrypt basic-auth user), /metrics answers only over
// TLS and only to that user, and a real Prometheus scrapes it over TLS
// with the password (up == 1, mvlan_build_info seen). A bad file stops
// the agent at start naming it. About 10 s.
func TestMetricsTLS(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	dir := t.TempDir()
	ca := writeCert(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	writeFile(t, webConfig, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prom: %s\n",
		filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), hash))
	a := newAgent(t, sb)
	a.flags = []string{"--metrics-addr", metricsAddr, "--web-config-file", webConfig}
	a.start()

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c := nsClient(sb.Path)
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	for _, tc := range []struct {
		url, user, pass string
		code            int
	}{
		{"http://" + metricsAddr + "/metrics", "prom", "s3cret", http.StatusBadRequest}, // plain HTTP to a TLS port
		{"https://" + metricsAddr + "/metrics", "", "", http.StatusUnauthorized},
		{"https://" + metricsAddr + "/metrics", "prom", "wrong", http.StatusUnauthorized},
		{"https://" + metricsAddr + "/metrics", "prom", "s3cret", http.StatusOK},
	} {
		code, body := scrape(t, c, tc.url, tc.user, tc.pass)
		if code != tc.code || (code == http.StatusOK) != strings.Contains(body, "mvlan_build_info") {
			t.Errorf("GET %s as %q/%q: %d (mvlan_build_info: %v), want %d", tc.url, tc.user, tc.pass, code,
				strings.Contains(body, "mvlan_build_info"), tc.code)
		}
	}
	job := fmt.Sprintf("    scheme: https\n    tls_config:\n      ca_file: %s\n      server_name: 127.0.0.1\n"+
		"    basic_auth:\n      username: prom\n      password: s3cret\n", filepath.Join(dir, "ca.pem"))
	p := startPrometheusJob(t, sb, job)
	if r, err := p.tryQuery(`up{job="mvlan"} == 1 and on() mvlan_build_info`, 20*time.Second, nonEmpty); err != nil {
		t.Errorf("Prometheus over TLS with basic auth: %v %v\n%s", r, err, p.log)
	}

	a.stop()
	writeFile(t, webConfig, "tls_server_config:\n  cert_file: /nonexistent.pem\n")
	_, errs, code := runCmd(10*time.Second, "nsenter", "--net="+sb.Path, "--", mvlanBin, "--socket", a.socket, "agent",
		"--state-dir", a.stateDir(), "--bpffs", filepath.Join(a.dir, "bpf"), "--metrics-addr", metricsAddr, "--web-config-file", webConfig)
	if code != 1 || !strings.Contains(errs, webConfig) {
		t.Errorf("agent with a bad web config: exit %d, %q; want 1 naming %s", code, errs, webConfig)
	}
}

func scrape(t *testing.T, c *http.Client, url, user, pass string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// writeCert writes ca.pem (a CA) and cert.pem/key.pem (a certificate for
// 127.0.0.1 it signed) into dir and returns the CA.
func writeCert(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mvlan test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "ca.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	writeFile(t, filepath.Join(dir, "cert.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, filepath.Join(dir, "key.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	return ca
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
