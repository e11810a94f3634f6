package cluster

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// TestTLSEtcd: against an etcd that requires client certificates of its
// CA (made by the test), a host with --cluster-ca/-cert/-key leases a
// block and claims an address; one without TLS, and one whose client
// certificate is of another CA, fail naming the cluster.
func TestTLSEtcd(t *testing.T) {
	e := nstest.StartEtcdTLS(t)
	other := nstest.MakeEtcdTLS(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.90.0.0/24")}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		conf Config
		ok   bool
	}{
		{"tls", Config{CA: e.TLS.CA, Cert: e.TLS.ClientCert, Key: e.TLS.ClientKey}, true},
		{"plain", Config{}, false},
		{"other CA's client", Config{CA: e.TLS.CA, Cert: other.ClientCert, Key: other.ClientKey}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := tc.conf
			conf.URL, conf.Host, conf.Timeout = e.URL, "h-"+tc.name, time.Second
			c, err := Dial(conf)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			nw := Network{ID: testID("tnet"), Name: "tnet"}
			if tc.ok {
				nw = joinNet(t, c, "tnet")
			}
			p, err := c.OpenPool(nw, cfg, 28, filepath.Join(t.TempDir(), "pool.json"))
			if err != nil {
				t.Fatal(err)
			}
			a, err := p.Allocate(ctx, "ep")
			if !tc.ok {
				if !errors.Is(err, ErrUnreachable) {
					t.Fatalf("allocate: %v %v, want ErrUnreachable", a, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Request(ctx, netip.MustParseAddr("10.90.0.200"), "exact"); err != nil {
				t.Fatalf("claim over TLS: %v", err)
			}
			t.Logf("over TLS: %s and 10.90.0.200", a)
		})
	}
}
