package cluster

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// TestTryLoad: TryLoad answers as Load would and changes nothing: a
// claim of this host that the tried set leaves out stays (Load gives it
// back), a block's held addresses stay, and a refused set is refused,
// claims (addresses outside this host's blocks) as a block's addresses.
// (An address outside the subnets is Space's to refuse, before a pool.)
func TestTryLoad(t *testing.T) {
	e := nstest.StartEtcd(t)
	// The gateway in a block this host does not hold: .254.
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.51.0.0/24"), Gateway: netip.MustParseAddr("10.51.0.254")}
	h := newHost(t, e.URL, "host0", "net1", cfg, 28)
	ctx := context.Background()
	inBlock, err := h.p.Allocate(ctx, "ep0") // takes a block
	if err != nil {
		t.Fatal(err)
	}
	claimed := netip.MustParseAddr("10.51.0.200") // outside that block: a claim
	if _, err := h.p.Request(ctx, claimed, "ep1"); err != nil {
		t.Fatal(err)
	}
	held := h.p.Held()
	for _, tc := range []struct {
		what    string
		try     []ipam.Held
		refused bool
	}{
		{"none", nil, false},
		{"the block's address alone", []ipam.Held{{Addr: inBlock.Addr(), Owner: "ep0"}}, false},
		{"the subnet's own address, in this host's block", []ipam.Held{{Addr: netip.MustParseAddr("10.51.0.0"), Owner: "x"}}, true},
		{"the gateway, outside this host's blocks", []ipam.Held{{Addr: netip.MustParseAddr("10.51.0.254"), Owner: "x"}}, true},
		{"a claimed address twice", []ipam.Held{{Addr: claimed, Owner: "ep1"}, {Addr: claimed, Owner: "x"}}, true},
		{"the claim and the block's address", []ipam.Held{{Addr: claimed, Owner: "ep1"}, {Addr: inBlock.Addr(), Owner: "ep0"}}, false},
		{"another's address in the block", []ipam.Held{{Addr: inBlock.Addr(), Owner: "ep0"}, {Addr: inBlock.Addr(), Owner: "x"}}, true},
	} {
		err := h.p.TryLoad(tc.try)
		if (err != nil) != tc.refused {
			t.Errorf("%s: TryLoad = %v; refused: %v", tc.what, err, tc.refused)
		}
		if got := h.p.Held(); !sameHeld(got, held) {
			t.Errorf("%s: TryLoad changed what is held: %v, was %v", tc.what, got, held)
		}
		if !h.p.st.Claims[claimed] {
			t.Errorf("%s: TryLoad gave back the claim of %v", tc.what, claimed)
		}
	}
	// Load of the block's address alone gives the claim back.
	if err := h.p.Load([]ipam.Held{{Addr: inBlock.Addr(), Owner: "ep0"}}); err != nil {
		t.Fatal(err)
	}
	if h.p.st.Claims[claimed] {
		t.Errorf("Load without %v kept its claim; want it given back", claimed)
	}
}

func sameHeld(a, b []ipam.Held) bool {
	key := func(h ipam.Held) string { return h.Addr.String() + "/" + h.Owner }
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i] = key(a[i])
	}
	for i := range b {
		kb[i] = key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}
