package engine

// Duplicate address detection on cluster networks: before an attach
// stores its endpoint, the addresses it was given are probed on the
// network's parent (package probe, one short round of --cluster-dad).
// An address that answers is in use by something outside mvlan's pool
// (a host configured by hand, a partitioned agent): it is set aside on
// this host and a dynamic attach takes another; an exact one fails.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/probe"
)

// errDADRetry is a dad conflict on dynamic addresses only: the attach
// may take others.
var errDADRetry = errors.New("dynamic address in use on the wire")

// dad probes en's addresses; on an answer it takes en out of the index
// (releasing its lock), sets the answering addresses aside and fails, with
// errDADRetry when req asked for none of them.
func (a *Engine) dad(ctx context.Context, n *network, en *entry, req api.EndpointCreate) error {
	cs, ok := n.space.(*cluster.Space)
	if !ok || a.cfg.Cluster == nil || a.cfg.Cluster.DAD <= 0 {
		return nil
	}
	addrs := make([]netip.Addr, 0, len(en.ep.Addrs))
	for _, p := range en.ep.Addrs {
		addrs = append(addrs, p.Addr())
	}
	n.mu.Lock()
	parent := n.Parent
	n.mu.Unlock()
	used, err := probe.InUse(ctx, a.cfg.HostNetns, parent, addrs, probe.Options{Tries: 1, Wait: a.cfg.Cluster.DAD})
	if err != nil {
		a.log.Warn("duplicate address probe failed; attaching without it", "network", n.name(), "err", err)
		return nil
	}
	if len(used) == 0 {
		return nil
	}
	a.cluster.CountDAD()
	exact := false
	n.mu.Lock()
	n.drop(en)
	a.macs.release(en.ep.MAC, en.ep.ID) // admit's: the attach ends here
	for _, u := range used {
		if asked(u, req.IP) || asked(u, req.IP6) {
			exact = true
		} else {
			cs.SetAside(u)
		}
	}
	n.mu.Unlock()
	en.busy.Unlock()
	a.log.Warn("duplicate address detection: addresses answer on the wire; set aside", "network", n.name(), "addrs", used, "parent", parent)
	err = conflict(fmt.Errorf("%v answer(s) on %s (duplicate address detection): something outside mvlan's pool of cluster network %s uses it; free it or ask for another address",
		used, parent, n.name()))
	if !exact {
		return errors.Join(errDADRetry, err)
	}
	return err
}

// asked reports whether u is the address want (as a request spells it:
// any case, IPv4-mapped) names.
func asked(u netip.Addr, want string) bool {
	w, err := netip.ParseAddr(want)
	return err == nil && w.WithZone("").Unmap() == u.Unmap()
}
