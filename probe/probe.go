// Package probe asks the wire whether addresses are in use: RFC 5227 ARP
// probes (sender IP 0.0.0.0) for IPv4 and RFC 4862 duplicate address
// detection neighbour solicitations (source ::) for IPv6, sent out of one
// link with raw packet sockets. A probe claims nothing: no host learns
// the prober's address from it.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// Options shape a probe.
type Options struct {
	Tries int           // probes sent per address; 0: 2
	Wait  time.Duration // for answers after each round; 0: 200 ms
}

// sock is one raw socket of the probe's link and what it sends.
type sock struct {
	fd    int
	proto uint16
}

// InUse probes addrs out of link ifname, in the network namespace at
// netns ("": the caller's), and returns those some host answered for, in
// address order. An address this host has on ifname itself is not
// reported (the kernel does not answer its own probes).
func InUse(ctx context.Context, netns, ifname string, addrs []netip.Addr, o Options) ([]netip.Addr, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	var ifi *net.Interface
	var socks []sock
	err := nsthread.DoPath(netns, func() error {
		var err error
		if ifi, err = net.InterfaceByName(ifname); err != nil {
			return err
		}
		socks, err = openSockets(ifi, addrs)
		return err
	})
	defer closeLater(socks)
	if err != nil {
		return nil, fmt.Errorf("probe on %s: %w", ifname, err)
	}
	return probe(ctx, socks, ifi, addrs, o)
}

// InUseOn is InUse on ifi, a link of the calling thread's namespace.
func InUseOn(ctx context.Context, ifi *net.Interface, addrs []netip.Addr, o Options) ([]netip.Addr, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	socks, err := openSockets(ifi, addrs)
	defer closeLater(socks)
	if err != nil {
		return nil, fmt.Errorf("probe on %s: %w", ifi.Name, err)
	}
	return probe(ctx, socks, ifi, addrs, o)
}

// closeLater closes socks in the background: closing a packet socket
// waits for an RCU grace period (tens of ms), not on the caller's time.
func closeLater(socks []sock) {
	go func() {
		for _, s := range socks {
			unix.Close(s.fd)
		}
	}()
}

// probe sends o.Tries rounds of probes for addrs out of ifi through socks
// and returns the addresses answered for, in order.
func probe(ctx context.Context, socks []sock, ifi *net.Interface, addrs []netip.Addr, o Options) ([]netip.Addr, error) {
	if o.Tries <= 0 {
		o.Tries = 2
	}
	if o.Wait <= 0 {
		o.Wait = 200 * time.Millisecond
	}
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		want[a.Unmap()] = true
	}
	seen := map[netip.Addr]bool{}
	for try := 0; try < o.Tries && len(seen) < len(want) && ctx.Err() == nil; try++ {
		if err := send(socks, ifi, addrs, seen); err != nil {
			return nil, fmt.Errorf("probe on %s: %w", ifi.Name, err)
		}
		collect(ctx, socks, ifi.Index, want, seen, time.Now().Add(o.Wait))
	}
	out := make([]netip.Addr, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, ctx.Err()
}

// openSockets opens a packet socket bound to ifi for ARP when addrs has
// an IPv4 address, and one for IPv6 (joined to all-nodes, where answers
// to a DAD solicitation go) when it has an IPv6 one.
func openSockets(ifi *net.Interface, addrs []netip.Addr) ([]sock, error) {
	var out []sock
	has := func(v6 bool) bool {
		return slices.ContainsFunc(addrs, func(a netip.Addr) bool { return a.Unmap().Is6() == v6 })
	}
	for _, p := range []struct {
		v6    bool
		proto uint16
	}{{false, unix.ETH_P_ARP}, {true, unix.ETH_P_IPV6}} {
		if !has(p.v6) {
			continue
		}
		// Protocol 0 here, the real one at bind: a socket made with a
		// protocol hooks it at once and bind would unhook it again,
		// waiting for an RCU grace period.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return out, fmt.Errorf("packet socket: %w", err)
		}
		out = append(out, sock{fd: fd, proto: p.proto})
		if p.v6 {
			// Before bind, so that no other frame is ever queued.
			if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, naFilter); err != nil {
				return out, fmt.Errorf("attach the neighbour advertisement filter: %w", err)
			}
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(p.proto), Ifindex: ifi.Index}); err != nil {
			return out, fmt.Errorf("bind packet socket: %w", err)
		}
		if p.v6 {
			mr := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_MULTICAST, Alen: 6,
				Address: [8]byte{0x33, 0x33, 0, 0, 0, 1}}
			if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
				return out, fmt.Errorf("join all-nodes: %w", err)
			}
		}
	}
	return out, nil
}

// naFilter is a classic BPF socket filter that lets through only what may
// be an ICMPv6 neighbour advertisement (next header 58, type 136, without
// extension headers, as answer reads it): the IPv6 packet socket hears
// every IPv6 frame of the link, and a busy link's would keep a probe
// reading them. A frame too short for a load is dropped.
var naFilter = &unix.SockFprog{Len: uint16(len(naInsns)), Filter: &naInsns[0]}

var naInsns = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: ethLen + 6},            // IPv6 next header
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 58, Jt: 0, Jf: 3},     // ICMPv6, else drop
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: ethLen + ipv6Len},      // ICMPv6 type
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: icmpNA, Jt: 0, Jf: 1}, // NA, else drop
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff},                              // keep it whole
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},                                   // drop
}

// send sends one probe for each address not yet seen.
func send(socks []sock, ifi *net.Interface, addrs []netip.Addr, seen map[netip.Addr]bool) error {
	for _, a := range addrs {
		a = a.Unmap()
		if seen[a] {
			continue
		}
		var frame []byte
		var proto uint16 = unix.ETH_P_ARP
		if a.Is6() {
			frame, proto = nsProbe(ifi.HardwareAddr, a), unix.ETH_P_IPV6
		} else {
			frame = arpProbe(ifi.HardwareAddr, a)
		}
		for _, s := range socks {
			if s.proto != proto {
				continue
			}
			to := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifi.Index, Halen: 6}
			copy(to.Addr[:], frame[:6])
			if err := unix.Sendto(s.fd, frame, 0, to); err != nil {
				return fmt.Errorf("send probe for %s: %w", a, err)
			}
		}
	}
	return nil
}

// collect reads answers until deadline (or ctx is done), marking the
// wanted addresses some host answered for. Only frames received on
// ifindex count: a packet socket bound to a trunk also hears what its
// VLAN sub-interfaces receive, other segments whose hosts may use the
// same addresses. The deadline holds while a socket is drained too:
// frames that keep coming (the ARP socket hears every ARP frame of the
// link) do not keep it reading past it.
func collect(ctx context.Context, socks []sock, ifindex int, want, seen map[netip.Addr]bool, deadline time.Time) {
	pfds := make([]unix.PollFd, len(socks))
	for i, s := range socks {
		pfds[i] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN}
	}
	buf := make([]byte, 1600)
	for len(seen) < len(want) && ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		n, err := unix.Poll(pfds, int(left.Milliseconds())+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n <= 0 {
			continue
		}
		for _, s := range socks {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				m, from, err := recvfrom(s.fd, buf, 0)
				if err != nil {
					break
				}
				if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING || ll.Ifindex != ifindex {
					continue
				}
				if a, ok := answer(buf[:m], s.proto); ok && want[a] {
					seen[a] = true
				}
			}
		}
	}
}

// recvfrom is unix.Recvfrom; a test makes it a socket that never runs dry.
var recvfrom = unix.Recvfrom

func htons(v uint16) uint16 { return v<<8 | v>>8 }
