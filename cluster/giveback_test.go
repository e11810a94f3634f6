package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// TestEmptyBlockGivenBack: host A fills both /28 blocks of a /27, so host
// B gets nothing. Once A's second block has held no address for
// blockIdle, A's claims check gives it back (its key goes from etcd, A's
// file and blocks) and B leases it; A keeps its last block even when that
// one is empty too.
func TestEmptyBlockGivenBack(t *testing.T) {
	e, a := idleHost(t, 200*time.Millisecond, "10.75.0.0/27", "gb")
	ctx := context.Background()
	b := newHost(t, e.URL, "hostB", "gb", a.p.cfg, 28)
	first, second := netip.MustParsePrefix("10.75.0.0/28"), netip.MustParsePrefix("10.75.0.16/28")
	held := fillUntil(t, a, second)
	if pf, err := b.p.Allocate(ctx, "b0"); !errors.Is(err, ipam.ErrExhausted) {
		t.Fatalf("hostB with both blocks hostA's: %v %v; want exhausted", pf, err)
	}
	sync := func() { // as the engine's every 2 s, past blockIdle
		a.p.Sync(ctx)
		time.Sleep(blockIdle + 50*time.Millisecond)
		a.p.Sync(ctx)
	}
	sync() // both blocks hold addresses: nothing goes
	if got := a.p.Blocks(); len(got) != 2 {
		t.Fatalf("hostA's blocks with addresses in both: %v", got)
	}
	for _, addr := range held {
		if second.Contains(addr) {
			a.p.Release(addr)
		}
	}
	sync()
	if got := a.p.Blocks(); !slices.Equal(got, []netip.Prefix{first}) {
		t.Fatalf("hostA's blocks after %s was empty for %v: %v; want only %s", second, blockIdle, got, first)
	}
	if inEtcd := etcdBlocks(t, a.c, a.nw.ID, false); len(inEtcd) != 1 || inEtcd[first] != "hostA" {
		t.Fatalf("etcd's blocks: %v; want only %s, hostA's", inEtcd, first)
	}
	if st, err := readState(a.file); err != nil || !slices.Equal(st.Blocks, []netip.Prefix{first}) {
		t.Fatalf("hostA's file: blocks %v (%v); want only %s", st.Blocks, err, first)
	}
	var n dto.Metric
	if err := a.c.m.gaveBack.Write(&n); err != nil || n.GetCounter().GetValue() != 1 {
		t.Errorf("mvlan_cluster_blocks_given_back_total %v (%v); want 1", n.GetCounter().GetValue(), err)
	}
	pf, err := b.p.Allocate(ctx, "b0")
	if err != nil || !second.Contains(pf.Addr()) {
		t.Fatalf("hostB after hostA gave %s back: %v %v; want an address of it", second, pf, err)
	}
	for _, addr := range held {
		if first.Contains(addr) {
			a.p.Release(addr)
		}
	}
	sync()
	if got := a.p.Blocks(); !slices.Equal(got, []netip.Prefix{first}) {
		t.Fatalf("hostA's blocks with its last one empty: %v; want it kept", got)
	}
	if pf, err := a.p.Allocate(ctx, "again"); err != nil || !first.Contains(pf.Addr()) {
		t.Fatalf("hostA after: %v %v; want an address of %s", pf, err, first)
	}
}

// idleHost starts etcd and host A on network name of subnet (two /28s),
// with blockIdle d for the test.
func idleHost(t *testing.T, d time.Duration, subnet, name string) (*nstest.Etcd, *host) {
	t.Helper()
	old := blockIdle
	blockIdle = d
	t.Cleanup(func() { blockIdle = old })
	e := nstest.StartEtcd(t)
	return e, newHost(t, e.URL, "hostA", name, ipam.PoolConfig{Subnet: netip.MustParsePrefix(subnet)}, 28)
}

// fillUntil allocates addresses on h until it holds block b; it returns
// them.
func fillUntil(t *testing.T, h *host, b netip.Prefix) []netip.Addr {
	t.Helper()
	var held []netip.Addr
	for i := 0; !slices.Contains(h.p.Blocks(), b); i++ {
		pf, err := h.p.Allocate(context.Background(), fmt.Sprintf("a%d", i))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, pf.Addr())
	}
	return held
}

// TestGiveBackAnswerLost: a block whose give-back got no answer is out of
// the host's blocks and is not taken up again while the delete may still
// land (the key, as here, still the host's): the host's allocation is
// refused as exhausted rather than adopt it; once a late delete can no
// longer land, the key is taken up. A host whose state may not know every
// endpoint (KeepBlocks) gives nothing back.
func TestGiveBackAnswerLost(t *testing.T) {
	_, a := idleHost(t, 0, "10.76.0.0/27", "gl")
	ctx := context.Background()
	second := netip.MustParsePrefix("10.76.0.16/28")
	held := fillUntil(t, a, second)
	a.p.Release(held[len(held)-1]) // second's one address
	a.c.KeepBlocks()
	a.p.Sync(ctx)
	a.p.Sync(ctx)
	if got := a.p.Blocks(); len(got) != 2 {
		t.Fatalf("blocks of a host that keeps them: %v; want both", got)
	}
	// As giveBackBlock leaves it when the delete's answer is lost.
	a.p.mu.Lock()
	delete(a.p.blocks, second)
	a.p.returning[second] = time.Now()
	a.p.mu.Unlock()
	if pf, err := a.p.Allocate(ctx, "more"); !errors.Is(err, ipam.ErrExhausted) {
		t.Fatalf("allocation with %s's give-back unanswered: %v %v; want exhausted, the block not taken up", second, pf, err)
	}
	a.p.mu.Lock()
	a.p.returning[second] = time.Now().Add(-landLate)
	a.p.mu.Unlock()
	if pf, err := a.p.Allocate(ctx, "more"); err != nil || !second.Contains(pf.Addr()) {
		t.Fatalf("allocation once a late delete cannot land: %v %v; want an address of %s, taken up again", pf, err, second)
	}
}

// idleSecond has h hold block second, whose one address is released, and
// it found empty by a Sync more than blockIdle ago.
func idleSecond(t *testing.T, h *host, second netip.Prefix) {
	t.Helper()
	held := fillUntil(t, h, second)
	h.p.Release(held[len(held)-1]) // second's one address; the first block stays full
	h.p.Sync(context.Background()) // found empty
	time.Sleep(blockIdle + 50*time.Millisecond)
}

// TestClaimedBlockNotGivenBack: a block empty for longer than blockIdle
// in which an exact address was just claimed (Claim, then Take: no etcd
// claim inside a held block) stays the host's, and the address is taken.
func TestClaimedBlockNotGivenBack(t *testing.T) {
	_, a := idleHost(t, 200*time.Millisecond, "10.77.0.0/27", "gc")
	ctx := context.Background()
	second := netip.MustParsePrefix("10.77.0.16/28")
	idleSecond(t, a, second)
	want := netip.MustParseAddr("10.77.0.20")
	if err := a.p.Claim(ctx, want); err != nil {
		t.Fatal(err)
	}
	a.p.Sync(ctx)
	if got := a.p.Blocks(); !slices.Contains(got, second) {
		t.Fatalf("blocks after a claim in %s: %v; want it kept", second, got)
	}
	if pf, err := a.p.Take(want, "exact"); err != nil || pf.Addr() != want {
		t.Fatalf("take %s: %v %v", want, pf, err)
	}
}

// TestReservedBlockNotGivenBack: the block Reserve found a free address in
// is not given back before TakeFree takes it (Docker's IPAM reserves, then
// takes), also when the give-back had listed it as idle just before.
func TestReservedBlockNotGivenBack(t *testing.T) {
	_, a := idleHost(t, 200*time.Millisecond, "10.78.0.0/27", "gr")
	ctx := context.Background()
	second := netip.MustParsePrefix("10.78.0.16/28")
	idleSecond(t, a, second)
	now := time.Now()
	a.p.etcdMu.Lock()
	idle := a.p.idleBlocks(now)
	a.p.etcdMu.Unlock()
	if !slices.Equal(idle, []netip.Prefix{second}) {
		t.Fatalf("idle blocks: %v; want %s", idle, second)
	}
	if err := a.p.Reserve(ctx); err != nil {
		t.Fatal(err)
	}
	a.p.etcdMu.Lock()
	err := a.p.giveBackBlock(ctx, second, now) // as the Sync that listed it goes on
	a.p.etcdMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	a.p.Sync(ctx)
	if pf, ok := a.p.TakeFree("next"); !ok || !second.Contains(pf.Addr()) {
		t.Fatalf("take after Reserve: %v %v; want an address of %s (blocks %v)", pf, ok, second, a.p.Blocks())
	}
}
