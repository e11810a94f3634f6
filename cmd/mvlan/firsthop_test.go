package main

// Privileged end-to-end tests of the first-hop guards (issue 13): real
// frames sent from a container's namespace through its own link, toward
// a neighbour container and the wire, in both attach modes.

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// TestFirstHopGuards: container 1 of a dual-stack network whose
// containers accept router advertisements (-o ipv6_ra=accept, the
// neighbour's worst case) sends 3 each of a router advertisement, a DHCP
// server reply, a DHCPv6 server reply, a neighbour solicitation whose
// source link-layer option is a MAC not its own and a frame with an 802.1Q
// tag (into VLAN 5 of the wire). Each is dropped on its
// way out: a marker frame sent after them reaches container 2 and the
// wire, and they did not; each is counted under its reason by exactly 3;
// container 2 has no default route via container 1 and no neighbour entry
// with the foreign MAC. The controls: the legitimate solicitation does
// make that entry (with container 1's MAC), and the same advertisement
// from a container of a network with -o allow_router=true gives its
// neighbour a default route. About 3 s per mode, in parallel.
func TestFirstHopGuards(t *testing.T) {
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newDPEnv(t, m, "eth1")
			e.a.ok("network", "create", "--ipv6", "--subnet=172.16.86.0/24", "--subnet=2001:db8:86::/64",
				"-o", "parent=eth0", "-o", "ipv6_ra=accept", "-o", "ipv6_ra_source=fe80::1", "fh")
			c1, c2 := e.name("1"), e.name("2")
			ep1 := e.runD(c1, "fh", "--ip=172.16.86.10", "--ip6=2001:db8:86::10")
			e.runD(c2, "fh", "--ip=172.16.86.11", "--ip6=2001:db8:86::11")
			g := newGuardEnv(e, ep1)
			foreign := nstest.MAC(t, "02:00:5e:00:53:66")
			g.dropped("ra_guard", g.ra(g.mac))
			g.dropped("dhcp_guard", g.udp4(67, 68))
			g.dropped("dhcp_guard", g.udp6(547, 546))
			g.dropped("nd_spoof", g.ns(addr("2001:db8:86::11"), foreign))
			g.dropped("vlan_tag", vlanTagged(g.udp4(40000, 9), 5))
			if r := e.in(c2, "ip", "-6", "route", "show", "default"); strings.Contains(r, g.ll.String()) {
				t.Errorf("%s has a default route via %s after its dropped RAs:\n%s", c2, g.ll, r)
			}
			if n := e.in(c2, "ip", "-6", "neigh", "show"); strings.Contains(n, foreign.String()) {
				t.Errorf("%s has a neighbour entry with the foreign MAC %s:\n%s", c2, foreign, n)
			}
			sendFrames(t, c1, "eth0", g.ns(addr("2001:db8:86::11"), g.mac), 1)
			if !waitFor(5*time.Second, func() bool {
				return strings.Contains(e.in(c2, "ip", "-6", "neigh", "show", "2001:db8:86::10"), g.mac.String())
			}) {
				t.Errorf("the legitimate NS made no neighbour entry with %s in %s (the control)", g.mac, c2)
			}

			// The router container's RAs are the ones its neighbours take.
			routerMAC := nstest.MAC(t, "02:00:5e:00:53:87")
			e.a.ok("network", "create", "--ipv6", "--subnet=172.16.87.0/24", "--subnet=2001:db8:87::/64",
				"-o", "parent=eth1", "-o", "ipv6_ra=accept", "-o", "ipv6_ra_source="+eui64(routerMAC).String(), "-o", "allow_router=true", "fhr")
			c3, c4 := e.name("3"), e.name("4")
			ep3 := e.runD(c3, "fhr", "--ip=172.16.87.10", "--ip6=2001:db8:87::10", "--mac="+routerMAC.String())
			e.runD(c4, "fhr", "--ip=172.16.87.11", "--ip6=2001:db8:87::11")
			r := newGuardEnv(e, ep3)
			sendFrames(t, c3, "eth0", r.ra(r.mac), 1)
			if !waitFor(5*time.Second, func() bool {
				return strings.Contains(e.in(c4, "ip", "-6", "route", "show", "default"), r.ll.String())
			}) {
				t.Errorf("the allowed router's RA gave %s no default route via %s (the control)", c4, r.ll)
			}
		})
	}
}

// TestRASourceWire: containers of a network with -o ipv6_ra=accept and
// -o ipv6_ra_source=fe80::1,02:00:5e:00:53:01 take the gateway's router
// advertisement from the wire (a default route via fe80::1), not a rogue
// one from another host on the wire: 3 rogue RAs (another MAC and
// link-local), then 3 with the gateway's link-local from the rogue's MAC,
// are each dropped on the container's ingress and counted as ra_source,
// and give it no default route via the rogue. The gateway's RA carries
// the subnet as an autonomous prefix: the container makes no SLAAC
// address of it (one mvlan did not give, whose frames the datapath would
// drop). About 3 s per mode.
func TestRASourceWire(t *testing.T) {
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newDPEnv(t, m)
			e.a.ok("network", "create", "--ipv6", "--subnet=172.16.86.0/24", "--subnet=2001:db8:86::/64",
				"-o", "parent=eth0", "-o", "ipv6_ra=accept", "-o", "ipv6_ra_source=fe80::1,02:00:5e:00:53:01", "ra")
			c1 := e.name("1")
			e.runD(c1, "ra", "--ip=172.16.86.10", "--ip6=2001:db8:86::10")
			gateway, rogue := nstest.MAC(t, "02:00:5e:00:53:01"), nstest.MAC(t, "02:00:5e:00:53:66")
			ra := func(mac net.HardwareAddr, ll netip.Addr) []byte {
				return routerAdvert(t, mac, ll, netip.MustParsePrefix("2001:db8:86::/64"))
			}
			labels := map[string]string{"network": "ra", "reason": "ra_source"}
			v := e.view("", "")
			before := counter(v.scrape(), "mvlan_policy_drops_total", labels)
			sendFrames(t, e.sb.WirePath, "wire0", ra(rogue, addr("fe80::66")), 3)
			sendFrames(t, e.sb.WirePath, "wire0", ra(rogue, addr("fe80::1")), 3)
			sendFrames(t, e.sb.WirePath, "wire0", ra(gateway, addr("fe80::1")), 1)
			if !waitFor(5*time.Second, func() bool {
				return strings.Contains(e.in(c1, "ip", "-6", "route", "show", "default"), "via fe80::1 ")
			}) {
				t.Fatalf("the gateway's RA gave %s no default route via fe80::1:\n%s", c1, e.in(c1, "ip", "-6", "route"))
			}
			if a := e.in(c1, "ip", "-6", "-o", "addr", "show", "scope", "global"); strings.Count(a, " inet6 ") != 1 || !strings.Contains(a, " 2001:db8:86::10/64 ") {
				t.Errorf("%s has global IPv6 addresses\n%swant only its own 2001:db8:86::10/64 (no SLAAC address)", c1, a)
			}
			if !waitFor(2*time.Second, func() bool { return counter(v.scrape(), "mvlan_policy_drops_total", labels) >= before+6 }) {
				t.Errorf("mvlan_policy_drops_total%v moved by %d, want 6", labels, counter(v.scrape(), "mvlan_policy_drops_total", labels)-before)
			}
			if r := e.in(c1, "ip", "-6", "route"); strings.Contains(r, "fe80::66") || strings.Contains(e.in(c1, "ip", "-6", "neigh"), rogue.String()) {
				t.Errorf("%s took the rogue's RA:\n%s", c1, r)
			}
			if got := counter(v.scrape(), "mvlan_policy_drops_total", labels); got != before+6 {
				t.Errorf("mvlan_policy_drops_total%v moved by %d, want exactly 6", labels, got-before)
			}
		})
	}
}

// TestNDClaimWire: another host on the wire sends container 2 three
// neighbour solicitations from container 1's IPv6 address with its own MAC
// as the source link-layer option, so that container 2 would send
// container 1's traffic to it. Each is dropped on container 2's ingress
// (nd_spoof, exactly 3), and container 2 has no entry for container 1's
// address with the rogue's MAC. The control: the same solicitation from an
// address of no container does make its entry.
func TestNDClaimWire(t *testing.T) {
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newDPEnv(t, m)
			e.a.ok("network", "create", "--ipv6", "--subnet=172.16.86.0/24", "--subnet=2001:db8:86::/64", "-o", "parent=eth0", "nd")
			c1, c2 := e.name("1"), e.name("2")
			e.runD(c1, "nd", "--ip=172.16.86.10", "--ip6=2001:db8:86::10")
			ep2 := e.runD(c2, "nd", "--ip=172.16.86.11", "--ip6=2001:db8:86::11")
			rogue, to := nstest.MAC(t, "02:00:5e:00:53:66"), addr("2001:db8:86::11")
			ns := func(from netip.Addr) []byte {
				target := to.As16()
				body := append([]byte{135, 0, 0, 0, 0, 0, 0, 0}, target[:]...)
				body = append(append(body, 1, 1), rogue...)
				return ipv6Frame(nstest.MAC(t, ep2.MAC), rogue, from, to, 58, body)
			}
			labels := map[string]string{"network": "nd", "reason": "nd_spoof"}
			before := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels)
			sendFrames(t, e.sb.WirePath, "wire0", ns(addr("2001:db8:86::10")), 3)
			sendFrames(t, e.sb.WirePath, "wire0", ns(addr("2001:db8:86::99")), 1)
			if !waitFor(5*time.Second, func() bool {
				return strings.Contains(e.in(c2, "ip", "-6", "neigh", "show", "2001:db8:86::99"), rogue.String())
			}) {
				t.Fatalf("the solicitation from an address of no container made no entry in %s (the control):\n%s", c2, e.in(c2, "ip", "-6", "neigh"))
			}
			if n := e.in(c2, "ip", "-6", "neigh", "show", "2001:db8:86::10"); strings.Contains(n, rogue.String()) {
				t.Errorf("%s took the rogue's %s for %s's address:\n%s", c2, rogue, c1, n)
			}
			text := e.waitCounter("mvlan_policy_drops_total", labels, before+3, nil)
			if got := counter(text, "mvlan_policy_drops_total", labels); got != before+3 {
				t.Errorf("mvlan_policy_drops_total%v went from %d to %d; want +3", labels, before, got)
			}
		})
	}
}

// guardEnv sends first-hop frames from one container.
type guardEnv struct {
	e      *dpEnv
	c      string // the container (its netns name)
	ifName string // the link it sends from (eth0)
	peer   api.Endpoint
	net    string
	mac    net.HardwareAddr // the MAC frames are sent with
	own    net.HardwareAddr // the container's own MAC (of its eth0)
	ll, v6 netip.Addr       // its link-local and global IPv6 addresses
	v4     netip.Addr
	marker uint16
	bypass bool // send with PACKET_QDISC_BYPASS, past the link's TC
}

func newGuardEnv(e *dpEnv, ep api.Endpoint) *guardEnv {
	e.t.Helper()
	g := &guardEnv{e: e, c: ep.Name, ifName: "eth0", net: ep.Network, mac: nstest.MAC(e.t, ep.MAC)}
	g.own = g.mac
	for _, p := range ep.Addrs {
		if p.Addr().Is4() {
			g.v4 = p.Addr()
		} else {
			g.v6 = p.Addr()
		}
	}
	g.ll = eui64(g.mac)
	return g
}

// dropped sends frame 3 times from the container, each refused by its own
// egress program (ENOBUFS), then a marker: the marker reaches the
// network's other container and the wire, the frame does not, and the drop
// counter of reason moves by exactly 3.
func (g *guardEnv) dropped(reason string, frame []byte) {
	g.e.t.Helper()
	peer := g.e.name("2")
	g.check(reason, frame, 3, map[string]*nstest.Capture{
		"the wire": nstest.NewCapture(g.e.t, g.e.sb.WirePath, "wire0"),
		peer:       nstest.NewCapture(g.e.t, peer, "eth0"),
	}, func() {
		for i, err := range sendEachWith(g.e.t, g.c, g.ifName, frame, 3, g.bypass) {
			if !errors.Is(err, unix.ENOBUFS) {
				g.e.t.Errorf("%s frame %d: send returned %v; want ENOBUFS (dropped on the container's egress)", reason, i+1, err)
			}
		}
	})
}

// droppedBy sends frame 3 times from the container, which lets it out
// (its own programs are gone), then a marker. Where is "the wire" (the
// parent's egress drops it, which the send reports as ENOBUFS; the wire
// sees the marker, not the frame) or a container (its ingress drops it,
// after the send returned; its capture, which runs before the ingress
// programs, only tells when the marker is through). The drop counter of
// reason moves by exactly 3 x receivers (default 1).
func (g *guardEnv) droppedBy(reason string, frame []byte, where string, receivers ...int) {
	g.e.t.Helper()
	n := 1
	if len(receivers) > 0 {
		n = receivers[0]
	}
	c := map[string]*nstest.Capture{}
	var want error
	if where == "the wire" {
		c[where] = nstest.NewCapture(g.e.t, g.e.sb.WirePath, "wire0")
		want = unix.ENOBUFS
	} else {
		c["sync:"+where] = nstest.NewCapture(g.e.t, where, "eth0")
	}
	g.check(reason, frame, uint64(3*n), c, func() {
		for i, err := range sendEachWith(g.e.t, g.c, g.ifName, frame, 3, g.bypass) {
			if !errors.Is(err, want) && err != want {
				g.e.t.Errorf("%s frame %d toward %s: send returned %v; want %v", reason, i+1, where, err, want)
			}
		}
	})
}

// check runs send, then sends a marker; every capture must see the marker
// and (unless named "sync:...") not the frame; the drop counter of reason
// must move by exactly want.
func (g *guardEnv) check(reason string, frame []byte, want uint64, captures map[string]*nstest.Capture, send func()) {
	g.e.t.Helper()
	labels := map[string]string{"network": g.net, "reason": reason}
	before := counter(g.e.view("", "").scrape(), "mvlan_policy_drops_total", labels)
	send()
	g.marker++
	marker := g.markerFrame(g.marker) // from eth0, with the container's own MAC
	sendFrames(g.e.t, g.c, "eth0", marker, 1)
	for where, c := range captures {
		leaked := false
		_, err := c.Wait(3*time.Second, func(f []byte) bool {
			leaked = leaked || sameFrame(f, frame)
			return strings.Contains(string(f), string(marker[len(marker)-16:]))
		})
		if err != nil {
			g.e.t.Fatalf("%s: the marker after the %s frames never arrived: %v", where, reason, err)
		}
		if leaked && !strings.HasPrefix(where, "sync:") {
			g.e.t.Errorf("%s received a frame that %s should have dropped", where, reason)
		}
	}
	text := g.e.waitCounter("mvlan_policy_drops_total", labels, before+want, nil)
	if got := counter(text, "mvlan_policy_drops_total", labels); got != before+want {
		g.e.t.Errorf("mvlan_policy_drops_total%v went from %d to %d; want +%d", labels, before, got, want)
	}
}

// vlanTagged is frame with an 802.1Q tag of vid after its MAC addresses.
func vlanTagged(frame []byte, vid uint16) []byte {
	out := binary.BigEndian.AppendUint16(append([]byte{}, frame[:12]...), unix.ETH_P_8021Q)
	out = binary.BigEndian.AppendUint16(out, vid)
	return append(out, frame[12:]...)
}

// sameFrame: captured is frame, or frame without its outer 802.1Q tag (a
// receive path moves the tag into the skb, and AF_PACKET leaves it out).
func sameFrame(captured, frame []byte) bool {
	if string(captured) == string(frame) {
		return true
	}
	return len(frame) > 16 && binary.BigEndian.Uint16(frame[12:]) == unix.ETH_P_8021Q &&
		string(captured) == string(frame[:12])+string(frame[16:])
}

// markerFrame is a legitimate IPv4 UDP broadcast from the container whose
// last 16 bytes name marker n.
func (g *guardEnv) markerFrame(n uint16) []byte {
	payload := []byte("mvlan-marker-")
	payload = binary.BigEndian.AppendUint16(append(payload, '#'), n)
	payload = append(payload, '!')
	return udp4Frame(g.own, g.v4, netip.MustParseAddr("255.255.255.255"), 40000, 9, payload)
}

// ra is a router advertisement (lifetime 1800 s) with a source link-layer
// option of slla, from the container's link-local address to ff02::1.
func (g *guardEnv) ra(slla net.HardwareAddr) []byte {
	body := []byte{134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}
	body = append(body, slla...)
	return ipv6Frame(nstest.MAC(g.e.t, "33:33:00:00:00:01"), g.mac, g.ll, addr("ff02::1"), 58, body)
}

// ns is a neighbour solicitation for target from the container's global
// address, with a source link-layer option of slla.
func (g *guardEnv) ns(target netip.Addr, slla net.HardwareAddr) []byte {
	t := target.As16()
	snm := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	body := append([]byte{135, 0, 0, 0, 0, 0, 0, 0}, t[:]...)
	body = append(append(body, 1, 1), slla...)
	dst := net.HardwareAddr{0x33, 0x33, 0xff, t[13], t[14], t[15]}
	return ipv6Frame(dst, g.mac, g.v6, snm, 58, body)
}

func (g *guardEnv) udp4(sport, dport uint16) []byte {
	return udp4Frame(g.mac, g.v4, netip.MustParseAddr("255.255.255.255"), sport, dport, make([]byte, 240))
}

func (g *guardEnv) udp6(sport, dport uint16) []byte {
	body := make([]byte, 8+40)
	binary.BigEndian.PutUint16(body, sport)
	binary.BigEndian.PutUint16(body[2:], dport)
	binary.BigEndian.PutUint16(body[4:], uint16(len(body)))
	return ipv6Frame(nstest.MAC(g.e.t, "33:33:00:01:00:02"), g.mac, g.ll, addr("ff02::1:2"), 17, body)
}

// ipv6Frame is an Ethernet frame with an IPv6 packet (hop limit 255) whose
// ICMPv6 or UDP checksum is set, so that a receiving kernel takes it.
func ipv6Frame(dst, src net.HardwareAddr, from, to netip.Addr, next byte, body []byte) []byte {
	f := append(append(append([]byte{}, dst...), src...), 0x86, 0xdd)
	h := make([]byte, 40)
	h[0], h[6], h[7] = 0x60, next, 255
	binary.BigEndian.PutUint16(h[4:], uint16(len(body)))
	s, d := from.As16(), to.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	body = append([]byte{}, body...)
	sumAt := 2 // ICMPv6
	if next == 17 {
		sumAt = 6
	}
	pseudo := append(append(append([]byte{}, s[:]...), d[:]...), 0, 0, byte(len(body)>>8), byte(len(body)), 0, 0, 0, next)
	binary.BigEndian.PutUint16(body[sumAt:], nstest.Checksum(append(pseudo, body...)))
	return append(append(f, h...), body...)
}

// udp4Frame is an Ethernet broadcast with an IPv4 UDP datagram (UDP
// checksum 0: none).
func udp4Frame(src net.HardwareAddr, from, to netip.Addr, sport, dport uint16, payload []byte) []byte {
	f := append(append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src...), 0x08, 0x00)
	h := make([]byte, 20)
	h[0], h[8], h[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(h[2:], uint16(20+8+len(payload)))
	s, d := from.As4(), to.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], nstest.Checksum(h))
	u := make([]byte, 8)
	binary.BigEndian.PutUint16(u, sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	return append(append(append(f, h...), u...), payload...)
}

// eui64 is the EUI-64 link-local address the kernel gives a link of mac.
func eui64(mac net.HardwareAddr) netip.Addr {
	a := [16]byte{0: 0xfe, 1: 0x80}
	a[8], a[9], a[10] = mac[0]^0x02, mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }
