// Package plugin serves Docker's remote network driver (NetworkDriver.*) and
// IPAM (IpamDriver.*) protocols for the agent.
//
// Docker finds the plugin by its socket (/run/docker/plugins/NAME.sock makes
// the driver NAME), activates it once (Plugin.Activate) and then POSTs JSON
// to /NetworkDriver.METHOD and /IpamDriver.METHOD. A request that cannot be
// decoded is answered 400, one that fails 500, both with {"Err": ...}, which
// Docker reports; an unknown method is 404, which Docker takes as "not
// implemented" for optional methods.
//
// The handlers translate between the wire types below and the Backend, the
// agent, which does the work: this package keeps no state.
package plugin

import (
	"context"
	"net/netip"
)

// Backend is what the handlers need from the agent. Every method is called
// with the request's context; errors are reported to Docker as they are.
type Backend interface {
	// DockerCreateNetwork makes an mvlan network with Docker's network ID.
	DockerCreateNetwork(ctx context.Context, n Network) error
	// DockerDeleteNetwork removes it; an unknown ID is not an error.
	DockerDeleteNetwork(ctx context.Context, networkID string) error
	// DockerCreateEndpoint records an endpoint with the addresses Docker's
	// IPAM gave; it returns the MAC it chose when e.MAC is empty.
	DockerCreateEndpoint(ctx context.Context, e Endpoint) (mac string, err error)
	// DockerJoin creates the endpoint's link for Docker to move into the
	// sandbox at sandboxKey and returns its name and the gateways.
	DockerJoin(ctx context.Context, networkID, endpointID, sandboxKey string) (Join, error)
	// DockerLeave detaches the endpoint from the datapath; Docker then
	// moves its link back to the host namespace.
	DockerLeave(ctx context.Context, networkID, endpointID string) error
	// DockerDeleteEndpoint removes the endpoint's link and record; an
	// unknown endpoint is not an error.
	DockerDeleteEndpoint(ctx context.Context, networkID, endpointID string) error

	// DockerRequestPool registers a pool and returns its ID.
	DockerRequestPool(ctx context.Context, p PoolRequest) (poolID string, err error)
	// DockerReleasePool drops a pool that no network took.
	DockerReleasePool(ctx context.Context, poolID string) error
	// DockerRequestAddress hands out an address of the pool, with the
	// subnet's prefix length.
	DockerRequestAddress(ctx context.Context, a AddressRequest) (netip.Prefix, error)
	// DockerReleaseAddress frees an address handed out by DockerRequestAddress.
	DockerReleaseAddress(ctx context.Context, poolID string, addr netip.Addr) error
}

// Network is NetworkDriver.CreateNetwork, decoded.
type Network struct {
	ID       string            // Docker's network ID (64 hex digits)
	Options  map[string]string // driver options: docker network create -o K=V
	IPv6     bool              // --ipv6
	Internal bool              // --internal
	Pools    []Pool            // IPv4 pools, then IPv6 pools, as Docker's IPAM gave them
}

// Pool is one subnet of a network as Docker's IPAM gave it.
type Pool struct {
	Subnet  netip.Prefix
	Gateway netip.Addr            // zero when none
	Aux     map[string]netip.Addr // --aux-address NAME=IP
	// AddressSpace is the IPAM driver's: AddressSpace when mvlan's IPAM
	// gave the pool, another (LocalDefault) when Docker's own did.
	AddressSpace string
}

// Endpoint is NetworkDriver.CreateEndpoint, decoded.
type Endpoint struct {
	NetworkID, ID string
	Addrs         []netip.Prefix // IPv4 and/or IPv6, with the subnet's length
	MAC           string         // "" lets the backend choose
}

// Join is what NetworkDriver.Join answers.
type Join struct {
	SrcName              string     // the link Docker moves into the sandbox
	Gateway, GatewayIPv6 netip.Addr // zero: no default route of that family
}

// PoolRequest is IpamDriver.RequestPool, decoded.
type PoolRequest struct {
	AddressSpace string
	Pool         netip.Prefix      // --subnet; zero when Docker asks the driver to choose
	SubPool      netip.Prefix      // --ip-range; zero when none
	Options      map[string]string // --ipam-opt K=V
	V6           bool
}

// AddressRequest is IpamDriver.RequestAddress, decoded.
type AddressRequest struct {
	PoolID  string
	Address netip.Addr // zero: any free address
	Gateway bool       // Docker asks for the network's gateway
}

// AddressSpace is the one address space mvlan offers, local and global.
const AddressSpace = "mvlan"
