package engine_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/mvlan/mvlan/api"
)

// TestGatewaysPinned: the datapath pins a network's gateways (its pools',
// the one chosen when none was given included), and none on a network
// whose router may be a link on the parent (allow_router=true) or comes
// from DHCP.
func TestGatewaysPinned(t *testing.T) {
	r := newRig(t, "eth0", "eth1", "eth2", "eth3")
	for i, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"subnet=172.16.86.0/24", "parent=eth0"}, []string{"172.16.86.1"}},
		{[]string{"subnet=10.1.0.0/24", "subnet=10.2.0.0/24", "parent=eth1"}, []string{"10.1.0.1", "10.2.0.1"}},
		{[]string{"subnet=10.3.0.0/24", "parent=eth2", "allow_router=true"}, nil},
	} {
		n := r.network(fmt.Sprintf("n%d", i), tc.args...)
		var want []netip.Addr
		for _, a := range tc.want {
			want = append(want, netip.MustParseAddr(a))
		}
		if got, set := r.k.Gateways(n.DatapathID); !set || !slices.Equal(got, want) {
			t.Errorf("network %v: gateways pinned %v (set: %v), want %v", tc.args, got, set, want)
		}
	}
	// A DHCP network's pools' gateway is a guess: none is pinned.
	req := netRequest("dhcp", "subnet=10.4.0.0/24", "parent=eth3")
	req.IPAMDriver = api.IPAMDHCP
	n, err := r.e.CreateNetwork(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got, set := r.k.Gateways(n.DatapathID); !set || len(got) > 0 {
		t.Errorf("DHCP network: gateways pinned %v (set: %v), want none", got, set)
	}
}
