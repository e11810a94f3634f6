package link

import (
	"errors"
	"fmt"
	"sync"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// Announcements are sent by the kernel, from the endpoint's own link, when
// it comes up: arp_notify makes it broadcast a gratuitous ARP request for
// each IPv4 address, ndisc_notify an unsolicited neighbour advertisement to
// ff02::1 for each IPv6 address (which has no DAD to wait for). Both are
// also sent again if the link's MAC changes. The alternative, an AF_PACKET
// socket per endpoint, costs an RCU grace period when it is closed
// (synchronize_net, ~10 ms measured here, on the request path); one long-lived
// socket on the parent would be cheaper still (~20 µs against ~0.1 ms here)
// but its frames would reach only the wire, not the parent's other
// endpoints, and would need a socket per parent kept by the agent.

// ipv4DevconfARPNotify is IPV4_DEVCONF_ARP_NOTIFY (include/uapi/linux/ip.h),
// an attribute of IFLA_INET_CONF, which is 1 in IFLA_AF_SPEC/AF_INET.
const (
	iflaInetConf         = 1
	ipv4DevconfARPNotify = 22
)

// prepareAnnounce sets link idx (named ifName) in namespace ns, which must
// still be down, to announce s's addresses when it comes up; without an
// IPv6 address (or DHCPv6) it disables IPv6 on the link instead, and with
// one it turns accept_ra off unless s.AcceptRA. With s.DHCP, arp_notify is
// set for the address a DHCP server gives later. With s.DHCP6 the link
// skips DAD (its link-local, the DHCPv6 client's source, is usable at
// once; leased addresses are announced when added), keeps its IPv6
// addresses when it goes down (SetLeased cycles it) and makes none of its
// own from router advertisements (autoconf: the datapath would drop their
// frames). One switch into the namespace.
func prepareAnnounce(ns netns.NsHandle, idx int, ifName string, s EndpointSpec) error {
	return nsthread.Do(ns, func() error {
		if hasFamily(s.Addrs, true) || s.DHCP {
			if err := setARPNotify(idx); err != nil {
				return err
			}
		}
		if !hasFamily(s.Addrs, false) && !s.DHCP6 {
			return writeIPv6Conf(ifName, "disable_ipv6", "1\n")
		}
		conf := []string{"ndisc_notify", "1\n"}
		if !s.AcceptRA {
			conf = append(conf, "accept_ra", "0\n")
		}
		if s.DHCP6 {
			conf = append(conf, "accept_dad", "0\n", "keep_addr_on_down", "1\n", "autoconf", "0\n")
		}
		return writeIPv6Conf(ifName, conf...)
	})
}

// setARPNotify sets arp_notify on link idx of the calling thread's
// namespace through netlink (RTM_SETLINK, IFLA_AF_SPEC), not /proc/sys,
// whose lookup by device name grows with the number of namespaces.
func setARPNotify(idx int) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(idx)
	req.AddData(msg)
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
	conf := spec.AddRtAttr(unix.AF_INET, nil).AddRtAttr(iflaInetConf, nil)
	conf.AddRtAttr(ipv4DevconfARPNotify, nl.Uint32Attr(1))
	req.AddData(spec)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("set arp_notify on ifindex %d: %w", idx, err)
	}
	return nil
}

// writeIPv6Conf writes net.ipv6.conf.IFNAME.KEY=VAL for each pair, in the
// calling thread's namespace. It looks the device's directory up once, in
// a procfs instance of the agent's own (procs): under the host's /proc,
// each lookup in /proc/sys/net walks the dentries of every namespace that
// has looked there before (one hash chain), which grows with the host's
// namespaces (~0.45 ms a lookup with 2000 of them, against ~5 µs in a
// fresh instance). A kernel without IPv6 (no net/ipv6) has nothing to set.
func writeIPv6Conf(ifName string, kv ...string) error {
	root, rel := unix.AT_FDCWD, "/proc/"
	if p, err := procs.acquire(); err == nil {
		defer procs.release(p)
		root, rel = p.fd, ""
	}
	dir := rel + "sys/net/ipv6/conf/" + ifName
	dfd, err := unix.Openat(root, dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		if fd, ierr := unix.Openat(root, rel+"sys/net/ipv6", unix.O_PATH|unix.O_CLOEXEC, 0); ierr == nil {
			unix.Close(fd)
		} else if errors.Is(ierr, unix.ENOENT) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("open net.ipv6.conf.%s: %w", ifName, err)
	}
	defer unix.Close(dfd)
	for i := 0; i+1 < len(kv); i += 2 {
		if err := writeAt(dfd, kv[i], kv[i+1]); err != nil {
			return fmt.Errorf("set net.ipv6.conf.%s.%s: %w", ifName, kv[i], err)
		}
	}
	return nil
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
