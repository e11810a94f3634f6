package loader

import (
	"errors"
	"net"
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
//   - to c2, an ARP request from a made-up MAC for 10.1.0.77 is not
//     marked as from the wire, so c2's ingress drops it (unknown_source)
//     and c2 learns no neighbour 10.1.0.77 (it would with the mark).
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

	wire := nstest.NewCapture(t, l.sb.WirePath, "wire0")
	before := snapshot(t, d)
	for _, f := range [][]byte{madeUpToWire, asC2, toC2, own} {
		sendBypass(t, l.c1.path, f)
	}
	var leaked []string
	_, err := wire.Wait(3*time.Second, func(f []byte) bool {
		for _, m := range []string{"mvlan-bypass-made-up", "mvlan-bypass-as-c2"} {
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
	got := snapshot(t, d).minus(before)
	for key, n := range map[string]uint64{"drop 1 mac_spoof": 2, "drop 1 unknown_source": 1} {
		if got[key].Packets != n {
			t.Errorf("%s moved by %d, want %d", key, got[key].Packets, n)
		}
	}
	if n := l.sb.Run(t, l.c2.path, "ip", "neigh", "show", "10.1.0.77"); strings.Contains(n, madeUp.String()) {
		t.Errorf("c2 took the made-up MAC for 10.1.0.77: %s", n)
	}
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
