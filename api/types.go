// Package api defines the mvlan agent's HTTP+JSON API: the resources it
// serves, the requests it takes, its error form, and a client for the unix
// socket it listens on.
package api

import (
	"net/netip"
	"time"
)

// Driver is the only network driver mvlan serves.
const Driver = "macvlan"

// DefaultSocket is where the agent listens unless told otherwise.
const DefaultSocket = "/run/mvlan/mvlan.sock"

// NetworkCreate is the body of POST /v1/networks. Values are kept as the
// operator typed them; the agent parses and validates them (see netconf).
type NetworkCreate struct {
	Name        string   `json:"name"`
	Driver      string   `json:"driver"`
	Subnets     []string `json:"subnets,omitempty"`
	Gateways    []string `json:"gateways,omitempty"`
	IPRanges    []string `json:"ip_ranges,omitempty"`
	AuxAddrs    []string `json:"aux_addresses,omitempty"`
	IPv6        bool     `json:"ipv6,omitempty"`
	Internal    bool     `json:"internal,omitempty"`
	Labels      []string `json:"labels,omitempty"`
	Options     []string `json:"options,omitempty"`
	IPAMOptions []string `json:"ipam_options,omitempty"`
	// Scope is "local" (the default: this host's pool) or "cluster" (one
	// pool shared through the agents' etcd; see mvlan agent --cluster).
	Scope string `json:"scope,omitempty"`
	// IPAMDriver is where endpoints get their addresses: "" or
	// IPAMDefault (the network's own pools), or IPAMDHCP (the DHCP server
	// on the network's wire).
	IPAMDriver string `json:"ipam_driver,omitempty"`
	// DockerIPAM says Docker's own IPAM driver hands out the network's
	// addresses (set by the Docker front end for a network made without
	// --ipam-driver mvlan): it knows nothing of addresses mvlan would hand
	// out, so mvlan's other front ends attach only with addresses given.
	DockerIPAM bool `json:"docker_ipam,omitempty"`
}

// Network scopes.
const (
	ScopeLocal   = "local"
	ScopeCluster = "cluster"
)

// IPAM drivers.
const (
	IPAMDefault = "default"
	IPAMDHCP    = "dhcp"
)

// Pool is one subnet of a network with the gateway in force.
type Pool struct {
	Subnet  netip.Prefix          `json:"subnet"`
	Gateway netip.Addr            `json:"gateway"`
	IPRange netip.Prefix          `json:"ip_range,omitzero"`
	Aux     map[string]netip.Addr `json:"aux_addresses,omitempty"`
}

// Parent kinds: how a network's parent link came to be.
const (
	ParentExisting = "existing" // the operator's link, used as is, never deleted
	ParentVLAN     = "vlan"     // an 802.1q sub-interface mvlan created
	ParentHostOnly = "hostonly" // a host-only link mvlan created (no -o parent)
)

// Where a network's name came from (Network.NameFrom).
const (
	NameGiven    = ""          // the operator's: mvlan network create NAME, or Docker's -o name=NAME
	NameDockerID = "docker-id" // Docker's network ID, until dockerd tells the network's name
	NameDockerd  = "dockerd"   // the name dockerd has for the network (followed when it changes)
)

// Network is a macvlan network as the agent stores and serves it.
type Network struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	NameFrom   string            `json:"name_from,omitempty"` // NameGiven, NameDockerID or NameDockerd
	Driver     string            `json:"driver"`
	Created    time.Time         `json:"created"`
	Parent     string            `json:"parent"`
	ParentKind string            `json:"parent_kind"`
	LinkKind   string            `json:"link_kind,omitempty"`
	Mode       string            `json:"macvlan_mode"`
	IPv6       bool              `json:"ipv6"`
	Internal   bool              `json:"internal"`
	Serial     bool              `json:"serial_allocation,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Options    map[string]string `json:"options,omitempty"`
	Pools      []Pool            `json:"pools"`
	IPAMDriver string            `json:"ipam_driver,omitempty"` // "" is IPAMDefault
	// DatapathID numbers the network in the BPF maps (1-4095).
	DatapathID uint32 `json:"datapath_id"`
	// Scope is ScopeLocal or ScopeCluster; filled in by the agent when it
	// serves the network (stored as the option scope=cluster).
	Scope string `json:"scope,omitempty"`
	// Status is "ok" or what is wrong (e.g. the parent link is missing);
	// filled in by the agent when it serves the network, never stored.
	Status string `json:"status,omitempty"`
	// Full says the network has no address left for a new endpoint of a
	// family it hands out (its pools' ranges are all held); never for a
	// DHCP or cluster network, whose addresses come from elsewhere.
	// Filled in by the agent, never stored.
	Full bool `json:"full,omitempty"`
	// ParentAltNames are the parent link's alternative names (Parent is
	// its kernel name), as the agent last saw them (when it attached the
	// network, and on each of the parent's link events); never stored.
	ParentAltNames []string `json:"parent_altnames,omitempty"`
	// EndpointCount is how many endpoints the network has; Endpoints
	// lists them only where one network is asked for (GET
	// /v1/networks/REF), never in the list of all networks.
	EndpointCount int        `json:"endpoint_count"`
	Endpoints     []Endpoint `json:"endpoints,omitempty"`
	// HostShim is the host's own link on the network (-o host_shim), as
	// the agent serves it; its addresses are in Options, where it is stored.
	HostShim *HostShim `json:"host_shim,omitempty"`
}

// HostShim is the macvlan through which the host reaches a network's
// containers. Filled in by the agent when it serves the network.
type HostShim struct {
	Link   string       `json:"link"`
	MAC    string       `json:"mac"`
	Addrs  []netip.Addr `json:"addresses"`
	Status string       `json:"status"` // "ok" or what is wrong with it
}

// NetworkUpdate is the body of PATCH /v1/networks/{ref}: the options to
// change (only host_shim=auto|IP[,IP6]|off for now).
type NetworkUpdate struct {
	Options []string `json:"options"`
}

// OwnsParent reports whether mvlan created the parent link and so removes it.
func (n *Network) OwnsParent() bool {
	return n.ParentKind == ParentVLAN || n.ParentKind == ParentHostOnly
}

// Endpoint states, stored so that a crash half way is finished on start.
const (
	EndpointCreating = "creating" // kernel objects being made; undone on start
	EndpointReady    = "ready"
	EndpointRemoving = "removing" // kernel objects being removed; finished on start
)

// Endpoint is a network namespace attached to a network.
type Endpoint struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	NetworkID  string         `json:"network_id"`
	Network    string         `json:"network,omitempty"`
	Netns      string         `json:"netns"`
	NetnsInode uint64         `json:"netns_inode"`
	OwnsNetns  bool           `json:"owns_netns"`
	IfName     string         `json:"ifname"`
	MAC        string         `json:"mac"`
	Addrs      []netip.Prefix `json:"addresses"`
	State      string         `json:"state"`
	Created    time.Time      `json:"created"`
	// NetnsCookie and Ifindex key the endpoint in the BPF maps.
	NetnsCookie uint64 `json:"netns_cookie,omitempty"`
	Ifindex     int    `json:"ifindex,omitempty"`
	// CNI is the identity a CNI runtime gave the endpoint.
	CNI *CNIAttachment `json:"cni,omitempty"`
	// Lease is the endpoint's DHCP lease, on a network whose IPAM driver
	// is IPAMDHCP.
	Lease *Lease `json:"lease,omitempty"`
	// Lease6 is its DHCPv6 lease (IA_NA), on such a network with IPv6.
	Lease6 *Lease `json:"lease6,omitempty"`
	// Unrouted are its gateways (its network's, or its DHCP lease's
	// router) that are not its default route: when its link was made (or
	// a lease's address or router changed), its namespace had a default
	// route of that family and metric (a Kubernetes pod's primary
	// interface, or another mvlan network's, joined first) and kept it.
	Unrouted []netip.Addr `json:"unrouted_gateways,omitempty"`
}

// Lease states: where an endpoint's DHCP lease is in its life.
const (
	LeaseBound     = "bound"     // before T1
	LeaseRenewing  = "renewing"  // T1 passed; the server did not answer yet
	LeaseRebinding = "rebinding" // T2 passed; any server may answer
	LeaseExpired   = "expired"   // the address was taken off; the agent keeps asking
)

// Lease is a DHCP lease as the agent keeps it. ACK is the server's last
// DHCPACK (DHCPv6: Reply) as sent on the wire: renewals and the release
// are built from it. A DHCPv6 lease has no Server or Router (its server is
// known by the DUID in the Reply) and its ClientID is the endpoint's DUID.
type Lease struct {
	State    string       `json:"state"`
	Server   netip.Addr   `json:"server"`
	Addr     netip.Prefix `json:"address"`
	Router   netip.Addr   `json:"router,omitzero"`
	DNS      []netip.Addr `json:"dns,omitempty"`
	Domain   string       `json:"domain,omitempty"` // option 15
	Search   []string     `json:"search,omitempty"` // option 119
	ClientID string       `json:"client_id"`
	Obtained time.Time    `json:"obtained"` // when ACK came
	Renew    time.Time    `json:"renew"`    // T1
	Rebind   time.Time    `json:"rebind"`   // T2
	Expiry   time.Time    `json:"expiry"`
	ACK      []byte       `json:"ack"`
	Error    string       `json:"error,omitempty"` // the last failed renewal, if any
}

// CNIAttachment identifies an endpoint a runtime made through the CNI plugin:
// the CNI network's name (the scope of the runtime's GC), the container ID
// and the interface name, as the runtime passes them to ADD, DEL and CHECK.
type CNIAttachment struct {
	Network     string `json:"network"`
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname"`
}

// EndpointCreate is the body of POST /v1/endpoints: attach a namespace to
// a network. Without Netns the agent creates /run/netns/NAME for it.
type EndpointCreate struct {
	Network string `json:"network"`
	Name    string `json:"name,omitempty"`
	Netns   string `json:"netns,omitempty"`
	// NetnsInode, when not 0, is Netns's inode where the request was made
	// (NetnsInode): the agent refuses the path if it names another
	// namespace where the agent runs. The client sends it as the query's
	// netns_inode (older agents refuse unknown fields in a body).
	NetnsInode uint64 `json:"-"`
	IP         string `json:"ip,omitempty"`
	IP6        string `json:"ip6,omitempty"`
	MAC        string `json:"mac,omitempty"`
	IfName     string `json:"ifname,omitempty"`
	// CNI, when given, is stored with the endpoint. An endpoint of the
	// network with the same CNI identity in the same namespace is the
	// answer (a repeated ADD); one in another namespace (a DEL that never
	// came) is removed, then the namespace is attached.
	CNI *CNIAttachment `json:"cni,omitempty"`
	// AltNames are tried in order when Name is taken on the network; when
	// all are, the endpoint is named after its namespace (CNI: two pods of
	// one name in different Kubernetes namespaces).
	AltNames []string `json:"alt_names,omitempty"`
}

// CNIAdd is the answer of POST /v1/networks/{ref}/cni, a CNI ADD in one
// request (body: EndpointCreate with CNI set): the endpoint made, or the
// one a repeated ADD made before, and its network without endpoints (the
// gateways and routes of the runtime's result).
type CNIAdd struct {
	Endpoint Endpoint `json:"endpoint"`
	Network  Network  `json:"network"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Message string `json:"error"`
	Kind    string `json:"kind"`
}

// Error kinds, mapped to HTTP status codes by the agent.
const (
	KindInvalid  = "invalid"   // 400: the request is wrong; nothing changed
	KindNotFound = "not_found" // 404
	KindConflict = "conflict"  // 409: clashes with existing state
	KindBusy     = "busy"      // 503: work under way on it; try again
	KindInternal = "internal"  // 500
)

func (e *Error) Error() string { return e.Message }

// Check is the answer of GET /v1/check: every disagreement between state,
// kernel and IPAM; empty when they agree. Findings are the same with the
// part of the check that found each (GET /v1/check only).
type Check struct {
	Drift    []string       `json:"drift"`
	Findings []DriftFinding `json:"findings,omitempty"`
}

// NewCheck is the answer for findings: with their details in Drift.
func NewCheck(fs []DriftFinding) Check {
	ch := Check{Findings: fs}
	for _, f := range fs {
		ch.Drift = append(ch.Drift, f.Detail)
	}
	return ch
}

// DriftFinding is one finding of a check and its kind: endpoint, ipam,
// index, link, quarantine, tamper or cluster (what mvlan_drift counts).
type DriftFinding struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Version is the answer of GET /v1/version: what the agent is and what
// the kernel under it offers.
type Version struct {
	Version   string `json:"version"`
	API       string `json:"api"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
	// Features are the kernel features in use or available, e.g.
	// "attach=tcx", "btf", "netns_cookie".
	Features []string `json:"features"`
}
