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
	nets := make([]*network, 0, len(a.nets))
	for _, n := range a.nets {
		nets = append(nets, n)
	}
	switch i := matchRef(len(nets), ref, prefixes, func(i int) (string, string) { return nets[i].name(), nets[i].ID }); i {
	case noMatch:
		return nil, notFound(fmt.Errorf("network %q not found; see mvlan network ls", ref))
	case ambiguous:
		return nil, invalid(fmt.Errorf("network ID prefix %q is ambiguous; give more of the ID or the name", ref))
	default:
		return nets[i], nil
	}
}

// What matchRef finds besides an index.
const (
	noMatch   = -1
	ambiguous = -2
)

// minIDPrefix is the shortest ID prefix that names a network.
const minIDPrefix = 3

// matchRef is the index of the one of n networks (named and numbered by
// nameID) that ref names: by its name or full ID, else, with prefixes, by
// a prefix of its ID of minIDPrefix characters or more that no other ID
// has. noMatch when none does, ambiguous when several IDs have the prefix.
func matchRef(n int, ref string, prefixes bool, nameID func(i int) (name, id string)) int {
	hit, hits := noMatch, 0
	for i := range n {
		name, id := nameID(i)
		if name == ref || id == ref {
			return i
		}
		if prefixes && len(ref) >= minIDPrefix && strings.HasPrefix(id, ref) {
			hit, hits = i, hits+1
		}
	}
	if hits > 1 {
		return ambiguous
	}
	return hit
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
