// Package docker is mvlan's backend for Docker's remote network driver and
// IPAM protocols (package plugin serves their wire format): it turns
// Docker's calls into engine operations, and owns what Docker's flow leaves
// between two calls (pools being created, addresses handed out ahead of
// their endpoint, endpoints between CreateEndpoint and Join), the watches
// that finish a handed-off link, and the client of dockerd's Engine API
// that names endpoints after their containers.
//
// Networks made through Docker are engine networks with Docker's network
// ID as their ID. Docker's flow for `docker run --net N` is: RequestAddress
// (IPAM), CreateEndpoint, Join (the engine creates a macvlan slave in the
// host namespace under a temporary name and returns it; Docker moves it
// into the sandbox, names it ethN, sets the MAC, addresses and routes),
// then, when the container stops, Leave, DeleteEndpoint (Docker has moved
// the link back to the host namespace) and ReleaseAddress.
package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/plugin"
)

var _ plugin.Backend = (*Driver)(nil)

// handoffWait bounds how long a Join's watch waits for Docker to move the
// link into the sandbox (the container's start); later, the next agent
// start finishes the endpoint.
var handoffWait = 60 * time.Second // a variable for tests

// dockerOwner holds the addresses handed to Docker until an endpoint has
// them (Join re-owns them under the endpoint's name).
const dockerOwner = "Docker's reservation"

// Driver is the plugin.Backend on top of an engine. What it keeps lives in
// memory: after a restart, the networks and endpoints are in the engine's
// state and what is lost here is recovered or harmless (see each field).
type Driver struct {
	eng     *engine.Engine
	log     *slog.Logger
	dockerd *daemon // nil: no names from dockerd

	mu sync.Mutex // guards the fields below; taken before any engine call
	// pools requested and not yet taken by a network, by pool ID. After a
	// restart a pool is recovered from its ID (subnet and ip-range).
	pools map[string]*pool
	// held: addresses handed to Docker by RequestAddress that it has not
	// released. They stay held after DeleteEndpoint until ReleaseAddress,
	// so that no one else gets them in between; after a restart, the
	// address spaces hold only the endpoints' addresses again.
	held map[netip.Addr]bool
	// created: endpoints between CreateEndpoint and Join.
	created map[string]endpoint
	// joined: the answers of Joins, until Leave or DeleteEndpoint (a Join
	// dockerd asks again, its answer lost, gets the same).
	joined map[string]joinedAs
	// watches: the running handoff watches, by endpoint ID.
	watches map[string]*handoffWatch
	// naming: networks whose name is being asked of dockerd (netnames.go).
	naming map[string]bool
	ctx    context.Context // watches end with it (Start's)
	// bg counts the goroutines of the watches and of naming, which call
	// the engine: Wait waits for them before the engine closes. After
	// Wait (stopped), spawn starts none: a request a stop outlived.
	bg      sync.WaitGroup
	bgMu    sync.Mutex
	stopped bool
}

type pool struct {
	subnet, ipRange netip.Prefix
	ipamOpts        []string // --ipam-opt K=V
	refs            int
}

type endpoint struct {
	network string
	addrs   []netip.Prefix
	mac     net.HardwareAddr
}

// New returns the Docker backend of eng. dockerHost is dockerd's Engine
// API (unix:///PATH), asked for container names; "" disables that.
func New(eng *engine.Engine, dockerHost string, log *slog.Logger) (*Driver, error) {
	if log == nil {
		log = slog.Default()
	}
	dd, err := newDaemon(dockerHost)
	if err != nil {
		return nil, err
	}
	return &Driver{eng: eng, log: log, dockerd: dd, pools: map[string]*pool{}, held: map[netip.Addr]bool{},
		created: map[string]endpoint{}, joined: map[string]joinedAs{}, watches: map[string]*handoffWatch{}, naming: map[string]bool{}, ctx: context.Background()}, nil
}

// Start makes ctx the life of the handoff watches and, in the
// background, names the Docker endpoints still named by their sandbox key
// and the Docker networks after dockerd's names. Once ctx ends, Wait
// waits for what it started.
func (d *Driver) Start(ctx context.Context) {
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	d.nameEndpoints(ctx)
	d.nameNetworks(ctx)
}

// Wait waits for the goroutines of the handoff watches and of naming,
// which end with Start's ctx: after it the driver no longer calls the
// engine on its own, and the engine may close.
func (d *Driver) Wait() {
	d.bgMu.Lock()
	d.stopped = true
	d.bgMu.Unlock()
	d.bg.Wait()
}

// spawn runs f on a goroutine Wait waits for; none once Wait was called.
func (d *Driver) spawn(f func()) {
	d.bgMu.Lock()
	defer d.bgMu.Unlock()
	if d.stopped {
		return
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		f()
	}()
}

// DockerCreateNetwork makes the network Docker asks for, with Docker's ID.
// Its name is the driver option name (-o name=NAME) or else the short
// Docker ID (the full one if that is taken) until dockerd tells its name
// (netnames.go); the ip-ranges and IPAM options come from the pools
// requested for its subnets.
func (d *Driver) DockerCreateNetwork(ctx context.Context, dn plugin.Network) error {
	if !isDockerID(dn.ID) {
		return engine.Invalid(fmt.Errorf("network ID %q is not a Docker ID (hex digits)", dn.ID))
	}
	if _, err := d.eng.Network(dn.ID); err == nil {
		return nil // Docker asks again: it is there
	}
	req, err := d.networkRequest(dn)
	if err != nil {
		return err
	}
	n, err := d.eng.CreateNetworkWithID(ctx, req, dn.ID)
	if err != nil {
		return err
	}
	d.mu.Lock()
	for id, pp := range d.pools {
		if slices.ContainsFunc(n.Pools, func(p api.Pool) bool { return p.Subnet == pp.subnet }) {
			delete(d.pools, id) // the network has it now
		}
	}
	life := d.ctx
	d.spawn(func() { d.nameNetwork(life, n.ID) })
	d.mu.Unlock()
	d.log.Info("Docker network created", "name", n.Name, "id", n.ID[:12])
	return nil
}

// errDHCPv6 refuses a DHCP network with IPv6 from Docker: its containers
// would get no IPv6 address (the agent leases their IPv4 address only) and
// every one of them would be reported as missing its DHCPv6 lease.
var errDHCPv6 = engine.Invalid(errors.New("--ipv6 with --ipam-driver null: mvlan leases only IPv4 addresses for Docker's containers (no DHCPv6 for Docker yet); " +
	"create the network without it (--ipv6=false where dockerd's default-network-opts turn it on), or with IPv6 --subnet flags and mvlan's or Docker's IPAM"))

// dockerOwnOptions prefixes the -o options dockerd itself defines.
const dockerOwnOptions = "com.docker.network."

// networkRequest is Docker's network as mvlan's create request.
func (d *Driver) networkRequest(dn plugin.Network) (api.NetworkCreate, error) {
	req := api.NetworkCreate{Driver: api.Driver, IPv6: dn.IPv6, Internal: dn.Internal}
	for _, k := range sortedKeys(dn.Options) {
		switch {
		case k == "name":
			req.Name = dn.Options[k]
		case strings.HasPrefix(k, dockerOwnOptions):
			// dockerd's (advertise_addr_nmsgs, ...): it reads them itself
			// and passes them on, and its macvlan driver lets them be.
		default:
			req.Options = append(req.Options, k+"="+dn.Options[k])
		}
	}
	nets, err := d.eng.Networks()
	if err != nil {
		return req, err
	}
	if req.Name == "" {
		req.Name = networkName(nets, dn.ID)
	}
	// Docker's client loses the order of the --subnet flags (it gathers
	// them in a map): mvlan keeps the pools in address order, so that
	// dynamic addresses come from the lowest subnet first, every time.
	pools := slices.Clone(dn.Pools)
	slices.SortFunc(pools, func(p, q plugin.Pool) int {
		return cmp.Or(p.Subnet.Addr().Compare(q.Subnet.Addr()), p.Subnet.Bits()-q.Subnet.Bits())
	})
	// Docker's null IPAM driver (--ipam-driver null) gives 0.0.0.0/0 (and
	// ::/0, since Docker 25): no addresses from Docker; the DHCP server on
	// the wire gives them (engine/dhcphandoff.go), IPv4 only.
	if len(pools) > 0 && !slices.ContainsFunc(pools, func(p plugin.Pool) bool { return p.Subnet.Bits() > 0 }) {
		if dn.IPv6 || slices.ContainsFunc(pools, func(p plugin.Pool) bool { return p.Subnet.Addr().Is6() }) {
			return req, errDHCPv6
		}
		req.IPAMDriver = api.IPAMDHCP
		return req, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range pools {
		req.DockerIPAM = req.DockerIPAM || p.AddressSpace != plugin.AddressSpace // Docker's own IPAM gave it
		req.Subnets = append(req.Subnets, p.Subnet.String())
		if p.Gateway.IsValid() {
			req.Gateways = append(req.Gateways, p.Gateway.String())
		}
		for _, name := range sortedKeys(p.Aux) {
			req.AuxAddrs = append(req.AuxAddrs, name+"="+p.Aux[name].String())
		}
		if pp := d.poolOf(p.Subnet); pp != nil {
			if pp.ipRange.IsValid() {
				req.IPRanges = append(req.IPRanges, pp.ipRange.String())
			}
			for _, o := range pp.ipamOpts {
				if !slices.Contains(req.IPAMOptions, o) {
					req.IPAMOptions = append(req.IPAMOptions, o)
				}
			}
		}
	}
	return req, nil
}

func isDockerID(id string) bool {
	if len(id) < 12 || len(id) > 64 {
		return false
	}
	return strings.Trim(strings.ToLower(id), "0123456789abcdef") == ""
}

// networkName is the short Docker ID, as `docker network ls` shows it,
// unless a network has that name.
func networkName(nets []api.Network, id string) string {
	for _, n := range nets {
		if n.Name == id[:12] {
			return id
		}
	}
	return id[:12]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// DockerDeleteNetwork removes the network; one the agent does not have
// (removed with mvlan network rm) is not an error.
func (d *Driver) DockerDeleteNetwork(ctx context.Context, id string) error {
	n, err := d.eng.Network(id)
	if engine.KindOf(err) == engine.KindNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	d.mu.Lock()
	for addr := range d.held {
		if slices.ContainsFunc(n.Pools, func(p api.Pool) bool { return p.Subnet.Contains(addr) }) {
			delete(d.held, addr)
		}
	}
	d.mu.Unlock()
	return d.eng.RemoveNetwork(ctx, id)
}
