package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// retiredPad marks the vlan_stats entries the agent writes and the
// programs never do (theirs have pad 0): the untagged frames of removed
// networks on a link that stays counted per VLAN. A network's own
// untagged frames count in its net_stats (the parent share), not in
// vlan_stats, while it lives; without these entries the link's series
// would go down when the network goes, which Prometheus takes for a
// counter reset (and rate() for a burst of all the link's traffic).
const retiredPad = 1

// RetireParent is DeleteParent for a network that is going while its
// parent link stays counted per VLAN (another network's trunk): the
// network's share of the link's untagged frames is kept in the link's
// per-VLAN counters, which go on counting those frames from here. Call
// it before ForgetNetwork. ForgetLinks drops what it kept with the rest.
func (d *Datapath) RetireParent(ifindex int) error {
	d.reading.Lock()
	defer d.reading.Unlock()
	p, ok := d.parents.get(ifindex)
	if err := d.DeleteParent(ifindex); err != nil || !ok {
		return err
	}
	if err := d.keepShare(p); err != nil {
		return fmt.Errorf("keep the untagged frames of network %d on link %d: %w", p.NetworkID, p.Ifindex, err)
	}
	return nil
}

// keepShare adds network p.NetworkID's parent share, CPU by CPU, to the
// retired entry of (p.Ifindex, p.VID). Frames its programs count between
// the read and ForgetNetwork are not kept (a few, as the row goes).
func (d *Datapath) keepShare(p Parent) error {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	share := make([]netCounters, ncpu)
	id := p.NetworkID
	if err := d.maps.NetStats.Lookup(&id, share); err != nil {
		return fmt.Errorf("read net_stats: %w", err)
	}
	k := vlanKey{Ifindex: uint32(p.Ifindex), VID: p.VID, Pad: retiredPad}
	kept := make([]trafficValue, ncpu)
	if err := d.maps.VlanStats.Lookup(&k, kept); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("read vlan_stats: %w", err)
	}
	moved := false
	for i := range kept {
		kept[i].Rx.add(share[i].Parent.Rx)
		kept[i].Tx.add(share[i].Parent.Tx)
		moved = moved || share[i].Parent != (trafficValue{})
	}
	if !moved {
		return nil
	}
	// Not d.put: a refusal is this call's error (logged at rm), not a
	// count of mvlan_datapath_map_full_total, whose vlan_stats count is
	// the programs' (pinned, kept across restarts).
	if err := d.maps.VlanStats.Put(&k, kept); err != nil {
		return fmt.Errorf("write vlan_stats: %w", err)
	}
	return nil
}
