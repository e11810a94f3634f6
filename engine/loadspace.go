package engine

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/mvlan/mvlan/ipam"
)

// The address spaces on start: every address a stored endpoint has, the
// shim's, and those of quarantined endpoint records, whose containers may
// still use them (their links are left alone), so that none is handed out
// twice. One record the space refuses does not stop the agent
// (loadSparing).

// checkStrays refuses pools that hold an address of a live quarantined
// endpoint record whose network is quarantined too (strayHeld): a network
// made on them would hand it out again. Caller holds netOps.
func (a *Engine) checkStrays(pools []ipam.PoolConfig) error {
	for _, p := range pools {
		for _, h := range a.strayHeld {
			if p.Subnet.Contains(h.Addr) {
				return conflict(fmt.Errorf("subnet %s holds %s, the address of %s, whose network is quarantined or gone (mvlan doctor); its container may still use it. Remove that container (the next agent start then drops the record) or pick another subnet",
					p.Subnet, h.Addr, h.Owner))
			}
		}
	}
	return nil
}

// holdQuarantined records the quarantined addresses n's space holds.
func (n *network) holdQuarantined(q []ipam.Held) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.quarantined = make(map[netip.Addr]string, len(q))
	for _, h := range q {
		n.quarantined[h.Addr.WithZone("")] = h.Owner
	}
}

// quarantineHolds refuses the removal of n while quarantined endpoint
// records hold addresses of it: their containers may still use them, and
// a network made again on the parent (or, for a cluster network, another
// host taking its blocks back from etcd) would hand them out again.
func (n *network) quarantineHolds() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.quarantined) == 0 {
		return nil
	}
	held := make([]string, 0, len(n.quarantined))
	for addr, owner := range n.quarantined {
		held = append(held, fmt.Sprintf("%s (%s)", addr, owner))
	}
	slices.Sort(held)
	return conflict(fmt.Errorf("network %s: addresses of it are held by quarantined endpoint records whose containers may still use them: %s; "+
		"remove those containers, then restart the agent (the first start after a container is gone drops its record, see mvlan doctor), then remove the network",
		n.name(), strings.Join(held, ", ")))
}

// loadSparing loads n's space when loading every address failed (cause).
// An endpoint record the space refuses (an address outside n's subnets,
// reserved such as the gateway, or another endpoint's: a damaged record,
// or one --recover took from a link whose container added addresses) is
// quarantined and the rest loaded. Of the quarantined records' addresses
// (q, and the refused records' own), those the space takes and no one
// else holds are held; it returns them. The shim's addresses come first;
// if the space refuses those, cause stands. Each piece is tried with
// TryLoad, which changes nothing (a cluster network's Load gives back in
// etcd the claims it is not given), and the space loaded once.
func (a *Engine) loadSparing(n *network, shim, held, q []ipam.Held, cause error) ([]ipam.Held, error) {
	if n.space.TryLoad(shim) != nil {
		return nil, cause
	}
	kept := append([]ipam.Held(nil), shim...)
	taken := map[netip.Addr]string{}
	for _, h := range shim {
		taken[h.Addr.WithZone("")] = shimOwner
	}
	owners := byOwner(held)
	firsts := firstAddrs(owners)
	for _, own := range owners {
		if why := refusedHeld(n.space, taken, firsts, own); why != nil {
			if err := a.quarantineLoaded(n, own[0].Owner, why); err != nil {
				return nil, err
			}
			for _, h := range own {
				q = append(q, ipam.Held{Addr: h.Addr, Owner: quarantinedOwner(h.Owner)})
			}
			continue
		}
		for _, h := range own {
			taken[h.Addr.WithZone("")] = h.Owner
		}
		kept = append(kept, own...)
	}
	var spared []ipam.Held
	for _, h := range q {
		if _, ok := taken[h.Addr.WithZone("")]; !ok && n.space.TryLoad([]ipam.Held{h}) == nil {
			taken[h.Addr.WithZone("")] = h.Owner
			spared = append(spared, h)
		}
	}
	return spared, a.loadSpace(n, append(kept, spared...))
}

// refusedHeld says why one endpoint's addresses (own) cannot be loaded:
// the network's space would refuse them (alone), another
// owner in taken holds one, or one is another's first address of its
// family (firsts): of two records with one address, the one that has it
// as an extra loses, whatever their order (a container that added a
// neighbour's address to its link before a --recover).
func refusedHeld(space addrSpace, taken, firsts map[netip.Addr]string, own []ipam.Held) error {
	for _, h := range own {
		a := h.Addr.WithZone("")
		if other, ok := taken[a]; ok {
			return fmt.Errorf("stored address %s is held by %s too", h.Addr, ipam.DescribeOwner(other))
		}
		if other, ok := firsts[a]; ok && other != h.Owner {
			return fmt.Errorf("stored address %s is endpoint %s's", h.Addr, other)
		}
	}
	if err := space.TryLoad(own); err != nil {
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
// index, and takes it out; an address it shares with another endpoint
// stays indexed as that one's.
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
	n.reindexAddrs(en.ep.Addrs) // a kept record may share one
	n.mu.Unlock()
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
