package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nsfile"
)

// Host performs netlink operations in one network namespace: the one the
// agent treats as "the host" (parents, sub-interfaces, host-only links, and
// macvlan slaves before they move into a container). Safe for concurrent use.
type Host struct {
	ns netns.NsHandle
	nl *netlink.Handle

	noDummy atomic.Bool // the kernel said it has no dummy driver
	tag     string      // owner tag in temporary link names (SetTag)
	// announcing counts the announcements sending in the background
	// (announceLater); Close waits for them.
	announcing sync.WaitGroup
	// deleting counts the links being freed after their deletion
	// returned (deleteUnregistered); Close waits for them.
	deleting sync.WaitGroup
	nsids    nsids    // the namespace IDs it gives (NetnsID)
	pkt      struct { // the packet socket announcements leave by (sendOnParent)
		mu     sync.Mutex
		fd     int
		made   bool
		closed bool                // by Close: none is made after
		open   func() (int, error) // makes it; nil: openPacketSocket (tests fail it)
	}
}

// SetTag makes the temporary names of links this Host creates start with
// TempPrefixFor(tag), so a half-made link can be told from another
// agent's. Call it before creating links.
func (h *Host) SetTag(tag string) { h.tag = tag }

// Info describes a link.
type Info struct {
	Name        string
	Kind        string   // "macvlan", "vlan", "bridge", "veth", "dummy", "device", ...
	Alias       string   // IFLA_IFALIAS
	AltNames    []string // alternative names (ip link property add ... altname)
	Index       int
	ParentIndex int // lower link of a vlan/macvlan; peer of a veth
	// LowerElsewhere: ParentIndex is in another namespace
	// (IFLA_LINK_NETNSID), not an index of this one.
	LowerElsewhere bool
	// LowerOnHost (MacvlansAt only): that namespace is the host's (the
	// one MacvlansAt is given), not one the namespace's owner made.
	LowerOnHost bool
	lowerNSID   int // IFLA_LINK_NETNSID, -1 when none
	Up          bool
	VID         int // 802.1q id of a vlan link
	VLANProto   int // a vlan link's protocol: VLANProto8021Q, or 0x88a8 (802.1ad)
	MasterIndex int // the bridge, bond, team or VRF the link is a port of (0: none)
	MAC         net.HardwareAddr
	// Encap is the link's hardware type as the kernel reports it
	// (ARPHRD_*): "ether" for an Ethernet link, "none" for a tun or
	// WireGuard link, "ipip", "gre", ...; "" when not known.
	Encap string
	// Macvlan (MacvlansAt only) is a macvlan's or macvtap's own
	// settings, as the kernel reports them; nil for other kinds.
	Macvlan *MacvlanConf
}

// MacvlanConf is what a macvlan or macvtap link is set to beside its
// lower link: its mode (bridge, private, vepa, passthru, source; "mode N"
// for a value this package does not name), its flags
// (IFLA_MACVLAN_FLAGS: MacvlanNoPromisc, MacvlanNoDst) and how many MACs
// its source list has (source mode only).
type MacvlanConf struct {
	Mode    string
	Flags   uint16
	Sources int
}

// Flags of a macvlan (MACVLAN_FLAG_*, linux/if_link.h).
const (
	MacvlanNoPromisc = 1 // passthru: the lower link is not made promiscuous
	MacvlanNoDst     = 2 // source mode: a listed MAC's frames go to no other link
)

// VLANProto8021Q is the protocol of an 802.1q VLAN link (what NAME.VID
// parents are made with).
const VLANProto8021Q = int(netlink.VLAN_PROTOCOL_8021Q)

// IsMacvlan reports whether l is a macvlan or macvtap: a link that sends
// through its lower link (ParentIndex).
func (l Info) IsMacvlan() bool { return l.Kind == "macvlan" || l.Kind == "macvtap" }

// OpenHost opens the network namespace at nsPath ("" means the namespace of
// the calling thread) for netlink operations. Close it when done.
func OpenHost(nsPath string) (*Host, error) {
	ns, err := openNetns(nsPath)
	if err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("open netlink in %s: %w", nsName(nsPath), err)
	}
	return &Host{ns: ns, nl: nl}, nil
}

// Close waits for the announcements sending in the background, then
// releases the namespace and netlink handles and the packet socket.
func (h *Host) Close() error {
	h.announcing.Wait()
	h.deleting.Wait()
	h.nl.Close()
	return errors.Join(h.closePacketSocket(), h.ns.Close())
}

func openNetns(path string) (netns.NsHandle, error) {
	var ns netns.NsHandle
	var err error
	if path == "" {
		ns, err = netns.Get()
	} else {
		ns, err = openNsHandle(path)
	}
	if errors.Is(err, unix.ENOENT) {
		return ns, fmt.Errorf("open netns %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return ns, fmt.Errorf("open netns %s: %w", nsName(path), err)
	}
	return ns, nil
}

// openNsHandle opens the namespace at path the way nsfile does (never
// waiting on a non-namespace file) as a handle netlink takes.
func openNsHandle(path string) (netns.NsHandle, error) {
	f, err := nsfile.Open(path)
	if err != nil {
		return netns.None(), err
	}
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return netns.None(), err
	}
	unix.CloseOnExec(fd)
	return netns.NsHandle(fd), nil
}

func nsName(path string) string {
	if path == "" {
		return "(current)"
	}
	return path
}

// Link returns the link called name; the error wraps ErrNotFound if there
// is none.
func (h *Host) Link(name string) (Info, error) {
	l, err := linkByName(h.nl, name)
	if err != nil {
		return Info{}, err
	}
	return infoOf(l), nil
}

// Addrs lists the addresses of link name, IPv6 link-local ones left out.
func (h *Host) Addrs(name string) ([]netip.Addr, error) {
	l, err := linkByName(h.nl, name)
	if err != nil {
		return nil, err
	}
	ps, err := addrsOf(h.nl, l)
	out := make([]netip.Addr, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Addr())
	}
	return out, err
}

// Links lists every link of the namespace.
func (h *Host) Links() ([]Info, error) { return listLinks(h.nl) }

// Delete removes the link called name. A missing link is not an error.
// Callers must only pass links they own.
func (h *Host) Delete(name string) error { return deleteByName(h.nl, name) }

func linkByName(nl *netlink.Handle, name string) (netlink.Link, error) {
	l, err := nl.LinkByName(name)
	if isNotFound(err) {
		return nil, fmt.Errorf("link %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

func deleteByName(nl *netlink.Handle, name string) error {
	l, err := nl.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err == nil {
		err = nl.LinkDel(l)
	}
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

func listLinks(nl *netlink.Handle) ([]Info, error) {
	ls, err := linkList(nl)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(ls))
	for _, l := range ls {
		out = append(out, infoOf(l))
	}
	return out, nil
}

// linkList dumps nl's links; a dump interrupted by a concurrent change is
// retried.
func linkList(nl *netlink.Handle) ([]netlink.Link, error) {
	ls, err := retryDump(nl.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return ls, nil
}

// addrList is nl.AddrList of l, a dump interrupted by a concurrent change
// retried (a partial list would report an address missing).
func addrList(nl *netlink.Handle, l netlink.Link, family int) ([]netlink.Addr, error) {
	return retryDump(func() ([]netlink.Addr, error) { return nl.AddrList(l, family) })
}

// dumpTries is how many times in all retryDump runs a dump that a
// concurrent change keeps interrupting.
const dumpTries = 5

// retryDump runs dump, a netlink dump, again while a concurrent change
// interrupted it (netlink.ErrDumpInterrupted, with which
// vishvananda/netlink returns what it got so far), dumpTries times at
// most; the last error stays.
func retryDump[T any](dump func() (T, error)) (out T, err error) {
	for range dumpTries {
		if out, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return out, err
}

func infoOf(l netlink.Link) Info {
	a := l.Attrs()
	in := Info{
		Name:        a.Name,
		Kind:        l.Type(),
		Alias:       a.Alias,
		AltNames:    a.AltNames,
		Index:       a.Index,
		ParentIndex: a.ParentIndex,
		MasterIndex: a.MasterIndex,
		Up:          a.Flags&net.FlagUp != 0,
		MAC:         a.HardwareAddr,
		Encap:       a.EncapType,
	}
	in.LowerElsewhere, in.lowerNSID = a.NetNsID >= 0, a.NetNsID
	if v, ok := l.(*netlink.Vlan); ok {
		in.VID, in.VLANProto = v.VlanId, int(v.VlanProtocol)
	}
	return in
}
