package engine

import (
	"bytes"
	"testing"

	"github.com/mvlan/mvlan/dhcp"
)

// TestRowDHCPIDs: an endpoint's row carries the identities its DHCP
// clients ask under (what dhcpLinkOf gives them: its lease's, else made of
// the network and its name), and only on a DHCP network, so the datapath
// holds its DHCP messages to them.
func TestRowDHCPIDs(t *testing.T) {
	a := &Engine{}
	stored := &dhcp.Lease{ClientID: []byte{0, 9, 9}}
	stored6 := &dhcp.Lease{ClientID: []byte{0, 4, 6, 6}}
	for _, tc := range []struct {
		name            string
		dhcp4, ipv6     bool
		lease, lease6   *dhcp.Lease
		want4, wantDUID bool
	}{
		{name: "static network"},
		{name: "static dual-stack network", ipv6: true},
		{name: "dhcp", dhcp4: true, want4: true},
		{name: "dhcp with v6", dhcp4: true, ipv6: true, want4: true, wantDUID: true},
		{name: "dhcp with stored leases", dhcp4: true, ipv6: true, lease: stored, lease6: stored6, want4: true, wantDUID: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &network{ID: "0123456789ab", DHCP: tc.dhcp4, IPv6: tc.ipv6}
			e := endpoint{Name: "c1", Lease: tc.lease, Lease6: tc.lease6}
			r := a.row(n, e)
			if got := len(r.DHCPClientID) > 0; got != tc.want4 {
				t.Fatalf("client id %x: want one %v", r.DHCPClientID, tc.want4)
			}
			if got := len(r.DHCPDUID) > 0; got != tc.wantDUID {
				t.Fatalf("DUID %x: want one %v", r.DHCPDUID, tc.wantDUID)
			}
			if tc.want4 && !bytes.Equal(r.DHCPClientID, a.dhcpLinkOf(n, e, false).ClientID) {
				t.Errorf("row's client id %x, the client asks as %x", r.DHCPClientID, a.dhcpLinkOf(n, e, false).ClientID)
			}
			if tc.wantDUID && !bytes.Equal(r.DHCPDUID, a.dhcpLinkOf(n, e, true).ClientID) {
				t.Errorf("row's DUID %x, the client asks as %x", r.DHCPDUID, a.dhcpLinkOf(n, e, true).ClientID)
			}
			if tc.lease != nil && !bytes.Equal(r.DHCPClientID, tc.lease.ClientID) {
				t.Errorf("row's client id %x, want the lease's %x", r.DHCPClientID, tc.lease.ClientID)
			}
		})
	}
}
