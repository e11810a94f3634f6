package engine

// Networks of scope cluster: one address pool shared by the agents of a
// cluster through etcd (package cluster). The definition lives in etcd;
// each host joins it with its own parent (mvlan network create --scope
// cluster on each host: the first defines it, the others join it and may
// leave out the subnets). The space is a cluster.Space: its blocks and
// claims are fetched from etcd by prepare, before the network's lock.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/internal/crashpoint"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/netconf"
)

// scopeOption marks a stored network as a cluster network; -o cannot
// set it (netconf refuses unknown options).
const scopeOption = "scope"

// preparer is an addrSpace that needs I/O before it can hand out an
// address: Prepare before the network's lock, Abandon what no endpoint
// took.
type preparer interface {
	Prepare(ctx context.Context, v6 bool, want netip.Addr) error
	Abandon(addr netip.Addr)
}

// newSpace makes the address space of network nw: a cluster.Space for a
// cluster network, else an ipam.Space.
func (a *Engine) newSpace(nw cluster.Network, pools []ipam.PoolConfig, opts map[string]string, serial bool) (addrSpace, error) {
	if opts[scopeOption] != api.ScopeCluster {
		return ipam.New(pools, ipam.Options{Serial: serial})
	}
	if a.cluster == nil {
		return nil, errors.New("a cluster network: start the agent with --cluster etcd://HOST:PORT (its blocks are in etcd)")
	}
	return a.cluster.OpenSpace(nw, pools, filepath.Join(a.cfg.StateDir, "cluster"))
}

// joinCluster defines req in etcd, or joins the network of its name that
// another host defined: then req takes its ID and, when it names no
// subnet, its pools; pools that differ are refused, before the join.
// Caller holds netOps.
func (a *Engine) joinCluster(ctx context.Context, req *api.NetworkCreate, id *string) error {
	if a.cluster == nil {
		return invalid(errors.New("--scope cluster needs an agent started with --cluster etcd://HOST:PORT"))
	}
	if !slices.ContainsFunc(req.Options, isParentOption) {
		// A host-only member hears nothing of the wire: its DAD would pass
		// any address, and its reclaim would give back the blocks of a
		// host cut off from etcd whose containers still answer.
		return invalid(fmt.Errorf("cluster network %s: -o parent=IFNAME is required on every host (the link to the segment the hosts share); a host-only member could not check the wire before handing out or reclaiming addresses", req.Name))
	}
	if err := checkBeforeDefine(*req); err != nil {
		return err
	}
	for _, n := range a.networkList() {
		if n.name() == req.Name { // before joining: a failed create leaves
			return conflict(fmt.Errorf("network with name %s already exists; choose another name or remove it first", req.Name))
		}
	}
	def := *req
	def.Options = slices.DeleteFunc(slices.Clone(req.Options), isParentOption)
	for try := 0; ; try++ {
		got, mine, err := a.defineOrFind(ctx, cluster.Definition{ID: *id, Create: def})
		if err != nil || mine {
			return err
		}
		crashpoint.Hit("cluster-create:after-define")
		err = a.joinDefined(ctx, req, got)
		if try == 0 && errors.Is(err, cluster.ErrNetworkGone) {
			continue // its last host removed it meanwhile: define it again
		}
		if err == nil {
			*id = got.ID
		}
		return err
	}
}

// joinDefined joins got, the definition of req's name another host made:
// req takes its pools when it names no subnet; pools that differ are
// refused, before the join.
func (a *Engine) joinDefined(ctx context.Context, req *api.NetworkCreate, got cluster.Definition) error {
	c := got.Create
	if ipamDriver(req.IPAMDriver) != ipamDriver(c.IPAMDriver) || req.Internal != c.Internal {
		// hosts of one network hand out its addresses one way, and route alike
		return conflict(fmt.Errorf("cluster network %s is defined with --ipam-driver %s and internal=%t; join it with the same",
			req.Name, ipamDriver(c.IPAMDriver), c.Internal))
	}
	if len(req.Subnets) > 0 && (!slices.Equal(req.Subnets, c.Subnets) || !slices.Equal(req.Gateways, c.Gateways) ||
		!slices.Equal(req.IPRanges, c.IPRanges) || !slices.Equal(req.AuxAddrs, c.AuxAddrs) || req.IPv6 != c.IPv6) {
		// before joining: a refused create leaves no membership behind
		return conflict(fmt.Errorf("cluster network %s is defined with --subnet %v --gateway %v --ip-range %v --aux-address %v; join it with the same, or with no --subnet to take them",
			req.Name, c.Subnets, c.Gateways, c.IPRanges, c.AuxAddrs))
	}
	if len(req.Subnets) == 0 {
		if err := joinOnlyFits(*req, c); err != nil {
			return err // before joining, as above
		}
	}
	if err := a.cluster.Join(ctx, req.Name, got.ID); err != nil {
		return err
	}
	if len(req.Subnets) == 0 {
		req.Subnets, req.Gateways, req.IPRanges, req.AuxAddrs, req.IPv6 = c.Subnets, c.Gateways, c.IPRanges, c.AuxAddrs, c.IPv6
	}
	return nil
}

// joinOnlyFits refuses a request without --subnet that joins definition
// c but gives what goes with a subnet (they would be dropped for the
// definition's), or that would not parse with the definition's pools
// (an unknown -o, say).
func joinOnlyFits(req api.NetworkCreate, c api.NetworkCreate) error {
	if len(req.Gateways)+len(req.IPRanges)+len(req.AuxAddrs) > 0 || req.IPv6 && !c.IPv6 {
		return invalid(fmt.Errorf("cluster network %s: --gateway, --ip-range, --aux-address and --ipv6 go with --subnet; join with none of them to take the definition's (--subnet %v --gateway %v --ip-range %v --aux-address %v, IPv6 %t)",
			req.Name, c.Subnets, c.Gateways, c.IPRanges, c.AuxAddrs, c.IPv6))
	}
	req.Subnets, req.Gateways, req.IPRanges, req.AuxAddrs, req.IPv6 = c.Subnets, c.Gateways, c.IPRanges, c.AuxAddrs, c.IPv6
	if _, err := netconf.Parse(req); err != nil {
		return invalid(err)
	}
	return nil
}

// ipamDriver is driver with "" as the default it means.
func ipamDriver(driver string) string { return cmp.Or(driver, api.IPAMDefault) }

func isParentOption(o string) bool { return len(o) >= 7 && o[:7] == "parent=" }

// joinOnly reports whether req can only join a network another host
// defined: it gives no pools of its own, nor leases from DHCP.
func joinOnly(req api.NetworkCreate) bool {
	return len(req.Subnets) == 0 && req.IPAMDriver != api.IPAMDHCP
}

// defineOrFind is cluster.Define for a request that can define the
// network, else the definition in etcd, which must be there: a request
// that can only join is never published.
func (a *Engine) defineOrFind(ctx context.Context, d cluster.Definition) (cluster.Definition, bool, error) {
	if !joinOnly(d.Create) {
		return a.cluster.Define(ctx, d)
	}
	got, ok, err := a.cluster.Lookup(ctx, d.Create.Name)
	if err == nil && !ok {
		err = invalid(fmt.Errorf("cluster network %s is not defined in etcd: the first host's network create gives its --subnet (e.g. --subnet=172.16.86.0/24); the others may leave it out to take the definition's", d.Create.Name))
	}
	return got, false, err
}

// checkBeforeDefine validates req before it goes to etcd, where other
// hosts may join it: its name (a key of etcd's), and, unless it can only
// join (joinOnly: it takes the definition's pools), the whole request.
func checkBeforeDefine(req api.NetworkCreate) error {
	if joinOnly(req) {
		if err := netconf.CheckName("network", req.Name); err != nil {
			return invalid(err)
		}
		return nil
	}
	cfg, err := netconf.Parse(req)
	if err != nil {
		return invalid(err)
	}
	return checkClusterConfig(cfg.Serial, cfg.HostShim != nil)
}

// checkClusterConfig refuses what cluster networks do not do (yet).
func checkClusterConfig(serial bool, shim bool) error {
	switch {
	case serial:
		return invalid(errors.New("--ipam-opt allocation=serial is not available on cluster networks (each host hands out its own blocks)"))
	case shim:
		return invalid(errors.New("-o host_shim is not available on cluster networks yet"))
	}
	return nil
}

// prepare readies n's space for req's addresses (a cluster network's
// blocks and claims), before the network's lock is taken.
func (a *Engine) prepare(ctx context.Context, n *network, req api.EndpointCreate) error {
	p, ok := n.space.(preparer) // space is set once, before n is shared
	if !ok {
		return nil
	}
	for _, fam := range []struct {
		v6   bool
		want string
	}{{false, req.IP}, {true, req.IP6}} {
		var want netip.Addr
		if fam.want != "" {
			w, err := netip.ParseAddr(fam.want)
			if err != nil {
				continue // reserve names the bad value
			}
			want = w.Unmap()
		} else if !n.space.HasFamily(fam.v6) || (fam.v6 && !n.IPv6) {
			continue
		}
		if err := p.Prepare(ctx, fam.v6, want); err != nil {
			return clusterError(ipam.HintTaken(err))
		}
	}
	return nil
}

// abandon gives back the claims prepare made for req that no endpoint
// took.
func abandon(n *network, req api.EndpointCreate) {
	p, ok := n.space.(preparer)
	if !ok {
		return
	}
	for _, s := range []string{req.IP, req.IP6} {
		if w, err := netip.ParseAddr(s); err == nil {
			p.Abandon(w.Unmap())
		}
	}
}

func clusterError(err error) error {
	switch {
	case errors.Is(err, ipam.ErrTaken), errors.Is(err, cluster.ErrForeignBlock), errors.Is(err, ipam.ErrExhausted),
		errors.Is(err, cluster.ErrNetworkGone):
		return conflict(err)
	case errors.Is(err, ipam.ErrReserved), errors.Is(err, ipam.ErrOutside):
		return invalid(err)
	}
	return err
}

// clusterSyncEvery is how often released claims of cluster networks are
// given back to etcd (those an outage kept).
const clusterSyncEvery = 2 * time.Second

// syncCluster gives the released claims of every cluster network back to
// etcd, without any lock of the engine.
func (a *Engine) syncCluster(ctx context.Context) {
	for _, n := range a.networkList() {
		if s, ok := n.space.(interface{ Sync(context.Context) }); ok {
			s.Sync(ctx)
		}
	}
}

// scopeOf is a stored network's scope.
func scopeOf(opts map[string]string) string {
	if opts[scopeOption] == api.ScopeCluster {
		return api.ScopeCluster
	}
	return api.ScopeLocal
}
