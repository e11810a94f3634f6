package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
)

// recoverEndpoints makes the endpoints of the state (a restored snapshot,
// so possibly behind) agree with the endpoint links the kernel holds:
// every link marked as one of this agent's endpoints in any namespace
// becomes (or updates) that endpoint, ready, with the kernel's MAC and
// the addresses trustLinks allows; a stored endpoint without such a link is kept only while its
// namespace lives (reconcile re-attaches it) and none of its addresses is
// held by a found link. Networks come from the state alone: the kernel
// does not hold their subnets. Called by Open with -recover, before
// Start; nothing else runs yet.
func (a *Engine) recoverEndpoints() error {
	found := a.scanEndpointLinks()
	eps, err := a.store.Endpoints()
	if err != nil {
		return err
	}
	nets, err := a.store.Networks()
	if err != nil {
		return err
	}
	trustLinks(found, eps, nets)
	taken := map[netip.Addr]string{} // held by a found link -> endpoint id
	for id, k := range found {
		for _, p := range k.addrs {
			taken[p.Addr()] = id
		}
	}
	for _, e := range eps {
		k, ok := found[e.ID]
		delete(found, e.ID)
		if err := a.recoverStored(e, k, ok, taken); err != nil {
			return err
		}
	}
	for id, k := range found {
		if err := a.recoverNew(id, k, nets); err != nil {
			return err
		}
	}
	return nil
}

// recoverStored updates stored endpoint e from its link k (found), or
// forgets it when it has none and cannot get one back.
func (a *Engine) recoverStored(e api.Endpoint, k kernelEndpoint, found bool, taken map[netip.Addr]string) error {
	if !found {
		why := ""
		if ino, err := a.ns.Check(e.Netns); err != nil || ino != e.NetnsInode {
			why = "its namespace is gone"
		}
		for _, p := range e.Addrs {
			if id, ok := taken[p.Addr()]; ok && id != e.ID {
				why = fmt.Sprintf("its address %s is on endpoint %s's link", p.Addr(), shortID(id))
			}
		}
		if why == "" {
			return nil // reconcile re-attaches it
		}
		a.log.Warn("recover: forgetting an endpoint the kernel no longer has", "name", e.Name, "reason", why)
		return a.store.DeleteEndpoint(e.ID)
	}
	if e.State == api.EndpointRemoving {
		return nil // its removal finishes on start
	}
	fromKernel(&e, k)
	a.log.Info("recover: endpoint taken from the kernel", "name", e.Name, "netns", e.Netns, "addrs", e.Addrs)
	return a.store.UpdateEndpoint(e)
}

// recoverNew records endpoint id, which the kernel holds but the state
// does not (made after the snapshot), on the network whose subnets hold
// its addresses.
func (a *Engine) recoverNew(id string, k kernelEndpoint, nets []api.Network) error {
	n, ok := networkOf(nets, k.addrs)
	if !ok {
		a.log.Warn("recover: no network of the state holds the addresses of an endpoint link; left alone",
			"endpoint", shortID(id), "netns", k.netns, "addrs", k.addrs)
		return nil
	}
	e := api.Endpoint{ID: id, Name: nameFromNetns(k.netns), NetworkID: n.ID, Created: time.Now().UTC()}
	mark, err := a.ns.Mark(k.netns)
	e.OwnsNetns = err == nil && mark == a.alias("ns", id)
	fromKernel(&e, k)
	err = a.store.CreateEndpoint(e)
	if errors.Is(err, store.ErrExists) {
		e.Name += "-" + id[:8]
		err = a.store.CreateEndpoint(e)
	}
	if err != nil {
		return fmt.Errorf("record endpoint %s: %w", shortID(id), err)
	}
	a.log.Info("recover: endpoint adopted from the kernel", "name", e.Name, "network", n.Name, "netns", e.Netns, "addrs", e.Addrs)
	return nil
}

// fromKernel sets what the kernel knows of endpoint e.
func fromKernel(e *api.Endpoint, k kernelEndpoint) {
	e.Netns, e.NetnsInode, e.IfName = k.netns, k.netnsIno, k.link.Name
	e.MAC, e.Addrs, e.State = k.link.MAC.String(), k.addrs, api.EndpointReady
	e.NetnsCookie, e.Ifindex = 0, 0 // reconcile attaches the programs and records them
}

// networkOf finds the network one of whose subnets holds addrs[0].
func networkOf(nets []api.Network, addrs []netip.Prefix) (api.Network, bool) {
	if len(addrs) == 0 {
		return api.Network{}, false
	}
	for _, n := range nets {
		for _, p := range n.Pools {
			if p.Subnet.Contains(addrs[0].Addr()) {
				return n, true
			}
		}
	}
	return api.Network{}, false
}

// scanEndpointLinks finds every link marked as one of this agent's
// endpoints in every namespace there is a path to, by endpoint ID.
func (a *Engine) scanEndpointLinks() map[string]kernelEndpoint {
	prefix := a.alias("ep", "")
	out := map[string]kernelEndpoint{}
	for _, p := range netnsPaths() {
		if ino, err := a.ns.Check(p); err != nil || ino == a.hostIno {
			continue
		}
		links, err := a.ns.Links(p)
		if err != nil {
			continue
		}
		for _, l := range links {
			id, ok := strings.CutPrefix(l.Alias, prefix)
			if !ok || out[id].netns != "" {
				continue
			}
			if k, err := a.kernelEndpointIn(p, id); err == nil {
				out[id] = k
			}
		}
	}
	return out
}
