package loader

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
)

// Endpoint is one row of the endpoint tables.
type Endpoint struct {
	// NetnsCookie and Ifindex identify the endpoint's macvlan slave:
	// NetnsCookie(netnsPath) of its netns, and its ifindex in there.
	NetnsCookie uint64
	Ifindex     int
	// MAC is the slave's address; unique host-wide.
	MAC net.HardwareAddr
	// IPs are its IPv4 and IPv6 addresses, unique host-wide (the agent
	// refuses overlapping subnets). The EUI-64 link-local address of MAC is
	// added automatically; add any other link-local the container uses.
	IPs []netip.Addr
	// NetworkID is the agent's id of the endpoint's network.
	NetworkID uint32
	// Allow lifts first-hop guards for this endpoint (its network's
	// options); zero keeps every guard on.
	Allow Allow
	// Moving marks a row still under its link's keys in the host's
	// namespace while a runtime moves the link into a container (a Docker
	// endpoint until FinishHandoff): a frame with its MAC may come from
	// any container's socket. Rows of links that stay in the host's
	// namespace (a host shim) are not moving: no container may send as
	// them.
	Moving bool
	// HostShim marks the row of a network's host shim (EP_HOST_SHIM): a
	// local endpoint's unicast IP frame to it must be for one of its own
	// addresses (else dropped as host_route: the host would route it),
	// unless Allow has AllowRouter.
	HostShim bool
	// Probing marks the row of an endpoint whose IPv4 address the agent's
	// DHCP client is checking (EP_PROBING): its ARP probes (sender
	// 0.0.0.0) may ask for an address not its own meanwhile.
	Probing bool
	// DHCPClientID and DHCPDUID are the identities the agent's DHCP client
	// asks under for the endpoint of a DHCP network (the IPv4 client
	// identifier, the DHCPv6 DUID; at most DHCPIDMax bytes each): a DHCP
	// client message from the link must carry them, else it is dropped
	// (dhcp_guard). Without them, only an identity made of MAC is its own
	// (client identifier 01:MAC, DUID-LL or DUID-LLT of MAC).
	DHCPClientID, DHCPDUID []byte
}

// Allow is a set of first-hop messages an endpoint may send
// (ep_info.flags, EP_ALLOW_* in bpf/include/mvlan.h).
type Allow uint32

const (
	// AllowRouter lets the endpoint send router advertisements and
	// redirects (else dropped as ra_guard): a container that is the
	// network's router.
	AllowRouter Allow = 1 << iota
	// AllowDHCPServer lets the endpoint send UDP from port 67 and 547,
	// and DHCP client messages in others' names (else dropped as
	// dhcp_guard): a container that is a DHCP server or relay.
	AllowDHCPServer

	allowMask = AllowRouter | AllowDHCPServer
	// epMoving is Endpoint.Moving in ep_info.flags (EP_MOVING).
	epMoving Allow = 0x100
	// epHostShim is Endpoint.HostShim in ep_info.flags (EP_HOST_SHIM).
	epHostShim Allow = 0x200
	// epProbing is Endpoint.Probing in ep_info.flags (EP_PROBING).
	epProbing Allow = 0x400
	// epDHCPIDs marks every row this loader writes: its DHCP identities
	// are in dhcp_ids (EP_DHCP_IDS).
	epDHCPIDs Allow = 0x800
)

// SetEndpoint adds or updates an endpoint: ep_by_ip, its record in a
// fresh slot of the endpoints array, ep_by_mac, ep_table, then the MAC
// index, so that its programs never see a half-written endpoint. The
// record it had and the addresses it no longer has are removed. An
// endpoint has at most 2 IPv4 and 4 IPv6 addresses (its EUI-64 link-local
// included); NetworkID must be in 1-4095. A full table gives an error
// wrapping ErrTableFull and leaves the tables as they were.
func (d *Datapath) SetEndpoint(ep Endpoint) (err error) {
	info, err := newEpInfo(ep)
	if err != nil {
		return err
	}
	ids, hasIDs, err := newDHCPIDs(ep)
	if err != nil {
		return err
	}
	d.tables.Lock()
	defer d.tables.Unlock()
	key := epKey{NetnsCookie: ep.NetnsCookie, Ifindex: uint32(ep.Ifindex)}
	var old epInfo
	hadOld := d.maps.EpTable.Lookup(&key, &old) == nil
	if !hadOld {
		if err := d.refNetns(ep.NetnsCookie); err != nil {
			return err
		}
	}
	var created []created
	defer func() {
		if err != nil {
			err = errors.Join(err, d.undo(created))
			// publish may have written the row before it failed: the
			// row, while it is there, keeps its namespace counted.
			if !hadOld && d.maps.EpTable.Lookup(&key, &old) != nil {
				err = errors.Join(err, d.unrefNetns(ep.NetnsCookie))
			}
		}
	}()
	// Its DHCP identities before the row, so that its programs never
	// check its client's messages without them.
	if created, err = d.setDHCPIDs(created, info.MAC, ids, hasIDs); err != nil {
		return err
	}
	keep := map[ipKey]bool{}
	for _, ip := range info.addrs() {
		k := newIPKey(ip)
		keep[k] = true
		if created, err = d.create(created, "ep_by_ip", &k, &ipInfo{MAC: info.MAC, NetworkID: ep.NetworkID}); err != nil {
			return fmt.Errorf("set endpoint address %s: %w", ip, err)
		}
	}
	if info.Slot, err = d.newSlot(hadOld, &info); err != nil {
		return fmt.Errorf("set endpoint %s: %w", ep.MAC, err)
	}
	if err := d.publish(key, &info, &created); err != nil {
		d.slots.free(info.Slot)
		return err
	}
	if !hadOld {
		return nil
	}
	return d.retire(old, old.MAC != info.MAC, keep)
}

// newSlot writes the record into a free slot: a new row may take the
// last of MaxEndpoints, a changed one also the spare.
func (d *Datapath) newSlot(update bool, info *epInfo) (uint32, error) {
	limit := MaxEndpoints
	if update {
		limit++
	}
	slot, ok := d.slots.alloc(limit)
	if !ok {
		d.full.add("endpoints")
		return 0, fmt.Errorf("endpoints holds %d records: %w", MaxEndpoints, ErrTableFull)
	}
	info.Slot = slot
	if err := d.maps.Endpoints.Put(&slot, info); err != nil {
		d.slots.free(slot)
		return 0, fmt.Errorf("write endpoint record: %w", err)
	}
	return slot, nil
}

// publish points ep_by_mac, ep_table and the MAC index at the record.
func (d *Datapath) publish(key epKey, info *epInfo, created *[]created) (err error) {
	if *created, err = d.create(*created, "ep_by_mac", &macKey{MAC: info.MAC}, info); err != nil {
		return fmt.Errorf("set endpoint mac %s: %w", net.HardwareAddr(info.MAC[:]), err)
	}
	if err := d.put("ep_table", &key, info); err != nil {
		return fmt.Errorf("set endpoint %d/%d: %w", key.NetnsCookie, key.Ifindex, err)
	}
	if err := d.macs.set(mac48(info.MAC), slotVal(info.Slot)); err != nil {
		return err
	}
	for _, ip := range info.addrs() {
		if err := d.addrs.set(ip, info.Slot); err != nil {
			return err
		}
	}
	return nil
}

// retire removes what the row old had that the row now in its place (if
// any) does not: its slot, its MAC (dropMAC) and the addresses not in
// keep. The addresses go by key: no walk of the map, so an attach costs
// the same with 10 or 10000 endpoints.
func (d *Datapath) retire(old epInfo, dropMAC bool, keep map[ipKey]bool) error {
	d.slots.free(old.Slot)
	if dropMAC {
		if err := d.unpublishMAC(old); err != nil {
			return err
		}
	}
	return d.deleteAddressesOf(old, keep)
}

// unpublishMAC removes the MAC of row info from the index and ep_by_mac,
// unless they point at another row with the same MAC.
func (d *Datapath) unpublishMAC(info epInfo) error {
	var cur epInfo
	if err := d.maps.EpByMac.Lookup(&macKey{MAC: info.MAC}, &cur); err != nil || cur.Slot != info.Slot {
		return nil
	}
	if err := d.macs.remove(mac48(info.MAC), slotVal(info.Slot)); err != nil {
		return err
	}
	if err := deleteKey(d.maps.EpByMac, &macKey{MAC: info.MAC}); err != nil {
		return fmt.Errorf("delete endpoint mac: %w", err)
	}
	if err := deleteKey(d.maps.DhcpIds, &macKey{MAC: info.MAC}); err != nil {
		return fmt.Errorf("delete endpoint DHCP identity: %w", err)
	}
	return nil
}

// MoveEndpoint is SetEndpoint for an endpoint that had a row under other
// keys (its link was moved to another netns, or made again): the new row
// first, then the old one goes. The MAC's and addresses' entries are never
// missing in between (DeleteEndpoint then SetEndpoint would drop them for
// a moment, while the link may already send); those of the old row that ep
// no longer has go with it. No old row is not an error.
func (d *Datapath) MoveEndpoint(fromCookie uint64, fromIfindex int, ep Endpoint) error {
	if fromCookie == ep.NetnsCookie && fromIfindex == ep.Ifindex {
		return d.SetEndpoint(ep)
	}
	info, err := newEpInfo(ep)
	if err == nil {
		err = d.SetEndpoint(ep)
	}
	if err != nil {
		return errors.Join(err, d.settleMoving(fromCookie, fromIfindex))
	}
	d.tables.Lock()
	defer d.tables.Unlock()
	key := epKey{NetnsCookie: fromCookie, Ifindex: uint32(fromIfindex)}
	var old epInfo
	if err := d.maps.EpTable.Lookup(&key, &old); errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("move endpoint %d/%d: %w", fromCookie, fromIfindex, err)
	}
	if err := deleteKey(d.maps.EpTable, &key); err != nil {
		return fmt.Errorf("move endpoint %d/%d: %w", fromCookie, fromIfindex, err)
	}
	keep := map[ipKey]bool{}
	for _, ip := range info.addrs() {
		keep[newIPKey(ip)] = true
	}
	return errors.Join(d.unrefNetns(fromCookie), d.retire(old, old.MAC != info.MAC, keep))
}

// settleMoving rewrites the row at the keys as not moving, if it is: a
// row that could not move to its container's keys is no one's to send as
// (a frame with its MAC from a container's socket is mac_spoof again).
func (d *Datapath) settleMoving(cookie uint64, ifindex int) error {
	key := epKey{NetnsCookie: cookie, Ifindex: uint32(ifindex)}
	var old epInfo
	d.tables.Lock()
	if err := d.maps.EpTable.Lookup(&key, &old); err != nil || old.Flags&epMoving == 0 {
		d.tables.Unlock()
		return nil
	}
	settled, err := d.withDHCPIDs(old.endpoint(key), old.MAC)
	d.tables.Unlock()
	if err != nil {
		return err
	}
	settled.Moving = false
	return d.SetEndpoint(settled)
}

// endpoint is the row v under key as SetEndpoint takes it (its IPs with
// the link-local SetEndpoint added).
func (v epInfo) endpoint(key epKey) Endpoint {
	return Endpoint{NetnsCookie: key.NetnsCookie, Ifindex: int(key.Ifindex),
		MAC: append(net.HardwareAddr(nil), v.MAC[:]...), IPs: v.addrs(), NetworkID: v.NetworkID,
		Allow: v.Flags & allowMask, Moving: v.Flags&epMoving != 0, HostShim: v.Flags&epHostShim != 0, Probing: v.Flags&epProbing != 0}
}

// created is a key SetEndpoint added (not updated), undone on failure.
type created struct {
	m   string
	key any
}

// create puts key and value into the named map and records the key in
// done when it was not there before.
func (d *Datapath) create(done []created, name string, key, value any) ([]created, error) {
	isNew := errors.Is(d.byName[name].Lookup(key, make([]byte, d.byName[name].ValueSize())), ebpf.ErrKeyNotExist)
	if err := d.put(name, key, value); err != nil {
		return done, err
	}
	if isNew {
		done = append(done, created{name, key})
	}
	return done, nil
}

func (d *Datapath) undo(done []created) error {
	var errs []error
	for _, c := range done {
		errs = append(errs, deleteKey(d.byName[c.m], c.key))
	}
	return errors.Join(errs...)
}

// DeleteEndpoint removes an endpoint and its MAC and addresses; a missing
// one is not an error.
func (d *Datapath) DeleteEndpoint(netnsCookie uint64, ifindex int) error {
	d.tables.Lock()
	defer d.tables.Unlock()
	key := epKey{NetnsCookie: netnsCookie, Ifindex: uint32(ifindex)}
	var info epInfo
	if err := d.maps.EpTable.Lookup(&key, &info); errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("delete endpoint %d/%d: %w", netnsCookie, ifindex, err)
	}
	if err := deleteKey(d.maps.EpTable, &key); err != nil {
		return fmt.Errorf("delete endpoint %d/%d: %w", netnsCookie, ifindex, err)
	}
	return errors.Join(d.unrefNetns(netnsCookie), d.retire(info, true, nil))
}

// deleteAddressesOf deletes the address entries of endpoint info, except
// those in keep, those that now belong to another MAC, and those another
// row with the same MAC has (the row ep_by_mac names now: a link made
// again, as a host shim is, under another ifindex).
func (d *Datapath) deleteAddressesOf(info epInfo, keep map[ipKey]bool) error {
	m := d.maps.EpByIp
	var cur epInfo
	var others []netip.Addr
	if d.maps.EpByMac.Lookup(&macKey{MAC: info.MAC}, &cur) == nil && cur.Slot != info.Slot {
		others = cur.addrs()
	}
	for _, ip := range info.addrs() {
		k := newIPKey(ip)
		if !keep[k] {
			if err := d.addrs.remove(ip, info.Slot); err != nil {
				return err
			}
		}
		var v ipInfo
		if keep[k] || m.Lookup(&k, &v) != nil || v.MAC != info.MAC || slices.Contains(others, ip) {
			continue
		}
		if err := deleteKey(m, &k); err != nil {
			return fmt.Errorf("delete endpoint address %s: %w", ip, err)
		}
	}
	return nil
}

// Endpoints lists the endpoint table (for reconciling after a restart);
// IPs include the link-local address SetEndpoint added.
func (d *Datapath) Endpoints() ([]Endpoint, error) {
	var out []Endpoint
	err := readEach(d.maps.EpTable, func(k epKey, v epInfo) {
		out = append(out, v.endpoint(k))
	})
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}

// PruneOrphans deletes MAC, address and DHCP identity entries of endpoints that are no
// longer in the endpoint table (left by a crash between two map writes),
// and the stub pins of namespaces without an endpoint in it (under
// PathDirect every stub pin: a stub-path agent's). It walks the maps: call
// it on start, not per endpoint.
func (d *Datapath) PruneOrphans() error {
	d.tables.Lock()
	defer d.tables.Unlock()
	live := map[[6]byte]bool{}
	cookies := map[uint64]bool{}
	err := readEach(d.maps.EpTable, func(ek epKey, ei epInfo) {
		live[ei.MAC] = true
		cookies[ek.NetnsCookie] = true
	})
	if err != nil {
		return fmt.Errorf("list endpoints: %w", err)
	}
	var macs []macKey
	var macSlots []uint32
	errMACs := readEach(d.maps.EpByMac, func(mk macKey, mi epInfo) {
		if !live[mk.MAC] {
			macs = append(macs, mk)
			macSlots = append(macSlots, mi.Slot)
		}
	})
	var ips []ipKey
	errIPs := readEach(d.maps.EpByIp, func(ik ipKey, ii ipInfo) {
		if !live[ii.MAC] {
			ips = append(ips, ik)
		}
	})
	var ids []macKey
	errIDs := readEach(d.maps.DhcpIds, func(mk macKey, _ dhcpIDs) {
		if !live[mk.MAC] {
			ids = append(ids, mk)
		}
	})
	if err := errors.Join(errMACs, errIPs, errIDs); err != nil {
		return fmt.Errorf("list endpoint entries: %w", err)
	}
	var errs []error
	for i := range macs {
		errs = append(errs, d.macs.remove(mac48(macs[i].MAC), slotVal(macSlots[i])), deleteKey(d.maps.EpByMac, &macs[i]))
	}
	for i := range ips {
		errs = append(errs, deleteKey(d.maps.EpByIp, &ips[i]))
	}
	for i := range ids {
		errs = append(errs, deleteKey(d.maps.DhcpIds, &ids[i]))
	}
	if d.direct { // no namespace needs its stubs
		cookies = nil
	}
	errs = append(errs, d.pruneStubs(cookies))
	return errors.Join(errs...)
}

func deleteKey(m *ebpf.Map, key any) error {
	if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// Parent is one row of the parents table.
type Parent struct {
	Ifindex   int    // the parent link's ifindex in the agent's netns
	NetworkID uint32 // the network on it
	VID       uint16 // the network's VLAN: 50 for eth0.50, 0 for eth0
}

// SetParent records that the link ifindex (in the agent's netns) is the
// parent of network networkID with VLAN vid (a sub-interface's VID, else 0).
// Its untagged frames then count under that VLAN, with flood, hairpin and
// east-west counters for the network. The trunk below a sub-interface gets
// AttachParent but no SetParent: it counts per VLAN only (tags as seen).
func (d *Datapath) SetParent(ifindex int, networkID uint32, vid uint16) error {
	if ifindex <= 0 || vid > 4094 {
		return fmt.Errorf("parent ifindex %d vlan %d: want a positive ifindex and a VLAN in 0-4094", ifindex, vid)
	}
	if err := checkNetworkID(networkID); err != nil {
		return err
	}
	k := uint32(ifindex)
	d.tables.Lock()
	defer d.tables.Unlock()
	if err := d.put("parents", &k, &parentInfo{NetworkID: networkID, VID: vid}); err != nil {
		return fmt.Errorf("set parent %d: %w", ifindex, err)
	}
	d.parents.set(Parent{Ifindex: ifindex, NetworkID: networkID, VID: vid})
	return d.parentx.set(uint64(k), parentVal(networkID, vid))
}

// DeleteParent removes a parent; a missing one is not an error.
func (d *Datapath) DeleteParent(ifindex int) error {
	k := uint32(ifindex)
	d.tables.Lock()
	defer d.tables.Unlock()
	if err := d.parentx.drop(uint64(k)); err != nil {
		return fmt.Errorf("delete parent %d: %w", ifindex, err)
	}
	if err := deleteKey(d.maps.Parents, &k); err != nil {
		return fmt.Errorf("delete parent %d: %w", ifindex, err)
	}
	d.parents.remove(ifindex)
	return nil
}

// Parents lists the parents table.
func (d *Datapath) Parents() ([]Parent, error) {
	var out []Parent
	var k uint32
	var v parentInfo
	it := d.maps.Parents.Iterate()
	for it.Next(&k, &v) {
		out = append(out, Parent{Ifindex: int(k), NetworkID: v.NetworkID, VID: v.VID})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list parents: %w", err)
	}
	return out, nil
}
