package loader

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
)

// The programs find an endpoint's record with array look-ups only (see
// struct idx_bucket in bpf/include/mvlan.h): its MAC's bucket in mac_index
// gives its slot, the endpoints array at that slot its record. The hashes
// (ep_table, ep_by_mac) stay the truth and the slow path. This file keeps
// the index and the slots; tables.go writes the rows.

const (
	idxWays         = 4
	macIndexBits    = 13
	ip4IndexBits    = 14
	ip6IndexBits    = 15
	parentIndexBits = 12
	idxKeyMask      = 1<<48 - 1
	// epSlots is the size of the endpoints array (EP_SLOTS): slot 0 is no
	// endpoint, and one spare lets a full table still rewrite an endpoint
	// into a fresh slot.
	epSlots = MaxEndpoints + 2
)

// idxBucket is struct idx_bucket: entries key | slot<<48 (0: empty) and
// how many of the bucket's keys are only in the backing hash.
type idxBucket struct {
	E     [idxWays]uint64
	Spill uint32
	Pad   uint32
}

// idxHash is idx_hash of bpf/include/tables.h.
func idxHash(key uint64, bits int) uint32 {
	return uint32((key * 0x9E3779B97F4A7C15) >> (64 - bits))
}

// mac48 is a MAC as the programs read it (mac48 in bpf/include/parse.h):
// its first byte lowest.
func mac48(mac [6]byte) uint64 {
	var k uint64
	for i := 5; i >= 0; i-- {
		k = k<<8 | uint64(mac[i])
	}
	return k
}

// index mirrors an index map; its methods write the buckets they change.
// An entry is key | val: keyMask covers the key, val (with a non-zero top
// 16 bits) is what the key maps to (a slot << 48, or a parent's VLAN and
// network).
type index struct {
	m       *ebpf.Map
	put     func(i uint32, b *idxBucket) error // writes bucket i of m (tests: records it)
	bits    int
	keyMask uint64
	buckets []idxBucket
	spilled map[uint32]map[uint64]uint64 // by bucket: key -> val
}

func newIndex(m *ebpf.Map, bits int, keyMask uint64) *index {
	put := func(i uint32, b *idxBucket) error { return m.Put(&i, b) }
	return &index{m: m, put: put, bits: bits, keyMask: keyMask, buckets: make([]idxBucket, 1<<bits), spilled: map[uint32]map[uint64]uint64{}}
}

func (x *index) write(i uint32) error {
	if err := x.put(i, &x.buckets[i]); err != nil {
		return fmt.Errorf("write index bucket %d: %w", i, err)
	}
	return nil
}

// place puts key -> val in memory: its way, a free way, else the spill;
// it returns the bucket.
func (x *index) place(key, val uint64) uint32 {
	i := idxHash(key, x.bits)
	b := &x.buckets[i]
	free := -1
	for w, e := range b.E {
		switch {
		case e>>48 != 0 && e&x.keyMask == key:
			b.E[w] = key | val
			return i
		case e>>48 == 0 && free < 0:
			free = w
		}
	}
	if _, ok := x.spilled[i][key]; ok || free < 0 {
		if x.spilled[i] == nil {
			x.spilled[i] = map[uint64]uint64{}
		}
		x.spilled[i][key] = val
		b.Spill = uint32(len(x.spilled[i]))
		return i
	}
	b.E[free] = key | val
	return i
}

// set points key at val.
func (x *index) set(key, val uint64) error {
	return x.write(x.place(key, val))
}

// remove drops key if it points at val (else another record took it
// over); a spilled key of the bucket moves into the freed way.
func (x *index) remove(key, val uint64) error {
	i := idxHash(key, x.bits)
	b := &x.buckets[i]
	for w, e := range b.E {
		if e != key|val {
			continue
		}
		b.E[w] = 0
		for k, v := range x.spilled[i] {
			// A program reads the ways, then Spill (its way to the
			// backing hash), not the bucket at once: the moved key goes
			// into its way in one write, Spill down in the next, so that
			// no reader finds it in neither.
			b.E[w] = k | v
			delete(x.spilled[i], k)
			if err := x.write(i); err != nil {
				return err
			}
			break
		}
		b.Spill = uint32(len(x.spilled[i]))
		return x.write(i)
	}
	if v, ok := x.spilled[i][key]; ok && v == val {
		delete(x.spilled[i], key)
		b.Spill = uint32(len(x.spilled[i]))
		return x.write(i)
	}
	return nil
}

// rebuild makes the index hold exactly want (key -> val), keeping what
// the pinned map already holds where it is right, and writes the buckets
// that differ: on Load, after a restart or a crash between two writes.
func (x *index) rebuild(want map[uint64]uint64) error {
	pinned, err := readBuckets(x.m, len(x.buckets))
	if err != nil {
		return err
	}
	x.buckets = make([]idxBucket, len(pinned))
	x.spilled = map[uint32]map[uint64]uint64{}
	placed := map[uint64]bool{}
	for i, b := range pinned {
		for w, e := range b.E {
			key, val := e&x.keyMask, e&^x.keyMask
			if v, ok := want[key]; ok && v == val && val>>48 != 0 && !placed[key] && idxHash(key, x.bits) == uint32(i) {
				x.buckets[i].E[w] = e
				placed[key] = true
			}
		}
	}
	for key, val := range want {
		if !placed[key] {
			x.place(key, val)
		}
	}
	var errs []error
	for i := range x.buckets {
		if x.buckets[i] != pinned[i] {
			errs = append(errs, x.write(uint32(i)))
		}
	}
	return errors.Join(errs...)
}

// readBuckets reads an index map in a few batches (one syscall per bucket
// where the kernel has no batch look-up).
func readBuckets(m *ebpf.Map, n int) ([]idxBucket, error) {
	out := make([]idxBucket, n)
	keys, vals := make([]uint32, n), make([]idxBucket, n)
	var cursor ebpf.MapBatchCursor
	for {
		got, err := m.BatchLookup(&cursor, keys, vals, nil)
		if errors.Is(err, ebpf.ErrNotSupported) {
			break
		}
		for i := range got {
			if int(keys[i]) < n {
				out[keys[i]] = vals[i]
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read index %s: %w", m, err)
		}
	}
	for i := range out {
		k := uint32(i)
		if err := m.Lookup(&k, &out[i]); err != nil {
			return nil, fmt.Errorf("read index bucket %d: %w", i, err)
		}
	}
	return out, nil
}

// slotVal is an index entry's value for an endpoint's slot.
func slotVal(slot uint32) uint64 { return uint64(slot) << 48 }

// slots allocates the endpoints array's slots. A freed slot is reused as
// late as possible (the search goes round from the last one given), so a
// program still reading a record a moment after it was replaced reads it
// unchanged.
type slots struct {
	used []bool
	n    int
	next int
}

func newSlots() *slots { return &slots{used: make([]bool, epSlots), next: 1} }

// alloc returns a free slot, or false when n are in use already.
func (s *slots) alloc(limit int) (uint32, bool) {
	if s.n >= limit {
		return 0, false
	}
	for range len(s.used) {
		i := s.next
		s.next++
		if s.next == len(s.used) {
			s.next = 1
		}
		if !s.used[i] {
			s.used[i] = true
			s.n++
			return uint32(i), true
		}
	}
	return 0, false
}

// take marks a slot found in use (on Load); false if it is invalid or
// taken already.
func (s *slots) take(slot uint32) bool {
	if slot == 0 || int(slot) >= len(s.used) || s.used[slot] {
		return false
	}
	s.used[slot] = true
	s.n++
	return true
}

func (s *slots) free(slot uint32) {
	if slot != 0 && int(slot) < len(s.used) && s.used[slot] {
		s.used[slot] = false
		s.n--
	}
}

// loadIndex takes the slots of the pinned rows and makes the MAC index
// and the records agree with ep_table and ep_by_mac (on Load: after a
// restart nothing changes; after a crash between two writes the rows
// win). ep_by_mac entries without a row are left to PruneOrphans.
func (d *Datapath) loadIndex() error {
	d.macs, d.slots = newIndex(d.maps.MacIndex, macIndexBits, idxKeyMask), newSlots()
	d.addrs = newAddrIndexes(d.maps.Ip4Index, d.maps.Ip6Index)
	rows := map[epKey]epInfo{}
	if err := readEach(d.maps.EpTable, func(k epKey, v epInfo) { rows[k] = v }); err != nil {
		return fmt.Errorf("list endpoints: %w", err)
	}
	if err := d.loadNetnsRefs(rows); err != nil {
		return err
	}
	var lost []epKey // rows without a valid slot of their own
	for k, v := range rows {
		if !d.slots.take(v.Slot) {
			lost = append(lost, k)
		}
	}
	bySlot := map[uint32]epInfo{}
	byMAC := map[[6]byte]epInfo{}
	for k, v := range rows {
		if err := d.loadRow(k, &v, slices.Contains(lost, k)); err != nil {
			return err
		}
		bySlot[v.Slot], byMAC[v.MAC] = v, v
	}
	want := map[uint64]uint64{}
	var fix []epInfo
	err := readEach(d.maps.EpByMac, func(mk macKey, mv epInfo) {
		row, ok := bySlot[mv.Slot]
		if !ok || row.MAC != mk.MAC {
			if row, ok = byMAC[mk.MAC]; !ok {
				return
			}
			fix = append(fix, row)
		}
		want[mac48(mk.MAC)] = slotVal(row.Slot)
	})
	if err != nil {
		return fmt.Errorf("list endpoint macs: %w", err)
	}
	for _, row := range fix {
		if err := d.maps.EpByMac.Put(&macKey{MAC: row.MAC}, &row); err != nil {
			return fmt.Errorf("repair endpoint mac: %w", err)
		}
	}
	if err := d.macs.rebuild(want); err != nil {
		return err
	}
	return d.loadAddrIndexes(want)
}

// parentVal is a parent_index entry's value: the parents entry itself.
func parentVal(networkID uint32, vid uint16) uint64 {
	return uint64(vid)<<32 | uint64(networkID)<<48
}

// drop removes key whatever it points at.
func (x *index) drop(key uint64) error {
	i := idxHash(key, x.bits)
	for _, e := range x.buckets[i].E {
		if e>>48 != 0 && e&x.keyMask == key {
			return x.remove(key, e&^x.keyMask)
		}
	}
	if v, ok := x.spilled[i][key]; ok {
		return x.remove(key, v)
	}
	return nil
}

// loadRow rewrites a pinned row's record if it differs; a row that lost
// its slot gets a new one.
func (d *Datapath) loadRow(k epKey, v *epInfo, lost bool) error {
	v.NetnsCookie, v.Ifindex = k.NetnsCookie, k.Ifindex
	if lost {
		slot, ok := d.slots.alloc(epSlots)
		if !ok {
			return fmt.Errorf("endpoint %d/%d: no free slot", k.NetnsCookie, k.Ifindex)
		}
		v.Slot = slot
		if err := d.maps.EpTable.Put(&k, v); err != nil {
			return fmt.Errorf("repair endpoint %d/%d: %w", k.NetnsCookie, k.Ifindex, err)
		}
	}
	var rec epInfo
	if err := d.maps.Endpoints.Lookup(&v.Slot, &rec); err != nil || rec != *v {
		if err := d.maps.Endpoints.Put(&v.Slot, v); err != nil {
			return fmt.Errorf("write endpoint record: %w", err)
		}
	}
	return nil
}
