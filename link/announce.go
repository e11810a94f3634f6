package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// Announcements: a gratuitous ARP for each IPv4 address and an unsolicited
// neighbour advertisement to ff02::1 for each IPv6 one, which refresh
// neighbours that cached an address under another MAC. A static
// endpoint's are sent after the attach has answered (announceLater),
// from a packet socket on its link, or, when EndpointSpec.WireOnly says
// no other endpoint can hold an entry for its addresses, from the host's
// packet socket out of the parent (bridge mode: the other endpoints on
// the parent do not receive it, each of which would otherwise run its
// ingress program and ARP on it), and arp_notify/ndisc_notify are set
// so that the kernel sends them again on any later MAC change. Not by
// the kernel at link up, nor by setting the MAC again: in bridge mode the
// broadcast reaches every endpoint on the parent (each running its
// ingress program and ARP, ~3 ms of an attach at 1000 endpoints), and the
// kernel does that holding the RTNL lock, which the next attach waits
// for. The socket's close waits for an RCU grace period
// (synchronize_net), in the background. A DHCP endpoint's addresses come
// later and are announced by the kernel when SetLeased cycles the link,
// so its flags are set before up.

// ipv4Devconf* are IPV4_DEVCONF_* (include/uapi/linux/ip.h), attributes
// of IFLA_INET_CONF, which is 1 in IFLA_AF_SPEC/AF_INET.
const (
	iflaInetConf           = 1
	ipv4DevconfARPAnnounce = 18
	ipv4DevconfARPIgnore   = 19
	ipv4DevconfARPNotify   = 22
)

// prepareAnnounce sets link idx (named ifName) in namespace ns, which must
// still be down: without an IPv6 address (or DHCPv6) it disables IPv6 on
// the link unless s.IPv6Off says it was born so, and with one it enables
// IPv6 if the link was born without (whatever the caller knows: a
// namespace made by a spare may get an IPv6 endpoint later, through
// connect) and turns accept_ra off unless s.AcceptRA; with it, the link
// takes its routes from router advertisements but makes no address of
// its own from them (autoconf: one mvlan did not give, whose frames the
// datapath would drop, yet the kernel may pick it as a source). With
// s.DHCP, arp_notify is set for the address a DHCP server gives later.
// With s.DHCP6 ndisc_notify is set likewise, and the link skips DAD (its
// link-local, the DHCPv6 client's source, is usable at once) and keeps its
// IPv6 addresses when it goes down (SetLeased cycles it). One switch into
// the namespace.
func prepareAnnounce(ns netns.NsHandle, idx int, ifName string, s EndpointSpec) error {
	v6 := hasFamily(s.Addrs, false) || s.DHCP6
	if !v6 && s.IPv6Off && !s.DHCP {
		return nil // born as it should be: no switch into the namespace
	}
	return nsthread.Do(ns, func() error {
		if s.DHCP {
			if err := setARPNotify(idx); err != nil {
				return err
			}
		}
		if !v6 {
			if s.IPv6Off {
				return nil
			}
			return writeIPv6Conf(ifName, "disable_ipv6", "1\n")
		}
		conf := []string{"accept_ra", "0\n"}
		if s.AcceptRA {
			conf = []string{"autoconf", "0\n"}
		}
		if s.DHCP6 {
			conf = append(conf, "ndisc_notify", "1\n", "accept_dad", "0\n", "keep_addr_on_down", "1\n")
		}
		return enableIPv6Conf(ifName, conf...)
	})
}

// SetRAConf gives link ifName in the namespace at netnsPath, a link with
// IPv6 that mvlan did not make (a Docker endpoint's, which dockerd moved
// into its container with the kernel's defaults: the settings of a link
// do not move with it), what prepareAnnounce gives the links it makes:
// accept_ra=0 unless accept, else autoconf=0 (routes from router
// advertisements, no address of its own).
func SetRAConf(netnsPath, ifName string, accept bool) error {
	conf := []string{"accept_ra", "0\n"}
	if accept {
		conf = []string{"autoconf", "0\n"}
	}
	return nsthread.DoPath(netnsPath, func() error { return writeIPv6Conf(ifName, conf...) })
}

// announceLater has link idx in ns, up with s's static addresses,
// announce them, in the background; s.Announced hears how it went.
// parentIdx is the index of s.Parent in h's namespace.
func (h *Host) announceLater(ns netns.NsHandle, idx, parentIdx int, s EndpointSpec) {
	var static []netip.Addr
	for _, p := range s.Addrs {
		if a := p.Addr(); a.Is4() && !s.DHCP || a.Is6() && !s.DHCP6 {
			static = append(static, a)
		}
	}
	if len(static) == 0 {
		return
	}
	fd, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		if s.Announced != nil {
			s.Announced(fmt.Errorf("announce %s: %w", s.IfName, err))
		}
		return
	}
	h.announcing.Add(1)
	go func() {
		defer h.announcing.Done()
		target := netns.NsHandle(fd)
		defer target.Close()
		if s.Announce != nil && !<-s.Announce {
			return // given up: nothing is announced
		}
		err := h.announce(target, idx, parentIdx, s, static)
		if s.Announced != nil {
			s.Announced(err)
		}
	}()
}

// AnnounceEndpoint announces s's static addresses from link idx of the
// namespace at s.NetnsPath, a link that another made up (a Docker
// endpoint's, which dockerd addressed and brought up in its container),
// as AttachEndpoint does those of a link it made: in the background, s's
// Announced hearing how it went.
func (h *Host) AnnounceEndpoint(s EndpointSpec, idx int) error {
	ns, err := netns.GetFromPath(s.NetnsPath)
	if err != nil {
		return fmt.Errorf("announce %s: %w", s.IfName, err)
	}
	defer ns.Close()
	h.announceLater(ns, idx, s.ParentIndex, s)
	return nil
}

// announce sets arp_notify/ndisc_notify on link idx in ns and announces
// addrs: to the wire from h's packet socket on the parent, and, in bridge
// mode unless s.WireOnly, to the endpoints on the parent from the link.
func (h *Host) announce(ns netns.NsHandle, idx, parentIdx int, s EndpointSpec, addrs []netip.Addr) error {
	local := !s.WireOnly && s.Mode == "bridge"
	var wire, link [][]byte
	var v4, v6 bool
	for _, a := range addrs {
		if f := gratuitousARP(s.MAC, a, false); f != nil {
			wire, v4 = append(wire, f), true
			if local {
				link = append(link, gratuitousARP(s.MAC, a, true))
			}
		}
		if f := unsolicitedNA(s.MAC, a); f != nil {
			v6 = true
			if local { // from the link, it reaches the wire too
				link = append(link, f)
			} else {
				wire = append(wire, f)
			}
		}
	}
	err := nsthread.Do(ns, func() error {
		if err := setNotify(idx, s.IfName, v4, v6); err != nil || len(link) == 0 {
			return err
		}
		return sendFrames(idx, link)
	})
	if err != nil {
		return err
	}
	return h.sendOnParent(parentIdx, wire)
}

// setNotify sets arp_notify (v4) and ndisc_notify (v6) on link idx (named
// ifName) of the calling thread's namespace.
func setNotify(idx int, ifName string, v4, v6 bool) error {
	if v4 {
		if err := setARPNotify(idx); err != nil {
			return err
		}
	}
	if v6 {
		return writeIPv6Conf(ifName, "ndisc_notify", "1\n")
	}
	return nil
}

// sendFrames sends each Ethernet frame out of link idx of the calling
// thread's namespace through a packet socket that receives nothing.
func sendFrames(idx int, frames [][]byte) (err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("announce: packet socket: %w", err)
	}
	defer func() { err = errors.Join(err, unix.Close(fd)) }() // an RCU grace period
	for _, f := range frames {
		sa := &unix.SockaddrLinklayer{Ifindex: idx, Protocol: htons(binary.BigEndian.Uint16(f[12:14])), Halen: 6}
		copy(sa.Addr[:], f[:6])
		if err := unix.Sendto(fd, f, 0, sa); err != nil {
			return fmt.Errorf("announce on ifindex %d: %w", idx, err)
		}
	}
	return nil
}

// sendOnParent sends each Ethernet frame out of link idx of h's namespace
// (a parent) through h's packet socket, which receives nothing and stays
// open: no socket is made or closed per announcement.
func (h *Host) sendOnParent(idx int, frames [][]byte) error {
	fd, err := h.packetSocket()
	if err != nil {
		return err
	}
	for _, f := range frames {
		sa := &unix.SockaddrLinklayer{Ifindex: idx, Protocol: htons(binary.BigEndian.Uint16(f[12:14])), Halen: 6}
		copy(sa.Addr[:], f[:6])
		if err := unix.Sendto(fd, f, 0, sa); err != nil {
			return fmt.Errorf("announce on the parent (ifindex %d): %w", idx, err)
		}
	}
	return nil
}

// packetSocket returns h's packet socket, made at the first call that
// needs it. A call after one that could not make it (too many open files,
// say) tries again: a passing failure does not stop every later
// announcement on the parent until the agent restarts.
func (h *Host) packetSocket() (int, error) {
	h.pkt.mu.Lock()
	defer h.pkt.mu.Unlock()
	switch {
	case h.pkt.made:
		return h.pkt.fd, nil
	case h.pkt.closed:
		return -1, errors.New("announce: packet socket: the host is closed")
	}
	open := h.pkt.open
	if open == nil {
		open = h.openPacketSocket
	}
	fd, err := open()
	if err != nil {
		return -1, fmt.Errorf("announce: packet socket: %w", err)
	}
	h.pkt.fd, h.pkt.made = fd, true
	return fd, nil
}

// openPacketSocket makes a packet socket in h's namespace that receives
// nothing (protocol 0).
func (h *Host) openPacketSocket() (fd int, err error) {
	err = nsthread.Do(h.ns, func() error {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	return fd, err
}

// closePacketSocket closes h's packet socket, if made; none is made after.
func (h *Host) closePacketSocket() error {
	h.pkt.mu.Lock()
	defer h.pkt.mu.Unlock()
	h.pkt.closed = true
	if !h.pkt.made {
		return nil
	}
	h.pkt.made = false
	return unix.Close(h.pkt.fd)
}

// htons converts a 16-bit number to network byte order, as sockaddr_ll's
// protocol is.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// setARPNotify sets arp_notify on link idx of the calling thread's
// namespace through netlink (RTM_SETLINK, IFLA_AF_SPEC), not /proc/sys,
// whose lookup by device name grows with the number of namespaces.
func setARPNotify(idx int) error {
	return setIPv4Conf(idx, "arp_notify", [2]uint32{ipv4DevconfARPNotify, 1})
}

// setIPv4Conf sets IPv4 devconf values ({IPV4_DEVCONF_*, value}) on link
// idx of the calling thread's namespace through netlink; what names them
// in the error.
func setIPv4Conf(idx int, what string, kv ...[2]uint32) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(idx)
	req.AddData(msg)
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
	conf := spec.AddRtAttr(unix.AF_INET, nil).AddRtAttr(iflaInetConf, nil)
	for _, c := range kv {
		conf.AddRtAttr(int(c[0]), nl.Uint32Attr(c[1]))
	}
	req.AddData(spec)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("set %s on ifindex %d: %w", what, idx, err)
	}
	return nil
}

// writeIPv6Conf writes net.ipv6.conf.IFNAME.KEY=VAL for each pair, in the
// calling thread's namespace (ipv6Conf).
func writeIPv6Conf(ifName string, kv ...string) error {
	return ipv6Conf(ifName, func(dfd int) error { return writeConf(dfd, ifName, kv) })
}

// enableIPv6Conf is writeIPv6Conf for a link that must have IPv6: first
// it enables IPv6 on the link if it was born without (its namespace's
// default.disable_ipv6 is 1, as a Spare's; or someone's), read before it
// is written, as the write takes RTNL.
func enableIPv6Conf(ifName string, kv ...string) error {
	return ipv6Conf(ifName, func(dfd int) error {
		var b [8]byte
		fd, err := unix.Openat(dfd, "disable_ipv6", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("read net.ipv6.conf.%s.disable_ipv6: %w", ifName, err)
		}
		n, err := unix.Read(fd, b[:])
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("read net.ipv6.conf.%s.disable_ipv6: %w", ifName, err)
		}
		if strings.TrimSpace(string(b[:n])) != "0" {
			kv = append([]string{"disable_ipv6", "0\n"}, kv...)
		}
		return writeConf(dfd, ifName, kv)
	})
}

// writeConf writes each KEY=VAL pair of kv in the conf directory dfd.
func writeConf(dfd int, ifName string, kv []string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if err := writeAt(dfd, kv[i], kv[i+1]); err != nil {
			return fmt.Errorf("set net.ipv6.conf.%s.%s: %w", ifName, kv[i], err)
		}
	}
	return nil
}

// ipv6Conf calls fn with the directory net.ipv6.conf.IFNAME of the calling
// thread's namespace. It looks the directory up once, in a procfs
// instance of the agent's own (procs): under the host's /proc, each
// lookup in /proc/sys/net walks the dentries of every namespace that has
// looked there before (one hash chain), which grows with the host's
// namespaces (~0.45 ms a lookup with 2000 of them, against ~5 µs in a
// fresh instance). A kernel without IPv6 (no net/ipv6) has nothing to set.
func ipv6Conf(ifName string, fn func(dfd int) error) error {
	return netConf("ipv6", ifName, fn)
}

// netConf calls fn with the directory net.FAM.conf.IFNAME (ipv6Conf).
func netConf(fam, ifName string, fn func(dfd int) error) error {
	root, rel := unix.AT_FDCWD, "/proc/"
	if p, err := procs.acquire(); err == nil {
		defer procs.release(p)
		root, rel = p.fd, ""
	}
	dir := rel + "sys/net/" + fam + "/conf/" + ifName
	dfd, err := unix.Openat(root, dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		if fd, ierr := unix.Openat(root, rel+"sys/net/"+fam, unix.O_PATH|unix.O_CLOEXEC, 0); ierr == nil {
			unix.Close(fd)
		} else if errors.Is(ierr, unix.ENOENT) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("open net.%s.conf.%s: %w", fam, ifName, err)
	}
	defer unix.Close(dfd)
	return fn(dfd)
}

// procLookups is how many lookups a procfs instance serves before the
// next one takes over: its dentries, one set per namespace looked at,
// stay few. Closing one unmounts it, which waits for an RCU grace period
// (tens of ms on a busy host), so that is done in the background.
const procLookups = 64

// procs is the agent's procfs instance for sysctl writes.
var procs procPool

type procPool struct {
	mu   sync.Mutex
	cur  *procInstance
	uses int
}

type procInstance struct {
	fd      int
	refs    int
	retired bool
}

// acquire returns the current instance, making a new one every
// procLookups calls (or when there is none). Release it.
func (pp *procPool) acquire() (*procInstance, error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.cur == nil || pp.uses >= procLookups {
		if old := pp.cur; old != nil {
			pp.cur, old.retired = nil, true
			old.closeIfIdle()
		}
		fd, err := privateProc()
		if err != nil {
			return nil, err
		}
		pp.cur, pp.uses = &procInstance{fd: fd}, 0
	}
	pp.uses++
	pp.cur.refs++
	return pp.cur, nil
}

func (pp *procPool) release(p *procInstance) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	p.refs--
	p.closeIfIdle()
}

// closeIfIdle unmounts a retired instance nobody uses, in the background.
// Caller holds procs.mu.
func (p *procInstance) closeIfIdle() {
	if p.retired && p.refs == 0 {
		go unix.Close(p.fd)
	}
}

// privateProc mounts a procfs instance attached nowhere (fsopen, fsmount)
// and returns its root; closing it unmounts it. Its dentries are its
// own, so a lookup there does not walk other namespaces'. Kernels before
// 5.2, or a mount namespace where proc may not be mounted, fail: the
// caller falls back to /proc.
func privateProc() (int, error) {
	fsfd, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, err
	}
	return unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_NODEV)
}

func writeAt(dfd int, name, val string) error {
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_, err = unix.Write(fd, []byte(val))
	return errors.Join(err, unix.Close(fd))
}
