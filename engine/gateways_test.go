package engine_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// TestGatewaysPinned: the datapath pins a network's gateways (its pools',
// the one chosen when none was given included), and none on a network
// whose router may be a link on the parent (allow_router=true).
func TestGatewaysPinned(t *testing.T) {
	r := newRig(t, "eth0", "eth1", "eth2")
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
		if got := r.k.Gateways(n.DatapathID); !slices.Equal(got, want) {
			t.Errorf("network %v: gateways pinned %v, want %v", tc.args, got, want)
		}
	}
}
