package engine_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/engine/enginetest"
	"github.com/mvlan/mvlan/loader"
)

// shimOf returns network name's shim addresses as the engine shows them
// and the addresses its link has.
func (r *rig) shimOf(name string) ([]netip.Addr, []netip.Prefix) {
	r.t.Helper()
	n, err := r.e.Network(name)
	if err != nil {
		r.t.Fatal(err)
	}
	if n.HostShim == nil {
		return nil, nil
	}
	return n.HostShim.Addrs, r.k.HostAddrs(n.HostShim.Link)
}

// update runs network update -o host_shim=v on network name.
func (r *rig) update(name, v string) error {
	_, err := r.e.UpdateNetwork(context.Background(), name, api.NetworkUpdate{Options: []string{"host_shim=" + v}})
	return err
}

// TestHostShimUpdateRefused: an update of the shim to an address a
// container holds is refused with an error naming it, and the shim keeps
// its link and old address; an update to a free address moves the shim
// (same link, new address, the old one free again, the routes kept).
func TestHostShimUpdateRefused(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("sn", "subnet=10.5.0.0/24", "parent=eth0", "host_shim=auto")
	c1 := r.run("c1", "sn")
	old := []netip.Addr{netip.MustParseAddr("10.5.0.2")}
	for _, v := range []string{c1.Addrs[0].Addr().String(), "10.5.0.1"} {
		err := r.update("sn", v)
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Fatalf("update to %s: %v; want an error naming it", v, err)
		}
		if a, l := r.shimOf("sn"); !slices.Equal(a, old) || !slices.Equal(l, []netip.Prefix{netip.MustParsePrefix("10.5.0.2/32")}) {
			t.Fatalf("after the refused update to %s: shim %v, link addresses %v; want it unchanged with %v", v, a, l, old)
		}
	}
	r.noDrift()
	if err := r.update("sn", "10.5.0.50"); err != nil {
		t.Fatal(err)
	}
	if a, l := r.shimOf("sn"); !slices.Equal(a, []netip.Addr{netip.MustParseAddr("10.5.0.50")}) || !slices.Equal(l, []netip.Prefix{netip.MustParsePrefix("10.5.0.50/32")}) {
		t.Fatalf("after the update: shim %v, link addresses %v; want 10.5.0.50", a, l)
	}
	if got := r.k.Routes("mvh-sn"); !slices.Equal(got, []netip.Addr{c1.Addrs[0].Addr()}) {
		t.Fatalf("routes %v, want c1's", got)
	}
	r.noDrift()
	if c2 := r.run("c2", "sn"); c2.Addrs[0].Addr() != old[0] {
		t.Fatalf("c2 got %v; want the shim's freed %v", c2.Addrs, old[0])
	}
}

// TestHostShimRepaired: a shim whose addresses were flushed and that was
// set down gets them back, up, on start.
func TestHostShimRepaired(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("sn", "subnet=10.5.0.0/24", "parent=eth0", "host_shim=auto")
	r.stop()
	l, _ := r.k.HostLink("mvh-sn")
	l.Up = false
	r.k.AddHostLink(l)
	r.k.FlushHostAddrs("mvh-sn")
	r.start()
	if l, _ := r.k.HostLink("mvh-sn"); !l.Up {
		n, _ := r.e.Network("sn")
		t.Fatalf("the shim is still down after start: %+v", n.HostShim)
	}
	if _, got := r.shimOf("sn"); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.5.0.2/32")}) {
		t.Fatalf("the shim's addresses after start: %v; want 10.5.0.2/32", got)
	}
	r.noDrift()
}

// TestParentMACRefused: a container may not take its network's parent's
// MAC (the kernel would refuse the macvlan only once the address, the row
// and the datapath entry were made), through run or Docker's EndpointMAC;
// nothing is left. A passthru network's container takes it.
func TestParentMACRefused(t *testing.T) {
	r := newRig(t, "eth0")
	l, _ := r.k.HostLink("eth0")
	l.MAC = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	r.k.AddHostLink(l)
	n := r.network("pm", "subnet=10.6.0.0/24", "parent=eth0")
	mac := l.MAC.String()
	_, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pm", Name: "c1", MAC: mac})
	if err == nil || !strings.Contains(err.Error(), "MAC "+mac+" is the parent eth0's own on network pm; choose another --mac") {
		t.Fatalf("run --mac <the parent's>: %v; want it refused naming the parent", err)
	}
	if _, err := r.e.EndpointMAC(n.ID, mac); err == nil || !strings.Contains(err.Error(), "is the parent eth0's own") {
		t.Fatalf("EndpointMAC of the parent's MAC: %v; want it refused", err)
	}
	if got, _ := r.e.Network("pm"); len(got.Endpoints) != 0 {
		t.Errorf("endpoints after the refusals: %+v", got.Endpoints)
	}
	// A passthru network's container takes its parent's MAC.
	if err := r.e.RemoveNetwork(context.Background(), "pm"); err != nil {
		t.Fatal(err)
	}
	r.network("pt", "subnet=10.7.0.0/24", "parent=eth0", "macvlan_mode=passthru")
	ep, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pt", Name: "c2"})
	if err != nil || ep.MAC != mac {
		t.Fatalf("run on a passthru network: %v, MAC %s; want the parent's, %s", err, ep.MAC, mac)
	}
	r.noDrift()
}

// TestHostShimMAC: a container may not take the host shim's MAC (it would
// take the shim's datapath entry), through run, Docker's EndpointMAC or
// a handoff;
// and a shim is refused while an endpoint has its MAC.
func TestHostShimMAC(t *testing.T) {
	r := newRig(t, "eth0")
	ctx := context.Background()
	n := r.network("sn", "subnet=10.5.0.0/24", "parent=eth0", "host_shim=auto")
	mac := n.HostShim.MAC
	_, err := r.e.CreateEndpoint(ctx, api.EndpointCreate{Network: "sn", Name: "c1", MAC: mac})
	if err == nil || !strings.Contains(err.Error(), "MAC "+mac+" is the host shim's (mvh-sn)") {
		t.Fatalf("run --mac <the shim's>: %v; want it refused naming the shim", err)
	}
	if _, err := r.e.EndpointMAC(n.ID, mac); err == nil || !strings.Contains(err.Error(), "host shim") {
		t.Fatalf("EndpointMAC of the shim's MAC: %v; want it refused", err)
	}
	hwMAC, _ := net.ParseMAC(mac)
	p, err := r.e.Reserve(n.ID, netip.Addr{}, false, "docker")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.e.CreateHandoff(ctx, engine.Handoff{ID: store.NewID(), NetworkID: n.ID, Name: "d1", Netns: "/run/netns/sandbox-d1",
		MAC: hwMAC, Addrs: []netip.Prefix{p}, Owner: "docker"})
	if err == nil || !strings.Contains(err.Error(), "host shim") {
		t.Fatalf("a Docker endpoint with the shim's MAC: %v; want it refused", err)
	}
	if _, err := r.e.Release(n.ID, p.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := r.update("sn", "off"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.CreateEndpoint(ctx, api.EndpointCreate{Network: "sn", Name: "c1", MAC: mac}); err != nil {
		t.Fatal(err)
	}
	err = r.update("sn", "auto")
	if err == nil || !strings.Contains(err.Error(), "endpoint c1") || !strings.Contains(err.Error(), mac) {
		t.Fatalf("a shim while c1 has its MAC: %v; want it refused naming c1", err)
	}
	if a, _ := r.shimOf("sn"); a != nil {
		t.Fatalf("the refused shim is there: %v", a)
	}
	r.noDrift()
}

// TestHostShimRow: the shim's row in the datapath is marked HostShim (its
// ingress drops the containers' frames through it to other addresses,
// host_route), with its network's allow flags (allow_router=true lifts
// that), also after a restart; a container's row is not.
func TestHostShimRow(t *testing.T) {
	r := newRig(t, "eth0", "eth1")
	r.network("sn", "subnet=10.5.0.0/24", "parent=eth0", "host_shim=auto")
	r.network("rt", "subnet=10.6.0.0/24", "parent=eth1", "host_shim=auto", "allow_router=true")
	c1 := r.run("c1", "sn")
	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			link  string
			allow loader.Allow
		}{{"mvh-sn", 0}, {"mvh-rt", loader.AllowRouter}} {
			l, ok := r.k.HostLink(c.link)
			if !ok {
				t.Fatalf("%s: no %s", when, c.link)
			}
			row, ok := r.k.TableRow(enginetest.HostPath, l.Index)
			if !ok || !row.HostShim || row.Allow != c.allow {
				t.Errorf("%s: %s's row %+v (found %v); want HostShim, Allow %v", when, c.link, row, ok, c.allow)
			}
		}
		l := r.netnsLink(c1.Netns, "eth0")
		if row, ok := r.k.TableRow(c1.Netns, l.Index); !ok || row.HostShim {
			t.Errorf("%s: c1's row %+v (found %v); want one, not HostShim", when, row, ok)
		}
	}
	check("after create")
	r.stop()
	r.start()
	check("after a restart")
}

// TestHostShimMoveFailed: a move whose write of the shim's datapath row
// fails leaves the link with its old address (attachShim stops before
// its addresses): that address stays held, so no endpoint gets it while
// the host answers for it, also on a start whose attach fails again (the
// store no longer has it: a crash after the move's state looks the same);
// an attach that succeeds gives it back.
func TestHostShimMoveFailed(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("sn", "subnet=10.5.0.0/24", "parent=eth0", "host_shim=auto")
	old := netip.MustParseAddr("10.5.0.2")
	oldLink := []netip.Prefix{netip.PrefixFrom(old, 32)}
	r.k.FailShimRow(1)
	if err := r.update("sn", "10.5.0.50"); err != nil {
		t.Fatal(err)
	}
	if _, l := r.shimOf("sn"); !slices.Equal(l, oldLink) {
		t.Fatalf("the link after the failed move has %v; this test wants it to keep %v", l, oldLink)
	}
	if c := r.run("c1", "sn"); c.Addrs[0].Addr() == old {
		t.Fatalf("c1 got %v, which the shim's link still has", old)
	}
	r.stop()
	r.k.FailShimRow(1)
	r.start()
	if _, l := r.shimOf("sn"); !slices.Equal(l, oldLink) {
		t.Fatalf("the link after a start whose attach failed has %v; this test wants it to keep %v", l, oldLink)
	}
	if c := r.run("c2", "sn"); c.Addrs[0].Addr() == old {
		t.Fatalf("c2 (after a start) got %v, which the shim's link still has", old)
	}
	r.stop()
	r.start()
	if a, l := r.shimOf("sn"); !slices.Equal(a, []netip.Addr{netip.MustParseAddr("10.5.0.50")}) || !slices.Equal(l, []netip.Prefix{netip.MustParsePrefix("10.5.0.50/32")}) {
		t.Fatalf("after a start that attaches it: shim %v, link addresses %v; want 10.5.0.50", a, l)
	}
	r.noDrift()
	if c := r.run("c3", "sn"); c.Addrs[0].Addr() != old {
		t.Fatalf("c3 got %v; want the shim's freed %v", c.Addrs, old)
	}
	r.noDrift()
}

// TestHostShimOffFailed: shim off whose link cannot be deleted keeps the
// link's address held (no endpoint gets it), also over a start that
// cannot delete the link either; once a start deletes it, it is free. An
// IPv4 link-local subnet (169.254/16) is held like any other: only IPv6
// link-local addresses are the kernel's.
func TestHostShimOffFailed(t *testing.T) {
	for _, subnet := range []string{"10.5.0.0/24", "169.254.10.0/24"} {
		t.Run(subnet, func(t *testing.T) { testHostShimOffFailed(t, netip.MustParsePrefix(subnet)) })
	}
}

func testHostShimOffFailed(t *testing.T, subnet netip.Prefix) {
	r := newRig(t, "eth0")
	r.network("sn", "subnet="+subnet.String(), "parent=eth0", "host_shim=auto")
	old := subnet.Addr().Next().Next()
	r.k.StickHostLink("mvh-sn", 1)
	if err := r.update("sn", "off"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.k.HostAddrs("mvh-sn"), []netip.Prefix{netip.PrefixFrom(old, 32)}) {
		t.Fatalf("this test wants the shim's link left with %v; it has %v", old, r.k.HostAddrs("mvh-sn"))
	}
	if c := r.run("c1", "sn"); c.Addrs[0].Addr() == old {
		t.Fatalf("c1 got %v, which the shim's link still has", old)
	}
	r.stop()
	r.k.StickHostLink("mvh-sn", 2) // the start's stale-link removal, then ensureShim's
	r.start()
	if _, ok := r.k.HostLink("mvh-sn"); !ok {
		t.Fatal("this test wants the link to survive the start")
	}
	if c := r.run("c2", "sn"); c.Addrs[0].Addr() == old {
		t.Fatalf("c2 (after a start) got %v, which the shim's link still has", old)
	}
	r.stop()
	r.start()
	if _, ok := r.k.HostLink("mvh-sn"); ok {
		t.Fatal("the shim's link is still there after a start")
	}
	r.noDrift()
	if c := r.run("c3", "sn"); c.Addrs[0].Addr() != old {
		t.Fatalf("c3 got %v; want the shim's freed %v", c.Addrs, old)
	}
	r.noDrift()
}

// TestHostShimDockerIPAM: on a network whose addresses Docker's own IPAM
// driver assigns, host_shim=auto is refused, at create and by update (it
// would take an address Docker gives its next container), naming the
// way out; an explicit address is taken.
func TestHostShimDockerIPAM(t *testing.T) {
	r := newRig(t, "eth0")
	ctx := context.Background()
	req := api.NetworkCreate{Name: "dn", Subnets: []string{"10.5.0.0/24"}, Options: []string{"parent=eth0", "host_shim=auto"}, DockerIPAM: true}
	if _, err := r.e.CreateNetwork(ctx, req); engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), "host_shim=IP") {
		t.Fatalf("create with host_shim=auto and Docker's IPAM: %v; want invalid, naming host_shim=IP", err)
	}
	req.Options = req.Options[:1]
	if _, err := r.e.CreateNetwork(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := r.update("dn", "auto"); engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), "Docker's IPAM") {
		t.Fatalf("update to host_shim=auto with Docker's IPAM: %v; want invalid, naming Docker's IPAM", err)
	}
	if a, _ := r.shimOf("dn"); a != nil {
		t.Fatalf("after the refused update: shim %v; want none", a)
	}
	if err := r.update("dn", "10.5.0.250"); err != nil {
		t.Fatalf("update to an explicit address with Docker's IPAM: %v", err)
	}
}
