package loader

import (
	"errors"
	"fmt"
	"maps"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrTableFull is returned (wrapped) by SetEndpoint and SetParent when a
// table holds as many entries as it can (MaxEndpoints, MaxParents).
var ErrTableFull = errors.New("datapath table full")

// bpfInserted are the maps the programs insert into, by enum map_id: the
// index of the map_full counters.
var bpfInserted = []string{"vlan_stats", "drop_stats"}

// fullCounts counts inserts by this process that failed because the map
// was full, by map name.
type fullCounts struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (f *fullCounts) add(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[string]uint64{}
	}
	f.n[name]++
}

// mapFull returns the user-space counts of every map (zero included).
func (d *Datapath) mapFull() map[string]uint64 {
	out := make(map[string]uint64, len(mapNames))
	for _, name := range mapNames {
		out[name] = 0
	}
	d.full.mu.Lock()
	defer d.full.mu.Unlock()
	for name, n := range d.full.n {
		out[name] += n
	}
	return out
}

// put writes key and value into the named map. A full map gives an error
// wrapping ErrTableFull, and is counted.
func (d *Datapath) put(name string, key, value any) error {
	m := d.byName[name]
	err := m.Put(key, value)
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOMEM) {
		d.full.add(name)
		info, _ := m.Info()
		max := uint32(0)
		if info != nil {
			max = info.MaxEntries
		}
		return fmt.Errorf("%s holds %d entries: %w", name, max, ErrTableFull)
	}
	return err
}

// parentCache mirrors the parents table: which VLAN labels a network's
// counters (Counters reads it on every scrape, without a map walk).
type parentCache struct {
	mu   sync.Mutex
	byIf map[int]Parent
}

func (c *parentCache) set(p Parent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byIf == nil {
		c.byIf = map[int]Parent{}
	}
	c.byIf[p.Ifindex] = p
}

func (c *parentCache) get(ifindex int) (Parent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.byIf[ifindex]
	return p, ok
}

func (c *parentCache) remove(ifindex int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byIf, ifindex)
}

// parentsByNetwork returns each network's parent.
func (d *Datapath) parentsByNetwork() map[uint32]Parent {
	d.parents.mu.Lock()
	defer d.parents.mu.Unlock()
	out := make(map[uint32]Parent, len(d.parents.byIf))
	for p := range maps.Values(d.parents.byIf) {
		out[p.NetworkID] = p
	}
	return out
}

// loadParents fills the cache from the pinned table (on Load).
func (d *Datapath) loadParents() error {
	var k uint32
	var v parentInfo
	want := map[uint64]uint64{}
	it := d.maps.Parents.Iterate()
	for it.Next(&k, &v) {
		d.parents.set(Parent{Ifindex: int(k), NetworkID: v.NetworkID, VID: v.VID})
		want[uint64(k)] = parentVal(v.NetworkID, v.VID)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read parents: %w", err)
	}
	d.parentx = newIndex(d.maps.ParentIndex, parentIndexBits, 1<<32-1)
	return d.parentx.rebuild(want)
}
