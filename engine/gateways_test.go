package engine_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
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

// TestGatewayHostLinks: the host's own macvlans and macvtaps up on a
// network's parent (a VM's, keepalived's VRRP link) may claim its gateways
// with the parent; a down link (whose MAC another link may take), a link
// on another parent, one whose lower link is in another namespace and an
// endpoint's link on its way to its container (Docker's hand-off) may
// not. A link going away leaves the pin at once.
func TestGatewayHostLinks(t *testing.T) {
	r := newRig(t, "eth0", "eth1")
	eth0, _ := r.k.HostLink("eth0")
	eth1, _ := r.k.HostLink("eth1")
	for _, l := range []link.Info{
		{Name: "vrrp", Kind: "macvlan", ParentIndex: eth0.Index, Up: true, MAC: nstest.MAC(t, "00:00:5e:00:01:07")},
		{Name: "vm", Kind: "macvtap", ParentIndex: eth0.Index, Up: true, MAC: nstest.MAC(t, "52:54:00:12:34:56")},
		{Name: "down", Kind: "macvlan", ParentIndex: eth0.Index, MAC: nstest.MAC(t, "02:00:00:00:01:00")},
		{Name: "other", Kind: "macvlan", ParentIndex: eth1.Index, Up: true, MAC: nstest.MAC(t, "02:00:00:00:01:01")},
		{Name: "elsewhere", Kind: "macvlan", ParentIndex: eth0.Index, Up: true, LowerElsewhere: true, MAC: nstest.MAC(t, "02:00:00:00:01:02")},
		{Name: "bridge", Kind: "bridge", ParentIndex: eth0.Index, Up: true, MAC: nstest.MAC(t, "02:00:00:00:01:03")},
		{Name: link.TempPrefix + "0000abcd", Kind: "macvlan", ParentIndex: eth0.Index, Up: true, MAC: nstest.MAC(t, "02:00:00:00:01:04")},
	} {
		r.k.AddHostLink(l)
	}
	n := r.network("n", "subnet=172.16.86.0/24", "parent=eth0")
	want := []string{"00:00:5e:00:01:07", "52:54:00:12:34:56"}
	check := func(when string) {
		t.Helper()
		got := r.k.GatewayHostLinks(n.DatapathID)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: host links pinned with the gateway %v, want %v", when, got, want)
		}
	}
	check("created")
	r.k.AddNetns("/run/netns/d1")
	_, hl, _ := r.handoff(n, "/run/netns/d1")
	if engine.LinkEvent(r.e, link.LinkEvent{Name: hl.Name, Index: hl.Index, MAC: hl.MAC, MacvlanOn: eth0.Index}) {
		t.Error("a handed-off link made: the parents' refresh asked for; want none (an endpoint's link)")
	}
	for _, ev := range []link.LinkEvent{
		{Name: "other", Index: 99, MAC: nstest.MAC(t, "02:00:00:00:01:05"), Up: true, MacvlanOn: eth1.Index},
		{Name: "bridge", Index: 98, MAC: nstest.MAC(t, "02:00:00:00:01:06"), Up: true},
		{Name: "c1", Index: 97, MAC: nstest.MAC(t, "02:00:00:00:01:07"), Alias: "mvlan/" + r.e.AgentID() + "/ep/x", MacvlanOn: eth0.Index, Deleted: true},
	} {
		if engine.LinkEvent(r.e, ev) {
			t.Errorf("%s's event: the parents' refresh asked for; want none", ev.Name)
		}
	}
	r.k.AddHostLink(link.Info{Name: "d1", Kind: "macvlan", ParentIndex: eth0.Index, Up: true, MAC: hl.MAC}) // the same MAC, up, another name
	engine.RefreshParents(context.Background(), r.e)
	check("with a handed-off link's MAC on the parent")
	vm, _ := r.k.HostLink("vm")
	stale, err := engine.ListHost(r.e) // a refresh's listing, made before the VM's link goes
	if err != nil {
		t.Fatal(err)
	}
	r.k.RemoveHostLink("vm")
	if !engine.LinkEvent(r.e, link.LinkEvent{Name: "vm", Index: vm.Index, MAC: vm.MAC, Deleted: true, MacvlanOn: eth0.Index}) {
		t.Error("the VM's link deleted: no parents' refresh asked for")
	}
	want = want[:1]
	check("the VM's link deleted, before the refresh")
	engine.RefreshParentsFrom(context.Background(), r.e, stale)
	check("the VM's link deleted, after a refresh from a listing made before")
	engine.RefreshParents(context.Background(), r.e)
	check("the VM's link deleted")
	r.k.AddHostLink(vm)
	if !engine.LinkEvent(r.e, link.LinkEvent{Name: "vm", Index: vm.Index, MAC: vm.MAC, Up: true, MacvlanOn: eth0.Index}) {
		t.Error("the VM's link back: no parents' refresh asked for")
	}
	engine.RefreshParents(context.Background(), r.e)
	want = append(want, vm.MAC.String())
	check("the VM's link back")
}

// TestGatewayHostLinksTooMany: with more host links on the parent than the
// datapath holds, the network's gateways are not pinned (rather than
// refusing a router among them); one fewer, and they are.
func TestGatewayHostLinksTooMany(t *testing.T) {
	r := newRig(t, "eth0")
	eth0, _ := r.k.HostLink("eth0")
	for i := range loader.MaxGatewayHostLinks + 1 {
		r.k.AddHostLink(link.Info{Name: fmt.Sprintf("vm%d", i), Kind: "macvtap", ParentIndex: eth0.Index, Up: true,
			MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i)}})
	}
	n := r.network("n", "subnet=172.16.86.0/24", "parent=eth0")
	if got, set := r.k.Gateways(n.DatapathID); !set || len(got) > 0 {
		t.Errorf("with %d host links: gateways pinned %v (set: %v), want none", loader.MaxGatewayHostLinks+1, got, set)
	}
	vm0, _ := r.k.HostLink("vm0")
	r.k.RemoveHostLink("vm0")
	if !engine.LinkEvent(r.e, link.LinkEvent{Name: "vm0", Index: vm0.Index, MAC: vm0.MAC, Deleted: true, MacvlanOn: eth0.Index}) {
		t.Error("a host link deleted: no parents' refresh asked for")
	}
	engine.RefreshParents(context.Background(), r.e)
	if got, _ := r.k.Gateways(n.DatapathID); len(got) != 1 || len(r.k.GatewayHostLinks(n.DatapathID)) != loader.MaxGatewayHostLinks {
		t.Errorf("with %d host links: gateways pinned %v with %d links, want 172.16.86.1 with all", loader.MaxGatewayHostLinks, got, len(r.k.GatewayHostLinks(n.DatapathID)))
	}
}
