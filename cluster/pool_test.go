package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // endpoints joined by space; "" means an error
	}{
		{"etcd://10.0.0.1:2379", "10.0.0.1:2379"},
		{"etcd://a:1,[fd00::1]:2379", "a:1 [fd00::1]:2379"},
		{"http://10.0.0.1:2379", ""},
		{"etcd://", ""},
		{"etcd://10.0.0.1", ""},
		{"etcd://10.0.0.1:2379,", ""},
		{"etcd://u@h:1", ""},
	} {
		eps, err := ParseURL(tc.in)
		if got := strings.Join(eps, " "); got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ParseURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), tc.in) {
			t.Errorf("ParseURL(%q): error %q does not name the value", tc.in, err)
		}
	}
}

// TestDialTLSFlags: the TLS files go together and are named when bad.
func TestDialTLSFlags(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "etcd://h:1", Host: "x", CA: "/ca.pem"}, "go together"},
		{Config{URL: "etcd://h:1", Host: "x", Cert: "/c", Key: "/k"}, "go together"},
		{Config{URL: "etcd://h:1", Host: "x", CA: "/nonexistent/ca.pem", Cert: "/c", Key: "/k"}, "/nonexistent/ca.pem"},
		{Config{URL: "etcd://h:1"}, "host identity"},
		{Config{URL: "h:1", Host: "x"}, `"h:1"`},
	} {
		if c, err := Dial(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			if c != nil {
				c.Close()
			}
			t.Errorf("Dial(%+v) = %v; want an error with %q", tc.cfg, err, tc.want)
		}
	}
}

// host is one agent's view of a pool in the tests.
type host struct {
	c    *Client
	p    *Pool
	nw   Network
	file string
}

// newHost is host id with the pool cfg of network name, which it defines
// or joins (joinNet).
func newHost(t *testing.T, url, id, name string, cfg ipam.PoolConfig, bits int) *host {
	t.Helper()
	c, err := Dial(Config{URL: url, Host: id, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &host{c: c, nw: joinNet(t, c, name), file: filepath.Join(t.TempDir(), "pool.json")}
	if h.p, err = c.OpenPool(h.nw, cfg, bits, h.file); err != nil {
		t.Fatal(err)
	}
	return h
}

// testID is the ID the tests give network name: 64 hex digits, as every
// network ID.
func testID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// joinNet defines network name (ID testID(name)) in etcd as c's host, or
// joins it when another host did.
func joinNet(t *testing.T, c *Client, name string) Network {
	t.Helper()
	nw := Network{ID: testID(name), Name: name}
	ctx := context.Background()
	_, mine, err := c.Define(ctx, Definition{ID: nw.ID, Create: api.NetworkCreate{Name: name}})
	if err == nil && !mine {
		err = c.Join(ctx, name, nw.ID)
	}
	if err != nil {
		t.Fatalf("define or join network %s: %v", name, err)
	}
	return nw
}

// etcdBlocks reads who holds which block, as etcd has it.
func etcdBlocks(t *testing.T, c *Client, nw string, v6 bool) map[netip.Prefix]string {
	t.Helper()
	r, err := c.cli.Get(context.Background(), blocksDir(nw), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Prefix]string{}
	for _, kv := range r.Kvs {
		b, err := parseBlockKey(nw, string(kv.Key), v6)
		if err != nil {
			t.Fatal(err)
		}
		out[b] = string(kv.Value)
	}
	return out
}

// TestHostsShareAPool: three hosts allocate 300 addresses in parallel
// from one pool; none is handed out twice, each host's blocks are the
// ones etcd names it for, and exact addresses respect blocks and claims.
func TestHostsShareAPool(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.50.0.0/22")}
	var hosts []*host
	for i := range 3 {
		hosts = append(hosts, newHost(t, e.URL, fmt.Sprintf("host%d", i), "net1", cfg, 28))
	}
	var mu sync.Mutex
	seen := map[netip.Addr]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for i := range 300 {
		wg.Go(func() {
			h := hosts[i%3]
			owner := fmt.Sprintf("ep%d", i)
			a, err := h.p.Allocate(context.Background(), owner)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if o, dup := seen[a.Addr()]; dup {
				errs <- fmt.Errorf("%s handed out to %s and %s", a, o, owner)
			}
			seen[a.Addr()] = owner
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != 300 {
		t.Fatalf("%d distinct addresses, want 300", len(seen))
	}
	held := etcdBlocks(t, hosts[0].c, hosts[0].nw.ID, false)
	n := 0
	for _, h := range hosts {
		for _, b := range h.p.Blocks() {
			n++
			if held[b] != h.c.Host() {
				t.Errorf("%s holds %s, etcd says %q", h.c.Host(), b, held[b])
			}
		}
		for _, x := range h.p.Held() {
			if !contains(h.p.Blocks(), x.Addr) {
				t.Errorf("%s handed out %s outside its blocks %v", h.c.Host(), x.Addr, h.p.Blocks())
			}
		}
	}
	if n != len(held) || n < 300/16 {
		t.Errorf("hosts hold %d blocks, etcd has %d (want >= %d)", n, len(held), 300/16)
	}
	t.Logf("300 addresses in %d blocks; %d lease races lost", n, hosts[0].p.Conflicts+hosts[1].p.Conflicts+hosts[2].p.Conflicts)

	ctx := context.Background()
	theirs := hosts[1].p.Blocks()[0].Addr().Next().Next().Next()
	if _, err := hosts[0].p.Request(ctx, theirs, "x"); !errors.Is(err, ErrForeignBlock) || !strings.Contains(err.Error(), "host1") {
		t.Errorf("request of %s in host1's block: %v, want ErrForeignBlock naming host1", theirs, err)
	}
	free := netip.MustParseAddr("10.50.3.200") // in no block yet
	if _, err := hosts[2].p.Request(ctx, free, "exact"); err != nil {
		t.Fatal(err)
	}
	if _, err := hosts[0].p.Request(ctx, free, "again"); !errors.Is(err, ipam.ErrTaken) {
		t.Errorf("second claim of %s: %v, want taken", free, err)
	}
	if _, err := hosts[0].p.Request(ctx, netip.MustParseAddr("10.50.0.1"), "gw"); !errors.Is(err, ipam.ErrReserved) {
		t.Errorf("claim of the gateway: %v, want reserved", err)
	}
	// host0 leases every remaining block: it never hands out host2's claim.
	for {
		a, err := hosts[0].p.Allocate(ctx, "fill")
		if errors.Is(err, ipam.ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if a.Addr() == free || seen[a.Addr()] != "" {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a.Addr()] = "fill"
	}
	hosts[2].p.Release(free)
	if _, err := hosts[0].p.Request(ctx, free, "x"); !errors.Is(err, ipam.ErrTaken) {
		t.Errorf("%s released by host2 but not yet given back: %v, want taken", free, err)
	}
	hosts[2].p.Sync(ctx)
	if _, err := hosts[0].p.Request(ctx, free, "x"); err != nil {
		t.Errorf("%s given back by host2, asked for by host0 in whose block it is: %v", free, err)
	}
}

// TestEtcdStopped: with etcd frozen, a host goes on handing out the
// addresses of the blocks it holds, also after a restart from its file,
// and fails the rest naming the cluster; it recovers after SIGCONT.
func TestEtcdStopped(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.60.0.0/24")}
	h := newHost(t, e.URL, "hostA", "net2", cfg, 28)
	ctx := context.Background()
	first, err := h.p.Allocate(ctx, "ep0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	defer e.Cont()
	// 10.60.0.0/28 without .0 (network) and .1 (gateway): 14, ep0 has one.
	reopened, err := h.c.OpenPool(h.nw, cfg, 28, h.file)
	if err != nil {
		t.Fatal(err)
	}
	if err := reopened.Load([]ipam.Held{{Addr: first.Addr(), Owner: "ep0"}}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 14; i++ {
		t0 := time.Now()
		a, err := reopened.Allocate(ctx, fmt.Sprint("ep", i))
		if err != nil {
			t.Fatalf("address %d from the held block with etcd stopped: %v", i, err)
		}
		if a.Addr() == first.Addr() || !h.p.Blocks()[0].Contains(a.Addr()) || time.Since(t0) > 100*time.Millisecond {
			t.Fatalf("with etcd stopped got %s in %v (held block %v, ep0 has %s)", a, time.Since(t0), h.p.Blocks(), first)
		}
	}
	_, err = reopened.Allocate(ctx, "ep14")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), e.URL) {
		t.Fatalf("allocate beyond the held block with etcd stopped: %v; want ErrUnreachable naming %s", err, e.URL)
	}
	if _, err := reopened.Request(ctx, netip.MustParseAddr("10.60.0.100"), "x"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("claim with etcd stopped: %v, want ErrUnreachable", err)
	}
	if err := e.Cont(); err != nil {
		t.Fatal(err)
	}
	// The claim that timed out may reach etcd after all: it is this host's.
	if _, err := h.c.cli.Put(ctx, claimKey(h.nw.ID, netip.MustParseAddr("10.60.0.100")), "hostA"); err != nil {
		t.Fatal(err)
	}
	if _, err := reopened.Request(ctx, netip.MustParseAddr("10.60.0.100"), "x"); err != nil {
		t.Fatalf("claim of an address etcd already has as this host's: %v", err)
	}
	a, err := reopened.Allocate(ctx, "ep14")
	if err != nil || !netip.MustParsePrefix("10.60.0.16/28").Contains(a.Addr()) {
		t.Fatalf("after SIGCONT: %v %v, want an address of the next block", a, err)
	}
	// So may a lease: the block is taken back, not left held by no one.
	lost := netip.MustParsePrefix("10.60.0.32/28")
	if _, err := h.c.cli.Put(ctx, blockKey(h.nw.ID, lost), "hostA"); err != nil {
		t.Fatal(err)
	}
	for range 16 { // .16/28 has 15 free, the 16th comes from the lost block, not .48/28
		if _, err := reopened.Allocate(ctx, "more"); err != nil {
			t.Fatal(err)
		}
	}
	if got := reopened.Blocks(); !slices.Contains(got, lost) || len(got) != 3 {
		t.Fatalf("blocks %v; want .0/28, .16/28 and the lost %s taken back", got, lost)
	}
}
