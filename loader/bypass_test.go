package loader

import (
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestQdiscBypass: a container with CAP_NET_RAW can send with
// PACKET_QDISC_BYPASS, which skips TC and so its link's ep_egress. On the
// direct path the parent programs tell its frames by their socket's
// namespace, in both attach modes:
//   - to the wire, one with a made-up MAC and one with c2's MAC (c2's own
//     address too) are dropped as mac_spoof on the parent's egress; a
//     frame of c1's own passes (the control, sent last);
//   - to neighbours (bridge mode sends a unicast through the parent's
//     ingress), an ARP request from a made-up MAC to c2 for 10.1.0.77 and
//     a frame with c2's MAC to c3 are dropped there as mac_spoof: c2
//     learns no neighbour 10.1.0.77, c3 sees no frame;
//   - a link in c1's namespace whose row is still the host's and moving
//     (a Docker endpoint the runtime is moving in) sends its own frames
//     to the wire;
//   - frames with the MAC and address of a link that stays in the host's
//     namespace (a host shim's row, not moving) are mac_spoof, to the
//     wire and to c3.
func TestQdiscBypass(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeTC} {
		t.Run(string(mode), func(t *testing.T) { testQdiscBypass(t, mode) })
	}
}

func testQdiscBypass(t *testing.T, mode Mode) {
	requireMode(t, mode)
	l := newLab(t)
	d := loadPath(t, privateBPFFS(t), PathDirect)
	l.setup(t, d)
	l.attach(t, d, mode)
	madeUp := mac("02:00:5e:00:53:77")
	udpFrom := func(src net.HardwareAddr, ip, marker string) []byte {
		payload := append(udp(40000, 9, 0), marker...)
		return ethFrame(wireMAC, src, 0x0800, ipv4Packet(ip, "10.1.0.1", 17, payload))
	}
	madeUpToWire := udpFrom(madeUp, l.c1.ip.String(), "mvlan-bypass-made-up")
	asC2 := udpFrom(l.c2.mac, l.c2.ip.String(), "mvlan-bypass-as-c2")
	own := udpFrom(l.c1.mac, l.c1.ip.String(), "mvlan-bypass-own")
	toC2 := ethFrame(l.c2.mac, madeUp, 0x0806, arpPacket(1, madeUp, "10.1.0.77", make([]byte, 6), l.c2.ip.String()))
	c3 := l.container(t, "c3", macC, "10.1.0.12")
	c3Cookie, err := NetnsCookie(c3.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetEndpoint(Endpoint{NetnsCookie: c3Cookie, Ifindex: c3.ifindex, MAC: c3.mac, IPs: []netip.Addr{c3.ip}, NetworkID: netA}); err != nil {
		t.Fatal(err)
	}
	asC2ToC3 := ethFrame(c3.mac, l.c2.mac, 0x0800, ipv4Packet(l.c2.ip.String(), c3.ip.String(), 17, append(udp(40000, 9, 0), "mvlan-bypass-to-c3"...)))
	handoff := l.handoffLink(t, d, l.c1, mac("02:00:00:00:00:0d"), "10.1.0.13")
	fromHandoff := udpFrom(mac("02:00:00:00:00:0d"), "10.1.0.13", "mvlan-handoff-own")
	shim := l.hostRow(t, d, mac("02:00:00:00:00:0e"), "10.1.0.14")
	asShim := udpFrom(shim, "10.1.0.14", "mvlan-bypass-as-shim")
	asShimToC3 := ethFrame(c3.mac, shim, 0x0800, ipv4Packet("10.1.0.14", c3.ip.String(), 17, append(udp(40000, 9, 0), "mvlan-shim-to-c3"...)))

	wire := nstest.NewCapture(t, l.sb.WirePath, "wire0")
	onC3 := nstest.NewCapture(t, c3.path, "eth0")
	before := snapshot(t, d)
	for _, f := range [][]byte{madeUpToWire, asC2, toC2, asC2ToC3, asShim, asShimToC3, own} {
		sendBypass(t, l.c1.path, f)
	}
	sendFrames(t, l.c1.path, handoff, fromHandoff, 1)
	var leaked []string
	_, err = wire.Wait(3*time.Second, func(f []byte) bool {
		for _, m := range []string{"mvlan-bypass-made-up", "mvlan-bypass-as-c2", "mvlan-bypass-as-shim"} {
			if strings.Contains(string(f), m) {
				leaked = append(leaked, m)
			}
		}
		return strings.Contains(string(f), "mvlan-bypass-own")
	})
	if err != nil {
		t.Fatalf("c1's own frame sent past its programs never reached the wire: %v", err)
	}
	if len(leaked) > 0 {
		t.Errorf("frames reached the wire: %v", leaked)
	}
	if _, err := wire.Wait(3*time.Second, func(f []byte) bool { return strings.Contains(string(f), "mvlan-handoff-own") }); err != nil {
		t.Errorf("the handed-off link's own frame never reached the wire: %v", err)
	}
	if _, err := onC3.Wait(time.Second, func(f []byte) bool {
		return strings.Contains(string(f), "mvlan-bypass-to-c3") || strings.Contains(string(f), "mvlan-shim-to-c3")
	}); err == nil {
		t.Error("c3 received a frame sent as c2 or as the host shim")
	}
	got := snapshot(t, d).minus(before)
	for key, n := range map[string]uint64{"drop 1 mac_spoof": 6, "drop 1 unknown_source": 0} {
		if got[key].Packets != n {
			t.Errorf("%s moved by %d, want %d", key, got[key].Packets, n)
		}
	}
	if n := l.sb.Run(t, l.c2.path, "ip", "neigh", "show", "10.1.0.77"); strings.Contains(n, madeUp.String()) {
		t.Errorf("c2 took the made-up MAC for 10.1.0.77: %s", n)
	}
}

// handoffLink adds a macvlan of eth0 to container c (named eth1 there)
// whose row is still in the host's namespace, as a Docker endpoint's is
// until the runtime has moved its link, and returns its name.
func (l *lab) handoffLink(t *testing.T, d *Datapath, c container, hw net.HardwareAddr, ip string) string {
	t.Helper()
	sb := l.sb
	sb.Run(t, sb.Path, "ip", "link", "add", "link", "eth0", "name", "mv-handoff", "type", "macvlan", "mode", "bridge")
	idx := ifindex(t, sb.Path, "mv-handoff")
	host, err := NetnsCookie(sb.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetEndpoint(Endpoint{NetnsCookie: host, Ifindex: idx, MAC: hw, IPs: []netip.Addr{netip.MustParseAddr(ip)}, NetworkID: netA, Moving: true}); err != nil {
		t.Fatal(err)
	}
	sb.Run(t, sb.Path, "ip", "link", "set", "mv-handoff", "netns", filepath.Base(c.path))
	sb.Run(t, c.path, "ip", "link", "set", "mv-handoff", "name", "eth1", "address", hw.String())
	sb.Run(t, c.path, "ip", "link", "set", "eth1", "up")
	return "eth1"
}

// hostRow adds a macvlan of eth0 that stays in the host's namespace, with
// its row there (not moving), as a network's host shim has, and returns
// its MAC.
func (l *lab) hostRow(t *testing.T, d *Datapath, hw net.HardwareAddr, ip string) net.HardwareAddr {
	t.Helper()
	sb := l.sb
	sb.Run(t, sb.Path, "ip", "link", "add", "link", "eth0", "name", "mv-shim", "address", hw.String(), "type", "macvlan", "mode", "bridge")
	host, err := NetnsCookie(sb.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetEndpoint(Endpoint{NetnsCookie: host, Ifindex: ifindex(t, sb.Path, "mv-shim"), MAC: hw, IPs: []netip.Addr{netip.MustParseAddr(ip)}, NetworkID: netA}); err != nil {
		t.Fatal(err)
	}
	return hw
}

// sendBypass sends frame out of eth0 in ns from a packet socket with
// PACKET_QDISC_BYPASS, as a container with CAP_NET_RAW may.
func sendBypass(t *testing.T, ns string, frame []byte) {
	t.Helper()
	idx := ifindex(t, ns, "eth0")
	err := nstest.In(ns, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return err
		}
		err = unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: idx})
		if errors.Is(err, unix.ENOBUFS) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatalf("send past qdiscs in %s: %v", ns, err)
	}
}
