package probe

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestCollectDrainEnds: a socket that never runs dry (frames that keep
// coming faster than they are read, none an answer) does not keep collect
// past its deadline, nor past its context.
func TestCollectDrainEnds(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	if _, err := unix.Write(fds[1], []byte("x")); err != nil { // poll sees it readable, always
		t.Fatal(err)
	}
	other := nsProbe(net.HardwareAddr{2, 0, 0, 0, 0, 9}, netip.MustParseAddr("fd00::9")) // not an answer
	recvfrom = func(fd int, p []byte, _ int) (int, unix.Sockaddr, error) {
		return copy(p, other), &unix.SockaddrLinklayer{Ifindex: 7}, nil
	}
	t.Cleanup(func() { recvfrom = unix.Recvfrom })
	want := map[netip.Addr]bool{netip.MustParseAddr("fd00::5"): true}
	run := func(ctx context.Context, deadline time.Time) time.Duration {
		t.Helper()
		done := make(chan time.Duration, 1)
		go func() {
			t0 := time.Now()
			collect(ctx, []sock{{fd: fds[0], proto: unix.ETH_P_IPV6}}, 7, want, map[netip.Addr]bool{}, deadline)
			done <- time.Since(t0)
		}()
		select {
		case d := <-done:
			return d
		case <-time.After(5 * time.Second):
			t.Fatal("collect still draining a socket that never runs dry 5 s on")
			return 0
		}
	}
	if d := run(context.Background(), time.Now().Add(100*time.Millisecond)); d > time.Second {
		t.Errorf("collect with a 100 ms deadline took %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if d := run(ctx, time.Now().Add(time.Hour)); d > time.Second {
		t.Errorf("collect with a context done after 100 ms took %v", d)
	}
}

// TestNAFilter: the IPv6 socket of a probe receives neighbour
// advertisements only, not the link's other IPv6 frames (a solicitation,
// a UDP datagram, an ICMPv6 echo, a runt), sent from the wire in that
// order with the advertisement last.
func TestNAFilter(t *testing.T) {
	sb := nstest.NewSandbox(t)
	target := netip.MustParseAddr("fd00:9::5")
	var socks []sock
	var ifi *net.Interface
	err := nstest.In(sb.Path, func() (err error) {
		if ifi, err = net.InterfaceByName("eth0"); err != nil {
			return err
		}
		socks, err = openSockets(ifi, []netip.Addr{target})
		return err
	})
	t.Cleanup(func() { closeLater(socks) })
	if err != nil {
		t.Fatal(err)
	}
	src := linkMAC(t, sb.WirePath, "wire0")
	allNodes := net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	ipv6 := func(next, first byte) []byte {
		f := make([]byte, ethLen+ipv6Len+nsLen)
		copy(f[0:6], allNodes)
		copy(f[6:12], src)
		f[12], f[13] = 0x86, 0xdd
		f[ethLen] = 0x60
		f[ethLen+5] = nsLen
		f[ethLen+6], f[ethLen+7] = next, 255
		f[ethLen+8], f[ethLen+23] = 0xfe, 1 // from fe80::1
		f[ethLen+24], f[ethLen+25], f[ethLen+39] = 0xff, 2, 1
		f[ethLen+ipv6Len] = first
		return f
	}
	ns := nsProbe(src, target)
	copy(ns[0:6], allNodes)
	na := ipv6(58, icmpNA)
	t6 := target.As16()
	copy(na[ethLen+ipv6Len+8:], t6[:])
	frames := [][]byte{ns, ipv6(17, 0), ipv6(58, 128), ipv6(58, icmpNA)[:ethLen+ipv6Len], na}
	err = nstest.In(sb.WirePath, func() error {
		w, err := net.InterfaceByName("wire0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for _, f := range frames {
			to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: w.Index, Halen: 6}
			copy(to.Addr[:], f[:6])
			if err := unix.Sendto(fd, f, 0, to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	buf := make([]byte, 1600)
	pfd := []unix.PollFd{{Fd: int32(socks[0].fd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
		if n, _ := unix.Poll(pfd, 50); n <= 0 {
			continue
		}
		for {
			m, _, err := unix.Recvfrom(socks[0].fd, buf, 0)
			if err != nil {
				break
			}
			got = append(got, append([]byte(nil), buf[:m]...))
		}
	}
	if len(got) != 1 || len(got[0]) != len(na) || got[0][ethLen+ipv6Len] != icmpNA {
		t.Fatalf("the IPv6 socket received %d frames (%x); want only the advertisement", len(got), got)
	}
	if a, ok := answer(got[0], unix.ETH_P_IPV6); !ok || a != target {
		t.Errorf("the advertisement received answers %v %v; want %v", a, ok, target)
	}
}
