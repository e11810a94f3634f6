package probe

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestInUse probes from the sandbox's eth0 for addresses its wire peer
// has (IPv4 and IPv6) and for addresses no one has: only the first are
// reported, and it takes one round of waiting for the answered ones.
func TestInUse(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "10.9.0.5/24", "dev", "wire0")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:9::5/64", "dev", "wire0", "nodad")
	sb.Run(t, sb.Path, "ip", "addr", "add", "10.9.0.7/24", "dev", "eth0")
	addrs := []netip.Addr{
		netip.MustParseAddr("10.9.0.5"), netip.MustParseAddr("10.9.0.6"),
		netip.MustParseAddr("fd00:9::5"), netip.MustParseAddr("fd00:9::6"),
	}
	t0 := time.Now()
	got, err := InUse(context.Background(), sb.Path, "eth0", addrs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("10.9.0.5"), netip.MustParseAddr("fd00:9::5")}
	if !slices.Equal(got, want) {
		t.Fatalf("in use: %v, want %v", got, want)
	}
	t.Logf("4 addresses probed in %v", time.Since(t0))
	// The answering side goes away: nothing answers.
	sb.Run(t, sb.WirePath, "ip", "addr", "flush", "dev", "wire0")
	if got, err := InUse(context.Background(), sb.Path, "eth0", addrs[:1], Options{Tries: 1, Wait: 100 * time.Millisecond}); err != nil || len(got) != 0 {
		t.Fatalf("after the flush: %v %v, want none", got, err)
	}
	if _, err := InUse(context.Background(), sb.Path, "nosuch0", addrs, Options{}); err == nil {
		t.Fatal("probe on a missing link: no error")
	}
}

// TestInUseOwnLink: a packet socket bound to eth0 also hears the frames
// eth0 hands to links stacked on it (a VLAN sub-interface: another
// segment, whose hosts may use the same addresses; a macvlan). A host on
// the wire that keeps sending ARP replies claiming X to a macvlan on eth0
// (and, where the kernel has 802.1q, on VLAN 50) makes X in use on that
// link, not on eth0: probes from eth0 find it free, from the link in use.
func TestInUseOwnLink(t *testing.T) {
	sb := nstest.NewSandbox(t)
	links := map[string]string{"m0": "wire0"} // link on eth0 -> the wire's link to it
	sb.Run(t, sb.Path, "ip", "link", "add", "link", "eth0", "name", "m0", "type", "macvlan", "mode", "bridge")
	if _, err := nstest.RunErr(sb.Path, "ip", "link", "add", "link", "eth0", "name", "eth0.50", "type", "vlan", "id", "50"); err == nil {
		sb.Run(t, sb.WirePath, "ip", "link", "add", "link", "wire0", "name", "wire0.50", "type", "vlan", "id", "50")
		sb.Run(t, sb.WirePath, "ip", "link", "set", "wire0.50", "up")
		links["eth0.50"] = "wire0.50"
	} else {
		t.Log("no 802.1q links in this kernel: the VLAN case is left out")
	}
	x := []netip.Addr{netip.MustParseAddr("10.9.50.5")}
	for l, wire := range links {
		sb.Run(t, sb.Path, "ip", "link", "set", l, "up")
		stop := claim(t, sb.WirePath, wire, linkMAC(t, sb.Path, l), x[0])
		got, err := InUse(context.Background(), sb.Path, "eth0", x, Options{Tries: 2, Wait: 300 * time.Millisecond})
		if err != nil || len(got) != 0 {
			t.Errorf("probe from eth0 with X claimed to %s: %v %v; want none", l, got, err)
		}
		if got, err := InUse(context.Background(), sb.Path, l, x, Options{}); err != nil || !slices.Equal(got, x) {
			t.Errorf("probe from %s: %v %v; want %v", l, got, err, x)
		}
		stop()
	}
}

// linkMAC is the MAC of link name in namespace ns.
func linkMAC(t *testing.T, ns, name string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	err := nstest.In(ns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// claim sends, every 20 ms until stop, an ARP reply from ifName in ns to
// dst that claims addr.
func claim(t *testing.T, ns, ifName string, dst net.HardwareAddr, addr netip.Addr) (stop func()) {
	t.Helper()
	src := linkMAC(t, ns, ifName)
	f := arpProbe(src, addr)
	copy(f[0:6], dst)
	binary.BigEndian.PutUint16(f[ethLen+6:], arpReply)
	a := addr.As4()
	copy(f[ethLen+14:], a[:]) // sender IP: addr
	copy(f[ethLen+18:], dst)
	var fd int
	err := nstest.In(ns, func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer unix.Close(fd)
		for {
			_ = unix.Send(fd, f, 0)
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() { close(done) }
}
