package loader

import (
	"net/netip"
	"testing"
)

// TestPruneOrphans: the MAC and address entries of an endpoint whose
// ep_table row is gone (a crash between two map writes) are deleted, and
// so are the stub pins of its netns; another endpoint's stay, except under
// PathDirect, where every stub pin goes (left by a stub-path agent).
func TestPruneOrphans(t *testing.T) {
	d := newTestDatapath(t)
	for _, ep := range []Endpoint{
		{NetnsCookie: 7, Ifindex: 3, MAC: macA, NetworkID: 5, IPs: addrs("10.1.0.10")},
		{NetnsCookie: 8, Ifindex: 3, MAC: macB, NetworkID: 5, IPs: addrs("10.1.0.11")},
	} {
		if err := d.SetEndpoint(ep); err != nil {
			t.Fatal(err)
		}
		if _, err := d.endpointPrograms(ep.NetnsCookie); err != nil { // pins its netns's stubs
			t.Fatal(err)
		}
	}
	if d.direct { // stubs a stub-path agent left: a direct one needs none
		for _, cookie := range []uint64{7, 8} {
			in, err := d.buildStub("ep_ingress", cookie, slotIngress)
			if err != nil {
				t.Fatal(err)
			}
			eg, err := d.buildStub("ep_egress", cookie, slotEgress)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.pinStubs(cookie, in, eg); err != nil {
				t.Fatal(err)
			}
			closeAll(in, eg)
		}
	}
	if err := d.maps.EpTable.Delete(&epKey{NetnsCookie: 7, Ifindex: 3}); err != nil {
		t.Fatal(err)
	}
	if err := d.PruneOrphans(); err != nil {
		t.Fatal(err)
	}
	got := ipTable(t, d)
	if _, ok := got[netip.MustParseAddr("10.1.0.10")]; ok || len(got) != 2 {
		t.Errorf("ep_by_ip after the prune: %v; want only the second endpoint's (10.1.0.11 and its link-local)", got)
	}
	var info epInfo
	if err := d.maps.EpByMac.Lookup(&macKey{MAC: [6]byte(macA)}, &info); err == nil {
		t.Errorf("ep_by_mac still has the orphan %s", macA)
	}
	if err := d.maps.EpByMac.Lookup(&macKey{MAC: [6]byte(macB)}, &info); err != nil {
		t.Errorf("ep_by_mac lost %s: %v", macB, err)
	}
	if _, _, ok := d.pinnedStubs(7); ok {
		t.Errorf("the orphan's netns stubs are still pinned")
	}
	if _, _, ok := d.pinnedStubs(8); ok == d.direct {
		t.Errorf("the second endpoint's netns stubs pinned: %v; want %v (endpoint path %s)", ok, !d.direct, d.Path())
	}
}
