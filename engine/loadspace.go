package engine

import (
	"fmt"
	"net/netip"

	"github.com/mvlan/mvlan/ipam"
)

// loadSparing loads n's space when loading every address its records
// hold failed (cause): an endpoint record the space refuses (an address
// outside n's subnets, reserved such as the gateway, or another
// endpoint's: a damaged record, or one --recover took from a link whose
// container added addresses) is quarantined, its link left alone, and the
// rest loaded, so that one record does not stop the agent. The shim's
// addresses (shim) come first; if the space refuses those, or n's space is
// a cluster network's (whose Load gives back claims in etcd, so it is not
// tried piecemeal), cause stands. Called on start, before anything runs.
func (a *Engine) loadSparing(n *network, shim, held []ipam.Held, cause error) error {
	local, ok := n.space.(*ipam.Space)
	if !ok {
		return cause
	}
	trial, err := ipam.New(local.Pools(), ipam.Options{})
	if err != nil || trial.Load(shim) != nil {
		return cause
	}
	kept := append([]ipam.Held(nil), shim...)
	taken := map[netip.Addr]string{}
	for _, h := range shim {
		taken[h.Addr.WithZone("")] = shimOwner
	}
	owners := byOwner(held)
	firsts := firstAddrs(owners)
	for _, own := range owners {
		if why := refusedHeld(trial, taken, firsts, own); why != nil {
			if err := a.quarantineLoaded(n, own[0].Owner, why); err != nil {
				return err
			}
			continue
		}
		for _, h := range own {
			taken[h.Addr.WithZone("")] = h.Owner
		}
		kept = append(kept, own...)
	}
	return a.loadSpace(n, kept)
}

// refusedHeld says why one endpoint's addresses (own) cannot be loaded:
// trial (a scratch space of the network's pools) refuses them, another
// owner in taken holds one, or one is another's first address of its
// family (firsts): of two records with one address, the one that has it
// as an extra loses, whatever their order (a container that added a
// neighbour's address to its link before a --recover).
func refusedHeld(trial *ipam.Space, taken, firsts map[netip.Addr]string, own []ipam.Held) error {
	for _, h := range own {
		a := h.Addr.WithZone("")
		if other, ok := taken[a]; ok {
			return fmt.Errorf("stored address %s is held by %s too", h.Addr, other)
		}
		if other, ok := firsts[a]; ok && other != h.Owner {
			return fmt.Errorf("stored address %s is endpoint %s's", h.Addr, other)
		}
	}
	if err := trial.Load(own); err != nil {
		return fmt.Errorf("stored addresses: %w", err)
	}
	return nil
}

// firstAddrs maps the first address of each family of each owner to it;
// an address two owners have first is left to the order.
func firstAddrs(owners [][]ipam.Held) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	twice := map[netip.Addr]bool{}
	for _, own := range owners {
		var done [2]bool // v4, v6
		for _, h := range own {
			a := h.Addr.WithZone("")
			if fam := b2i(a.Is6()); !done[fam] {
				done[fam] = true
				if _, ok := out[a]; ok {
					twice[a] = true
				}
				out[a] = h.Owner
			}
		}
	}
	for a := range twice {
		delete(out, a)
	}
	return out
}

// byOwner groups held by owner, in the order the owners first come.
func byOwner(held []ipam.Held) [][]ipam.Held {
	var out [][]ipam.Held
	at := map[string]int{}
	for _, h := range held {
		i, ok := at[h.Owner]
		if !ok {
			i = len(out)
			at[h.Owner] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], h)
	}
	return out
}

// quarantineLoaded quarantines n's endpoint of that name, loaded into the
// index, and takes it out.
func (a *Engine) quarantineLoaded(n *network, name string, why error) error {
	en := n.byName[name]
	if en == nil {
		return fmt.Errorf("network %s: %w", n.name(), why)
	}
	if err := a.quarantine(a.store.QuarantineEndpoint, "endpoint", en.ep.ID, name, why); err != nil {
		return err
	}
	n.mu.Lock()
	n.unindex(en)
	n.mu.Unlock()
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
