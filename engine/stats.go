package engine

import (
	"cmp"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
)

// dropReasons are every reason a program drops for a network's frame
// (no_endpoint has no network: Stats.NoEndpoint).
var dropReasons = slices.DeleteFunc(loader.DropReasons(), func(r loader.DropReason) bool { return r == loader.NoEndpoint })

// programs are the datapath's programs, for the malformed counters.
var programs = []string{"ep_egress", "ep_ingress", "parent_ingress", "parent_egress"}

// Stats reads every datapath counter once and names what the datapath
// numbers: ifindexes become host link names, network ids network names,
// endpoint attachments "ENDPOINT/IFNAME". Every network has its drop,
// flood, hairpin and east-west counters (zero before the first frame);
// counters of networks the agent no longer has are left out.
func (a *Engine) Stats() (api.Stats, error) { return a.StatsWith(&StatsBuffers{}) }

// StatsBuffers hold what Stats makes, for a caller that reads often (the
// metrics) to keep and pass again: a read of a 4094-VLAN trunk then
// allocates next to nothing. Not for two reads at once.
type StatsBuffers struct {
	snap  loader.Snapshot
	keys  []uint64
	vlans []api.VLANStats
	atts  []api.Attachment
	eps   map[epKey]string
	seen  map[linkHook]bool
}

// StatsWith is Stats into b: the slices of what it returns are b's, good
// until the next call with b.
func (a *Engine) StatsWith(b *StatsBuffers) (api.Stats, error) {
	links, err := a.hostLinks()
	if err != nil {
		return api.Stats{}, err
	}
	nets := a.networkRefs(links, b)
	if err := a.dp.CountersInto(maxID(nets), &b.snap); err != nil {
		return api.Stats{}, fmt.Errorf("read datapath counters: %w", err)
	}
	snap := &b.snap
	seed(snap, nets)
	s := api.Stats{
		Time:      time.Now().UTC(),
		VLANs:     b.vlanStats(links),
		Networks:  a.withShimStats(networkStats(*snap, nets)),
		Malformed: map[string]api.Count{},
		MapFull:   snap.MapFull,
	}
	s.Tamper, s.Reattach = a.tamper.snapshot()
	for _, p := range programs {
		s.Malformed[p] = apiCount(snap.Malformed[p])
	}
	s.NoEndpoint = apiCount(snap.Drops[loader.DropKey{Reason: loader.NoEndpoint}])
	s.Attachments = b.attachStats(a.dp.Attachments(), links)
	return s, nil
}

// hostLinks lists the host namespace's links by ifindex.
func (a *Engine) hostLinks() (map[int]link.Info, error) {
	ls, err := a.host.Links()
	if err != nil {
		return nil, fmt.Errorf("list host links: %w", err)
	}
	m := make(map[int]link.Info, len(ls))
	for _, l := range ls {
		m[l.Index] = l
	}
	return m, nil
}

// netRef is a network as the datapath counts it: its name, and the VLAN
// its parent's frames count under (the sub-interface's VID, else 0).
type netRef struct {
	name string
	vid  uint16
}

// networkRefs maps datapath ids to networks, and names endpoint
// attachments "ENDPOINT/IFNAME" by their datapath keys in b.eps.
func (a *Engine) networkRefs(links map[int]link.Info, b *StatsBuffers) map[uint32]netRef {
	nets := a.networkList()
	m := make(map[uint32]netRef, len(nets))
	if b.eps == nil {
		b.eps = map[epKey]string{}
	}
	clear(b.eps)
	eps := b.eps
	for _, n := range nets {
		n.mu.Lock()
		m[n.DatapathID] = netRef{name: n.name(), vid: uint16(links[n.parentIndex].VID)}
		for _, en := range n.eps {
			eps[epKey{en.ep.NetnsCookie, en.ep.Ifindex}] = en.labelOf()
		}
		if n.shim != nil {
			eps[epKey{n.shim.cookie, n.shim.ifindex}] = "host/" + shimName(n)
		}
		n.mu.Unlock()
	}
	return m
}

// maxID is the highest datapath id of nets (0: none): the datapath reads
// network counters up to it (ids are the lowest free, so few).
func maxID(nets map[uint32]netRef) uint32 {
	var top uint32
	for id := range nets {
		top = max(top, id)
	}
	return top
}

// epKey is an endpoint as the datapath keys it.
type epKey struct {
	cookie  uint64
	ifindex int
}

// seed adds zero counters for every known network, so that its series
// exist before the first frame and alerts on a first drop work.
func seed(snap *loader.Snapshot, nets map[uint32]netRef) {
	for id, n := range nets {
		for _, r := range dropReasons {
			addZero(snap.Drops, loader.DropKey{NetworkID: id, Reason: r})
		}
		nv := loader.NetVLAN{NetworkID: id, VID: n.vid}
		addZero(snap.Hairpin, nv)
		addZero(snap.EastWest, nv)
		for _, kind := range []loader.FloodKind{loader.Broadcast, loader.Multicast} {
			for _, dir := range []loader.Direction{loader.Rx, loader.Tx} {
				addZero(snap.Flood, loader.FloodKey{NetworkID: id, VID: n.vid, Kind: kind, Direction: dir})
			}
		}
	}
}

func addZero[K comparable](m map[K]loader.Counter, k K) {
	if _, ok := m[k]; !ok {
		m[k] = loader.Counter{}
	}
}

func linkName(links map[int]link.Info, ifindex int) string {
	if l, ok := links[ifindex]; ok {
		return l.Name
	}
	return fmt.Sprintf("ifindex:%d", ifindex)
}

func apiCount(c loader.Counter) api.Count { return api.Count{Packets: c.Packets, Bytes: c.Bytes} }

func apiTraffic(t loader.Traffic) api.Traffic {
	return api.Traffic{Rx: apiCount(t.Rx), Tx: apiCount(t.Tx)}
}

// vlanStats has the per-VLAN counters of b.snap.VLAN, in b.vlans, sorted
// by parent name, then VLAN. A trunk has thousands, so they are sorted as
// integers: the parent's rank in name order, then the VID.
func (b *StatsBuffers) vlanStats(links map[int]link.Info) []api.VLANStats {
	m := b.snap.VLAN
	names := map[int]string{}
	for k := range m {
		if _, ok := names[k.Ifindex]; !ok {
			names[k.Ifindex] = linkName(links, k.Ifindex)
		}
	}
	parents := slices.SortedFunc(maps.Keys(names), func(a, b int) int {
		return cmp.Or(strings.Compare(names[a], names[b]), cmp.Compare(a, b))
	})
	rank := make(map[int]uint64, len(parents))
	for i, ifindex := range parents {
		rank[ifindex] = uint64(i)
	}
	keys := b.keys[:0]
	for k := range m {
		keys = append(keys, rank[k.Ifindex]<<16|uint64(k.VID))
	}
	slices.Sort(keys)
	out := slices.Grow(b.vlans[:0], len(keys))
	for _, key := range keys {
		ifindex := parents[key>>16]
		k := loader.VLANKey{Ifindex: ifindex, VID: uint16(key)}
		out = append(out, api.VLANStats{Parent: names[ifindex], VLAN: k.VID, Traffic: apiTraffic(m[k])})
	}
	b.keys, b.vlans = keys, out
	return out
}

// networkStats has one entry per network the agent knows, sorted by name.
func networkStats(snap loader.Snapshot, nets map[uint32]netRef) []api.NetworkStats {
	byID := make(map[uint32]*api.NetworkStats, len(nets))
	for id, n := range nets {
		byID[id] = &api.NetworkStats{Network: n.name, Traffic: apiTraffic(snap.Network[id]), Drops: map[string]api.Count{}}
	}
	for k, c := range snap.Drops {
		if ns := byID[k.NetworkID]; ns != nil {
			ns.Drops[string(k.Reason)] = apiCount(c)
		}
	}
	for k, c := range snap.Flood {
		if ns := byID[k.NetworkID]; ns != nil {
			ns.Flood = append(ns.Flood, api.FloodStats{VLAN: k.VID, Kind: string(k.Kind), Direction: string(k.Direction), Count: apiCount(c)})
		}
	}
	for k, c := range snap.Hairpin {
		if ns := byID[k.NetworkID]; ns != nil {
			ns.Hairpin = append(ns.Hairpin, api.VLANCount{VLAN: k.VID, Count: apiCount(c)})
		}
	}
	for k, c := range snap.EastWest {
		if ns := byID[k.NetworkID]; ns != nil {
			ns.EastWest = append(ns.EastWest, api.VLANCount{VLAN: k.VID, Count: apiCount(c)})
		}
	}
	out := make([]api.NetworkStats, 0, len(byID))
	for _, ns := range byID {
		sortNetworkStats(ns)
		out = append(out, *ns)
	}
	slices.SortFunc(out, func(a, b api.NetworkStats) int { return strings.Compare(a.Network, b.Network) })
	return out
}

func sortNetworkStats(ns *api.NetworkStats) {
	slices.SortFunc(ns.Flood, func(a, b api.FloodStats) int {
		return cmp.Or(cmp.Compare(a.VLAN, b.VLAN), strings.Compare(a.Kind, b.Kind), strings.Compare(a.Direction, b.Direction))
	})
	byVLAN := func(a, b api.VLANCount) int { return cmp.Compare(a.VLAN, b.VLAN) }
	slices.SortFunc(ns.Hairpin, byVLAN)
	slices.SortFunc(ns.EastWest, byVLAN)
}

// linkHook is a link label and a hook: one series of mvlan_attach_info.
type linkHook struct {
	link string
	hook loader.Hook
}

// attachStats names attachments (in b.atts): parent programs by host link
// name, endpoint programs "ENDPOINT/IFNAME" (b.eps). A link label is never
// repeated for one hook (the metric would be refused): a clash gets
// "#IFINDEX".
func (b *StatsBuffers) attachStats(as []loader.Attachment, links map[int]link.Info) []api.Attachment {
	if b.seen == nil {
		b.seen = map[linkHook]bool{}
	}
	clear(b.seen)
	out := slices.Grow(b.atts[:0], len(as))
	for _, at := range as {
		name := b.eps[epKey{at.NetnsCookie, at.Ifindex}]
		switch {
		case strings.HasPrefix(at.Program, "parent_"):
			name = linkName(links, at.Ifindex)
		case name != "":
		default:
			name = fmt.Sprintf("%s/ifindex:%d", filepath.Base(at.Netns), at.Ifindex)
		}
		if b.seen[linkHook{name, at.Hook}] {
			name = fmt.Sprintf("%s#%d", name, at.Ifindex)
		}
		b.seen[linkHook{name, at.Hook}] = true
		out = append(out, api.Attachment{Link: name, Hook: string(at.Hook), Program: at.Program, Mode: string(at.Mode)})
	}
	b.atts = out
	return out
}

// NetworkUsage is what a network uses, for the metrics.
type NetworkUsage struct {
	Network   string
	Endpoints int
	Subnets   []ipam.Usage
	// Leases counts a DHCP network's endpoints by the state of their
	// lease (every state, zeros included); nil on other networks.
	// Leases6 counts them by their DHCPv6 lease; nil unless it has IPv6.
	Leases, Leases6 map[string]int
	// Blocks is how many blocks of a cluster network's pools this host
	// holds; -1 on local networks.
	Blocks int
	// Exhausted counts a cluster network's attaches refused because every
	// block of its ranges was held and none of this host's had a free
	// address (cluster.Space.Exhausted).
	Exhausted uint64
}

// Usage reports each network's endpoint count and address use, from the
// index: a scrape never waits for kernel work.
func (a *Engine) Usage() ([]NetworkUsage, error) {
	nets := a.networkList()
	out := make([]NetworkUsage, 0, len(nets))
	for _, n := range nets {
		n.mu.Lock()
		u := NetworkUsage{Network: n.name(), Endpoints: len(n.eps), Subnets: n.space.Usage(), Leases: n.leaseCounts(false),
			Leases6: n.leaseCounts(true), Blocks: -1}
		if c, ok := n.space.(interface {
			BlockCount() int
			Exhausted() uint64
		}); ok {
			u.Blocks, u.Exhausted = c.BlockCount(), c.Exhausted()
		}
		out = append(out, u)
		n.mu.Unlock()
	}
	return out, nil
}
