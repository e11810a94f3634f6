package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/mvlan/mvlan/api"
)

// stableMAC is the MAC an endpoint named name gets on network netName when
// none is asked for: derived from both, so that a container re-created
// under the same name gets the same MAC (and, on a DHCP network, the same
// lease), while different names or networks get different ones. The
// caller passes the network's identity (see identity), not its name, so
// that containers of the same name on two hosts of one LAN do not get the
// same MAC. It is locally administered and unicast. try > 0 derives the next candidate,
// for when an earlier one is taken (see pickStableMAC).
func stableMAC(netName, name string, try int) net.HardwareAddr {
	h := sha256.New()
	h.Write([]byte("mvlan-mac\x00" + netName + "\x00" + name + "\x00"))
	_ = binary.Write(h, binary.BigEndian, uint32(try))
	mac := net.HardwareAddr(h.Sum(nil)[:6])
	mac[0] = mac[0]&0xfc | 0x02 // locally administered, unicast
	return mac
}

// pickStableMAC is the first stable MAC of (netName, name) that taken
// does not report; taken sees the network's endpoints and the parent's
// own MAC. A clash needs 46 bits of two hashes to agree, so in practice
// the first candidate is the one.
func pickStableMAC(netName, name string, taken func(net.HardwareAddr) bool) net.HardwareAddr {
	for try := 0; ; try++ {
		if mac := stableMAC(netName, name, try); !taken(mac) && !isZero(mac[1:]) {
			return mac
		}
	}
}

// macTaken reports whether mac is held by one of n's endpoints or its
// host shim, or is parent. Caller holds n.mu.
func (n *network) macTaken(mac, parent net.HardwareAddr) bool {
	return bytes.Equal(mac, parent) || n.macInUse(mac) != nil
}

// macInUse refuses mac when one of n's endpoints or its host shim has it
// (an endpoint with the shim's MAC would take the shim's datapath entry),
// or n's parent (the kernel refuses a macvlan with its lower link's MAC,
// once the rest of the attach is made; a passthru one takes it). Caller
// holds n.mu.
func (n *network) macInUse(mac net.HardwareAddr) error {
	if len(n.parentMAC) > 0 && bytes.Equal(mac, n.parentMAC) && n.Mode != "passthru" {
		return conflict(fmt.Errorf("MAC %s is the parent %s's own on network %s; choose another --mac", mac, n.parentName, n.name()))
	}
	if o := n.byMAC[string(mac)]; o != nil {
		return conflict(fmt.Errorf("MAC %s is already used on network %s (endpoint %s)", mac, n.name(), o.ep.Name))
	}
	if n.shim != nil && bytes.Equal(mac, shimMAC(n)) {
		return conflict(fmt.Errorf("MAC %s is the host shim's (%s) on network %s; choose another --mac", mac, shimName(n), n.name()))
	}
	return nil
}

// macOnHost refuses mac when an endpoint of another network has it: the
// datapath keys endpoints by MAC host-wide (ep_by_mac, dhcp_ids), so two
// with one MAC would take each other's rows. One look-up, not a walk of
// the networks. Caller holds n.mu.
func (a *Engine) macOnHost(n *network, mac net.HardwareAddr) error {
	id, ok, err := a.dp.MACNetwork(mac)
	if err != nil {
		return err
	}
	if ok && id != n.DatapathID {
		return conflict(fmt.Errorf("MAC %s is used by an endpoint of another network on this host (mvlan ps lists them); MACs are unique on a host: choose another --mac", mac))
	}
	return nil
}

// identity is what tells n's endpoints apart from those of the same name
// on other hosts, for their stable MACs and DHCP client-ids: the network's
// ID, random per agent for a local network; a cluster network's ID is the
// same on every host, so there it is joined with this agent's ID.
func (a *Engine) identity(n *network) string {
	if scopeOf(n.Options) == api.ScopeCluster {
		return n.ID + "\x00" + a.store.AgentID()
	}
	return n.ID
}
