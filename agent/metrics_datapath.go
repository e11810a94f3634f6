package agent

import (
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/mvlan/mvlan/api"
)

// datapathText writes the datapath's counters (engine.Engine.Stats: one
// read of the counter maps per scrape) as metric families, in this order.
type datapathText struct {
	mu  sync.Mutex // one scrape at a time through the caches
	gen uint64

	vlan      [4]*family // rx packets, rx bytes, tx packets, tx bytes
	vlans     map[string]*vlanPrefixes
	lastVLANs *vlanPrefixes // of the last VLAN written
	net       [4]*family
	shim      [4]*family // mvlan_host_shim_*: the kernel's counters of the host shims
	flood     *family
	hairpin   [2]*family // packets, bytes
	east      [2]*family
	drops     *family
	mapFull   *family
	tamper    *family
	repair    *family
	mal       *family
	attach    *family
	scrape    *family
	all       []*family
}

func newDatapathText() *datapathText {
	c := func(name, help string, labels ...string) *family { return newFamily("counter", name, help, labels...) }
	d := &datapathText{
		vlans: map[string]*vlanPrefixes{},
		vlan: [4]*family{
			c("mvlan_vlan_rx_packets_total", "Frames received on a parent or trunk link, by VLAN (0: untagged).", "parent", "vlan"),
			c("mvlan_vlan_rx_bytes_total", "Bytes received on a parent or trunk link, by VLAN (0: untagged).", "parent", "vlan"),
			c("mvlan_vlan_tx_packets_total", "Frames sent on a parent or trunk link, by VLAN (0: untagged).", "parent", "vlan"),
			c("mvlan_vlan_tx_bytes_total", "Bytes sent on a parent or trunk link, by VLAN (0: untagged).", "parent", "vlan"),
		},
		net: [4]*family{
			c("mvlan_network_rx_packets_total", "Frames received by the endpoints of a network.", "network"),
			c("mvlan_network_rx_bytes_total", "Bytes received by the endpoints of a network.", "network"),
			c("mvlan_network_tx_packets_total", "Frames sent by the endpoints of a network (drops excluded).", "network"),
			c("mvlan_network_tx_bytes_total", "Bytes sent by the endpoints of a network (drops excluded).", "network"),
		},
		shim: [4]*family{
			c("mvlan_host_shim_rx_packets_total", "Frames the host received on its shim link on a network (-o host_shim), as the kernel counts them.", "network"),
			c("mvlan_host_shim_rx_bytes_total", "Bytes the host received on its shim link on a network, as the kernel counts them.", "network"),
			c("mvlan_host_shim_tx_packets_total", "Frames the host sent on its shim link on a network, as the kernel counts them.", "network"),
			c("mvlan_host_shim_tx_bytes_total", "Bytes the host sent on its shim link on a network, as the kernel counts them.", "network"),
		},
		flood: c("mvlan_flood_packets_total",
			"Broadcast and multicast frames of a network on its parent, by VLAN, kind and direction (rx, tx).",
			"network", "vlan", "kind", "direction"),
		hairpin: [2]*family{
			c("mvlan_hairpin_packets_total", "Frames from the wire whose source IP is a local endpoint's but whose source MAC is not (routed back).", "network", "vlan"),
			c("mvlan_hairpin_bytes_total", "Bytes of frames from the wire whose source IP is a local endpoint's but whose source MAC is not (routed back).", "network", "vlan"),
		},
		east: [2]*family{
			c("mvlan_eastwest_packets_total", "Frames between two local endpoints of a network, seen on the parent.", "network", "vlan"),
			c("mvlan_eastwest_bytes_total", "Bytes of frames between two local endpoints of a network, seen on the parent.", "network", "vlan"),
		},
		drops: c("mvlan_policy_drops_total",
			"Frames dropped by the datapath's policy, by network and reason (mac_spoof, ip_spoof, arp_spoof, nd_spoof, cross_network, ra_guard, dhcp_guard, unparsable, unknown_source, ra_source, vlan_tag, ra_ignore, host_route, foreign_dst; no_endpoint, of no network, on a link whose endpoint is not in the table).",
			"network", "reason"),
		tamper: c("mvlan_datapath_tamper_total",
			"What the agent found done to endpoints' programs and links since it started: detached, foreign_first (another program runs first), late_filter (a filter of a qdisc of its own runs after mvlan's on egress), nested_link (a link of the container's own on the parent), mac_changed (its link's MAC changed), mode_changed (its link's macvlan mode or flags changed, e.g. to source mode).", "reason"),
		repair: c("mvlan_datapath_reattach_total",
			"Tampers the agent repaired since it started (programs re-attached first, late filters and nested links deleted, MACs and macvlan modes set back), by reason.", "reason"),
		mapFull: c("mvlan_datapath_map_full_total",
			"Inserts into a BPF map refused because it was full: a lost count (counter maps) or a refused entry (tables).", "map"),
		mal: c("mvlan_malformed_packets_total", "Truncated or unparsable frames seen by a program (a container's are also dropped, under policy_drops; others pass).", "program"),
		attach: newFamily("gauge", "mvlan_attach_info",
			"A BPF program attached by the agent; link is a host link, or ENDPOINT/IFNAME inside a container; always 1.",
			"link", "hook", "mode"),
		scrape: newFamily("gauge", "mvlan_datapath_scrape_error", "1 if the last read of the datapath counters failed (see the agent log), else 0."),
	}
	d.all = slices.Concat(d.vlan[:], d.net[:], d.shim[:], []*family{d.flood}, d.hairpin[:], d.east[:],
		[]*family{d.drops, d.mapFull, d.tamper, d.repair, d.mal, d.attach, d.scrape})
	return d
}

// vlanLabels are the decimal VIDs 0..4095, made once.
var vlanLabels = func() (l [4096]string) {
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

func vlanLabel(vid uint16) string {
	if int(vid) < len(vlanLabels) {
		return vlanLabels[vid]
	}
	return strconv.Itoa(int(vid))
}

// write writes one scrape of s; with statErr only the error gauge.
func (d *datapathText) write(w textWriter, s api.Stats, statErr error, log *slog.Logger) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	for _, f := range d.all {
		f.start(d.gen)
	}
	if statErr != nil {
		log.Warn("metrics: datapath counters not exported", "err", statErr)
		d.scrape.add(1, labelValues{})
	} else {
		d.scrape.add(0, labelValues{})
		d.collect(s)
	}
	for _, f := range d.all {
		f.writeTo(w)
	}
}

// vlanPrefixes are the cached prefixes of one parent's VLAN series, by
// VID and family: thousands of them per trunk, so indexed, not hashed.
type vlanPrefixes struct {
	parent string
	p      [4096][4][]byte
	gen    uint64
}

func (d *datapathText) collect(s api.Stats) {
	for _, v := range s.VLANs {
		d.vlanTraffic(v)
	}
	for parent, c := range d.vlans {
		if c.gen != d.gen {
			delete(d.vlans, parent)
		}
	}
	d.lastVLANs = nil
	for _, n := range s.Networks {
		d.network(n)
	}
	d.drops.add(s.NoEndpoint.Packets, labelValues{"", "no_endpoint"})
	for _, prog := range sortedKeys(s.Malformed) {
		d.mal.add(s.Malformed[prog].Packets, labelValues{prog})
	}
	for _, r := range sortedKeys(s.Tamper) {
		d.tamper.add(s.Tamper[r], labelValues{r})
	}
	for _, r := range sortedKeys(s.Reattach) {
		d.repair.add(s.Reattach[r], labelValues{r})
	}
	for _, m := range sortedKeys(s.MapFull) {
		d.mapFull.add(s.MapFull[m], labelValues{m})
	}
	for _, at := range s.Attachments {
		d.attach.add(1, labelValues{at.Link, at.Hook, at.Mode})
	}
}

func (d *datapathText) network(n api.NetworkStats) {
	traffic(d.net, n.Traffic, labelValues{n.Network})
	if n.HostShim != nil {
		traffic(d.shim, *n.HostShim, labelValues{n.Network})
	}
	for _, reason := range sortedKeys(n.Drops) {
		d.drops.add(n.Drops[reason].Packets, labelValues{n.Network, reason})
	}
	for _, f := range n.Flood {
		d.flood.add(f.Packets, labelValues{n.Network, vlanLabel(f.VLAN), f.Kind, f.Direction})
	}
	for _, v := range n.Hairpin {
		l := labelValues{n.Network, vlanLabel(v.VLAN)}
		d.hairpin[0].add(v.Packets, l)
		d.hairpin[1].add(v.Bytes, l)
	}
	for _, v := range n.EastWest {
		l := labelValues{n.Network, vlanLabel(v.VLAN)}
		d.east[0].add(v.Packets, l)
		d.east[1].add(v.Bytes, l)
	}
}

// vlanTraffic adds the four counters of one VLAN of a parent.
func (d *datapathText) vlanTraffic(v api.VLANStats) {
	if int(v.VLAN) >= len(vlanLabels) { // not a VID: uncached
		traffic(d.vlan, v.Traffic, labelValues{v.Parent, vlanLabel(v.VLAN)})
		return
	}
	c := d.lastVLANs // VLANs come sorted by parent: one look-up per parent
	if c == nil || c.parent != v.Parent {
		if c = d.vlans[v.Parent]; c == nil {
			c = &vlanPrefixes{parent: v.Parent}
			d.vlans[v.Parent] = c
		}
		d.lastVLANs = c
	}
	c.gen = d.gen
	p := &c.p[v.VLAN]
	if p[0] == nil {
		for i, f := range d.vlan {
			p[i] = f.prefix(labelValues{v.Parent, vlanLabels[v.VLAN]})
		}
	}
	for i, n := range [4]uint64{v.Rx.Packets, v.Rx.Bytes, v.Tx.Packets, v.Tx.Bytes} {
		d.vlan[i].addPrefixed(p[i], n)
	}
}

// traffic adds rx packets, rx bytes, tx packets, tx bytes to fs.
func traffic(fs [4]*family, t api.Traffic, l labelValues) {
	fs[0].add(t.Rx.Packets, l)
	fs[1].add(t.Rx.Bytes, l)
	fs[2].add(t.Tx.Packets, l)
	fs[3].add(t.Tx.Bytes, l)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
