package loader

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// addrIndexes are ip4_index and ip6_index: an endpoint's address to its
// slot, for parent_ingress's look-up of a source IP's owner. An IPv4 key
// is the address; an IPv6 key is a 48-bit fold of it (ip6_fold in
// bpf/include/endpoint.h), so two addresses may share a key: the entry
// then points at one of them, and the program, finding a record without
// the address, asks ep_by_ip. members keeps every address of a key, so
// that the key goes only with the last of them.
type addrIndexes struct {
	v4, v6  *index
	members map[addrKey]map[netip.Addr]uint32 // -> slot
}

type addrKey struct {
	v6  bool
	key uint64
}

func newAddrIndexes(v4, v6 *ebpf.Map) *addrIndexes {
	return &addrIndexes{
		v4:      newIndex(v4, ip4IndexBits, idxKeyMask),
		v6:      newIndex(v6, ip6IndexBits, idxKeyMask),
		members: map[addrKey]map[netip.Addr]uint32{},
	}
}

// ip4Key is an IPv4 address as the programs read it: its 4 bytes as a
// little-endian number.
func ip4Key(ip netip.Addr) uint64 {
	a := ip.As4()
	return uint64(binary.LittleEndian.Uint32(a[:]))
}

// ip6Fold is ip6_fold: the two halves (little-endian) xor-ed, the top 16
// bits folded into the bottom.
func ip6Fold(ip netip.Addr) uint64 {
	a := ip.As16()
	x := binary.LittleEndian.Uint64(a[:8]) ^ binary.LittleEndian.Uint64(a[8:])
	return (x ^ x>>48) & idxKeyMask
}

func (a *addrIndexes) keyOf(ip netip.Addr) (addrKey, *index) {
	ip = ip.Unmap()
	if ip.Is4() {
		return addrKey{key: ip4Key(ip)}, a.v4
	}
	return addrKey{v6: true, key: ip6Fold(ip)}, a.v6
}

// set points ip at slot.
func (a *addrIndexes) set(ip netip.Addr, slot uint32) error {
	k, x := a.keyOf(ip)
	if a.members[k] == nil {
		a.members[k] = map[netip.Addr]uint32{}
	}
	a.members[k][ip] = slot
	return x.set(k.key, slotVal(slot))
}

// remove drops ip if it points at slot; its key then points at another
// address of the key, if there is one.
func (a *addrIndexes) remove(ip netip.Addr, slot uint32) error {
	k, x := a.keyOf(ip)
	if s, ok := a.members[k][ip]; !ok || s != slot {
		return nil
	}
	delete(a.members[k], ip)
	for _, other := range a.members[k] {
		return x.set(k.key, slotVal(other))
	}
	delete(a.members, k)
	return x.remove(k.key, slotVal(slot))
}

// rebuild makes both indexes hold exactly want (address -> slot).
func (a *addrIndexes) rebuild(want map[netip.Addr]uint32) error {
	a.members = map[addrKey]map[netip.Addr]uint32{}
	keys := map[bool]map[uint64]uint64{false: {}, true: {}}
	for ip, slot := range want {
		k, _ := a.keyOf(ip)
		if a.members[k] == nil {
			a.members[k] = map[netip.Addr]uint32{}
		}
		a.members[k][ip] = slot
		if cur, ok := keys[k.v6][k.key]; !ok || slotVal(slot) < cur {
			keys[k.v6][k.key] = slotVal(slot) // the same choice every time
		}
	}
	if err := a.v4.rebuild(keys[false]); err != nil {
		return err
	}
	return a.v6.rebuild(keys[true])
}

// loadAddrIndexes points each address of ep_by_ip whose MAC has a row at
// that MAC's record (macs: mac48 -> slot value, as the MAC index holds).
func (d *Datapath) loadAddrIndexes(macs map[uint64]uint64) error {
	want := map[netip.Addr]uint32{}
	err := readEach(d.maps.EpByIp, func(k ipKey, v ipInfo) {
		if val, ok := macs[mac48(v.MAC)]; ok {
			want[k.addr()] = uint32(val >> 48)
		}
	})
	if err != nil {
		return fmt.Errorf("list endpoint addresses: %w", err)
	}
	return d.addrs.rebuild(want)
}
