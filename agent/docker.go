package agent

// Docker integration: the agent is the Backend of package plugin, serving
// Docker's remote network driver and IPAM protocols on its plugin socket.
//
// Networks made through Docker are the agent's networks, with Docker's
// network ID as their ID. Docker's flow for `docker run --net N` is:
// RequestAddress (IPAM), CreateEndpoint, Join (the agent creates a macvlan
// slave in the host namespace under a temporary name and returns it; Docker
// moves it into the sandbox, names it ethN, sets the MAC, addresses and
// routes), then, when the container stops, Leave, DeleteEndpoint (Docker
// has moved the link back to the host namespace) and ReleaseAddress.
//
// An endpoint is stored at Join as "creating" with an empty IfName, before
// its link exists; a watch finishes it ("ready": datapath attached, IfName
// and namespace inode recorded) once the link is up in the sandbox, or the
// next agent start does (finishHandoffs). Leave marks it "removing" before
// detaching it. A crash at any point leaves what Reconcile already undoes:
// a "creating" or "removing" record, a link with a temporary name in the
// host namespace, or a marked link in a sandbox whose record is removed.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/plugin"
)

var _ plugin.Backend = (*Agent)(nil)

// handoffWait bounds how long a Join's watch waits for Docker to move the
// link into the sandbox (the container's start); later, the next agent
// start finishes the endpoint.
const handoffWait = 60 * time.Second

// dockerState is what the plugin calls leave for the next one. It lives in
// memory: after a restart, the networks and endpoints are in the state and
// what is lost here is recovered or harmless (see each field).
type dockerState struct {
	// pools requested and not yet taken by a network, by pool ID. After a
	// restart a pool is recovered from its ID (subnet and ip-range).
	pools map[string]*dockerPool
	// held: addresses handed to Docker by RequestAddress that it has not
	// released. They stay held after DeleteEndpoint until ReleaseAddress,
	// so that no one else gets them in between; after a restart, the
	// address spaces hold only the endpoints' addresses again.
	held map[netip.Addr]bool
	// created: endpoints between CreateEndpoint and Join.
	created map[string]dockerEndpoint
	// watches: the running handoff watches, by endpoint ID.
	watches map[string]*handoffWatch
	ctx     context.Context // watches end with it (the agent's run)
}

type dockerPool struct {
	subnet, ipRange netip.Prefix
	ipamOpts        []string // --ipam-opt K=V
	refs            int
}

type dockerEndpoint struct {
	network string
	addrs   []netip.Prefix
	mac     string
}

type handoffWatch struct{ cancel context.CancelFunc }

func newDockerState() *dockerState {
	return &dockerState{pools: map[string]*dockerPool{}, held: map[netip.Addr]bool{},
		created: map[string]dockerEndpoint{}, watches: map[string]*handoffWatch{}, ctx: context.Background()}
}

// servePlugin serves the plugin protocols on cfg.PluginSocket. A socket
// another live agent serves is left to it: this agent runs on without
// Docker (two agents on one host, as in the tests and the lab).
func (a *Agent) servePlugin(ctx context.Context, errc chan<- error) (*http.Server, error) {
	path := a.cfg.PluginSocket
	if path == "" {
		return nil, nil
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		a.log.Warn("Docker plugin socket is served by another agent; this one runs without Docker (give it its own --plugin-socket)", "plugin_socket", path)
		return nil, nil
	}
	ln, err := listenUnix(path)
	if err != nil {
		return nil, fmt.Errorf("plugin socket for Docker: %w (--plugin-socket \"\" disables it)", err)
	}
	a.mu.Lock()
	a.docker.ctx = ctx
	a.mu.Unlock()
	srv := &http.Server{Handler: plugin.Handler(a, a.log), ReadHeaderTimeout: 10 * time.Second}
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("serving Docker", "plugin_socket", path, "driver", strings.TrimSuffix(filepath.Base(path), ".sock"))
	return srv, nil
}

// DockerCreateNetwork makes the network Docker asks for, with Docker's ID.
// Its name is the driver option name (-o name=NAME) or else the short
// Docker ID (the full one if that is taken); the ip-ranges and IPAM
// options come from the pools requested for its subnets.
func (a *Agent) DockerCreateNetwork(ctx context.Context, dn plugin.Network) error {
	if !isDockerID(dn.ID) {
		return invalid(fmt.Errorf("network ID %q is not a Docker ID (hex digits)", dn.ID))
	}
	a.mu.Lock()
	if _, ok := a.nets[dn.ID]; ok {
		a.mu.Unlock()
		return nil // Docker asks again: it is there
	}
	req := api.NetworkCreate{Driver: api.Driver, IPv6: dn.IPv6, Internal: dn.Internal}
	for _, k := range sortedKeys(dn.Options) {
		if k == "name" {
			req.Name = dn.Options[k]
			continue
		}
		req.Options = append(req.Options, k+"="+dn.Options[k])
	}
	if req.Name == "" {
		req.Name = a.dockerNetworkName(dn.ID)
	}
	// Docker's client loses the order of the --subnet flags (it gathers
	// them in a map): mvlan keeps the pools in address order, so that
	// dynamic addresses come from the lowest subnet first, every time.
	pools := slices.Clone(dn.Pools)
	slices.SortFunc(pools, func(p, q plugin.Pool) int {
		return cmp.Or(p.Subnet.Addr().Compare(q.Subnet.Addr()), p.Subnet.Bits()-q.Subnet.Bits())
	})
	for _, p := range pools {
		req.Subnets = append(req.Subnets, p.Subnet.String())
		if p.Gateway.IsValid() {
			req.Gateways = append(req.Gateways, p.Gateway.String())
		}
		for _, name := range sortedKeys(p.Aux) {
			req.AuxAddrs = append(req.AuxAddrs, name+"="+p.Aux[name].String())
		}
		if pp := a.docker.poolOf(p.Subnet); pp != nil {
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
	a.mu.Unlock()
	n, err := a.createNetwork(ctx, req, dn.ID)
	if err != nil {
		return err
	}
	a.mu.Lock()
	for id, pp := range a.docker.pools {
		if slices.ContainsFunc(n.Pools, func(p api.Pool) bool { return p.Subnet == pp.subnet }) {
			delete(a.docker.pools, id) // the network has it now
		}
	}
	a.mu.Unlock()
	a.log.Info("Docker network created", "name", n.Name, "id", n.ID[:12])
	return nil
}

func isDockerID(id string) bool {
	if len(id) < 12 || len(id) > 64 {
		return false
	}
	return strings.Trim(strings.ToLower(id), "0123456789abcdef") == ""
}

// dockerNetworkName is the short Docker ID, as `docker network ls` shows
// it, unless a network has that name. Caller holds mu.
func (a *Agent) dockerNetworkName(id string) string {
	for _, n := range a.nets {
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
func (a *Agent) DockerDeleteNetwork(ctx context.Context, id string) error {
	a.mu.Lock()
	n, ok := a.nets[id]
	if ok {
		for addr := range a.docker.held {
			if slices.ContainsFunc(n.Pools, func(p api.Pool) bool { return p.Subnet.Contains(addr) }) {
				delete(a.docker.held, addr)
			}
		}
	}
	a.mu.Unlock()
	if !ok {
		return nil
	}
	return a.RemoveNetwork(ctx, id)
}

// DockerCreateEndpoint checks the endpoint's addresses and picks its MAC;
// the endpoint is stored at Join, when its sandbox is known.
func (a *Agent) DockerCreateEndpoint(_ context.Context, de plugin.Endpoint) (_ string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.nets[de.NetworkID]
	if n == nil {
		return "", notFound(fmt.Errorf("network %s is not one of this agent's (mvlan network ls); was it removed with mvlan network rm?", shortID(de.NetworkID)))
	}
	if n.status != "ok" {
		return "", conflict(fmt.Errorf("network %s cannot take endpoints now: %s", n.Name, n.status))
	}
	if _, ok := a.docker.created[de.ID]; ok {
		return "", conflict(fmt.Errorf("endpoint %s exists already", shortID(de.ID)))
	}
	if _, err := a.store.Endpoint(de.ID); err == nil {
		return "", conflict(fmt.Errorf("endpoint %s exists already", shortID(de.ID)))
	}
	if len(de.Addrs) == 0 {
		return "", invalid(fmt.Errorf("endpoint %s has no address from Docker; mvlan networks need one (--subnet)", shortID(de.ID)))
	}
	inUse, err := a.addrsInUse()
	if err != nil {
		return "", err
	}
	var claimed []netip.Addr
	defer func() {
		if err != nil {
			for _, addr := range claimed {
				n.space.Release(addr)
			}
		}
	}()
	addrs := make([]netip.Prefix, 0, len(de.Addrs))
	for _, p := range de.Addrs {
		addr := p.Addr().Unmap()
		if who, ok := inUse[addr]; ok {
			return "", conflict(fmt.Errorf("address %s is endpoint %s's", addr, who))
		}
		if owner, held := n.space.Owner(addr); held && !a.docker.held[addr] {
			return "", conflict(fmt.Errorf("address %s is held by %s", addr, owner))
		} else if !held {
			// Not handed out by this agent's IPAM (Docker's own IPAM,
			// or an agent restart in between): take it now.
			if _, err := n.space.Request(addr, dockerOwner); err != nil {
				return "", ipamError(err)
			}
			claimed = append(claimed, addr)
		}
		addrs = append(addrs, netip.PrefixFrom(addr, p.Bits()))
	}
	mac, err := a.endpointMAC(n, de.MAC)
	if err != nil {
		return "", err
	}
	for _, c := range a.docker.created {
		if c.network == n.ID && c.mac == mac.String() {
			return "", conflict(fmt.Errorf("MAC %s is already used on network %s", mac, n.Name))
		}
	}
	a.docker.created[de.ID] = dockerEndpoint{network: n.ID, addrs: addrs, mac: mac.String()}
	return mac.String(), nil
}

// dockerOwner holds the addresses handed to Docker until an endpoint has
// them (Join re-owns them under the endpoint's name).
const dockerOwner = "docker"

func shortID(id string) string { return id[:min(12, len(id))] }

func ipamError(err error) error {
	var taken *ipam.TakenError
	if errors.As(err, &taken) {
		return conflict(err)
	}
	return invalid(err)
}

// addrsInUse maps every address an endpoint (stored, or created and not
// yet joined) has to its name. Caller holds mu.
func (a *Agent) addrsInUse() (map[netip.Addr]string, error) {
	eps, err := a.store.Endpoints()
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]string{}
	for _, e := range eps {
		for _, p := range e.Addrs {
			out[p.Addr()] = e.Name
		}
	}
	for id, c := range a.docker.created {
		for _, p := range c.addrs {
			out[p.Addr()] = "Docker endpoint " + shortID(id)
		}
	}
	return out, nil
}

// DockerJoin stores the endpoint ("creating", in the sandbox at key), then
// creates its link in the host namespace for Docker to move, and watches
// for the move.
func (a *Agent) DockerJoin(ctx context.Context, networkID, endpointID, key string) (plugin.Join, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.docker.created[endpointID]
	if !ok {
		if _, err := a.store.Endpoint(endpointID); err == nil {
			return plugin.Join{}, conflict(fmt.Errorf("endpoint %s has joined already", shortID(endpointID)))
		}
		return plugin.Join{}, notFound(fmt.Errorf("endpoint %s is unknown: it was created before the agent restarted; start the container again", shortID(endpointID)))
	}
	if networkID != c.network {
		return plugin.Join{}, invalid(fmt.Errorf("endpoint %s is on network %s, not %s", shortID(endpointID), shortID(c.network), shortID(networkID)))
	}
	n := a.nets[c.network]
	if n == nil {
		return plugin.Join{}, notFound(fmt.Errorf("network %s is gone", shortID(c.network)))
	}
	if !filepath.IsAbs(key) {
		return plugin.Join{}, invalid(fmt.Errorf("sandbox key %q is not a namespace path", key))
	}
	e := api.Endpoint{ID: endpointID, Name: filepath.Base(key), NetworkID: n.ID, Netns: key,
		MAC: c.mac, Addrs: c.addrs, State: api.EndpointCreating, Created: time.Now().UTC()}
	if err := reown(n.space, e.Addrs, e.Name); err != nil {
		return plugin.Join{}, err
	}
	if err := a.store.CreateEndpoint(e); err != nil {
		_ = reown(n.space, e.Addrs, dockerOwner)
		if errors.Is(err, store.ErrExists) {
			return plugin.Join{}, conflict(fmt.Errorf("sandbox %s is on network %s already", key, n.Name))
		}
		return plugin.Join{}, fmt.Errorf("store endpoint %s: %w", e.Name, err)
	}
	crashpoint("docker-join:after-state")
	mac, _ := net.ParseMAC(e.MAC)
	name, err := a.host.CreateHandoff(ctx, link.HandoffSpec{Parent: n.Parent, Mode: n.Mode, MAC: mac, Alias: a.alias("ep", e.ID)})
	if err != nil {
		err = fmt.Errorf("create the link of endpoint %s: %w", shortID(e.ID), err)
		if derr := a.store.DeleteEndpoint(e.ID); derr != nil {
			return plugin.Join{}, errors.Join(err, derr)
		}
		return plugin.Join{}, errors.Join(err, reown(n.space, e.Addrs, dockerOwner))
	}
	crashpoint("docker-join:after-link")
	delete(a.docker.created, endpointID)
	a.watchHandoff(e.ID)
	j := plugin.Join{SrcName: name}
	for _, gw := range a.endpointSpec(n, e).Gateways {
		if gw.Is4() {
			j.Gateway = gw
		} else {
			j.GatewayIPv6 = gw
		}
	}
	a.log.Info("Docker endpoint joined", "name", e.Name, "network", n.Name, "sandbox", key, "addrs", e.Addrs, "mac", e.MAC, "link", name)
	return j, nil
}

// reown makes owner the holder of addrs in space (their holder is shown by
// mvlan doctor). Caller holds mu, so no one takes them in between.
func reown(space *ipam.Space, addrs []netip.Prefix, owner string) error {
	for _, p := range addrs {
		if cur, ok := space.Owner(p.Addr()); ok && cur == owner {
			continue
		}
		space.Release(p.Addr())
		if _, err := space.Request(p.Addr(), owner); err != nil {
			return ipamError(err)
		}
	}
	return nil
}

// DockerLeave marks the endpoint "removing" and detaches it from the
// datapath; Docker then moves its link back to the host namespace.
func (a *Agent) DockerLeave(ctx context.Context, _, endpointID string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopWatch(endpointID)
	e, err := a.store.Endpoint(endpointID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // removed meanwhile (mvlan rm)
	}
	if err != nil {
		return err
	}
	if e.State != api.EndpointRemoving {
		e.State = api.EndpointRemoving
		if err := a.store.UpdateEndpoint(e); err != nil {
			return fmt.Errorf("leave %s: %w", e.Name, err)
		}
	}
	crashpoint("docker-leave:after-state")
	if e.Ifindex == 0 {
		return nil
	}
	if err := a.detachEndpoint(ctx, e); err != nil {
		a.log.Warn("Docker endpoint left, but its datapath is not detached; removing it tries again", "name", e.Name, "err", err)
		return nil
	}
	e.Ifindex, e.NetnsCookie = 0, 0
	if err := a.store.UpdateEndpoint(e); err != nil {
		return fmt.Errorf("leave %s: %w", e.Name, err)
	}
	a.log.Info("Docker endpoint left", "name", e.Name)
	return nil
}

// DockerDeleteEndpoint removes the endpoint's link (in the host namespace,
// where Docker put it back, or still in the sandbox) and its record. Its
// addresses that Docker's RequestAddress gave stay held until Docker's
// ReleaseAddress; others are released now.
func (a *Agent) DockerDeleteEndpoint(ctx context.Context, _, endpointID string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopWatch(endpointID)
	if c, ok := a.docker.created[endpointID]; ok {
		delete(a.docker.created, endpointID)
		a.releaseDocker(a.nets[c.network], c.addrs)
		return nil
	}
	e, err := a.store.Endpoint(endpointID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if e.State != api.EndpointRemoving {
		e.State = api.EndpointRemoving
		if err := a.store.UpdateEndpoint(e); err != nil {
			return fmt.Errorf("remove %s: %w", e.Name, err)
		}
	}
	crashpoint("docker-rm:after-state")
	if err := errors.Join(a.detachEndpoint(ctx, e), a.teardown(ctx, e), a.host.DeleteByAlias(a.alias("ep", e.ID))); err != nil {
		return fmt.Errorf("remove %s: %w", e.Name, err)
	}
	if err := a.store.DeleteEndpoint(e.ID); err != nil {
		return fmt.Errorf("forget endpoint %s: %w", e.Name, err)
	}
	a.releaseDocker(a.nets[e.NetworkID], e.Addrs)
	a.log.Info("Docker endpoint removed", "name", e.Name, "addrs", e.Addrs)
	return nil
}

// releaseDocker releases the addresses Docker's ReleaseAddress will not
// (those this agent's RequestAddress did not give). Caller holds mu.
func (a *Agent) releaseDocker(n *network, addrs []netip.Prefix) {
	if n == nil {
		return
	}
	for _, p := range addrs {
		if !a.docker.held[p.Addr()] {
			n.space.Release(p.Addr())
		}
	}
}
