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
	defer func(d time.Duration) { blockIdle = d }(blockIdle)
	blockIdle = 200 * time.Millisecond
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.75.0.0/27")}
	ctx := context.Background()
	a := newHost(t, e.URL, "hostA", "gb", cfg, 28)
	b := newHost(t, e.URL, "hostB", "gb", cfg, 28)
	first, second := netip.MustParsePrefix("10.75.0.0/28"), netip.MustParsePrefix("10.75.0.16/28")
	var held []netip.Addr
	for i := 0; !slices.Contains(a.p.Blocks(), second); i++ {
		pf, err := a.p.Allocate(ctx, fmt.Sprintf("a%d", i))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, pf.Addr())
	}
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
