package loader

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// TestLimits fills each table and counter map up to the limit the agent
// may reach and checks that every entry is there and nothing was lost;
// one more is refused (tables) or counted in map_full (counters), never
// silent. About 3 s.
func TestLimits(t *testing.T) {
	d := newTestDatapath(t)
	t.Run("drop reasons of every network", func(t *testing.T) { fillDrops(t, d) })
	t.Run("vlan counters", func(t *testing.T) { fillVLANs(t, d) })
	t.Run("endpoints", func(t *testing.T) { fillEndpoints(t, d) })
	t.Run("parents", func(t *testing.T) { fillParents(t, d) })
}

// fillDrops makes endpoint A a member of each network 1-MaxNetworkID in
// turn and sends one frame per egress drop reason.
func fillDrops(t *testing.T, d *Datapath) {
	setupEndpoints(t, d)
	p, err := d.endpointPrograms(testCookie)
	if err != nil {
		t.Fatal(err)
	}
	frames := map[DropReason]func(other net.HardwareAddr) []byte{
		MACSpoof: func(net.HardwareAddr) []byte {
			return ethFrame(macRouter, macEvil, 0x0800, v4("10.1.0.10", "10.2.0.12"))
		},
		IPSpoof: func(net.HardwareAddr) []byte { return ethFrame(macRouter, macA, 0x0800, v4("10.1.0.99", "10.2.0.12")) },
		ARPSpoof: func(net.HardwareAddr) []byte {
			return ethFrame(broadcastMAC, macA, 0x0806, arpPacket(2, macB, "10.1.0.10", macRouter, "10.1.0.1"))
		},
		NDSpoof:      func(net.HardwareAddr) []byte { return icmp6From(llA, "ff02::2", routerSolicit(llaOpt(1, macB))) },
		CrossNetwork: func(o net.HardwareAddr) []byte { return ethFrame(o, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")) },
		RAGuard:      func(net.HardwareAddr) []byte { return icmp6From(llA, "ff02::1", routerAdvert()) },
		DHCPGuard: func(net.HardwareAddr) []byte {
			return ethFrame(broadcastMAC, macA, 0x0800, ipv4Packet("10.1.0.10", "255.255.255.255", 17, udp(67, 68, 240)))
		},
		Unparsable: func(net.HardwareAddr) []byte { return icmp6From(llA, "ff02::2", routerSolicit(nonces(13)...)) },
	}
	for id := uint32(1); id <= MaxNetworkID; id++ {
		if err := d.SetEndpoint(Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: id,
			IPs: addrs("10.1.0.10", "2001:db8:1::10")}); err != nil {
			t.Fatal(err)
		}
		other := macC // network 2
		if id == netC {
			other = macB
		}
		for reason, frame := range frames {
			if got := run(t, p.egress, frame(other)); got != verdictDrop {
				t.Fatalf("network %d, %s: verdict %#x, want drop", id, reason, got)
			}
		}
	}
	s, err := d.Counters(MaxNetworkID)
	if err != nil {
		t.Fatal(err)
	}
	if want := MaxNetworkID * len(frames); len(s.Drops) != want {
		t.Errorf("%d drop counters, want %d", len(s.Drops), want)
	}
	for id := uint32(1); id <= MaxNetworkID; id++ {
		for reason := range frames {
			if c := s.Drops[DropKey{id, reason}]; c.Packets != 1 {
				t.Fatalf("drop %d %s: %+v, want 1 packet", id, reason, c)
			}
		}
	}
	expectMapFull(t, d, map[string]uint64{})
}

// fillVLANs fills vlan_stats but for one entry, then a parent sees two
// new VLANs: the first is counted, the second is a lost count, visible in
// map_full.
func fillVLANs(t *testing.T, d *Datapath) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxVLANCounters - 1 {
		k := vlanKey{Ifindex: uint32(1000 + i/4096), VID: uint16(i % 4096)}
		if err := d.maps.VlanStats.Put(&k, make([]trafficValue, ncpu)); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	in := func(vid uint16) []byte { return tagged(sizedFrame(64), 0x8100, vid) }
	for _, vid := range []uint16{7, 8} {
		if got := run(t, d.parentIngress, in(vid)); got != verdictNext {
			t.Fatalf("verdict %#x, want next", got)
		}
	}
	s, err := d.Counters(MaxNetworkID)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.VLAN) != MaxVLANCounters {
		t.Errorf("%d vlan counters, want %d", len(s.VLAN), MaxVLANCounters)
	}
	if c := s.VLAN[VLANKey{1, 7}].Rx; c != one(len(in(7))) {
		t.Errorf("vlan 1/7 rx %+v, want one frame", c)
	}
	expectMapFull(t, d, map[string]uint64{"vlan_stats": 1})
}

// fillEndpoints adds MaxEndpoints endpoints; one more is refused with
// ErrTableFull and leaves no address behind.
func fillEndpoints(t *testing.T, d *Datapath) {
	for _, e := range mustEndpoints(t, d) {
		if err := d.DeleteEndpoint(e.NetnsCookie, e.Ifindex); err != nil {
			t.Fatal(err)
		}
	}
	ep := func(i int) Endpoint {
		return Endpoint{NetnsCookie: 1000 + uint64(i), Ifindex: 2, NetworkID: 9,
			MAC: net.HardwareAddr{2, 0, 0, 1, byte(i >> 8), byte(i)},
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 64, byte(i >> 8), byte(i)})}}
	}
	for i := range MaxEndpoints {
		if err := d.SetEndpoint(ep(i)); err != nil {
			t.Fatalf("endpoint %d: %v", i, err)
		}
	}
	err := d.SetEndpoint(ep(MaxEndpoints))
	if !errors.Is(err, ErrTableFull) {
		t.Fatalf("endpoint %d: %v, want ErrTableFull", MaxEndpoints, err)
	}
	if n := len(mustEndpoints(t, d)); n != MaxEndpoints {
		t.Errorf("%d endpoints, want %d", n, MaxEndpoints)
	}
	extra := newIPKey(ep(MaxEndpoints).IPs[0])
	var v ipInfo
	if err := d.maps.EpByIp.Lookup(&extra, &v); err == nil {
		t.Errorf("the refused endpoint's address %s is in ep_by_ip", extra.addr())
	}
	expectMapFull(t, d, map[string]uint64{"vlan_stats": 1, "endpoints": 1})
}

// fillParents adds MaxParents parents; one more is refused.
func fillParents(t *testing.T, d *Datapath) {
	for i := range MaxParents {
		if err := d.SetParent(100+i, uint32(1+i%MaxNetworkID), 0); err != nil {
			t.Fatalf("parent %d: %v", i, err)
		}
	}
	if err := d.SetParent(100+MaxParents, 1, 0); !errors.Is(err, ErrTableFull) {
		t.Fatalf("parent %d: %v, want ErrTableFull", MaxParents, err)
	}
	ps, err := d.Parents()
	if err != nil || len(ps) != MaxParents {
		t.Fatalf("%d parents (%v), want %d", len(ps), err, MaxParents)
	}
	expectMapFull(t, d, map[string]uint64{"vlan_stats": 1, "endpoints": 1, "parents": 1})
}

// expectMapFull checks the map_full counts: every map listed, those in
// want at their value, the others at zero.
func expectMapFull(t *testing.T, d *Datapath, want map[string]uint64) {
	t.Helper()
	s, err := d.Counters(MaxNetworkID)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.MapFull) != len(mapNames) {
		t.Errorf("map_full lists %d maps, want all %d", len(s.MapFull), len(mapNames))
	}
	for _, name := range mapNames {
		if got := s.MapFull[name]; got != want[name] {
			t.Errorf("map_full %s = %d, want %d", name, got, want[name])
		}
	}
}

func mustEndpoints(t *testing.T, d *Datapath) []Endpoint {
	t.Helper()
	eps, err := d.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	return eps
}
