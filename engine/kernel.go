package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
)

// The kernel as the engine uses it. The real ones are *link.Host,
// *loader.Datapath and the link and loader functions on namespaces by
// path (kernelNamespaces); interfaces, so that the engine's decisions are
// tested without root against package enginetest's in-memory kernel, in
// addition to the privileged end-to-end tests.

// Host is the managed (host) namespace's links: *link.Host.
type Host interface {
	Link(name string) (link.Info, error)
	Links() ([]link.Info, error)
	// Addrs lists link name's addresses (not IPv6 link-local ones).
	Addrs(name string) ([]netip.Addr, error)
	CreateVLAN(ctx context.Context, p link.Parent, alias string) error
	CreateHostOnly(ctx context.Context, name, alias string) (kind string, err error)
	Delete(name string) error
	DeleteHalfMade(netnsPath, ifName string, mac net.HardwareAddr) error
	DeleteBorn(netnsPath, ifName string, mac net.HardwareAddr) error
	DeleteByAlias(alias string) error
	AttachEndpoint(ctx context.Context, s link.EndpointSpec) error
	// AnnounceEndpoint announces s's addresses from link ifindex, which
	// another made and brought up (link.Host.AnnounceEndpoint).
	AnnounceEndpoint(s link.EndpointSpec, ifindex int) error
	DetachEndpoint(ctx context.Context, netnsPath, ifName string) error
	// DetachLink deletes the link at ifindex in the namespace, whatever
	// it is named now (a container may rename its links).
	DetachLink(ctx context.Context, netnsPath string, ifindex int) error
	SilenceEndpoint(ctx context.Context, netnsPath string, ifindex int, alias string) error
	CreateHandoff(ctx context.Context, s link.HandoffSpec) (name string, err error)
	WatchLinks(ctx context.Context, fn func(link.LinkEvent)) error
	// WatchNetns sends the origin of every link and tc notification of
	// the namespaces with an ID (NetnsID) to fn until ctx is done; it
	// calls listening once subscribed.
	WatchNetns(ctx context.Context, listening func(), fn func(link.NetnsEvent)) error
	// NetnsID gives the namespace at path an ID in the host's.
	NetnsID(path string) (int, error)
	CreateShim(ctx context.Context, s link.ShimSpec) error
	SetShimAddrs(name string, addrs []netip.Addr) error
	ShimRoutes(name string) ([]netip.Addr, error)
	SetShimRoutes(name string, srcs, dsts []netip.Addr) error
	AddShimRoutes(name string, srcs, dsts []netip.Addr) error
	DeleteShimRoutes(name string, dsts []netip.Addr) error
	Stats(name string) (link.Stats, error)
	Close() error
}

// Datapath is the BPF side: *loader.Datapath.
type Datapath interface {
	// Path is how the endpoint programs find their endpoint.
	Path() loader.EndpointPath
	SetParent(ifindex int, networkID uint32, vid uint16) error
	AttachParent(ctx context.Context, netnsPath string, ifindex int, mode loader.Mode) error
	DetachParent(ctx context.Context, netnsPath string, ifindex int) error
	// ForgetLinks deletes the per-VLAN counters of the links for which
	// gone is true.
	ForgetLinks(gone func(ifindex int) bool) error
	DeleteParent(ifindex int) error
	// RetireParent is DeleteParent for a network that goes while its
	// parent stays counted per VLAN (another's trunk): the network's
	// untagged frames stay in the link's per-VLAN counters.
	RetireParent(ifindex int) error
	ForgetNetwork(networkID uint32) error
	SetRASource(networkID uint32, src loader.RASource) error
	SetGateways(networkID uint32, g loader.Gateways) error
	// GuardHandoff attaches to link ifindex in the namespace at netnsPath
	// (TCX only) a guard of endpoint id against the router messages its
	// network does not take, which stays on the link when it moves into
	// another namespace, until UnguardHandoff.
	GuardHandoff(netnsPath, id string, ifindex int, networkID uint32) error
	// UnguardHandoff detaches endpoint id's guard, if it has one.
	UnguardHandoff(id string) error
	SetEndpoint(ep loader.Endpoint) error
	// MACNetwork is the datapath network id of the row with mac, if one
	// has it (MACs are unique on the host: the tables key rows by MAC).
	MACNetwork(mac net.HardwareAddr) (id uint32, ok bool, err error)
	MoveEndpoint(fromCookie uint64, fromIfindex int, ep loader.Endpoint) error
	AttachEndpoint(ctx context.Context, netnsPath string, ifindex int, mode loader.Mode) error
	AttachEndpointIn(ctx context.Context, netnsPath string, cookie uint64, ifindex int, mode loader.Mode) error
	// AttachNewEndpoint is AttachEndpointIn for a link just made: it
	// creates without looking first, and looks only if something is there.
	AttachNewEndpoint(ctx context.Context, netnsPath string, cookie uint64, ifindex int, mode loader.Mode) error
	// AdoptEndpoint records, unchanged, an endpoint whose hooks run its
	// namespace's programs already, and says in which mode (at start).
	AdoptEndpoint(ctx context.Context, netnsPath string, cookie uint64, ifindex int) (loader.Mode, bool)
	// NetnsNamed records the path of a namespace attached through
	// another (link.Spare, before it was named).
	NetnsNamed(cookie uint64, ifindex int, netnsPath string)
	DetachEndpoint(ctx context.Context, netnsPath string, ifindex int) error
	// ForgetEndpoint is DetachEndpoint once the link is deleted: the
	// kernel removed its hooks; only the datapath's records of them go.
	ForgetEndpoint(netnsCookie uint64, ifindex int) error
	// ForgetLingering forgets what ForgetEndpoint kept of links whose
	// device has gone since.
	ForgetLingering() (int, error)
	DeleteEndpoint(netnsCookie uint64, ifindex int) error
	Endpoints() ([]loader.Endpoint, error)
	PruneOrphans() error
	Parents() ([]loader.Parent, error)
	PruneLinks() (int, error)
	CountersInto(maxNetwork uint32, s *loader.Snapshot) error
	Attachments() []loader.Attachment
	Missing(netnsPath string, ifindex int, mode loader.Mode) ([]loader.Hook, error)
	InspectEndpoint(ctx context.Context, netnsPath string, ifindex int) ([]loader.Finding, error)
	RepairEndpoint(ctx context.Context, netnsPath string, ifindex int, findings []loader.Finding) error
	// ForeignPrograms reports whether a tc program the Datapath did not
	// load has appeared since the last call.
	ForeignPrograms() bool
	// WatchTCX starts noting the programs other processes attach to TCX
	// hooks or detach (ForeignAttaches); nil where there is no TCX.
	WatchTCX() error
	// ForeignAttaches reports whether another process attached a program
	// to a TCX hook, or detached one, since the last call.
	ForeignAttaches() bool
	// TCXTampered reports whether the endpoint's TCX hooks need a full
	// InspectEndpoint (a program ahead of mvlan's, its link gone).
	TCXTampered(ctx context.Context, netnsPath string, cookie uint64, ifindex int) bool
	Close() error
}

// Namespaces are network namespaces reached by path (containers').
type Namespaces interface {
	// Check returns the inode of the network namespace at path
	// (link.CheckNetns: never blocks on what the path names instead).
	Check(path string) (uint64, error)
	// Links lists the links in it (link.EndpointLinks).
	Links(path string) ([]link.Info, error)
	// Macvlans lists its macvlan and macvtap links and link ifindex, at
	// least (link.MacvlansAt: the tamper check's look, whatever else the
	// container made there).
	Macvlans(path string, ifindex int) ([]link.Info, error)
	// SetMAC sets the MAC of link ifindex in it (link.SetEndpointMAC).
	SetMAC(path string, ifindex int, mac net.HardwareAddr) error
	// SetMacvlanMode sets link ifindex in it, a macvlan or macvtap
	// (kind), to mode with no flags (link.SetMacvlanMode).
	SetMacvlanMode(path string, ifindex int, kind, mode string) error
	// SetRAConf sets whether link ifName in it takes router
	// advertisements, as links mvlan makes do (link.SetRAConf).
	SetRAConf(path, ifName string, accept bool) error
	// Addrs lists the addresses of link ifindex in it (link.Addrs).
	Addrs(path string, ifindex int) ([]netip.Prefix, error)
	// DefaultRoute reports whether it has a default route of gw's
	// family, and one via gw on link ifindex (link.HasDefaultRoute).
	DefaultRoute(path string, gw netip.Addr, ifindex int) (has, via bool, err error)
	// DefaultRouteVia reports whether it has a default route via gw on
	// link ifindex in any routing table (link.HasDefaultRouteVia).
	DefaultRouteVia(path string, gw netip.Addr, ifindex int) (bool, error)
	// Mark returns the mark of a namespace mvlan made (link.NetnsMark).
	Mark(path string) (string, error)
	// Spare returns a new namespace for the container name, named nowhere
	// until its Mount (link.NetnsPool.Take), with its cookie read as it
	// was made and the datapath's first attach in it prepared ahead
	// (loader.Datapath.PrepareNetns: a socket, and on the stub path its
	// stubs).
	Spare(name string) (SpareNetns, error)
	// Delete removes /run/netns/NAME (link.DeleteNetns).
	Delete(name string) error
	// Cookie returns its netns cookie (loader.NetnsCookie).
	Cookie(path string) (uint64, error)
}

// SpareNetns is a new network namespace with no name yet (*link.Spare):
// reached at Path, it goes with Close unless Mount bound it at
// /run/netns/NAME first; Mark marks it (NetnsMark) before.
type SpareNetns interface {
	Path() string
	Cookie() uint64
	Inode() uint64
	IPv6Off() bool
	Mark(mark string) error
	Mount(name string) (string, error)
	Close() error
}

// kernelNamespaces are the real namespaces; those the engine makes come
// from a pool of spares made ahead, their first attach prepared
// (loader.Datapath.PrepareNetns).
type kernelNamespaces struct {
	pool *link.NetnsPool
	host string // the host's namespace (Config.HostNetns; "": the agent's)
}

// spareNamespaces is how many namespaces the pool keeps made ahead.
const spareNamespaces = 4

func (kernelNamespaces) Check(path string) (uint64, error)      { return link.CheckNetns(path) }
func (kernelNamespaces) Links(path string) ([]link.Info, error) { return link.EndpointLinks(path) }
func (k kernelNamespaces) Macvlans(path string, ifindex int) ([]link.Info, error) {
	return link.MacvlansAt(path, ifindex, k.host)
}
func (kernelNamespaces) SetMAC(path string, ifindex int, mac net.HardwareAddr) error {
	return link.SetEndpointMAC(path, ifindex, mac)
}
func (kernelNamespaces) SetMacvlanMode(path string, ifindex int, kind, mode string) error {
	return link.SetMacvlanMode(path, ifindex, kind, mode)
}
func (kernelNamespaces) SetRAConf(path, ifName string, accept bool) error {
	return link.SetRAConf(path, ifName, accept)
}
func (kernelNamespaces) Mark(path string) (string, error) { return link.NetnsMark(path) }
func (k kernelNamespaces) Spare(name string) (SpareNetns, error) {
	s, err := k.pool.Take()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	return s, nil
}
func (kernelNamespaces) Delete(name string) error           { return link.DeleteNetns(name) }
func (kernelNamespaces) Cookie(path string) (uint64, error) { return loader.NetnsCookie(path) }
func (kernelNamespaces) DefaultRoute(path string, gw netip.Addr, ifindex int) (has, via bool, err error) {
	return link.HasDefaultRoute(path, gw, ifindex)
}
func (kernelNamespaces) DefaultRouteVia(path string, gw netip.Addr, ifindex int) (bool, error) {
	return link.HasDefaultRouteVia(path, gw, ifindex)
}
func (kernelNamespaces) Addrs(path string, ifindex int) ([]netip.Prefix, error) {
	return link.Addrs(path, ifindex)
}

// Kernel is what New runs an engine on.
type Kernel struct {
	Host       Host
	Datapath   Datapath
	Netns      Namespaces
	Modes      loader.Modes // the attach mode per kind of link
	HostIno    uint64       // the managed namespace's inode
	HostCookie uint64       // the managed namespace's netns cookie
}
