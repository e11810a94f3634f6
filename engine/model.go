package engine

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/dhcp"
)

// EndpointState is where an endpoint is in its life. It is stored, so
// that a crash half way is finished on start.
type EndpointState uint8

// Endpoint states.
const (
	Creating EndpointState = iota // kernel objects being made; undone on start
	Ready
	Removing // kernel objects being removed; finished on start
)

func (s EndpointState) String() string {
	switch s {
	case Creating:
		return api.EndpointCreating
	case Ready:
		return api.EndpointReady
	case Removing:
		return api.EndpointRemoving
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

func parseState(s string) (EndpointState, error) {
	for _, st := range []EndpointState{Creating, Ready, Removing} {
		if st.String() == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown endpoint state %q", s)
}

// ParentKind is how a network's parent link came to be.
type ParentKind uint8

// Parent kinds.
const (
	ParentExisting ParentKind = iota // the operator's link, used as is, never deleted
	ParentVLAN                       // an 802.1q sub-interface mvlan created
	ParentHostOnly                   // a host-only link mvlan created (no -o parent)
)

func (k ParentKind) String() string {
	switch k {
	case ParentExisting:
		return api.ParentExisting
	case ParentVLAN:
		return api.ParentVLAN
	case ParentHostOnly:
		return api.ParentHostOnly
	}
	return fmt.Sprintf("parent-kind(%d)", uint8(k))
}

func parseParentKind(s string) (ParentKind, error) {
	for _, k := range []ParentKind{ParentExisting, ParentVLAN, ParentHostOnly} {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown parent kind %q", s)
}

// owned reports whether mvlan created the parent link and so removes it.
func (k ParentKind) owned() bool { return k == ParentVLAN || k == ParentHostOnly }

// endpoint is a namespace attached to a network, as the engine keeps it.
type endpoint struct {
	ID, Name, NetworkID string
	Netns               string
	NetnsInode          uint64
	OwnsNetns           bool
	IfName              string
	MAC                 net.HardwareAddr
	Addrs               []netip.Prefix
	State               EndpointState
	Created             time.Time
	// NetnsCookie and Ifindex key the endpoint in the BPF maps.
	NetnsCookie uint64
	Ifindex     int
	CNI         *api.CNIAttachment // the identity a CNI runtime gave it
	Lease       *dhcp.Lease        // on a DHCP network, once it has one
	Lease6      *dhcp.Lease        // its DHCPv6 lease, on a DHCP network with IPv6
	// Unrouted are the gateways it has no default route through: its
	// namespace had one of that family and metric when the link was made
	// (link.EndpointSpec.RouteKept; found again on adoption and when a
	// start re-makes the link) or a lease applied (link.SetLeased).
	Unrouted []netip.Addr
	// unseen: its network picked its addresses and none was ever
	// another endpoint's (reserve), so announcing them to the wire is
	// enough (link.EndpointSpec.WireOnly). Not stored: false after a
	// restart, which announces to every endpoint on the parent.
	unseen bool
	// macWait: its MAC was the link's of the endpoint its attach
	// replaced, or of one the sweep released (network.macGoing), whose
	// namespace was gone: that link may still be on the parent while the
	// kernel destroys the namespace, and the parent refuses the MAC until
	// it goes (link.EndpointSpec.MACBusyWait).
	// Not stored: only its creation waits.
	macWait bool
	// resolvStale: the last write of its resolv.conf failed (applyLease),
	// so the next lease applied writes it whether or not its DNS servers
	// changed. Not stored: a start writes it anyway.
	resolvStale bool
}

func (e endpoint) api() api.Endpoint {
	out := api.Endpoint{ID: e.ID, Name: e.Name, NetworkID: e.NetworkID, Netns: e.Netns, NetnsInode: e.NetnsInode,
		OwnsNetns: e.OwnsNetns, IfName: e.IfName, Addrs: e.Addrs, State: e.State.String(), Created: e.Created,
		NetnsCookie: e.NetnsCookie, Ifindex: e.Ifindex, CNI: e.CNI, Unrouted: e.Unrouted}
	if e.Lease != nil {
		out.Lease = e.Lease.API()
	}
	if e.Lease6 != nil {
		out.Lease6 = e.Lease6.API()
	}
	if e.MAC != nil {
		out.MAC = e.MAC.String()
	}
	return out
}

func endpointFromAPI(a api.Endpoint) (endpoint, error) {
	e := endpoint{ID: a.ID, Name: a.Name, NetworkID: a.NetworkID, Netns: a.Netns, NetnsInode: a.NetnsInode,
		OwnsNetns: a.OwnsNetns, IfName: a.IfName, Addrs: a.Addrs, Created: a.Created,
		NetnsCookie: a.NetnsCookie, Ifindex: a.Ifindex, CNI: a.CNI, Unrouted: a.Unrouted}
	var err error
	if e.State, err = parseState(a.State); err != nil {
		return e, fmt.Errorf("endpoint %s: %w", a.Name, err)
	}
	if a.Lease != nil {
		l, err := dhcp.FromAPI(*a.Lease)
		if err != nil {
			return e, fmt.Errorf("endpoint %s: stored lease: %w", a.Name, err)
		}
		e.Lease = &l
	}
	if a.Lease6 != nil {
		l, err := dhcp.FromAPI(*a.Lease6)
		if err != nil {
			return e, fmt.Errorf("endpoint %s: stored DHCPv6 lease: %w", a.Name, err)
		}
		e.Lease6 = &l
	}
	if a.MAC != "" {
		if e.MAC, err = net.ParseMAC(a.MAC); err != nil {
			return e, fmt.Errorf("endpoint %s: stored MAC: %w", a.Name, err)
		}
	}
	return e, nil
}

// entry is an endpoint in the index. busy serialises the endpoint's
// transitions and is held across its kernel work; ep and gone are guarded
// by the network's mu, so readers never wait for kernel work.
type entry struct {
	busy sync.Mutex
	ep   endpoint
	gone bool // removed from the index; whoever waited on busy gives up

	// exchanges are its lease keepers' DHCP exchanges under way (index
	// 1: DHCPv6), made without busy; guarded by the network's mu.
	exchanges [2]*exchange

	// label is "NAME/IFNAME" of ep as labelOf last saw it, for the
	// metrics' attachments (every scrape names every endpoint).
	label, labelName, labelIf string
}

// labelOf is en's "NAME/IFNAME", made again only when either changed.
// Caller holds the network's mu.
func (en *entry) labelOf() string {
	if en.labelName != en.ep.Name || en.labelIf != en.ep.IfName || en.label == "" {
		en.label, en.labelName, en.labelIf = en.ep.Name+"/"+en.ep.IfName, en.ep.Name, en.ep.IfName
	}
	return en.label
}

// network is a stored network with its live address space, status and
// endpoint index. Its stored fields never change after creation, except
// LinkKind (set when its parent is re-made), guarded by mu, and its name
// (name, nameFrom; RenameNetwork), read without locks.
type network struct {
	ID, Driver      string
	cur             atomic.Pointer[netName] // name and nameFrom
	Created         time.Time
	Parent          string
	ParentKind      ParentKind
	LinkKind        string
	Mode            string
	IPv6, Internal  bool
	Serial          bool
	Labels, Options map[string]string
	Pools           []api.Pool
	DHCP            bool   // endpoints' addresses come from a DHCP server (dhcp.go)
	DatapathID      uint32 // numbers the network in the BPF maps (1-4095)

	mu       sync.Mutex // guards what follows
	space    addrSpace
	status   health
	removing bool // its rm is under way (startRemoval): no attach is admitted
	// parentIndex and trunkIndex are where the parent programs are
	// attached; parentMAC is the parent's MAC then (attachNetwork runs
	// again on each of the parent's link events): an endpoint's
	// generated MAC must not be it; parentAltNames are its altnames
	// then (a definition may name the parent by one).
	parentIndex, trunkIndex int
	parentMAC               net.HardwareAddr
	parentName              string // the link at parentIndex: Parent, or a macvlan parent's lower link
	selfIndex               int    // Parent's own index (parentIndex but for a macvlan parent)
	trunkName               string // the link at trunkIndex
	// linksAt is the parent index the endpoints' links were last made or
	// found on (at start, create or reattachAll): a parent found at
	// another has them made again.
	linksAt        int
	parentAltNames []string
	eps            map[string]*entry            // by endpoint ID
	byName         map[string]*entry            // names are unique per network
	byAddr         map[netip.Addr]*entry        // the addresses endpoints have
	byMAC          map[string]*entry            // by string(MAC): MACs are unique per network
	byNetns        map[uint64]*entry            // by namespace inode: one endpoint per namespace
	byCNI          map[api.CNIAttachment]*entry // by the identity a CNI runtime gave it
	shim           *shimState                   // the host shim (shim.go); nil: none
	gwPin          gatewayPin                   // what the datapath pins of its gateways (gateways.go)
	// goingMACs: the MACs of endpoints released with their namespace gone
	// (the sweep), until when their links may still be on the parent
	// while the kernel destroys the namespace (macGoing).
	goingMACs map[string]time.Time
	// shimGone are addresses the shim gave up (a move, shim off) that its
	// link may still have: they stay held in space (shimOwner) until the
	// link is known not to have them (settleShimGone).
	shimGone []netip.Addr
	// quarantined are the addresses of the network's quarantined endpoint
	// records, held so that none is handed out again while their
	// containers, whose links are left alone, may still use them
	// (loadState; owner: quarantinedOwner).
	quarantined map[netip.Addr]string
	// used is the highest address of each family that an endpoint or
	// the host shim of n has held, as far as this agent knows (add,
	// reserveShim, newNetwork's shim, and the store's ReleasedHighWater
	// on start; the last address of every pool when the store does not
	// know it: poolTops): a picked address above it is in no other
	// endpoint's neighbour table (reserve).
	used store.HighWater

	shimMu sync.Mutex // orders changes and syncs of the shim's routes (shimRoutesOf, syncShimRoutes)
	// probing are the IDs of the endpoints whose new IPv4 address the
	// DHCP client is checking (leaseProbing): tableEntry marks their rows
	// so, whoever writes them.
	probing sync.Map
}

func newNetwork(n api.Network, space addrSpace) (*network, error) {
	kind, err := parseParentKind(n.ParentKind)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", n.Name, err)
	}
	shim, err := shimAddrsOf(n.Options)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", n.Name, err)
	}
	nw := &network{ID: n.ID, Driver: n.Driver, Created: n.Created, Parent: n.Parent,
		ParentKind: kind, LinkKind: n.LinkKind, Mode: n.Mode, IPv6: n.IPv6, Internal: n.Internal || kind == ParentHostOnly,
		Serial: n.Serial, Labels: n.Labels, Options: withShim(n.Options, nil), Pools: n.Pools, DatapathID: n.DatapathID,
		DHCP: n.IPAMDriver == api.IPAMDHCP, space: space, status: healthy()}
	nw.setName(n.Name, n.NameFrom)
	nw.initIndex()
	if shim != nil {
		nw.shim = &shimState{addrs: shim}
		nw.used = nw.used.Raise(shim...)
	}
	return nw, nil
}

// netName is a network's name and where it came from.
type netName struct{ name, from string }

// name is the network's name now.
func (n *network) name() string { return n.cur.Load().name }

// nameFrom is where its name came from: api.NameGiven, NameDockerID or
// NameDockerd.
func (n *network) nameFrom() string { return n.cur.Load().from }

// setName renames the network in memory; the caller holds netOps (names
// are unique across networks) and has stored the name.
func (n *network) setName(name, from string) { n.cur.Store(&netName{name, from}) }

// stored is the network as the store keeps it (no status, no endpoints;
// the shim's addresses as its host_shim option). Caller holds n.mu (or n
// is not in the index yet).
func (n *network) stored() api.Network {
	opts := n.Options
	if n.shim != nil {
		opts = withShim(n.Options, n.shim.addrs)
	}
	return api.Network{ID: n.ID, Name: n.name(), NameFrom: n.nameFrom(), Driver: n.Driver, Created: n.Created, Parent: n.Parent,
		ParentKind: n.ParentKind.String(), LinkKind: n.LinkKind, Mode: n.Mode, IPv6: n.IPv6,
		Internal: n.Internal, Serial: n.Serial, Labels: n.Labels, Options: opts, Pools: n.Pools,
		DatapathID: n.DatapathID, IPAMDriver: n.ipamDriver()}
}

// ipamDriver is the network's --ipam-driver as stored ("" is the default).
func (n *network) ipamDriver() string {
	if n.DHCP {
		return api.IPAMDHCP
	}
	return ""
}

// ok reports whether the network takes endpoints now. Caller holds n.mu.
func (n *network) ok() bool { return n.health().status == StatusOK }

// validAddrs are the valid ones of addrs.
func validAddrs(addrs ...netip.Addr) []netip.Addr {
	out := addrs[:0]
	for _, a := range addrs {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// poolTops is the last address of each of n's pools' subnets: used
// raised to them makes every address of n one that may have been held.
func (n *network) poolTops() []netip.Addr {
	out := make([]netip.Addr, 0, len(n.Pools))
	for _, p := range n.Pools {
		b := p.Subnet.Masked().Addr().AsSlice()
		for i := p.Subnet.Bits(); i < len(b)*8; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		a, _ := netip.AddrFromSlice(b)
		out = append(out, a)
	}
	return out
}
