package loader

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
)

// Counter is a packet and byte count.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// Traffic is a counter per direction.
type Traffic struct {
	Rx Counter
	Tx Counter
}

func (t Traffic) plus(o Traffic) Traffic {
	return Traffic{Rx: Counter{t.Rx.Packets + o.Rx.Packets, t.Rx.Bytes + o.Rx.Bytes}, Tx: Counter{t.Tx.Packets + o.Tx.Packets, t.Tx.Bytes + o.Tx.Bytes}}
}

// Direction is rx (ingress) or tx (egress).
type Direction string

const (
	Rx Direction = "rx"
	Tx Direction = "tx"
)

// FloodKind is broadcast or multicast.
type FloodKind string

const (
	Broadcast FloodKind = "broadcast"
	Multicast FloodKind = "multicast"
)

// DropReason is why a program dropped a frame.
type DropReason string

const (
	MACSpoof     DropReason = "mac_spoof"
	IPSpoof      DropReason = "ip_spoof"
	ARPSpoof     DropReason = "arp_spoof"
	NDSpoof      DropReason = "nd_spoof"
	CrossNetwork DropReason = "cross_network"
	RAGuard      DropReason = "ra_guard"
	DHCPGuard    DropReason = "dhcp_guard"
	Unparsable   DropReason = "unparsable"
	// UnknownSource: a frame for an endpoint that came neither from the
	// wire nor from a local endpoint (a link mvlan does not know, such as
	// a macvlan a container made on its eth0).
	UnknownSource DropReason = "unknown_source"
	// NoEndpoint: a frame on a link with mvlan's programs whose endpoint
	// is not in the table; counted under network id 0.
	NoEndpoint DropReason = "no_endpoint"
	// RASourceDrop: a router advertisement or redirect from another
	// source than its network's RA source (SetRASource).
	RASourceDrop DropReason = "ra_source"
	// VLANTag: a VLAN-tagged frame from an endpoint (into another VLAN
	// of a trunk).
	VLANTag DropReason = "vlan_tag"
	// RAIgnore: a router advertisement or redirect from the wire for an
	// endpoint of a network without an RA source (ipv6_ra=ignore).
	RAIgnore DropReason = "ra_ignore"
	// HostRoute: a local endpoint's unicast IP frame to its network's
	// host shim for an address that is not the shim's (the host would
	// route it), on a network that does not allow a router.
	HostRoute DropReason = "host_route"
	// ForeignDst: a unicast frame for another MAC than the receiving
	// endpoint's (its link switched to macvlan source mode, listing a
	// neighbour's or the gateway's MAC; a passthru link's parent in
	// promiscuous mode).
	ForeignDst DropReason = "foreign_dst"
)

// dropReasons are indexed by the programs' REASON_* values (0 is unused).
var dropReasons = []DropReason{"", MACSpoof, IPSpoof, ARPSpoof, NDSpoof, CrossNetwork, RAGuard, DHCPGuard, Unparsable,
	UnknownSource, NoEndpoint, RASourceDrop, VLANTag, RAIgnore, HostRoute, ForeignDst}

// DropReasons lists every reason the programs drop for, in their order.
func DropReasons() []DropReason { return slices.Clone(dropReasons[1:]) }

// Programs, by their hook index in the malformed map.
var programNames = [hookCount]string{"ep_egress", "ep_ingress", "parent_ingress", "parent_egress"}

// VLANKey identifies a per-VLAN counter: the link (parent or trunk, ifindex
// in the agent's netns) and the VLAN (0: untagged on a link without a VLAN).
type VLANKey struct {
	Ifindex int
	VID     uint16
}

// NetVLAN identifies a network-level counter.
type NetVLAN struct {
	NetworkID uint32
	VID       uint16
}

// FloodKey identifies a flood counter.
type FloodKey struct {
	NetworkID uint32
	VID       uint16
	Kind      FloodKind
	Direction Direction
}

// DropKey identifies a drop counter: the network of the endpoint whose
// program dropped, and why.
type DropKey struct {
	NetworkID uint32
	Reason    DropReason
}

// Snapshot holds every counter, summed over CPUs. Values are absolute
// (since the maps were created, surviving agent restarts).
type Snapshot struct {
	VLAN      map[VLANKey]Traffic  // parent links, per VLAN
	Network   map[uint32]Traffic   // endpoints, per network
	Flood     map[FloodKey]Counter // broadcast and multicast on parents
	Hairpin   map[NetVLAN]Counter  // routed back to a local network
	EastWest  map[NetVLAN]Counter  // between local endpoints of a network
	Drops     map[DropKey]Counter
	Malformed map[string]Counter // by program name; truncated frames, passed
	// MapFull counts, by map name, inserts that failed because the map was
	// full: by the programs (a lost count) and by this process since Load
	// (a refused table entry). Every map is listed, at zero too.
	MapFull map[string]uint64
}

// Counters reads every counter map. Network-level counters are labelled
// with the VLAN of the network's parent (SetParent). Of net_stats, an
// array with a slot for every possible network, it reads the slots of
// networks up to maxNetwork or up to the highest parent's network,
// whichever is higher: a caller that numbers its networks from 1 up reads
// a few slots, not 4096 (MaxNetworkID: every slot).
func (d *Datapath) Counters(maxNetwork uint32) (Snapshot, error) {
	var s Snapshot
	err := d.CountersInto(maxNetwork, &s)
	return s, err
}

// CountersInto is Counters into s, whose maps it empties and fills again
// (makes them if nil): a caller that reads every few seconds (the
// metrics) keeps one Snapshot, and a read of a 4094-VLAN trunk allocates
// next to nothing.
func (d *Datapath) CountersInto(maxNetwork uint32, s *Snapshot) error {
	d.reading.Lock()
	defer d.reading.Unlock()
	s.Reset()
	s.MapFull = d.mapFull()
	err := d.readVLANs(s)
	if err == nil {
		parents := d.parentsByNetwork()
		top := min(maxNetwork, MaxNetworkID)
		for id := range parents {
			top = max(top, id)
		}
		err = readPerCPU(d.maps.NetStats, int(top)+1, func(id uint32, v []netCounters) {
			s.addNetwork(id, parents[id], v)
		})
	}
	if err == nil {
		err = readPerCPU(d.maps.DropStats, 0, func(k dropKey, v []pbValue) { s.Drops[DropKey{k.NetworkID, dropReason(k.Reason)}] = sumPB(v) })
	}
	if err == nil {
		err = readPerCPU(d.maps.Malformed, 0, func(k uint32, v []pbValue) {
			if c := sumPB(v); k < hookCount && c.Packets > 0 {
				s.Malformed[programNames[k]] = c
			}
		})
	}
	if err == nil {
		err = readPerCPU(d.maps.MapFull, 0, func(k uint32, v []uint64) {
			if k < uint32(len(bpfInserted)) {
				for _, n := range v {
					s.MapFull[bpfInserted[k]] += n
				}
			}
		})
	}
	return err
}

// Reset empties s's maps, keeping their room, or makes them (VLAN, whose
// size a read knows better, excepted).
func (s *Snapshot) Reset() {
	if s.VLAN != nil {
		clear(s.VLAN)
	}
	s.MapFull = clearOrMake(s.MapFull)
	s.Network = clearOrMake(s.Network)
	s.Flood = clearOrMake(s.Flood)
	s.Hairpin = clearOrMake(s.Hairpin)
	s.EastWest = clearOrMake(s.EastWest)
	s.Drops = clearOrMake(s.Drops)
	s.Malformed = clearOrMake(s.Malformed)
}

func clearOrMake[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	clear(m)
	return m
}

// readVLANs reads vlan_stats (thousands of entries with a trunk) into
// s.VLAN (emptied by Reset), made at the size of the last read if nil.
func (d *Datapath) readVLANs(s *Snapshot) error {
	if s.VLAN == nil {
		s.VLAN = make(map[VLANKey]Traffic, d.vlans.Load())
	}
	err := readPerCPU(d.maps.VlanStats, 0, func(k vlanKey, v []trafficValue) {
		key := VLANKey{int(k.Ifindex), k.VID} // the programs' and the retired entry (pad)
		s.VLAN[key] = s.VLAN[key].plus(sumTraffic(v))
	})
	d.vlans.Store(int64(len(s.VLAN)))
	return err
}

// addNetwork adds the non-zero counters of network id (per CPU in v),
// whose parent is p: its untagged traffic counts under (p, p's VLAN).
func (s *Snapshot) addNetwork(id uint32, p Parent, v []netCounters) {
	var sum netCounters
	for _, c := range v {
		sum.Rx.add(c.Rx)
		sum.Tx.add(c.Tx)
		sum.Parent.Rx.add(c.Parent.Rx)
		sum.Parent.Tx.add(c.Parent.Tx)
		sum.Hairpin.add(c.Hairpin)
		sum.EastWest.add(c.EastWest)
		for k := range sum.Flood {
			for d := range sum.Flood[k] {
				sum.Flood[k][d].add(c.Flood[k][d])
			}
		}
	}
	if sum == (netCounters{}) {
		return
	}
	vid := p.VID
	if pt := sum.Parent; pt != (trafficValue{}) && p.Ifindex != 0 {
		k := VLANKey{p.Ifindex, vid}
		s.VLAN[k] = s.VLAN[k].plus(Traffic{Rx: pt.Rx.counter(), Tx: pt.Tx.counter()})
	}
	if sum.Rx == (pbValue{}) && sum.Tx == (pbValue{}) && sum.Hairpin == (pbValue{}) && sum.EastWest == (pbValue{}) && sum.Flood == [2][2]pbValue{} {
		return // only parent traffic
	}
	s.Network[id] = Traffic{Rx: sum.Rx.counter(), Tx: sum.Tx.counter()}
	nv := NetVLAN{NetworkID: id, VID: vid}
	if sum.Hairpin.Packets > 0 {
		s.Hairpin[nv] = sum.Hairpin.counter()
	}
	if sum.EastWest.Packets > 0 {
		s.EastWest[nv] = sum.EastWest.counter()
	}
	for k := range sum.Flood {
		for d := range sum.Flood[k] {
			if c := sum.Flood[k][d]; c.Packets > 0 {
				s.Flood[FloodKey{id, vid, floodKind(uint8(k)), direction(uint8(d))}] = c.counter()
			}
		}
	}
}

func floodKind(k uint8) FloodKind {
	if k == 0 {
		return Broadcast
	}
	return Multicast
}

func direction(d uint8) Direction {
	if d == 0 {
		return Rx
	}
	return Tx
}

func dropReason(r uint32) DropReason {
	if r > 0 && int(r) < len(dropReasons) {
		return dropReasons[r]
	}
	return DropReason(fmt.Sprintf("reason_%d", r))
}

// ForgetNetwork zeroes and removes every counter of a network (call it when
// the network is removed, before its id is used again).
func (d *Datapath) ForgetNetwork(networkID uint32) error {
	if err := checkNetworkID(networkID); err != nil {
		return err
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	if err := d.maps.NetStats.Put(&networkID, make([]netCounters, ncpu)); err != nil {
		return fmt.Errorf("reset counters of network %d: %w", networkID, err)
	}
	var errs []error
	if err := d.maps.RaSources.Put(&networkID, &raSource{}); err != nil {
		errs = append(errs, fmt.Errorf("reset RA source of network %d: %w", networkID, err))
	}
	if err := d.maps.Gateways.Put(&networkID, &gatewaysValue{}); err != nil {
		errs = append(errs, fmt.Errorf("reset gateways of network %d: %w", networkID, err))
	}
	return errors.Join(append(errs, d.closeGuards(func(id uint32) bool { return id == networkID }),
		deleteWhere(d.maps.DropStats, func(k dropKey) bool { return k.NetworkID == networkID }))...)
}

// ForgetLinks removes the per-VLAN counters of the links for which gone
// is true: links no network uses any more (call it when their programs
// are detached, or for links made again), so that their entries do not
// fill the map and stay in the metrics.
func (d *Datapath) ForgetLinks(gone func(ifindex int) bool) error {
	return deleteWhere(d.maps.VlanStats, func(k vlanKey) bool { return gone(int(k.Ifindex)) })
}

// deleteWhere deletes the keys of a hash map for which match is true.
func deleteWhere[K any](m *ebpf.Map, match func(K) bool) error {
	var keys []K
	var cur, next K
	var prev any // nil: start from the first key
	for {
		err := m.NextKey(prev, &next)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", m, err)
		}
		if match(next) {
			keys = append(keys, next)
		}
		cur = next
		prev = &cur
	}
	for i := range keys {
		if err := deleteKey(m, &keys[i]); err != nil {
			return fmt.Errorf("delete from %s: %w", m, err)
		}
	}
	return nil
}
