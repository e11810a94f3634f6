package dhcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// The clients bind to the endpoint's link by its index, never by name: a
// container that is root in its namespace can rename its link and give
// the name to a veth of its own, on whose other end it answers the
// agent's requests with an address of its choosing (the gateway's), which
// the agent would then allow the container to send from.

// ErrNotEndpoint means the link at the endpoint's index is not the
// endpoint's link: its MAC differs, or it is not a macvlan of the
// network's parent. The container replaced it; the agent's repair makes
// the link again.
var ErrNotEndpoint = errors.New("not the endpoint's link")

// maxExchanges bounds how many of the package's exchanges (DHCPv4 and
// DHCPv6 requests that wait for a server) run in endpoints' namespaces at
// once in this process; the short steps after them take no slot
// (onLinkNow). Each holds a locked OS thread for as long as it lasts (up to
// about 8 s with no server answering), and Go's runtime dies past 10000
// threads (debug.SetMaxThreads): an agent that starts with thousands of
// overdue leases (up to two keepers for each of 8192 endpoints) and no
// server would ask all at once. 64 leaves the agent's other threads
// (netlink, BPF, its API) far from that limit, and is still more than a
// DHCP server serves at once: one that answers in 10 ms renews 6400
// leases a second through 64. The others wait, holding no thread.
const maxExchanges = 64

// slots holds a token for each call in a namespace under way.
var slots = make(chan struct{}, maxExchanges)

// takeSlot waits until fewer than maxExchanges calls are under way, or
// ctx ends (its error); free gives the slot back.
func takeSlot(ctx context.Context) (free func(), err error) {
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for one of %d DHCP exchanges under way to end: %w", maxExchanges, ctx.Err())
	}
}

// onLink runs an exchange, fn, with l's link (checked by iface) inside
// l's namespace, once a slot is free (takeSlot); what names the caller in
// errors. The namespace the caller runs in is the host's: l.Parent's.
func onLink(ctx context.Context, l Link, what string, fn func(*net.Interface) error) error {
	free, err := takeSlot(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer free()
	return onLinkNow(l, what, fn)
}

// onLinkNow is onLink without a slot, for the short steps that follow an
// exchange (the address check of a lease, a DHCPRELEASE): they wait for
// no server, and come no faster than exchanges end, so they pile up no
// threads; queued behind thousands of waiting exchanges instead, a lease
// the server granted would be thrown away (its check past the attach's
// deadline) and a release skipped.
func onLinkNow(l Link, what string, fn func(*net.Interface) error) error {
	var host *os.File
	if l.Parent > 0 {
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return fmt.Errorf("%s: open the host's namespace: %w", what, err)
		}
		defer f.Close()
		host = f
	}
	return nsthread.DoPath(l.Netns, func() error {
		ifi, err := l.iface(host)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return fn(ifi)
	})
}

// iface is l's link, found by index in the calling thread's namespace
// (l.Netns) and checked to be the endpoint's: l.MAC, and, when l.Parent
// is set, a macvlan whose lower link is that index in host, the
// namespace open at host. A link the container makes has its lower in a
// namespace of the container's: its own, or one it made, where it can
// give a link any index.
func (l Link) iface(host *os.File) (*net.Interface, error) {
	if l.Ifindex <= 0 {
		return nil, fmt.Errorf("endpoint link in %s: index %d unknown: %w", l.Netns, l.Ifindex, ErrNotEndpoint)
	}
	lk, err := netlink.LinkByIndex(l.Ifindex)
	if err != nil {
		return nil, fmt.Errorf("endpoint link %d in %s: %w", l.Ifindex, l.Netns, err)
	}
	a := lk.Attrs()
	if !bytes.Equal(a.HardwareAddr, l.MAC) {
		return nil, fmt.Errorf("link %d (%s) in %s has MAC %s, the endpoint's is %s: %w", l.Ifindex, a.Name, l.Netns, a.HardwareAddr, l.MAC, ErrNotEndpoint)
	}
	if l.Parent > 0 {
		if err := l.onParent(lk, host); err != nil {
			return nil, err
		}
	}
	return &net.Interface{Index: a.Index, MTU: a.MTU, Name: a.Name, HardwareAddr: a.HardwareAddr, Flags: a.Flags}, nil
}

// onParent checks that lk, read in l's namespace, is a macvlan of
// l.Parent in host: the namespace ID its lower link is in is host's ID
// there (the kernel gave host one when it reported lk).
func (l Link) onParent(lk netlink.Link, host *os.File) error {
	a := lk.Attrs()
	if lk.Type() != "macvlan" || a.ParentIndex != l.Parent || a.NetNsID < 0 {
		return fmt.Errorf("link %d (%s) in %s is a %s on link %d, not a macvlan of the parent (%d in the host's namespace): %w",
			l.Ifindex, a.Name, l.Netns, lk.Type(), a.ParentIndex, l.Parent, ErrNotEndpoint)
	}
	id, err := netlink.GetNetNsIdByFd(int(host.Fd()))
	if err != nil {
		return fmt.Errorf("ID of the host's namespace in %s: %w", l.Netns, err)
	}
	if id < 0 || a.NetNsID != id {
		return fmt.Errorf("link %d (%s) in %s is a macvlan of link %d in namespace ID %d, not of the parent in the host's namespace (ID %d): %w",
			l.Ifindex, a.Name, l.Netns, a.ParentIndex, a.NetNsID, id, ErrNotEndpoint)
	}
	return nil
}

// rawConn4 is a DHCPv4 client's connection on ifi: UDP from port 68 in
// IPv4 frames of a packet socket bound to ifi's index.
func rawConn4(ifi *net.Interface) (net.PacketConn, error) {
	raw, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_IP, nil)
	if err != nil {
		return nil, fmt.Errorf("packet socket on link %d (%s): %w", ifi.Index, ifi.Name, err)
	}
	return nclient4.NewBroadcastUDPConn(raw, &net.UDPAddr{Port: nclient4.ClientPort}), nil
}

// udpConn4 is a UDP socket on addr port 68 bound to ifi's index: what
// sends from the client's address, out of ifi whatever the namespace's
// routes say. It fails when addr is not on the namespace's links or port
// 68 is taken there.
func udpConn4(ifi *net.Interface, addr netip.Addr) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX, ifi.Index)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(addr, nclient4.ClientPort).String())
	if err != nil {
		return nil, fmt.Errorf("from %s: %w", addr, err)
	}
	return pc, nil
}

// udpConn6 is what a DHCPv6 client sends from (conn6): UDP port 546 on
// ifi's link-local address, scoped to ifi's index (which also sends its
// multicasts there).
// It fails while the address is missing or tentative (DAD).
func udpConn6(ifi *net.Interface) (net.PacketConn, error) {
	ll, err := linkLocal(ifi.Index)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("DHCPv6 socket: %w", err)
	}
	sa := &unix.SockaddrInet6{Port: dhcpv6.DefaultClientPort, Addr: ll.As16(), ZoneId: uint32(ifi.Index)}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind [%s%%%d]:%d: %w", ll, ifi.Index, dhcpv6.DefaultClientPort, err)
	}
	f := os.NewFile(uintptr(fd), "dhcpv6")
	c, err := net.FilePacketConn(f)
	return c, errors.Join(err, f.Close())
}

// linkLocal is the first IPv6 link-local address of link index.
func linkLocal(index int) (netip.Addr, error) {
	addrs, err := netlink.AddrList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of link %d: %w", index, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("link %d has no IPv6 link-local address", index)
}
