package link

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// EndpointSpec describes a macvlan endpoint in a container's namespace.
type EndpointSpec struct {
	Parent    string           // parent link name in the host namespace
	Mode      string           // bridge (default), private, vepa or passthru
	NetnsPath string           // target namespace, e.g. /run/netns/c1 or /proc/PID/ns/net
	IfName    string           // name inside the target namespace; default "eth0"
	MAC       net.HardwareAddr // required, unicast; in passthru mode also becomes the parent's
	Addrs     []netip.Prefix   // e.g. 172.16.86.10/24, 2001:db8:abc8::20/64
	Gateways  []netip.Addr     // default routes, at most one per family
	Alias     string           // IFLA_IFALIAS of the slave, e.g. mvlan/<agent>/ep/<id>
	// ParentIndex is Parent's ifindex as the caller knows it; 0, or an
	// index that is no link's any more (the parent was made again), has
	// AttachEndpoint look the parent up by name.
	ParentIndex int
	// AcceptRA keeps the kernel's accept_ra on an endpoint with IPv6: it
	// takes routes from the wire's router advertisements, but no address
	// (autoconf is 0). Without it accept_ra is 0, so one rogue RA on the
	// LAN cannot give it a route or an address.
	AcceptRA bool
	// BeforeUp, if set, runs when the slave is configured (named, with
	// its MAC, addresses and mark) but still down, with its ifindex in
	// the target namespace: the caller's datapath goes there, so that the
	// link's first frames (its announcements, at up) already pass its
	// programs and its peers know it. An error rolls the slave back.
	BeforeUp func(ifindex int) error
	// DHCP marks an endpoint whose IPv4 address comes later, from a DHCP
	// server (SetLeased): arp_notify is set so that it is announced.
	DHCP bool
	// DHCP6 marks an endpoint whose IPv6 address comes later, from a
	// DHCPv6 server (SetLeased6): IPv6 stays on, without DAD.
	DHCP6 bool
	// WireOnly announces the static addresses out of the parent only, not
	// to the other endpoints on it (bridge mode): none of them can hold
	// an entry for them (the caller knows they were never another
	// endpoint's), and in bridge mode every one of them would receive it.
	WireOnly bool
	// IPv6Off says links made in the namespace are born with IPv6
	// disabled (net.ipv6.conf.default.disable_ipv6=1, as a Spare's are):
	// an endpoint without IPv6 then needs no write. One with IPv6 gets it
	// enabled whenever its link was born without, IPv6Off or not.
	IPv6Off bool
	// Announce, if set, holds the announcements until it yields a value:
	// true sends them, false drops them (the caller gave the endpoint
	// up, or it is not where others may find it yet).
	Announce <-chan bool
	// Announced, if set, hears how the announcement of the static
	// addresses went: it is sent in the background once the link is up
	// (announceLater), after AttachEndpoint has returned.
	Announced func(error)
	// RouteKept, if set, hears each of Gateways whose route the kernel
	// refused (EEXIST): the namespace had a default route of its family
	// with the kernel's metric already (another network's, or the
	// runtime's primary interface's), which stays; none via gw is added.
	RouteKept func(gw netip.Addr)
	// MACBusyWait is how long up is tried again while the parent refuses
	// MAC (EADDRINUSE: another macvlan on it has it) when the caller
	// knows that link is going: one in a namespace that is gone to its
	// processes, which the kernel destroys in the background. 0 fails at
	// once.
	MACBusyWait time.Duration
}

var macvlanModes = map[string]netlink.MacvlanMode{
	"bridge":   netlink.MACVLAN_MODE_BRIDGE,
	"private":  netlink.MACVLAN_MODE_PRIVATE,
	"vepa":     netlink.MACVLAN_MODE_VEPA,
	"passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

// CheckMode validates a macvlan_mode option ("" means bridge).
func CheckMode(mode string) error {
	if _, ok := macvlanModes[mode]; ok || mode == "" {
		return nil
	}
	return fmt.Errorf("macvlan_mode %q is unknown; use bridge, private, vepa or passthru", mode)
}

func (s *EndpointSpec) normalize() error {
	if s.NetnsPath == "" {
		return errors.New("no target namespace; give a path such as /run/netns/c1 or /proc/PID/ns/net")
	}
	if s.IfName == "" {
		s.IfName = "eth0"
	}
	if s.Mode == "" {
		s.Mode = "bridge"
	}
	if err := CheckMode(s.Mode); err != nil {
		return err
	}
	if err := CheckIfName(s.IfName); err != nil {
		return err
	}
	if len(s.MAC) != 6 || s.MAC[0]&1 != 0 {
		return fmt.Errorf("MAC %q is not a unicast Ethernet address; use e.g. 02:42:ac:10:56:0a", s.MAC)
	}
	for _, p := range s.Addrs {
		if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			return fmt.Errorf("address %s is not a valid prefix; use e.g. 172.16.86.10/24", p)
		}
	}
	return checkGateways(s.Addrs, s.Gateways)
}

func checkGateways(addrs []netip.Prefix, gws []netip.Addr) error {
	var seen4, seen6 bool
	for _, gw := range gws {
		seen := &seen6
		if gw.Is4() {
			seen = &seen4
		}
		if !gw.IsValid() || *seen {
			return fmt.Errorf("gateway %s: at most one valid gateway per address family", gw)
		}
		*seen = true
		if !hasFamily(addrs, gw.Is4()) {
			return fmt.Errorf("gateway %s has no address of its family on the endpoint", gw)
		}
	}
	return nil
}

func hasFamily(addrs []netip.Prefix, v4 bool) bool {
	for _, p := range addrs {
		if p.Addr().Is4() == v4 {
			return true
		}
	}
	return false
}

// slave tracks where a half-made endpoint is, for rollback.
type slave struct {
	name      string          // what it is created as (see bornName)
	target    *netlink.Handle // netlink in the target namespace, once open
	added     bool            // the kernel made it (LinkAdd succeeded)
	targetIdx int             // its index there, once found (findBorn)
	parentIdx int             // its parent's index in the host namespace
}

// bornName is what the slave of s is created as: its final name, with
// its MAC, so that no rename waits for an RCU grace period under RTNL
// (dev_change_name). A crash before its alias is set leaves a macvlan of
// that name and MAC without our alias, which DeleteHalfMade recognises
// from the caller's record (or intent). A passthru slave takes the parent's MAC when
// created and gets its own after, so it is born under a temporary name.
func (h *Host) bornName(s EndpointSpec) string {
	if s.Mode == "passthru" {
		return tempName(h.tag)
	}
	return s.IfName
}

// AttachEndpoint creates a macvlan slave of s.Parent (in h's namespace)
// inside s.NetnsPath, names it s.IfName, sets s.MAC, adds s.Addrs (IPv6
// without DAD; IPv6 disabled when there is none), brings it up, which
// announces the addresses (gratuitous ARP, unsolicited NA: see
// prepareAnnounce), and adds default routes via s.Gateways. On failure the slave is deleted wherever it is.
func (h *Host) AttachEndpoint(ctx context.Context, s EndpointSpec) (err error) {
	if err := s.normalize(); err != nil {
		return fmt.Errorf("attach endpoint %s: %w", s.Alias, err)
	}
	target, err := openNetns(s.NetnsPath)
	if err != nil {
		return fmt.Errorf("attach endpoint %s: %w", s.Alias, err)
	}
	defer target.Close()
	sl := &slave{name: h.bornName(s)}
	defer func() {
		if sl.target != nil {
			defer sl.target.Close()
		}
		if err != nil {
			err = errors.Join(fmt.Errorf("attach endpoint %s: %w", s.Alias, err), h.rollback(sl, s, target))
		}
	}()
	if err := h.addSlave(ctx, sl, s, target); err != nil {
		return err
	}
	if err := configureSlave(ctx, sl, s, target); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h.announceLater(target, sl.targetIdx, sl.parentIdx, s)
	return nil
}

// addSlave creates the slave DOWN, under its born name and with its MAC,
// directly in the target namespace (no move: moving a link between
// namespaces costs an RCU grace period), then sets its alias there. A
// crash before the alias leaves a link that DeleteHalfMade removes.
func (h *Host) addSlave(ctx context.Context, sl *slave, s EndpointSpec, target netns.NsHandle) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	if sl.target, err = netlink.NewHandleAt(target, unix.NETLINK_ROUTE); err != nil {
		return fmt.Errorf("open netlink in %s: %w", s.NetnsPath, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.HardwareAddr, attrs.Group = sl.name, s.MAC, bornGroup
	attrs.Namespace = netlink.NsFd(int(target))
	mv := &netlink.Macvlan{LinkAttrs: attrs, Mode: macvlanModes[s.Mode]}
	if sl.parentIdx = s.ParentIndex; sl.parentIdx != 0 {
		mv.ParentIndex = sl.parentIdx
		err = h.addMacvlan(sl, mv, s)
	}
	if sl.parentIdx == 0 || errors.Is(err, unix.ENODEV) { // none known, or gone
		if sl.parentIdx, err = h.parentIndex(s.Parent); err == nil {
			mv.ParentIndex = sl.parentIdx
			err = h.addMacvlan(sl, mv, s)
		}
	}
	if err != nil {
		return err
	}
	if afterAdd != nil {
		afterAdd(s.NetnsPath, sl.name)
	}
	l, err := h.findBorn(sl, s, target)
	if err != nil {
		return err
	}
	sl.targetIdx = l.Attrs().Index
	if !bytes.Equal(l.Attrs().HardwareAddr, s.MAC) {
		// passthru slaves inherit the parent's MAC at creation; setting
		// theirs sets the parent's too, as Docker's driver does.
		if err := sl.target.LinkSetHardwareAddr(l, s.MAC); err != nil {
			return fmt.Errorf("set MAC %s: %w", s.MAC, err)
		}
	}
	if s.Alias != "" {
		if err := sl.target.LinkSetAlias(l, s.Alias); err != nil {
			return fmt.Errorf("set alias: %w", err)
		}
	}
	if err := sl.target.LinkSetGroup(l, 0); err != nil { // marked by its alias now
		return fmt.Errorf("set group: %w", err)
	}
	return nil
}

// afterAdd, if set (by the tests), runs between the slave's creation and
// findBorn, with the target namespace's path and the slave's name.
var afterAdd func(netnsPath, name string)

// findBorn finds the slave addSlave has just made in the target
// namespace. The kernel does not say which index it gave it (and
// netlink's LinkAdd looks the new name up in the caller's namespace, not
// the target's), so it is found by its name there, where a root process
// of the container could have renamed it and put a link of its own under
// that name in the meantime. So the link of that name must be the one
// made (notBorn); if it is not, or there is none, the attach fails (and
// rollback deletes the one made, wherever it is).
func (h *Host) findBorn(sl *slave, s EndpointSpec, target netns.NsHandle) (netlink.Link, error) {
	l, err := sl.target.LinkByName(sl.name)
	switch {
	case isNotFound(err):
		return nil, fmt.Errorf("find new macvlan %s in %s: no link has that name there any more (renamed in the namespace?)", sl.name, s.NetnsPath)
	case err != nil:
		return nil, fmt.Errorf("find new macvlan %s in %s: %w", sl.name, s.NetnsPath, err)
	}
	if why := h.notBorn(l, sl.parentIdx, s, target); why != "" {
		return nil, fmt.Errorf("find new macvlan %s in %s: the link of that name there is not the one made: %s (replaced in the namespace?); it is left alone",
			sl.name, s.NetnsPath, why)
	}
	return l, nil
}

// notBorn says why l is not a slave AttachEndpoint made for s on the
// parent with index parentIdx and has not configured yet ("" if it is
// one): a macvlan, in bornGroup, without an alias, with s.MAC (but in
// passthru mode, where it is born with the parent's), whose lower link is
// parentIdx of another namespace (the host's; of its own when target is
// h's namespace).
func (h *Host) notBorn(l netlink.Link, parentIdx int, s EndpointSpec, target netns.NsHandle) string {
	a := l.Attrs()
	switch {
	case l.Type() != "macvlan":
		return fmt.Sprintf("a %s, not a macvlan", l.Type())
	case a.Group != bornGroup:
		return fmt.Sprintf("group %#x, not %#x", a.Group, uint32(bornGroup))
	case a.Alias != "":
		return fmt.Sprintf("alias %q", a.Alias)
	case s.Mode != "passthru" && !bytes.Equal(a.HardwareAddr, s.MAC):
		return fmt.Sprintf("MAC %s, not %s", a.HardwareAddr, s.MAC)
	case a.ParentIndex != parentIdx:
		return fmt.Sprintf("lower link index %d, not %d", a.ParentIndex, parentIdx)
	case a.NetNsID < 0 && !target.Equal(h.ns):
		return "its lower link is in the namespace itself, not the host's"
	}
	return ""
}

// deleteMade deletes every link of nl's namespace that notBorn takes for
// the slave of s on parentIdx: the one made, which findBorn did not find
// under its name. It never deletes a link that is not a macvlan in
// bornGroup, unmarked, on the parent, with s's MAC (an endpoint's own; in
// passthru mode, the one macvlan the parent can have).
func (h *Host) deleteMade(nl *netlink.Handle, parentIdx int, s EndpointSpec, target netns.NsHandle) error {
	links, err := linkList(nl)
	if err != nil {
		return fmt.Errorf("roll back endpoint: %w", err)
	}
	var errs []error
	for _, l := range links {
		if h.notBorn(l, parentIdx, s, target) != "" {
			continue
		}
		if err := nl.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("roll back endpoint: delete %s: %w", l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// parentIndex is the index of the link a macvlan of the parent (looked up
// by name) sits on.
func (h *Host) parentIndex(name string) (int, error) {
	parent, err := linkByName(h.nl, name)
	if err != nil {
		return 0, fmt.Errorf("parent %w", err)
	}
	// The kernel puts a macvlan made on a macvlan (or macvtap) of this
	// namespace on its lower link, which the new link then reports
	// (findBorn): made there directly, it is the same link.
	a := parent.Attrs()
	if t := parent.Type(); (t == "macvlan" || t == "macvtap") && a.ParentIndex > 0 && a.NetNsID < 0 {
		return a.ParentIndex, nil
	}
	return a.Index, nil
}

// bornGroup is the IFLA_GROUP an endpoint's macvlan is created with
// ("mvlb"), until its alias is set: with its name and MAC, no alias and
// down, it tells a link a crash caught half made from the container's own
// (group 0 unless someone chose another).
const bornGroup = 0x6d766c62

// addMacvlan creates mv in the target namespace. An older kernel (the
// lab's 6.1; not this 6.18) looks the new link's name up in the caller's
// namespace too, so a final name the host has (eth0, the parent's, say) fails there
// with EEXIST while the target has no such link: then the slave is born
// under a temporary name instead, and renamed in the target
// (configureSlave).
func (h *Host) addMacvlan(sl *slave, mv *netlink.Macvlan, s EndpointSpec) error {
	err := h.nl.LinkAdd(mv)
	if errors.Is(err, unix.EEXIST) && sl.name == s.IfName {
		if _, lerr := sl.target.LinkByName(s.IfName); isNotFound(lerr) {
			sl.name = tempName(h.tag)
			mv.Name = sl.name
			err = h.nl.LinkAdd(mv)
		}
	}
	sl.added = err == nil
	if errors.Is(err, unix.EEXIST) {
		return &kernelError{fmt.Sprintf("add macvlan %s in %s: a link of that name is there already; choose another interface name", s.IfName, s.NetnsPath), ErrExists, err}
	}
	if err != nil {
		return fmt.Errorf("add macvlan on %s: %w", s.Parent, err)
	}
	return nil
}

// rollback deletes the slave of s from the target namespace, by the index
// findBorn found it at; one made but not found there (renamed) is found
// by what it is (deleteMade); nothing when it was never created (its name
// may be someone else's link there).
func (h *Host) rollback(sl *slave, s EndpointSpec, target netns.NsHandle) error {
	if sl.target == nil || !sl.added {
		return nil
	}
	if sl.targetIdx == 0 {
		return h.deleteMade(sl.target, sl.parentIdx, s, target)
	}
	if err := sl.target.LinkDel(&netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Index: sl.targetIdx}}); err != nil && !isNotFound(err) {
		return fmt.Errorf("roll back endpoint: %w", err)
	}
	return nil
}

// configureSlave finishes an endpoint inside the target namespace:
// announcements on up (or IPv6 off), name (if born under another),
// addresses, BeforeUp, up, default routes.
func configureSlave(ctx context.Context, sl *slave, s EndpointSpec, target netns.NsHandle) error {
	l := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Index: sl.targetIdx, Name: sl.name}}
	if err := prepareAnnounce(target, sl.targetIdx, sl.name, s); err != nil {
		return err
	}
	if sl.name != s.IfName {
		if err := sl.target.LinkSetName(l, s.IfName); err != nil {
			return fmt.Errorf("rename %s to %s in %s: %w", sl.name, s.IfName, s.NetnsPath, err)
		}
	}
	if err := addAddrs(sl.target, l, s.Addrs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.BeforeUp != nil {
		if err := s.BeforeUp(sl.targetIdx); err != nil {
			return err
		}
	}
	if err := setUp(ctx, sl.target, l, s.MACBusyWait); err != nil {
		return fmt.Errorf("set %s up: %w", s.IfName, err)
	}
	for _, gw := range s.Gateways {
		r := &netlink.Route{LinkIndex: sl.targetIdx, Gw: net.IP(gw.AsSlice())}
		err := sl.target.RouteAdd(r)
		if errors.Is(err, unix.EEXIST) {
			// The namespace already has a default route (a real container,
			// or one on another network first): it keeps it, as a Docker
			// container keeps the gateway of the network it joined first.
			if s.RouteKept != nil {
				s.RouteKept(gw)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("add default route via %s: %w", gw, err)
		}
	}
	return nil
}

// setUp sets macvlan l up; while its parent refuses its MAC (another
// macvlan on it has it: macvlan_open) it tries again, for up to wait.
func setUp(ctx context.Context, nl *netlink.Handle, l netlink.Link, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		err := nl.LinkSetUp(l)
		if !errors.Is(err, unix.EADDRINUSE) || time.Now().Add(delay).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

// addAddrs adds the endpoint's addresses; IPv6 ones skip duplicate address
// detection so they are usable at once (IPAM guarantees uniqueness).
func addAddrs(nl *netlink.Handle, l netlink.Link, addrs []netip.Prefix) error {
	for _, p := range addrs {
		a := &netlink.Addr{IPNet: prefixIPNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := nl.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add address %s: %w", p, err)
		}
	}
	return nil
}

func prefixIPNet(p netip.Prefix) *net.IPNet {
	bits := p.Addr().BitLen()
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}
