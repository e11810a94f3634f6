package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mvlan/mvlan/link"
)

// kernelEndpoint is what the kernel holds of an endpoint: the link with
// its mark in a namespace, and the addresses on it.
type kernelEndpoint struct {
	netns    string
	netnsIno uint64
	link     link.Info
	addrs    []netip.Prefix
	unrouted []netip.Addr // gateways whose family's default route is another's
}

// completeIn reports whether e's kernel side is whole: its namespace is
// e's (by inode, or by our mark for one made before the inode was stored),
// and in it a link with e's mark, renamed, up, with e's MAC and exactly
// e's addresses, and a default route of each family e has a gateway for
// (the last step of the link's set-up; one not via the gateway on e's
// link, which the namespace had before, makes the gateway unrouted). A
// crash (or a state file fallen back one transaction) can leave such an
// endpoint recorded as "creating"; it is adopted, not torn down.
func (a *Engine) completeIn(n *network, e endpoint) (kernelEndpoint, bool) {
	if !a.isOurNetns(e) || (n.DHCP && e.Lease == nil) { // no lease stored: see settleLease
		return kernelEndpoint{}, false
	}
	k, err := a.kernelEndpointIn(e.Netns, e.ID)
	if err != nil {
		return kernelEndpoint{}, false
	}
	whole := k.link.Up && k.link.Name == e.IfName && slices.Equal(k.link.MAC, e.MAC) && samePrefixes(k.addrs, e.Addrs)
	for _, gw := range a.endpointSpec(n, e).Gateways {
		has, via, err := a.ns.DefaultRoute(e.Netns, gw, k.link.Index)
		whole = whole && err == nil && has
		if has && !via {
			k.unrouted = append(k.unrouted, gw)
		}
	}
	return k, whole
}

// kernelEndpointIn finds the link marked as endpoint id in the namespace
// at path and reads its addresses.
func (a *Engine) kernelEndpointIn(path, id string) (kernelEndpoint, error) {
	ino, err := a.ns.Check(path)
	if err != nil {
		return kernelEndpoint{}, err
	}
	links, err := a.ns.Links(path)
	if err != nil {
		return kernelEndpoint{}, err
	}
	alias := a.alias("ep", id)
	for _, l := range links {
		if l.Alias != alias {
			continue
		}
		addrs, err := a.ns.Addrs(path, l.Index)
		if err != nil {
			return kernelEndpoint{}, err
		}
		return kernelEndpoint{netns: path, netnsIno: ino, link: l, addrs: addrs}, nil
	}
	return kernelEndpoint{}, fmt.Errorf("no link marked %s in %s: %w", alias, path, link.ErrNotFound)
}

func samePrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for _, p := range b {
		if !slices.Contains(a, p) {
			return false
		}
	}
	return true
}

// adopt makes a complete "creating" endpoint ready: its programs are
// attached (idempotent) and the record gets the namespace's inode and the
// datapath keys. It reports the endpoint as it stays: ready, or still
// creating when that failed (the next start tries again).
func (a *Engine) adopt(ctx context.Context, n *network, en *entry, e endpoint, k kernelEndpoint) endpoint {
	before := e
	e.NetnsInode, e.Unrouted = k.netnsIno, k.unrouted
	err := a.attachEndpoint(ctx, n, &e)
	if err == nil {
		e.State = Ready
		err = a.store.UpdateEndpoint(e.api())
	}
	if err != nil {
		a.log.Warn("cannot adopt a complete endpoint caught creating", "name", e.Name, "err", err)
		return before
	}
	n.mu.Lock()
	n.set(en, e)
	n.mu.Unlock()
	a.log.Info("adopted endpoint", "name", e.Name, "reason", "caught creating with its link and addresses complete")
	return e
}
