package engine

import (
	"fmt"
	"slices"
	"strings"
)

// The index: networks by ID in Engine.nets (guarded by Engine.mu, held
// only to read or change the map), each with its endpoints (guarded by
// the network's mu). The store is the source of truth: the index is
// filled from it on start (loadState) and changed with each write, so no
// request decodes the store. Most writes are durable first; the ready
// record (storeReadyLater) and the deletion of an undone endpoint's
// (DeleteEndpointLater) are queued after the index changed: a crash
// before they reach the disk leaves a "creating" record whose kernel side
// the start adopts, or one whose kernel side is gone, which it forgets.

// networkList returns the networks, sorted by name.
func (a *Engine) networkList() []*network {
	a.mu.RLock()
	out := make([]*network, 0, len(a.nets))
	for _, n := range a.nets {
		out = append(out, n)
	}
	a.mu.RUnlock()
	slices.SortFunc(out, func(x, y *network) int { return strings.Compare(x.name(), y.name()) })
	return out
}

// networkByID returns network id, nil if none.
func (a *Engine) networkByID(id string) *network {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.nets[id]
}

// lookup finds a network by name, full ID or unique ID prefix.
func (a *Engine) lookup(ref string) (*network, error) { return a.find(ref, true) }

// lookupExact finds a network by name or full ID only, as a configuration
// names one (CNI): there "cafe" is a name, never the prefix of some other
// network's ID.
func (a *Engine) lookupExact(ref string) (*network, error) { return a.find(ref, false) }

func (a *Engine) find(ref string, prefixes bool) (*network, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var hits []*network
	for _, n := range a.nets {
		if n.name() == ref || n.ID == ref {
			return n, nil
		}
		if prefixes && len(ref) >= 3 && strings.HasPrefix(n.ID, ref) {
			hits = append(hits, n)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return nil, notFound(fmt.Errorf("network %q not found; see mvlan network ls", ref))
	}
	return nil, invalid(fmt.Errorf("network ID prefix %q is ambiguous; give more of the ID or the name", ref))
}

// endpointByID finds endpoint id and its network; nil, nil if none.
func (a *Engine) endpointByID(id string) (*network, *entry) {
	for _, n := range a.networkList() {
		n.mu.Lock()
		en := n.eps[id]
		n.mu.Unlock()
		if en != nil {
			return n, en
		}
	}
	return nil, nil
}

// current returns en's endpoint now, and whether it is still indexed.
func (n *network) current(en *entry) (endpoint, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return en.ep, !en.gone
}
