package loader

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// ipTable returns ep_by_ip as address -> network id.
func ipTable(t *testing.T, d *Datapath) map[netip.Addr]uint32 {
	t.Helper()
	out := map[netip.Addr]uint32{}
	var k ipKey
	var v ipInfo
	it := d.maps.EpByIp.Iterate()
	for it.Next(&k, &v) {
		out[k.addr()] = v.NetworkID
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTables(t *testing.T) {
	d := newTestDatapath(t)
	ep := Endpoint{NetnsCookie: 7, Ifindex: 3, MAC: macA, NetworkID: 5, IPs: addrs("10.1.0.10", "2001:db8::10")}
	if err := d.SetEndpoint(ep); err != nil {
		t.Fatal(err)
	}
	ll := linkLocal([6]byte(macA))
	want := map[netip.Addr]uint32{netip.MustParseAddr("10.1.0.10"): 5, netip.MustParseAddr("2001:db8::10"): 5, ll: 5}
	if got := ipTable(t, d); !mapsEqual(got, want) {
		t.Errorf("ep_by_ip %v, want %v", got, want)
	}
	// An update drops the addresses the endpoint no longer has.
	ep.IPs = addrs("10.1.0.20")
	if err := d.SetEndpoint(ep); err != nil {
		t.Fatal(err)
	}
	want = map[netip.Addr]uint32{netip.MustParseAddr("10.1.0.20"): 5, ll: 5}
	if got := ipTable(t, d); !mapsEqual(got, want) {
		t.Errorf("after update ep_by_ip %v, want %v", got, want)
	}
	eps, err := d.Endpoints()
	if err != nil || len(eps) != 1 || !slices.Equal(eps[0].IPs, addrs("10.1.0.20", ll.String())) || eps[0].MAC.String() != macA.String() {
		t.Errorf("Endpoints() = %+v, %v", eps, err)
	}
	if err := d.DeleteEndpoint(7, 3); err != nil {
		t.Fatal(err)
	}
	if got := ipTable(t, d); len(got) != 0 {
		t.Errorf("after delete ep_by_ip %v", got)
	}
	if err := d.DeleteEndpoint(7, 3); err != nil {
		t.Errorf("deleting a missing endpoint: %v", err)
	}
	for _, bad := range []Endpoint{
		{NetnsCookie: 1, Ifindex: 1, MAC: macA, NetworkID: 1, IPs: addrs("10.0.0.1", "10.0.0.2", "10.0.0.3")},
		{NetnsCookie: 1, Ifindex: 1, MAC: macA, NetworkID: 4096},
		{NetnsCookie: 1, Ifindex: 0, MAC: macA, NetworkID: 1},
		{NetnsCookie: 1, Ifindex: 1, MAC: macA[:4], NetworkID: 1},
	} {
		if err := d.SetEndpoint(bad); err == nil {
			t.Errorf("SetEndpoint(%+v) succeeded", bad)
		}
	}
}

// TestMoveEndpoint: the row moves to the new keys; the MAC's entry stays,
// the addresses follow the new row; moving from keys without a row is
// SetEndpoint.
func TestMoveEndpoint(t *testing.T) {
	d := newTestDatapath(t)
	ep := Endpoint{NetnsCookie: 7, Ifindex: 3, MAC: macA, NetworkID: 5, IPs: addrs("10.1.0.10", "10.1.0.11")}
	if err := d.SetEndpoint(ep); err != nil {
		t.Fatal(err)
	}
	ep.NetnsCookie, ep.Ifindex, ep.IPs = 8, 4, addrs("10.1.0.10")
	if err := d.MoveEndpoint(7, 3, ep); err != nil {
		t.Fatal(err)
	}
	eps, err := d.Endpoints()
	if err != nil || len(eps) != 1 || eps[0].NetnsCookie != 8 || eps[0].Ifindex != 4 {
		t.Fatalf("rows after the move: %+v %v; want one, under 8/4", eps, err)
	}
	var info epInfo
	if err := d.maps.EpByMac.Lookup(&macKey{MAC: [6]byte(macA)}, &info); err != nil {
		t.Errorf("ep_by_mac lost %s: %v", macA, err)
	}
	want := map[netip.Addr]uint32{netip.MustParseAddr("10.1.0.10"): 5, linkLocal([6]byte(macA)): 5}
	if got := ipTable(t, d); !mapsEqual(got, want) {
		t.Errorf("ep_by_ip %v, want %v", got, want)
	}
	ep.NetnsCookie, ep.Ifindex = 9, 5
	if err := d.MoveEndpoint(1, 1, ep); err != nil {
		t.Fatal(err)
	}
	if eps, _ := d.Endpoints(); len(eps) != 2 {
		t.Errorf("a move from keys without a row: rows %+v, want the old and the new", eps)
	}
}

// TestMoveEndpointMoving: a moving row (a Docker endpoint's, under the
// host's keys) that moves is not moving under its new keys; one that
// cannot move (here a new row the table refuses) stays where it was, no
// longer moving, and keeps its MAC and addresses.
func TestMoveEndpointMoving(t *testing.T) {
	d := newTestDatapath(t)
	ep := Endpoint{NetnsCookie: 7, Ifindex: 3, MAC: macA, NetworkID: 5, IPs: addrs("10.1.0.10"), Allow: AllowRouter, Moving: true}
	if err := d.SetEndpoint(ep); err != nil {
		t.Fatal(err)
	}
	bad := ep
	bad.NetnsCookie, bad.Ifindex, bad.NetworkID, bad.Moving = 8, 4, 0, false // network 0: refused
	if err := d.MoveEndpoint(7, 3, bad); err == nil {
		t.Fatal("a move to network 0 succeeded")
	}
	eps, err := d.Endpoints()
	if err != nil || len(eps) != 1 || eps[0].NetnsCookie != 7 || eps[0].Moving || eps[0].Allow != AllowRouter || !slices.Contains(eps[0].IPs, netip.MustParseAddr("10.1.0.10")) {
		t.Fatalf("rows after a failed move: %+v %v; want the old one under 7/3, not moving, its allow flags and address kept", eps, err)
	}
	if err := d.SetEndpoint(ep); err != nil { // moving again
		t.Fatal(err)
	}
	good := ep
	good.NetnsCookie, good.Ifindex, good.Moving = 8, 4, false
	if err := d.MoveEndpoint(7, 3, good); err != nil {
		t.Fatal(err)
	}
	if eps, err := d.Endpoints(); err != nil || len(eps) != 1 || eps[0].NetnsCookie != 8 || eps[0].Moving {
		t.Fatalf("rows after the move: %+v %v; want one under 8/4, not moving", eps, err)
	}
}

func mapsEqual(a, b map[netip.Addr]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestParentsAndForget(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	if err := d.SetParent(1, netA, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.SetParent(1, netA, 4095); err == nil {
		t.Error("SetParent with VLAN 4095 succeeded")
	}
	if ps, err := d.Parents(); err != nil || len(ps) != 1 || ps[0] != (Parent{Ifindex: 1, NetworkID: netA}) {
		t.Errorf("Parents() = %+v, %v", ps, err)
	}
	p, err := d.endpointPrograms(testCookie)
	if err != nil {
		t.Fatal(err)
	}
	run(t, p.egress, ethFrame(macRouter, macEvil, 0x0800, v4("10.1.0.10", "10.2.0.12")))
	run(t, p.egress, ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")))
	run(t, d.parentIngress, ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(1, macRouter, "10.1.0.1", macA, "10.1.0.10")))
	if err := d.ForgetNetwork(netA); err != nil {
		t.Fatal(err)
	}
	for k := range snapshot(t, d) {
		if k != "vlan 1/0 rx" {
			t.Errorf("counter %s of network 1 left after ForgetNetwork", k)
		}
	}
	if err := d.DeleteParent(1); err != nil {
		t.Fatal(err)
	}
	if ps, _ := d.Parents(); len(ps) != 0 {
		t.Errorf("parents after delete: %+v", ps)
	}
}

// TestMountsBPFFS: Load mounts a bpffs on a pin directory that is on none
// (here a temporary directory; /sys/fs/bpf when the directory is below it).
func TestMountsBPFFS(t *testing.T) {
	nstest.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "pins")
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	d, err := Load(context.Background(), dir, testPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if on, err := onBPFFS(dir); err != nil || !on {
		t.Errorf("%s on bpffs: %v, %v", dir, on, err)
	}
	for in, want := range map[string]string{"/sys/fs/bpf/mvlan": "/sys/fs/bpf", "/sys/fs/bpf": "/sys/fs/bpf", "/run/x/bpf": "/run/x/bpf"} {
		if got := mountPointFor(in); got != want {
			t.Errorf("mountPointFor(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestDeleteStaleRowSameMAC: the row of a link that is gone (a host shim
// re-made: same MAC, same addresses, another ifindex) is deleted without
// taking the live row's address entries with it.
func TestDeleteStaleRowSameMAC(t *testing.T) {
	d := newTestDatapath(t)
	stale := Endpoint{NetnsCookie: 7, Ifindex: 3, MAC: macA, NetworkID: 5, IPs: addrs("10.1.0.10", "10.1.0.11")}
	if err := d.SetEndpoint(stale); err != nil {
		t.Fatal(err)
	}
	live := stale
	live.Ifindex, live.IPs = 4, addrs("10.1.0.10")
	if err := d.SetEndpoint(live); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteEndpoint(7, 3); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]uint32{netip.MustParseAddr("10.1.0.10"): 5, linkLocal([6]byte(macA)): 5}
	if got := ipTable(t, d); !mapsEqual(got, want) {
		t.Errorf("ep_by_ip after the stale row went: %v, want the live row's %v", got, want)
	}
	var info epInfo
	if err := d.maps.EpByMac.Lookup(&macKey{MAC: [6]byte(macA)}, &info); err != nil {
		t.Errorf("ep_by_mac lost %s: %v", macA, err)
	}
}
