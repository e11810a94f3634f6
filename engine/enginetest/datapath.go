package enginetest

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/mvlan/mvlan/loader"
)

// datapath is the Kernel as engine.Datapath: the endpoint table is kept,
// the rest accepted.
type datapath Kernel

func (d *datapath) AttachParent(context.Context, string, int, loader.Mode) error   { return nil }
func (d *datapath) DetachParent(context.Context, string, int) error                { return nil }
func (d *datapath) ForgetNetwork(uint32) error                                     { return nil }
func (d *datapath) SetRASource(uint32, loader.RASource) error                      { return nil }
func (d *datapath) GuardHandoff(string, string, int, uint32) error                 { return nil }
func (d *datapath) UnguardHandoff(string) error                                    { return nil }
func (d *datapath) AttachEndpoint(context.Context, string, int, loader.Mode) error { return nil }
func (d *datapath) AttachEndpointIn(context.Context, string, uint64, int, loader.Mode) error {
	return nil
}
func (d *datapath) AttachNewEndpoint(context.Context, string, uint64, int, loader.Mode) error {
	return nil
}
func (d *datapath) DetachEndpoint(context.Context, string, int) error       { return nil }
func (d *datapath) ForgetLingering() (int, error)                           { return 0, nil }
func (d *datapath) PruneOrphans() error                                     { return nil }
func (d *datapath) PruneLinks() (int, error)                                { return 0, nil }
func (d *datapath) Attachments() []loader.Attachment                        { return nil }
func (d *datapath) Missing(string, int, loader.Mode) ([]loader.Hook, error) { return nil, nil }

// Path is the direct path: no stubs in memory either.
func (d *datapath) Path() loader.EndpointPath { return loader.PathDirect }
func (d *datapath) InspectEndpoint(context.Context, string, int) ([]loader.Finding, error) {
	return nil, nil // nothing tampers with the in-memory kernel
}
func (d *datapath) RepairEndpoint(context.Context, string, int, []loader.Finding) error { return nil }
func (d *datapath) ForeignAttaches() bool                                               { return false }
func (d *datapath) WatchTCX() error                                                     { return nil }
func (d *datapath) ForeignPrograms() bool                                               { return false }
func (d *datapath) TCXTampered(context.Context, string, uint64, int) bool               { return false }
func (d *datapath) Close() error                                                        { return nil }

// NetnsNamed: the in-memory kernel records no paths.
func (d *datapath) NetnsNamed(uint64, int, string) {}

// AdoptEndpoint adopts nothing: the in-memory kernel has no programs, so
// every start attaches again.
func (d *datapath) AdoptEndpoint(context.Context, string, uint64, int) (loader.Mode, bool) {
	return "", false
}

func (d *datapath) SetEndpoint(ep loader.Endpoint) error {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.full {
		return errTableFull
	}
	if ep.HostShim && k.shimFail > 0 {
		k.shimFail--
		return errors.New("enginetest: the host shim's row cannot be written")
	}
	k.table[[2]uint64{ep.NetnsCookie, uint64(ep.Ifindex)}] = ep
	return nil
}

// MACNetwork looks through the rows for mac.
func (d *datapath) MACNetwork(mac net.HardwareAddr) (uint32, bool, error) {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, ep := range k.table {
		if bytes.Equal(ep.MAC, mac) {
			return ep.NetworkID, true, nil
		}
	}
	return 0, false, nil
}

// FailShimRow makes the next n writes of a host shim's row fail.
func (k *Kernel) FailShimRow(n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.shimFail = n
}

// MoveEndpoint sets the new row, then drops the old one: the MAC stays
// known throughout, as in loader.
func (d *datapath) MoveEndpoint(fromCookie uint64, fromIfindex int, ep loader.Endpoint) error {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.full {
		return errTableFull // the row stays under its old keys, as in loader
	}
	k.table[[2]uint64{ep.NetnsCookie, uint64(ep.Ifindex)}] = ep
	if fromCookie != ep.NetnsCookie || fromIfindex != ep.Ifindex {
		k.deleteRow(fromCookie, fromIfindex)
	}
	return nil
}

// errTableFull is what a full endpoint table answers (FullTable).
var errTableFull = errors.New("endpoint table: no space left (E2BIG)")

// FullTable makes the endpoint table refuse new rows (full) or take them
// again.
func (k *Kernel) FullTable(full bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.full = full
}

// ForgetEndpoint counts the forgetting of a link's programs (Forgets).
func (d *datapath) ForgetEndpoint(uint64, int) error {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.forgets++
	return nil
}

// Forgets says how many times the engine forgot a link's programs
// (ForgetEndpoint): once per removal whose link went.
func (k *Kernel) Forgets() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.forgets
}

func (d *datapath) DeleteEndpoint(cookie uint64, ifindex int) error {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.deleteRow(cookie, ifindex)
	return nil
}

// deleteRow deletes a row and counts its MAC as forgotten if no other row
// has it. Caller holds mu.
func (k *Kernel) deleteRow(cookie uint64, ifindex int) {
	ep, ok := k.table[[2]uint64{cookie, uint64(ifindex)}]
	if !ok {
		return
	}
	delete(k.table, [2]uint64{cookie, uint64(ifindex)})
	if !k.knows(ep.MAC) {
		k.forgot[ep.MAC.String()]++
	}
}

// knows reports whether a row has mac. Caller holds mu.
func (k *Kernel) knows(mac net.HardwareAddr) bool {
	for _, ep := range k.table {
		if ep.MAC.String() == mac.String() {
			return true
		}
	}
	return false
}

// Sender reports whether the datapath knows mac (an endpoint's table row
// has it, so the other endpoints check its frames by its rules) and how
// many times it stopped knowing it.
func (k *Kernel) Sender(mac net.HardwareAddr) (known bool, forgotten int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.knows(mac), k.forgot[mac.String()]
}

func (d *datapath) Endpoints() ([]loader.Endpoint, error) {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]loader.Endpoint, 0, len(k.table))
	for _, ep := range k.table {
		out = append(out, ep)
	}
	return out, nil
}

// CountersInto has every counter at zero: nothing is sent through the
// in-memory kernel.
func (d *datapath) CountersInto(_ uint32, s *loader.Snapshot) error {
	s.Reset()
	return nil
}

// SetGateways records what is pinned (Kernel.Gateways).
func (d *datapath) SetGateways(id uint32, g loader.Gateways) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gateways == nil {
		d.gateways = map[uint32]loader.Gateways{}
	}
	d.gateways[id] = g
	return nil
}

// Gateways are the gateway addresses the datapath pins for network id;
// set is whether the engine has set them at all.
func (k *Kernel) Gateways(id uint32) (addrs []netip.Addr, set bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	g, set := k.gateways[id]
	return slices.Clone(g.Addrs), set
}

// GatewayHostLinks are the MACs of the host's links that may claim
// network id's gateways besides the parent, as the engine last set them.
func (k *Kernel) GatewayHostLinks(id uint32) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var macs []string
	for _, m := range k.gateways[id].HostLinks {
		macs = append(macs, m.String())
	}
	return macs
}

// SetParent keeps the parents table's row (ParentRows).
func (d *datapath) SetParent(ifindex int, networkID uint32, vid uint16) error {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.parents == nil {
		k.parents = map[int]loader.Parent{}
	}
	k.parents[ifindex] = loader.Parent{Ifindex: ifindex, NetworkID: networkID, VID: vid}
	return nil
}

func (d *datapath) DeleteParent(ifindex int) error {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.parents, ifindex)
	return nil
}

func (d *datapath) RetireParent(ifindex int) error {
	k := (*Kernel)(d)
	k.mu.Lock()
	k.retired = append(k.retired, ifindex)
	k.mu.Unlock()
	return d.DeleteParent(ifindex)
}

// Retired are the parents whose rows RetireParent removed (keeping the
// network's share in the link's per-VLAN counters), in order.
func (k *Kernel) Retired() []int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.retired)
}

func (d *datapath) Parents() ([]loader.Parent, error) {
	return (*Kernel)(d).ParentRows(), nil
}

// ParentRows lists the parents table, by ifindex.
func (k *Kernel) ParentRows() []loader.Parent {
	k.mu.Lock()
	defer k.mu.Unlock()
	rows := slices.Collect(maps.Values(k.parents))
	slices.SortFunc(rows, func(a, b loader.Parent) int { return a.Ifindex - b.Ifindex })
	return rows
}

func (d *datapath) ForgetLinks(func(int) bool) error { return nil }
