package engine

// Checks of a network's parent link beyond parentFree: what sits on a
// link mvlan made, and links no macvlan can sit on.

import (
	"fmt"
	"strings"

	"github.com/mvlan/mvlan/link"
)

// stackDepth bounds the walk down a parent's lower links (a VLAN on a
// VLAN on a VLAN is as deep as anyone stacks them).
const stackDepth = 8

// carriesOthers refuses the removal of n when the link mvlan made for it
// carries another network's parent: a VLAN put on it (by mvlan, as
// -o parent=eth0.50.60 on network n's eth0.50, or by the operator), or a
// macvlan of it. Deleting n's link would delete that one too, and with it
// the other network's containers' links. Caller holds netOps.
func (a *Engine) carriesOthers(n *network) error {
	if !n.ParentKind.owned() {
		return nil
	}
	links, err := a.host.Links()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	byName := make(map[string]link.Info, len(links))
	byIndex := make(map[int]link.Info, len(links))
	for _, l := range links {
		byName[l.Name], byIndex[l.Index] = l, l
	}
	own, ok := byName[n.Parent]
	if !ok || own.Alias != a.alias("net", n.ID) {
		return nil // gone already, or not mvlan's: deleteOwnedLink leaves it
	}
	for _, o := range a.networkList() {
		ol, ok := byName[o.Parent]
		if o == n || !ok || !stackedOn(ol, own.Index, byIndex) {
			continue
		}
		return conflict(fmt.Errorf("network %s's parent %s is a %s on %s, the link mvlan made for network %s, which goes with it; remove network %s first",
			o.name(), ol.Name, ol.Kind, own.Name, n.name(), o.name()))
	}
	return nil
}

// stackedOn reports whether link l sits on the link of index idx, directly
// or through other links of the same namespace.
func stackedOn(l link.Info, idx int, byIndex map[int]link.Info) bool {
	for range stackDepth {
		if l.LowerElsewhere || l.ParentIndex <= 0 || l.ParentIndex == l.Index || (l.Kind != "vlan" && !l.IsMacvlan()) {
			return false
		}
		if l.ParentIndex == idx {
			return true
		}
		next, ok := byIndex[l.ParentIndex]
		if !ok {
			return false
		}
		l = next
	}
	return false
}

// notAPort refuses a parent that is a port of a bridge, bond or team: the
// master takes its frames (its rx handler), so no macvlan can sit on it
// and every attach would fail (EBUSY). A VRF's port is fine. links are
// the host's.
func notAPort(given string, info link.Info, links []link.Info) error {
	if info.MasterIndex <= 0 {
		return nil
	}
	for _, m := range links {
		if m.Index != info.MasterIndex {
			continue
		}
		switch m.Kind {
		case "bridge", "bond", "team":
			return invalid(fmt.Errorf("parent %s is a port of %s %s, which takes its frames: no macvlan can sit on it; use -o parent=%s, or a link that is no port", given, m.Kind, m.Name, m.Name))
		case "openvswitch":
			return invalid(fmt.Errorf("parent %s is a port of an Open vSwitch bridge, which takes its frames: no macvlan can sit on it; use the bridge's internal port as the parent, or a link that is no port", given))
		}
		return nil
	}
	return nil
}

// lowerHere refuses a macvlan or macvtap parent whose lower link is in
// another namespace: the kernel puts the containers' macvlans on that
// link's port, so their frames cross no link of this namespace, where the
// parent programs would have to check and count them.
func lowerHere(given string, info link.Info) error {
	if !info.IsMacvlan() || !info.LowerElsewhere {
		return nil
	}
	return invalid(fmt.Errorf("parent %s is a %s whose lower link is in another network namespace: the containers' frames would pass there, out of mvlan's reach; run the agent where that link is, or use a link of this namespace (a NIC, a veth, or a sub-interface NAME.VID)", given, info.Kind))
}

// vidLike reports whether what follows the last dot of name is a number
// (or nothing): a name meant as NAME.VID, whose faults ParseParent names.
func vidLike(name string) bool {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return true
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// vlanFree refuses a sub-interface p to make when lower has p's VLAN
// under another name already (the kernel refuses a second: EEXIST): that
// link is the parent to give, unless another network has it.
func (a *Engine) vlanFree(p link.Parent, lower link.Info) error {
	links, err := a.host.Links()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		if l.Kind != "vlan" || l.VID != p.VID || l.ParentIndex != lower.Index || l.LowerElsewhere || l.VLANProto != 0 && l.VLANProto != link.VLANProto8021Q {
			continue
		}
		for _, o := range a.networkList() {
			if o.Parent == l.Name {
				return conflict(fmt.Errorf("VLAN %d on %s is link %s already, the parent of network %s; a parent link carries one network", p.VID, lower.Name, l.Name, o.name()))
			}
		}
		return invalid(fmt.Errorf("VLAN %d on %s is link %s already (the kernel takes one link per VLAN); use -o parent=%s", p.VID, lower.Name, l.Name, l.Name))
	}
	return nil
}
