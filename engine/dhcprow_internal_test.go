package engine

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
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
			// Independently of clientIDOf: the lease's, else made of the
			// network's ID and the name.
			want4, want6 := dhcp.ClientID(n.ID, e.Name), dhcp.DUID6(n.ID, e.Name)
			if tc.lease != nil {
				want4, want6 = tc.lease.ClientID, tc.lease6.ClientID
			}
			if tc.want4 && !bytes.Equal(r.DHCPClientID, want4) {
				t.Errorf("row's client id %x, want %x", r.DHCPClientID, want4)
			}
			if tc.wantDUID && !bytes.Equal(r.DHCPDUID, want6) {
				t.Errorf("row's DUID %x, want %x", r.DHCPDUID, want6)
			}
		})
	}
}

// TestRenameRewritesDHCPRow: renaming an endpoint of a DHCP network that
// has no lease yet (a Docker endpoint named after its container while its
// client still asks) rewrites its row with the identity its client now
// asks under, made of the new name; else the datapath would refuse every
// ask as another client's.
func TestRenameRewritesDHCPRow(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateNetwork(api.Network{ID: "n1", Name: "lan", IPAMDriver: api.IPAMDHCP}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateEndpoint(api.Endpoint{ID: "e1", Name: "sandbox-key", NetworkID: "n1"}); err != nil {
		t.Fatal(err)
	}
	d := &rowsDatapath{}
	e := endpoint{ID: "e1", Name: "sandbox-key", NetworkID: "n1", NetnsCookie: 9, Ifindex: 2,
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, State: Ready}
	en := &entry{ep: e}
	n := &network{ID: "n1", DHCP: true, DatapathID: 1, eps: map[string]*entry{"e1": en},
		byName: map[string]*entry{e.Name: en}, byMAC: map[string]*entry{string(e.MAC): en}}
	n.setName("lan", api.NameGiven)
	a := &Engine{dp: d, store: st, log: slog.New(slog.NewTextHandler(io.Discard, nil)), nets: map[string]*network{"n1": n}}
	if ok, err := a.RenameEndpoint("e1", "sandbox-key", "web"); !ok || err != nil {
		t.Fatalf("rename: %v, %v", ok, err)
	}
	row, k := d.last()
	if want := dhcp.ClientID(a.identity(n), "web"); k != 1 || !bytes.Equal(row.DHCPClientID, want) {
		t.Fatalf("after the rename: %d rows, client id %x; want one row with %x (made of the new name)", k, row.DHCPClientID, want)
	}
}
