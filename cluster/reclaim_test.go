package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// liveHost is a host with liveness on (Config.Dir), its Live loop
// running until stop.
type liveHost struct {
	host
	dir  string
	stop context.CancelFunc
}

func newLiveHost(t *testing.T, url, id string, cfg ipam.PoolConfig, ttl, grace time.Duration, dir string) *liveHost {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c, err := Dial(Config{URL: url, Host: id, Timeout: 2 * time.Second, Dir: dir, TTL: ttl, Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &liveHost{host: host{c: c, nw: joinNet(t, c, "rnet"), file: filepath.Join(dir, "pool.json")}, dir: dir}
	if h.p, err = c.OpenPool(h.nw, cfg, 28, h.file); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	t.Cleanup(cancel)
	go c.Live(ctx)
	return h
}

// cutOff opens h's pool file again through a client of h's host and
// state directory that cannot reach etcd (a restart while etcd is away),
// with held loaded.
func (h *liveHost) cutOff(t *testing.T, cfg ipam.PoolConfig, ttl, grace time.Duration, held []ipam.Held) *Pool {
	t.Helper()
	cut, err := Dial(Config{URL: "etcd://127.0.0.1:1", Host: h.c.host, Timeout: 100 * time.Millisecond, Dir: h.dir, TTL: ttl, Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cut.Close() })
	p, err := cut.OpenPool(h.nw, cfg, 28, h.file)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Load(held); err != nil {
		t.Fatal(err)
	}
	return p
}

// reclaimSilent has h reclaim, no address answering the probe, until a
// block is reclaimed (failing after limit); it returns how long that took.
func (h *liveHost) reclaimSilent(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	silent := func(context.Context, []netip.Addr) ([]netip.Addr, error) { return nil, nil }
	for t0 := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		n, err := h.p.Reclaim(context.Background(), silent)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return time.Since(t0)
		}
		if time.Since(t0) > limit {
			t.Fatal("the silent host's block was never reclaimed")
		}
	}
}

// TestReclaim: host C holds two blocks and dies (its liveness loop
// stops). Before the grace nothing is reclaimed; after it, the block
// with an address that answers the probe stays C's and the other goes
// back to the pool, where A's next lease takes it. C, cut off from etcd,
// stops handing out its blocks' addresses once its fence passes, also
// after a restart; back, it drops the reclaimed block, keeps the address
// its endpoint has there held, and never hands out that block again.
func TestReclaim(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.70.0.0/26")}
	const ttl, grace = 2 * time.Second, 2 * time.Second
	a := newLiveHost(t, e.URL, "hostA", cfg, ttl, grace, "")
	c := newLiveHost(t, e.URL, "hostC", cfg, ttl, grace, "")
	ctx := context.Background()
	var cAddrs []netip.Addr
	for i := range 20 { // .0/28 (14 usable) and .16/28
		pf, err := c.p.Allocate(ctx, "c"+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		cAddrs = append(cAddrs, pf.Addr())
	}
	if got := c.p.Blocks(); len(got) != 2 {
		t.Fatalf("hostC holds %v, want 2 blocks", got)
	}
	c.stop()
	var probed []netip.Addr
	answer := netip.MustParseAddr("10.70.0.20") // in C's second block
	probe := func(_ context.Context, addrs []netip.Addr) ([]netip.Addr, error) {
		probed = append(probed, addrs...)
		if slices.Contains(addrs, answer) {
			return []netip.Addr{answer}, nil
		}
		return nil, nil
	}
	t0 := time.Now()
	for time.Since(t0) < ttl+grace+3*time.Second {
		n, err := a.p.Reclaim(ctx, probe)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	held := etcdBlocks(t, a.c, a.nw.ID, false)
	// The lease may have been renewed up to TTL/3 before the stop.
	if d := time.Since(t0); d < earliest(ttl, grace) || held[netip.MustParsePrefix("10.70.0.0/28")] != "" {
		t.Fatalf("after %v (TTL %v + grace %v): etcd blocks %v; want .0/28 reclaimed, not before %v", d, ttl, grace, held, earliest(ttl, grace))
	}
	if held[netip.MustParsePrefix("10.70.0.16/28")] != "hostC" {
		t.Fatalf("the block with an answering address was reclaimed: %v", held)
	}
	if len(probed) < 28 || slices.Contains(probed, netip.MustParseAddr("10.70.0.1")) {
		t.Errorf("probed %v: want the 28 usable addresses of both blocks, not the gateway", probed)
	}
	t.Logf("reclaimed after %v", time.Since(t0))
	for range 2 { // the kept block still answers: counted (and logged) once
		if _, err := a.p.Reclaim(ctx, probe); err != nil {
			t.Fatal(err)
		}
	}
	var kept dto.Metric
	if err := a.c.m.refused.WithLabelValues("block").Write(&kept); err != nil || kept.GetCounter().GetValue() != 1 {
		t.Errorf("mvlan_cluster_reclaim_refused_total{kind=block} = %v (%v) after three reclaims that kept one block; want 1", kept.GetCounter().GetValue(), err)
	}
	pf, err := a.p.Allocate(ctx, "a0") // the lowest free block again
	if err != nil || !netip.MustParsePrefix("10.70.0.0/28").Contains(pf.Addr()) {
		t.Fatalf("hostA after the reclaim: %v %v, want an address of .0/28", pf, err)
	}

	// C, cut off: its fence (from its file) has passed.
	cp := c.cutOff(t, cfg, ttl, grace, held20(cAddrs))
	if _, err := cp.Allocate(ctx, "late"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("hostC cut off past its fence allocated: %v; want ErrUnreachable", err)
	}
	// C back: the reclaimed block is dropped, its endpoint's address
	// there stays held, the kept block is used.
	c2 := newLiveHost(t, e.URL, "hostC", cfg, ttl, grace, c.dir)
	if err := c2.p.Load(held20(cAddrs)); err != nil {
		t.Fatal(err)
	}
	pf, err = c2.p.Allocate(ctx, "back")
	if err != nil || !netip.MustParsePrefix("10.70.0.16/28").Contains(pf.Addr()) {
		t.Fatalf("hostC back: %v %v, want an address of its kept block .16/28", pf, err)
	}
	if got := c2.p.Blocks(); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.70.0.16/28")}) {
		t.Errorf("hostC back holds %v, want only .16/28", got)
	}
	if o, ok := c2.p.Owner(cAddrs[0]); !ok || o != "ca" {
		t.Errorf("hostC's endpoint ca in the lost block: owner %q %v, want still held", o, ok)
	}
}

func held20(addrs []netip.Addr) []ipam.Held {
	var out []ipam.Held
	for i, a := range addrs {
		out = append(out, ipam.Held{Addr: a, Owner: "c" + string(rune('a'+i))})
	}
	return out
}

// TestForgetDead: host C joins network fnet, which A defined, leases a
// block and dies. While C holds its block, or before the grace, it stays
// a member; once its block is reclaimed it is forgotten, and A, the last
// live member, removes the definition when it leaves.
func TestForgetDead(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.71.0.0/24")}
	const ttl, grace = 2 * time.Second, 2 * time.Second
	a := newLiveHost(t, e.URL, "hostA", cfg, ttl, grace, "")
	c := newLiveHost(t, e.URL, "hostC", cfg, ttl, grace, "")
	ctx := context.Background()
	fnet := Network{ID: testID("fnet"), Name: "fnet"}
	if _, mine, err := a.c.Define(ctx, Definition{ID: fnet.ID, Create: api.NetworkCreate{Name: "fnet", Subnets: []string{"10.71.0.0/24"}}}); err != nil || !mine {
		t.Fatalf("define: %v %v", mine, err)
	}
	if err := c.c.Join(ctx, "fnet", fnet.ID); err != nil {
		t.Fatal(err)
	}
	cp, err := c.c.OpenPool(fnet, cfg, 28, filepath.Join(c.dir, "fid.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Allocate(ctx, "c0"); err != nil {
		t.Fatal(err)
	}
	ap, err := a.c.OpenPool(fnet, cfg, 28, filepath.Join(a.dir, "fid.json"))
	if err != nil {
		t.Fatal(err)
	}
	c.stop()
	silent := func(context.Context, []netip.Addr) ([]netip.Addr, error) { return nil, nil }
	t0 := time.Now()
	forgotten := 0
	for time.Since(t0) < ttl+grace+5*time.Second && forgotten == 0 {
		n, err := a.c.ForgetDead(ctx, "fnet", fnet.ID)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 && len(etcdBlocks(t, a.c, fnet.ID, false)) > 0 {
			t.Fatal("hostC forgotten while it still holds a block")
		}
		forgotten = n
		if _, err := ap.Reclaim(ctx, silent); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if forgotten != 1 || time.Since(t0) < earliest(ttl, grace) {
		t.Fatalf("hostC forgotten: %d after %v; want 1, not before %v", forgotten, time.Since(t0), earliest(ttl, grace))
	}
	gone, err := a.c.Leave(ctx, "fnet", fnet.ID)
	if err != nil || !gone {
		t.Fatalf("the last live member left: definition removed %v, %v; want removed", gone, err)
	}
}

// TestForgetDeadOtherID: a dead host's membership of a network of the
// same name made before (its value another ID) is not ended by
// ForgetDead of this one; its own is.
func TestForgetDeadOtherID(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.72.0.0/24")}
	const ttl, grace = 2 * time.Second, 2 * time.Second
	a := newLiveHost(t, e.URL, "hostA", cfg, ttl, grace, "")
	ctx := context.Background()
	fnet := Network{ID: testID("fnet"), Name: "fnet"}
	if _, mine, err := a.c.Define(ctx, Definition{ID: fnet.ID, Create: api.NetworkCreate{Name: "fnet", Subnets: []string{"10.72.0.0/24"}}}); err != nil || !mine {
		t.Fatalf("define: %v %v", mine, err)
	}
	forget := func(id string) int { // ForgetDead until a while past the grace of a never-seen host
		if _, err := a.c.cli.Put(ctx, memberKey("fnet", "hostX"), id); err != nil {
			t.Fatal(err)
		}
		n := 0
		for t0 := time.Now(); time.Since(t0) < grace+3*time.Second && n == 0; time.Sleep(200 * time.Millisecond) {
			var err error
			if n, err = a.c.ForgetDead(ctx, "fnet", fnet.ID); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	if n := forget(testID("fnet-before")); n != 0 {
		t.Fatalf("ForgetDead of fnet ended %d membership of the fnet made before; want none", n)
	}
	if n := forget(fnet.ID); n != 1 {
		t.Fatalf("ForgetDead of fnet ended %d memberships of the dead hostX; want 1", n)
	}
}

// earliest is the soonest a host stopped now can be reclaimed: its lease
// was renewed up to TTL/3 before, expires TTL after that, and the grace
// runs from then.
func earliest(ttl, grace time.Duration) time.Duration { return ttl - ttl/3 + grace }

// TestLostBlockLeasedAgain: host C's block is reclaimed while it is away,
// and nobody leases it meanwhile; back, C leases it again for its next
// endpoint. The addresses C's endpoints kept there are never handed out a
// second time, and stay theirs.
func TestLostBlockLeasedAgain(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.71.0.0/28")} // one block
	const ttl, grace = 2 * time.Second, 2 * time.Second
	a := newLiveHost(t, e.URL, "hostA", cfg, ttl, grace, "")
	c := newLiveHost(t, e.URL, "hostC", cfg, ttl, grace, "")
	ctx := context.Background()
	var cAddrs []netip.Addr
	for i := range 3 {
		pf, err := c.p.Allocate(ctx, "c"+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		cAddrs = append(cAddrs, pf.Addr())
	}
	c.stop()
	a.reclaimSilent(t, ttl+grace+5*time.Second)
	c2 := newLiveHost(t, e.URL, "hostC", cfg, ttl, grace, c.dir)
	if err := c2.p.Load(held20(cAddrs)); err != nil {
		t.Fatal(err)
	}
	var got []netip.Addr
	for i := range 10 {
		pf, err := c2.p.Allocate(ctx, fmt.Sprintf("new%d", i))
		if err != nil {
			t.Fatalf("allocation %d after the block came back: %v", i, err)
		}
		if slices.Contains(cAddrs, pf.Addr()) || slices.Contains(got, pf.Addr()) {
			t.Fatalf("hostC handed out %s again: its endpoints hold %v, new ones %v", pf.Addr(), cAddrs, got)
		}
		got = append(got, pf.Addr())
	}
	if b := c2.p.Blocks(); !slices.Equal(b, []netip.Prefix{cfg.Subnet}) {
		t.Fatalf("hostC holds %v; want %v leased again", b, cfg.Subnet)
	}
	for i, addr := range cAddrs {
		if o, ok := c2.p.Owner(addr); !ok || o != "c"+string(rune('a'+i)) {
			t.Errorf("%s: owner %q %v; want still its endpoint's", addr, o, ok)
		}
	}
	if _, err := c2.p.Allocate(ctx, "full"); !errors.Is(err, ipam.ErrExhausted) {
		t.Errorf("an allocation with the block's 13 addresses held: %v; want exhausted", err)
	}
}

// TestReclaimWaitsTheLongerGrace: host C runs with a longer grace (6 s)
// than host A (2 s), so C, cut off, hands out its block's addresses until
// TTL + 3 s past its last renewal. A reclaims C's block no sooner than C's
// grace after C's key expired: the longer of the two, which C publishes
// with its epoch.
func TestReclaimWaitsTheLongerGrace(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.72.0.0/28")}
	const ttl, short, long = 2 * time.Second, 2 * time.Second, 6 * time.Second
	a := newLiveHost(t, e.URL, "hostA", cfg, ttl, short, "")
	c := newLiveHost(t, e.URL, "hostC", cfg, ttl, long, "")
	ctx := context.Background()
	if _, err := c.p.Allocate(ctx, "c0"); err != nil {
		t.Fatal(err)
	}
	c.stop()
	if d := a.reclaimSilent(t, ttl+long+5*time.Second); d < earliest(ttl, long) {
		t.Errorf("hostA (grace %v) reclaimed hostC's block (grace %v) %v after it stopped; want not before %v", short, long, d, earliest(ttl, long))
	} else {
		t.Logf("reclaimed after %v", d)
	}
}

// fenceTTL is the liveness TTL and grace of the fence tests' hosts.
const fenceTTL = 10 * time.Second

// stoppedLiveHost is host id with a pool of subnet (liveness TTL and
// grace fenceTTL) that allocated one address, then stopped (its Live
// loop ended; its fence is kept in its state directory).
func stoppedLiveHost(t *testing.T, url, id, subnet string) (*liveHost, ipam.PoolConfig) {
	t.Helper()
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix(subnet)}
	c := newLiveHost(t, url, id, cfg, fenceTTL, fenceTTL, "")
	if _, err := c.p.Allocate(context.Background(), "c0"); err != nil {
		t.Fatal(err)
	}
	c.stop()
	return c, cfg
}

// TestClonedStateHasNoFence: a host cut off from etcd hands out its
// blocks' addresses until its fence (alive.json), also after a restart;
// the same state on another machine (its install file names another
// machine-id: a copied disk) registers as a new installation and has
// earned no fence: it hands out nothing before etcd confirms its blocks.
func TestClonedStateHasNoFence(t *testing.T) {
	const ttl, grace = fenceTTL, fenceTTL
	c, cfg := stoppedLiveHost(t, nstest.StartEtcd(t).URL, "hostC", "10.73.0.0/28")
	ctx := context.Background()
	cutOff := func() error {
		_, err := c.cutOff(t, cfg, ttl, grace, nil).Allocate(ctx, "late")
		return err
	}
	if err := cutOff(); err != nil {
		t.Fatalf("hostC restarted cut off, within its fence: %v; want an address of its block", err)
	}
	file := filepath.Join(c.dir, InstallFile)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cloned := strings.Replace(string(data), `"machine":"`, `"machine":"another-`, 1)
	if err := os.WriteFile(file, []byte(cloned), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, start := range []string{"first", "second"} { // the second finds the install file its own
		if err := cutOff(); !errors.Is(err, ErrUnreachable) {
			t.Errorf("the state on another machine, cut off, %s start: %v; want ErrUnreachable, no address", start, err)
		}
	}
}

// TestTornFence: an alive.json that a power loss tore (empty, or cut
// short), or one later than a renewal could make it now (the clock went
// back), does not keep the host from starting: it has no fence then, so
// cut off from etcd it hands out nothing of its blocks, and once etcd
// answers it allocates again (and writes the fence anew).
func TestTornFence(t *testing.T) {
	const ttl, grace = fenceTTL, fenceTTL
	e := nstest.StartEtcd(t)
	c, cfg := stoppedLiveHost(t, e.URL, "hostT", "10.74.0.0/28")
	ctx := context.Background()
	file := filepath.Join(c.dir, "alive.json")
	// Torn, or later than any renewal could make it now (the clock went
	// back since it was written): no fence.
	future := fmt.Sprintf(`{"until":%q}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	for _, torn := range []string{"", `{"until":"20`, future} {
		if err := os.WriteFile(file, []byte(torn), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c.cutOff(t, cfg, ttl, grace, nil).Allocate(ctx, "late"); !errors.Is(err, ErrUnreachable) {
			t.Errorf("alive.json %q, cut off: %v; want ErrUnreachable (no fence), no address", torn, err)
		}
	}
	again := newLiveHost(t, e.URL, "hostT", cfg, ttl, grace, c.dir)
	if _, err := again.p.Allocate(ctx, "c1"); err != nil {
		t.Errorf("alive.json torn, etcd answering: %v; want an address", err)
	}
}

// TestHostKeyGone: host C's liveness key disappears from etcd (an
// operator deletes it) while its lease is still renewed: the others would
// take C for dead and reclaim its block after the grace while C's fence
// stays up, both handing out its addresses. C's next renewal finds its key
// gone and takes a new lease with its key: A reclaims nothing, for longer
// than TTL + grace.
func TestHostKeyGone(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.72.0.0/28")} // one block
	const ttl, grace = 2 * time.Second, 2 * time.Second
	a := newLiveHost(t, e.URL, "hostA", cfg, ttl, grace, "")
	c := newLiveHost(t, e.URL, "hostC", cfg, ttl, grace, "")
	ctx := context.Background()
	if _, err := c.p.Allocate(ctx, "c0"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.c.cli.Delete(ctx, hostKey("hostC")); err != nil {
		t.Fatal(err)
	}
	silent := func(context.Context, []netip.Addr) ([]netip.Addr, error) { return nil, nil }
	for t0 := time.Now(); time.Since(t0) < ttl+grace+2*time.Second; time.Sleep(200 * time.Millisecond) {
		n, err := a.p.Reclaim(ctx, silent)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			t.Fatalf("hostA reclaimed hostC's block %v after C's key was deleted, while C is alive", time.Since(t0).Round(time.Millisecond))
		}
	}
	r, err := c.c.cli.Get(ctx, hostKey("hostC"))
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("hostC's liveness key: %v %v; want it back", r, err)
	}
	if _, err := c.p.Allocate(ctx, "c1"); err != nil {
		t.Errorf("hostC after taking its key back: %v", err)
	}
}

// TestHeldBlockGoneFromEtcd: a block this host holds, all its addresses
// given out, vanishes from etcd (an operator deletes its key). An
// allocation needing a new block does not lease that one again as if it
// were new (its space, and who holds its addresses, would start over and
// hand them out a second time): it puts the key back, keeping the space,
// and the range is exhausted, for another host too.
func TestHeldBlockGoneFromEtcd(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.73.0.0/28")} // one block
	h := newHost(t, e.URL, "hostA", "gnet", cfg, 28)
	ctx := context.Background()
	var got []netip.Addr
	for i := range 13 {
		pf, err := h.p.Allocate(ctx, fmt.Sprintf("e%d", i))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, pf.Addr())
	}
	if _, err := h.c.cli.Delete(ctx, blockKey(h.nw.ID, cfg.Subnet)); err != nil {
		t.Fatal(err)
	}
	pf, err := h.p.Allocate(ctx, "more")
	if err == nil && slices.Contains(got, pf.Addr()) {
		t.Fatalf("hostA handed out %s a second time after its block's key was deleted", pf.Addr())
	}
	if !errors.Is(err, ipam.ErrExhausted) {
		t.Errorf("an allocation with the one block's addresses all held: %v %v; want exhausted", pf, err)
	}
	if o, ok := h.p.Owner(got[0]); !ok || o != "e0" {
		t.Errorf("%s: owner %q %v; want still e0's", got[0], o, ok)
	}
	if held := etcdBlocks(t, h.c, h.nw.ID, false); held[cfg.Subnet] != "hostA" {
		t.Errorf("etcd blocks %v; want %s put back as hostA's", held, cfg.Subnet)
	}
	b := newHost(t, e.URL, "hostB", "gnet", cfg, 28)
	if pf, err := b.p.Allocate(ctx, "b0"); !errors.Is(err, ipam.ErrExhausted) {
		t.Errorf("hostB's allocation: %v %v; want exhausted (the block is hostA's)", pf, err)
	}
}

// TestNeverConfirmed: a host whose agent never reached etcd (here nothing
// listens at its URL) has no fence: an allocation needing a block says so,
// naming the URL and why the renewal failed, not a deadline in year 0.
func TestNeverConfirmed(t *testing.T) {
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.74.0.0/28")}
	c, err := Dial(Config{URL: "etcd://127.0.0.1:1", Host: "hostN", Timeout: 200 * time.Millisecond, Dir: t.TempDir(), TTL: 2 * time.Second, Grace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p, err := c.OpenPool(Network{ID: testID("nnet"), Name: "nnet"}, cfg, 28, filepath.Join(t.TempDir(), "pool.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Allocate(context.Background(), "e0")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "not confirmed this host's liveness yet") ||
		!strings.Contains(err.Error(), "the renewal just tried") || strings.Contains(err.Error(), "0000-") {
		t.Errorf("allocate on a host never confirmed: %v; want ErrUnreachable naming the URL, no lease yet, and the renewal's failure", err)
	}
}

// TestVerifyAdoptsLandedLease: a block lease that timed out here and
// reached etcd after all (etcd has the block as this host's, the host does
// not hold it) is taken up by the next check of the blocks (Space.Verify,
// as a new lease or a join runs it), not left unused by every host: an
// exact address in it is this host's to hand out.
func TestVerifyAdoptsLandedLease(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.75.0.0/27")} // two blocks
	h := newHost(t, e.URL, "hostA", "vnet", cfg, 28)
	ctx := context.Background()
	if _, err := h.p.Allocate(ctx, "a0"); err != nil { // .0/28
		t.Fatal(err)
	}
	landed := netip.MustParsePrefix("10.75.0.16/28")
	if _, err := h.c.cli.Put(ctx, blockKey(h.nw.ID, landed), "hostA"); err != nil {
		t.Fatal(err)
	}
	if err := h.p.verify(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.p.Blocks(); !slices.Contains(got, landed) {
		t.Fatalf("hostA holds %v after the check; want %s (etcd has it as hostA's) taken up", got, landed)
	}
	if _, err := h.p.Request(ctx, netip.MustParseAddr("10.75.0.20"), "a1"); err != nil {
		t.Errorf("an exact address of the adopted block: %v", err)
	}
}
