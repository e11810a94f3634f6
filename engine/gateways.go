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
	"sync"
	"time"

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

// hostListing is a listing of the host's links, with the number of the
// last link event taken away (linkTombs) when it was made.
type hostListing struct {
	links []link.Info
	seq   uint64
}

// listHost lists the host's links.
func (a *Engine) listHost() (hostListing, error) {
	seq := a.tombs.now()
	links, err := a.host.Links()
	return hostListing{links: links, seq: seq}, err
}

// linkTombs numbers the link events that may have taken one of the
// host's links away (deleted, down, another MAC), by ifindex, so that a
// pin made from a listing older than one does not give that link back.
type linkTombs struct {
	mu   sync.Mutex
	seq  uint64
	gone map[int]tomb
}

// tomb is the number of the last event that may have taken a link away,
// and when it came.
type tomb struct {
	seq uint64
	at  time.Time
}

// tombAge bounds how long a tomb is kept past the refresh that prunes it:
// a listing is used for one refresh, seconds at most; events on parents
// of no network's bring no refresh.
const tombAge = time.Minute

func (t *linkTombs) now() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

func (t *linkTombs) bury(index int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone == nil {
		t.gone = map[int]tomb{}
	}
	if len(t.gone) >= 256 {
		for i, g := range t.gone {
			if time.Since(g.at) > tombAge {
				delete(t.gone, i)
			}
		}
	}
	t.seq++
	t.gone[index] = tomb{seq: t.seq, at: time.Now()}
}

// buried reports whether an event after seq may have taken link index
// away.
func (t *linkTombs) buried(index int, seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gone[index].seq > seq
}

// prune forgets the events no listing from seq on needs.
func (t *linkTombs) prune(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, g := range t.gone {
		if g.seq <= seq {
			delete(t.gone, i)
		}
	}
}

// pinGateways pins n's gateways (gatewaysOf) with the host's links in hl
// (nil: listed if needed), but those a link event took away since it was
// listed: checked under n.mu, which gatewayLinkEvent takes after it
// numbers one.
func (a *Engine) pinGateways(n *network, parent link.Info, hl *hostListing) error {
	if hl == nil && a.pinsGateways(n) {
		l, err := a.listHost()
		if err != nil {
			return err
		}
		hl = &l
	}
	pin := a.gatewaysOf(n, parent, hl)
	n.mu.Lock()
	defer n.mu.Unlock()
	for index, mac := range pin.links {
		if a.tombs.buried(index, hl.seq) {
			pin.unpin(index, mac)
		}
	}
	n.gwPin = pin
	return a.dp.SetGateways(n.DatapathID, pin.g)
}

// pinsGateways reports whether n's gateways are pinned at all: not on a
// network that allows a router (the LAN's may be a container) or whose
// router comes from DHCP (its pools' gateway is a guess).
func (a *Engine) pinsGateways(n *network) bool {
	return !n.DHCP && !netconf.FirstHopOf(n.Options).AllowRouter
}

// gatewaysOf is what the datapath pins of n's gateways: those of its
// pools, as many of each family as it holds (the rest are logged), with
// the host's links in hl that may claim them besides the parent
// (gatewayLinks). None where pinsGateways says so, nor with more host
// links than the datapath holds (logged).
func (a *Engine) gatewaysOf(n *network, parent link.Info, hl *hostListing) gatewayPin {
	none := gatewayPin{g: loader.Gateways{ParentMAC: parent.MAC}}
	if !a.pinsGateways(n) {
		return none
	}
	pin := none
	if pin.g.Addrs = a.poolGateways(n); len(pin.g.Addrs) == 0 {
		return none
	}
	pin.links = map[int]string{}
	for _, l := range a.gatewayLinks(parent, hl.links) {
		pin.g.HostLinks = append(pin.g.HostLinks, l.MAC)
		pin.links[l.Index] = string(l.MAC)
	}
	if len(pin.links) > loader.MaxGatewayHostLinks {
		a.log.Warn("gateways not pinned: more links of the host's on the parent than the datapath holds", "network", n.name(),
			"parent", parent.Name, "links", len(pin.links), "most", loader.MaxGatewayHostLinks)
		none.links = pin.links // their events pin again
		return none
	}
	return pin
}

// unpin takes the link index, with mac, out of the pin.
func (pin *gatewayPin) unpin(index int, mac string) {
	delete(pin.links, index)
	pin.g.HostLinks = slices.DeleteFunc(slices.Clone(pin.g.HostLinks), func(m net.HardwareAddr) bool { return bytes.Equal(m, []byte(mac)) })
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
	var own []link.Info
	for _, l := range links {
		if l.IsMacvlan() && l.Up && l.ParentIndex == parent.Index && !l.LowerElsewhere && len(l.MAC) == 6 &&
			!a.isEndpointLink(l.Name, l.Alias, l.MAC) {
			own = append(own, l)
		}
	}
	return own
}

// hasMAC reports whether one of n's endpoints has mac.
func (n *network) hasMAC(mac net.HardwareAddr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.byMAC[string(mac)] != nil
}

// gone reports whether ev takes one of the pin's links away: deleted,
// down or given another MAC.
func (pin gatewayPin) gone(ev link.LinkEvent) bool {
	mac, ok := pin.links[ev.Index]
	return ok && (ev.Deleted || !ev.Up || mac != string(ev.MAC))
}

// gatewayLinkEvent handles a link event of a macvlan or macvtap on the
// parent of a network whose gateways are pinned (not an endpoint's link):
// it may add, take away or change a link that may claim them, and asks
// for the parents' refresh (true), which lists the links again. One that
// takes a pinned link away (deleted, down, given another MAC) leaves the
// pin at once: its MAC is free on the parent from now on, for a
// container's nested link too. Any event of a macvlan that may take one
// away (but a pinned link's, up with its MAC: a carrier or MTU change) is
// numbered first (linkTombs), on any parent, so that a pin made from an
// older listing leaves the link out (pinGateways): a refresh's, or a
// network's first, which checks again once the network is listed
// (repinIfMoved).
func (a *Engine) gatewayLinkEvent(ev link.LinkEvent) bool {
	if ev.MacvlanOn == 0 || a.isEndpointLink(ev.Name, ev.Alias, ev.MAC) {
		return false
	}
	var pinned []*network
	onParent, kept := false, false
	for _, n := range a.networkList() {
		n.mu.Lock()
		if n.gwPin.links != nil {
			onParent = onParent || ev.MacvlanOn == n.parentIndex
			kept = kept || !n.gwPin.gone(ev) && n.gwPin.links[ev.Index] != ""
			if n.gwPin.gone(ev) {
				pinned = append(pinned, n)
			}
		}
		n.mu.Unlock()
	}
	if !kept || len(pinned) > 0 {
		a.tombs.bury(ev.Index)
	}
	for _, n := range pinned {
		n.mu.Lock()
		if n.gwPin.gone(ev) {
			mac := n.gwPin.links[ev.Index]
			n.gwPin.unpin(ev.Index, mac)
			if err := a.dp.SetGateways(n.DatapathID, n.gwPin.g); err != nil {
				a.log.Warn("a gone host link still may claim the gateway until the parents' refresh", "network", n.name(), "mac", net.HardwareAddr(mac).String(), "err", err)
			}
		}
		n.mu.Unlock()
	}
	return onParent || len(pinned) > 0
}

// isEndpointLink reports whether a link of the host's is an endpoint's
// (Docker's hand-off: by its name while it is made, its alias, its MAC),
// on its way to its container or handed back.
func (a *Engine) isEndpointLink(name, alias string, mac net.HardwareAddr) bool {
	return strings.HasPrefix(name, link.TempPrefix) || strings.HasPrefix(alias, a.alias("ep", "")) ||
		slices.ContainsFunc(a.networkList(), func(n *network) bool { return n.hasMAC(mac) })
}

// repinIfMoved pins n's gateways again if a link event was numbered
// since seq, taken before its first pin: n was not listed for the event
// to find. Caller holds netOps; n is listed now.
func (a *Engine) repinIfMoved(n *network, seq uint64) error {
	if a.tombs.now() == seq {
		return nil
	}
	parent, _, _, err := a.parentLinks(n)
	if err != nil {
		return err
	}
	return a.pinGateways(n, parent, nil)
}
