package engine

// A network's endpoint index (network.eps and the by* maps; index.go
// has the networks): adding, changing and dropping its entries. byAddr
// maps an address only to the endpoint that may use it: an expired
// lease's address stays in its endpoint's record (to ask for it again)
// but is off its link, and the server may give it to another endpoint,
// whose entry it must neither take over nor delete.

import (
	"net/netip"

	"github.com/mvlan/mvlan/api"
)

// initIndex gives a new network its empty endpoint indexes.
func (n *network) initIndex() {
	n.eps, n.byName = map[string]*entry{}, map[string]*entry{}
	n.byAddr, n.byMAC = map[netip.Addr]*entry{}, map[string]*entry{}
	n.byNetns, n.byCNI = map[uint64]*entry{}, map[api.CNIAttachment]*entry{}
}

// add puts e in the index, busy (its creator holds busy). Caller holds n.mu.
func (n *network) add(e endpoint) *entry {
	en := &entry{ep: e}
	en.busy.Lock()
	n.eps[e.ID] = en
	n.byName[e.Name] = en
	if len(e.MAC) > 0 {
		n.byMAC[string(e.MAC)] = en
	}
	if e.NetnsInode != 0 {
		n.byNetns[e.NetnsInode] = en
	}
	if e.CNI != nil {
		n.byCNI[*e.CNI] = en
	}
	for _, p := range e.Addrs {
		n.used = n.used.Raise(p.Addr())
	}
	for _, p := range usableAddrs(e) {
		n.byAddr[p.Addr()] = en
	}
	return en
}

// drop takes en out of the index and releases its addresses. Caller
// holds n.mu.
func (n *network) drop(en *entry) {
	for _, p := range en.ep.Addrs {
		if n.byAddr[p.Addr()] == en {
			n.space.Release(p.Addr())
		}
	}
	n.unindex(en)
}

// unindex takes en out of the index; its addresses stay held. Caller
// holds n.mu.
func (n *network) unindex(en *entry) {
	if en.gone {
		return
	}
	en.gone = true
	delete(n.eps, en.ep.ID)
	if n.byName[en.ep.Name] == en {
		delete(n.byName, en.ep.Name)
	}
	if n.byMAC[string(en.ep.MAC)] == en {
		delete(n.byMAC, string(en.ep.MAC))
	}
	if n.byNetns[en.ep.NetnsInode] == en {
		delete(n.byNetns, en.ep.NetnsInode)
	}
	if en.ep.CNI != nil && n.byCNI[*en.ep.CNI] == en {
		delete(n.byCNI, *en.ep.CNI)
	}
	for _, p := range en.ep.Addrs {
		if n.byAddr[p.Addr()] == en {
			delete(n.byAddr, p.Addr())
		}
	}
}

// reindexAddrs gives each of addrs that the index gives no endpoint to an
// indexed endpoint that may use it, if one has it. It scans the index, so
// it is for the rare case of records that share an address: unindexing
// the one add indexed last (loadSparing quarantines it) leaves the other
// out of byAddr, with no host-shim route, an address rm never releases,
// and --ip refused as a gone endpoint's. Caller holds n.mu.
func (n *network) reindexAddrs(addrs []netip.Prefix) {
	lost := map[netip.Addr]bool{}
	for _, p := range addrs {
		if n.byAddr[p.Addr()] == nil {
			lost[p.Addr()] = true
		}
	}
	for _, en := range n.eps {
		if len(lost) == 0 {
			return
		}
		for _, p := range usableAddrs(en.ep) {
			if lost[p.Addr()] {
				n.byAddr[p.Addr()] = en
				delete(lost, p.Addr())
			}
		}
	}
}

// set records a new version of en's endpoint (a state change, a rename,
// a lease renewed, failed or expired). Caller holds n.mu and en.busy.
func (n *network) set(en *entry, e endpoint) {
	if en.ep.Name != e.Name {
		if n.byName[en.ep.Name] == en {
			delete(n.byName, en.ep.Name)
		}
		n.byName[e.Name] = en
	}
	if string(en.ep.MAC) != string(e.MAC) {
		if n.byMAC[string(en.ep.MAC)] == en {
			delete(n.byMAC, string(en.ep.MAC))
		}
		if len(e.MAC) > 0 {
			n.byMAC[string(e.MAC)] = en
		}
	}
	if en.ep.NetnsInode != e.NetnsInode {
		if n.byNetns[en.ep.NetnsInode] == en {
			delete(n.byNetns, en.ep.NetnsInode)
		}
		if e.NetnsInode != 0 {
			n.byNetns[e.NetnsInode] = en
		}
	}
	for _, p := range en.ep.Addrs {
		if n.byAddr[p.Addr()] == en {
			delete(n.byAddr, p.Addr())
		}
	}
	for _, p := range usableAddrs(e) {
		n.byAddr[p.Addr()] = en
	}
	en.ep = e
}

// endpoints copies the network's endpoints. Caller holds n.mu.
func (n *network) endpoints() []endpoint {
	out := make([]endpoint, 0, len(n.eps))
	for _, en := range n.eps {
		out = append(out, en.ep)
	}
	return out
}
