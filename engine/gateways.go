package engine

// A network's gateway pin: parent_egress drops a frame leaving through
// the parent toward the wire that claims one of the network's gateways
// (ARP sender, NA target, IP source) from another MAC than those of the
// host's own links there: the parent, and the macvlans and macvtaps the
// host made on it (a VM's macvtap, keepalived's VRRP link, a host shim),
// which may be the LAN's router. A link a container nests on its eth0
// lies on the parent too, in the container's namespace, and is refused.

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
	"github.com/mvlan/mvlan/netconf"
)

// gatewayPin is what the datapath pins of a network's gateways and the
// host's links on the parent that may claim them, by ifindex, with their
// MACs then (links nil: none pinned, and no link event concerns it).
type gatewayPin struct {
	g     loader.Gateways
	links map[int]string
}

// pinGateways pins n's gateways (gatewaysOf) with the host's links
// (nil: listed if needed).
func (a *Engine) pinGateways(n *network, parent link.Info, links []link.Info) error {
	pin, err := a.gatewaysOf(n, parent, links)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gwPin = pin
	return a.dp.SetGateways(n.DatapathID, pin.g)
}

// gatewaysOf is what the datapath pins of n's gateways: those of its
// pools, as many of each family as it holds (the rest are logged), with
// the host's links that may claim them besides the parent (gatewayLink).
// None on a network that allows a router (the LAN's may be a container)
// or whose router comes from DHCP (its pools' gateway is a guess), nor
// with more host links than the datapath holds (logged).
func (a *Engine) gatewaysOf(n *network, parent link.Info, links []link.Info) (gatewayPin, error) {
	none := gatewayPin{g: loader.Gateways{ParentMAC: parent.MAC}}
	if n.DHCP || netconf.FirstHopOf(n.Options).AllowRouter {
		return none, nil
	}
	pin := none
	pin.g.Addrs = a.poolGateways(n)
	if len(pin.g.Addrs) == 0 {
		return none, nil
	}
	if links == nil {
		var err error
		if links, err = a.host.Links(); err != nil {
			return none, err
		}
	}
	pin.links = map[int]string{}
	for _, l := range a.gatewayLinks(parent, links) {
		pin.g.HostLinks = append(pin.g.HostLinks, l.MAC)
		pin.links[l.Index] = string(l.MAC)
	}
	if len(pin.links) > loader.MaxGatewayHostLinks {
		a.log.Warn("gateways not pinned: more links of the host's on the parent than the datapath holds", "network", n.name(),
			"parent", parent.Name, "links", len(pin.links), "most", loader.MaxGatewayHostLinks)
		none.links = pin.links // their events pin again
		return none, nil
	}
	return pin, nil
}

// poolGateways are the gateways of n's pools the datapath holds.
func (a *Engine) poolGateways(n *network) []netip.Addr {
	var gws []netip.Addr
	var n4, n6 int
	for _, p := range n.space.Pools() {
		gw := p.Gateway
		switch {
		case !gw.IsValid():
		case gw.Is4() && n4 < loader.MaxGateways4:
			n4++
			gws = append(gws, gw)
		case !gw.Is4() && n6 < loader.MaxGateways6:
			n6++
			gws = append(gws, gw)
		default:
			a.log.Warn("gateway not pinned: the datapath pins the first gateways of each family only", "network", n.name(), "gateway", gw,
				"ipv4", loader.MaxGateways4, "ipv6", loader.MaxGateways6)
		}
	}
	return gws
}

// gatewayLinks are those of links that are the host's own on parent and
// up: macvlans and macvtaps in its namespace, not an endpoint's (on its way
// to its container, or handed back: by name, alias or MAC). A down link's
// MAC is free for another link on the parent to take (the kernel refuses
// only an up link's), a container's nested link included.
func (a *Engine) gatewayLinks(parent link.Info, links []link.Info) []link.Info {
	epAlias := a.alias("ep", "")
	var own []link.Info
	for _, l := range links {
		if l.IsMacvlan() && l.Up && l.ParentIndex == parent.Index && !l.LowerElsewhere && len(l.MAC) == 6 &&
			!strings.HasPrefix(l.Name, link.TempPrefix) && !strings.HasPrefix(l.Alias, epAlias) {
			own = append(own, l)
		}
	}
	if len(own) == 0 {
		return nil
	}
	nets := a.networkList()
	return slices.DeleteFunc(own, func(l link.Info) bool {
		return slices.ContainsFunc(nets, func(n *network) bool { return n.hasMAC(l.MAC) })
	})
}

// hasMAC reports whether one of n's endpoints has mac.
func (n *network) hasMAC(mac net.HardwareAddr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.byMAC[string(mac)] != nil
}

// gatewayLinkChanged reports whether ev changes the links that may claim
// n's gateways: one of them deleted, down or given another MAC, or a new
// macvlan of the host's up on the parent p, not an endpoint's. Caller
// holds n.mu.
func (n *network) gatewayLinkChanged(ev link.LinkEvent, p int) bool {
	if n.gwPin.links == nil {
		return false // none pinned
	}
	if n.gwPin.gone(ev) {
		return true
	}
	_, known := n.gwPin.links[ev.Index]
	return !known && !ev.Deleted && ev.Up && p != 0 && ev.MacvlanOn == p && n.byMAC[string(ev.MAC)] == nil
}

// gone reports whether ev takes one of the pin's links away: deleted,
// down or given another MAC.
func (pin gatewayPin) gone(ev link.LinkEvent) bool {
	mac, ok := pin.links[ev.Index]
	return ok && (ev.Deleted || !ev.Up || mac != string(ev.MAC))
}

// unpinGone takes a host link that ev takes away out of the links that
// may claim each network's gateways at once, before the refresh that
// ev starts pins them again: its MAC is free on the parent from now on,
// for a container's nested link too.
func (a *Engine) unpinGone(ev link.LinkEvent) {
	for _, n := range a.networkList() {
		n.mu.Lock()
		if n.gwPin.gone(ev) {
			mac := n.gwPin.links[ev.Index]
			delete(n.gwPin.links, ev.Index)
			n.gwPin.g.HostLinks = slices.DeleteFunc(slices.Clone(n.gwPin.g.HostLinks), func(m net.HardwareAddr) bool { return bytes.Equal(m, []byte(mac)) })
			if err := a.dp.SetGateways(n.DatapathID, n.gwPin.g); err != nil {
				a.log.Warn("a gone host link still may claim the gateway until the parents' refresh", "network", n.name(), "mac", net.HardwareAddr(mac).String(), "err", err)
			}
		}
		n.mu.Unlock()
	}
}
