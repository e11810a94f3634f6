package cluster

import (
	"context"
	"net/netip"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// TestReopenChecksBlocks: a leave that etcd took only in part gave host
// A's block back, and B leased it, before A's network rm was refused and
// its pool reopened. A hands out nothing of that block: not from the
// block without I/O, and its next Reserve checks the blocks against etcd
// first, so the address it then gets is not in B's block.
func TestReopenChecksBlocks(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.88.0.0/24")}
	ctx := context.Background()
	a := newHost(t, e.URL, "hostA", "ro", cfg, 28)
	b := newHost(t, e.URL, "hostB", "ro", cfg, 28)
	first, err := a.p.Allocate(ctx, "a0")
	if err != nil {
		t.Fatal(err)
	}
	a.p.Close()
	if err := a.c.deleteMine(ctx, blocksDir(a.nw.ID)); err != nil { // the leave's first step
		t.Fatal(err)
	}
	theirs, err := b.p.Allocate(ctx, "b0")
	if err != nil || b.p.Blocks()[0] != a.p.Blocks()[0] {
		t.Fatalf("hostB: %v %v in %v; want the block hostA gave back, %v", theirs, err, b.p.Blocks(), a.p.Blocks())
	}
	a.p.Reopen()
	if got, ok := a.p.TakeFree("a1"); ok {
		t.Fatalf("hostA reopened handed out %s of the block it gave back (hostB has %s there)", got, theirs)
	}
	got, err := a.p.Allocate(ctx, "a1")
	if err != nil || b.p.Blocks()[0].Contains(got.Addr()) {
		t.Fatalf("hostA reopened: %v %v; want an address outside hostB's %v (hostA had %s)", got, err, b.p.Blocks(), first)
	}
}

// TestRestartAfterLeaveCutShort: host A's network rm began (its pool
// closed) and gave its block back, and B leased it; then A's agent died
// before the network was gone. Started again while etcd does not answer,
// within its fence, A hands out nothing of the block its file still
// lists: the file says a removal began, so the blocks wait for etcd. Once
// etcd answers, the block B has is dropped and A leases another.
func TestRestartAfterLeaveCutShort(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.89.0.0/24")}
	const ttl, grace = 10 * time.Second, 10 * time.Second
	ctx := context.Background()
	a := newLiveHost(t, e.URL, "hostA", cfg, ttl, grace, "")
	b := newHost(t, e.URL, "hostB", "rnet", cfg, 28)
	first, err := a.p.Allocate(ctx, "a0")
	if err != nil {
		t.Fatal(err)
	}
	a.p.Close()
	if err := a.c.deleteMine(ctx, blocksDir(a.nw.ID)); err != nil { // the leave's first step
		t.Fatal(err)
	}
	a.stop() // and the agent dies
	theirs, err := b.p.Allocate(ctx, "b0")
	if err != nil || !netip.PrefixFrom(first.Addr(), 28).Masked().Contains(theirs.Addr()) {
		t.Fatalf("hostB: %v %v; want an address of the block hostA gave back (%s's)", theirs, err, first)
	}
	if got, err := a.cutOff(t, cfg, ttl, grace, nil).Allocate(ctx, "late"); err == nil {
		t.Fatalf("hostA restarted cut off handed out %s of the block it gave back (hostB has %s)", got, theirs)
	}
	back := newLiveHost(t, e.URL, "hostA", cfg, ttl, grace, a.dir)
	if err := back.p.Load(nil); err != nil {
		t.Fatal(err)
	}
	got, err := back.p.Allocate(ctx, "a1")
	if err != nil || netip.PrefixFrom(theirs.Addr(), 28).Masked().Contains(got.Addr()) {
		t.Fatalf("hostA back: %v %v; want an address outside hostB's block (hostB has %s)", got, err, theirs)
	}
}

// TestLeaveCutShortNotLost: a removal cut short after it gave host A's
// empty block back: A's pool, reopened, drops that block when it checks
// its blocks against etcd, and does not count it lost
// (mvlan_cluster_blocks_lost_total is for blocks reclaimed while away);
// a block whose addresses are still held here, missing, still counts.
func TestLeaveCutShortNotLost(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.87.0.0/24")}
	ctx := context.Background()
	a := newHost(t, e.URL, "hostA", "lc", cfg, 28)
	newHost(t, e.URL, "hostB", "lc", cfg, 28)
	for _, tc := range []struct {
		held bool
		want float64
	}{{false, 0}, {true, 1}} {
		got, err := a.p.Allocate(ctx, "a0")
		if err != nil {
			t.Fatal(err)
		}
		if !tc.held {
			a.p.Release(got.Addr()) // its container is gone: the block is empty
		}
		a.p.Close()
		if err := a.c.deleteMine(ctx, blocksDir(a.nw.ID)); err != nil { // the leave's first step
			t.Fatal(err)
		}
		a.p.Reopen()
		if _, err := a.p.Allocate(ctx, "a1"); err != nil { // verifies first
			t.Fatal(err)
		}
		var lost dto.Metric
		if err := a.c.m.lost.Write(&lost); err != nil || lost.GetCounter().GetValue() != tc.want {
			t.Errorf("a block given back by a removal cut short (an address held in it: %v): blocks_lost_total %v (%v); want %v", tc.held, lost.GetCounter().GetValue(), err, tc.want)
		}
	}
}

// TestLostBlockDropsAside: an address DAD set aside in a block this host
// then loses (another host leased it meanwhile) is not kept as if an
// endpoint held it: Held (what the agent's drift check and "used"
// compare with its endpoints) has the endpoints' addresses only.
func TestLostBlockDropsAside(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.86.0.0/24")}
	ctx := context.Background()
	a := newHost(t, e.URL, "hostA", "la", cfg, 28)
	got, err := a.p.Allocate(ctx, "a0")
	if err != nil {
		t.Fatal(err)
	}
	aside := got.Addr().Next()
	if !a.p.SetAside(aside) {
		t.Fatalf("SetAside(%s) refused", aside)
	}
	if _, err := a.c.cli.Delete(ctx, blockKey(a.nw.ID, a.p.Blocks()[0])); err != nil { // reclaimed meanwhile
		t.Fatal(err)
	}
	b := newHost(t, e.URL, "hostB", "la", cfg, 28)
	if theirs, err := b.p.Allocate(ctx, "b0"); err != nil || !netip.PrefixFrom(got.Addr(), 28).Masked().Contains(theirs.Addr()) {
		t.Fatalf("hostB: %v %v; want an address of the block hostA lost", theirs, err)
	}
	a.p.Reopen()
	if _, err := a.p.Allocate(ctx, "a1"); err != nil { // verifies first
		t.Fatal(err)
	}
	for _, h := range a.p.Held() {
		if h.Addr == aside {
			t.Errorf("Held after the block was lost: %v; want %s (set aside) not in it", a.p.Held(), aside)
		}
	}
}

// TestDeleteMineKeyGoneMeanwhile: a leave gives back every key of this
// host under a directory, also when one of them went between its list and
// its deletes (the claims check gave it back meanwhile), and no other
// host's.
func TestDeleteMineKeyGoneMeanwhile(t *testing.T) {
	e := nstest.StartEtcd(t)
	ctx := context.Background()
	a := newHost(t, e.URL, "hostA", "dm", ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.90.0.0/24")}, 28)
	dir := claimsDir(a.nw.ID)
	owner := map[string]string{}
	for i, host := range []string{"hostA", "hostA", "hostA", "hostB"} {
		k := claimKey(a.nw.ID, netip.AddrFrom4([4]byte{10, 90, 0, byte(10 + i)}))
		if _, err := a.c.cli.Put(ctx, k, host); err != nil {
			t.Fatal(err)
		}
		owner[k] = host
	}
	gone := claimKey(a.nw.ID, netip.MustParseAddr("10.90.0.10"))
	a.c.listed = func() {
		if _, err := a.c.cli.Delete(ctx, gone); err != nil {
			t.Error(err)
		}
	}
	if err := a.c.deleteMine(ctx, dir); err != nil {
		t.Fatal(err)
	}
	r, err := a.c.cli.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, kv := range r.Kvs {
		left = append(left, string(kv.Key)+"="+string(kv.Value))
	}
	want := claimKey(a.nw.ID, netip.MustParseAddr("10.90.0.13")) + "=hostB"
	if len(left) != 1 || left[0] != want {
		t.Fatalf("claims left: %v; want only hostB's, %s (hostA's of %v)", left, want, owner)
	}
}
