package agent

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mvlan/mvlan/api"
)

func counterDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descVLANRxPackets = counterDesc("mvlan_vlan_rx_packets_total", "Frames received on a parent or trunk link, by VLAN (0: untagged).", "parent", "vlan")
	descVLANRxBytes   = counterDesc("mvlan_vlan_rx_bytes_total", "Bytes received on a parent or trunk link, by VLAN (0: untagged).", "parent", "vlan")
	descVLANTxPackets = counterDesc("mvlan_vlan_tx_packets_total", "Frames sent on a parent or trunk link, by VLAN (0: untagged).", "parent", "vlan")
	descVLANTxBytes   = counterDesc("mvlan_vlan_tx_bytes_total", "Bytes sent on a parent or trunk link, by VLAN (0: untagged).", "parent", "vlan")

	descNetRxPackets = counterDesc("mvlan_network_rx_packets_total", "Frames received by the endpoints of a network.", "network")
	descNetRxBytes   = counterDesc("mvlan_network_rx_bytes_total", "Bytes received by the endpoints of a network.", "network")
	descNetTxPackets = counterDesc("mvlan_network_tx_packets_total", "Frames sent by the endpoints of a network (drops excluded).", "network")
	descNetTxBytes   = counterDesc("mvlan_network_tx_bytes_total", "Bytes sent by the endpoints of a network (drops excluded).", "network")

	descFlood = counterDesc("mvlan_flood_packets_total",
		"Broadcast and multicast frames of a network on its parent, by VLAN, kind and direction (rx, tx).",
		"network", "vlan", "kind", "direction")
	descHairpinPackets = counterDesc("mvlan_hairpin_packets_total",
		"Frames from the wire whose source IP is a local endpoint's but whose source MAC is not (routed back).", "network", "vlan")
	descHairpinBytes = counterDesc("mvlan_hairpin_bytes_total",
		"Bytes of frames from the wire whose source IP is a local endpoint's but whose source MAC is not (routed back).", "network", "vlan")
	descEastWestPackets = counterDesc("mvlan_eastwest_packets_total",
		"Frames between two local endpoints of a network, seen on the parent.", "network", "vlan")
	descEastWestBytes = counterDesc("mvlan_eastwest_bytes_total",
		"Bytes of frames between two local endpoints of a network, seen on the parent.", "network", "vlan")
	descDrops = counterDesc("mvlan_policy_drops_total",
		"Frames dropped by the datapath's policy, by network and reason (mac_spoof, ip_spoof, arp_spoof, nd_spoof, cross_network, ra_guard, dhcp_guard, unparsable).",
		"network", "reason")
	descMapFull = counterDesc("mvlan_datapath_map_full_total",
		"Inserts into a BPF map refused because it was full: a lost count (counter maps) or a refused entry (tables).", "map")
	descMalformed = counterDesc("mvlan_malformed_packets_total",
		"Truncated or unparsable frames seen by a program (passed, not dropped).", "program")
	descAttach = prometheus.NewDesc("mvlan_attach_info",
		"A BPF program attached by the agent; link is a host link, or ENDPOINT/IFNAME inside a container; always 1.",
		[]string{"link", "hook", "mode"}, nil)
	descScrapeError = prometheus.NewDesc("mvlan_datapath_scrape_error",
		"1 if the last read of the datapath counters failed (see the agent log), else 0.", nil, nil)
)

// datapathCollector exports the datapath counters at scrape time: one
// read of the counter maps and one link listing per scrape (engine.Engine.Stats).
type datapathCollector struct{ a *Agent }

func (c *datapathCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVLANRxPackets, descVLANRxBytes, descVLANTxPackets, descVLANTxBytes,
		descNetRxPackets, descNetRxBytes, descNetTxPackets, descNetTxBytes, descFlood, descHairpinPackets,
		descHairpinBytes, descEastWestPackets, descEastWestBytes, descDrops, descMapFull, descMalformed, descAttach, descScrapeError} {
		ch <- d
	}
}

func (c *datapathCollector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.a.eng.Stats()
	if err != nil {
		c.a.log.Warn("metrics: datapath counters not exported", "err", err)
		ch <- prometheus.MustNewConstMetric(descScrapeError, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(descScrapeError, prometheus.GaugeValue, 0)
	for _, v := range s.VLANs {
		vid := strconv.Itoa(int(v.VLAN))
		emitTraffic(ch, v.Traffic, [4]*prometheus.Desc{descVLANRxPackets, descVLANRxBytes, descVLANTxPackets, descVLANTxBytes}, v.Parent, vid)
	}
	for _, n := range s.Networks {
		collectNetwork(ch, n)
	}
	for prog, cnt := range s.Malformed {
		ch <- counter(descMalformed, cnt.Packets, prog)
	}
	for m, n := range s.MapFull {
		ch <- counter(descMapFull, n, m)
	}
	for _, at := range s.Attachments {
		ch <- prometheus.MustNewConstMetric(descAttach, prometheus.GaugeValue, 1, at.Link, at.Hook, at.Mode)
	}
}

func collectNetwork(ch chan<- prometheus.Metric, n api.NetworkStats) {
	emitTraffic(ch, n.Traffic, [4]*prometheus.Desc{descNetRxPackets, descNetRxBytes, descNetTxPackets, descNetTxBytes}, n.Network)
	for reason, cnt := range n.Drops {
		ch <- counter(descDrops, cnt.Packets, n.Network, reason)
	}
	for _, f := range n.Flood {
		ch <- counter(descFlood, f.Packets, n.Network, strconv.Itoa(int(f.VLAN)), f.Kind, f.Direction)
	}
	emitVLANCounts(ch, n.Network, n.Hairpin, descHairpinPackets, descHairpinBytes)
	emitVLANCounts(ch, n.Network, n.EastWest, descEastWestPackets, descEastWestBytes)
}

// emitTraffic sends rx packets, rx bytes, tx packets, tx bytes to descs.
func emitTraffic(ch chan<- prometheus.Metric, t api.Traffic, descs [4]*prometheus.Desc, labels ...string) {
	ch <- counter(descs[0], t.Rx.Packets, labels...)
	ch <- counter(descs[1], t.Rx.Bytes, labels...)
	ch <- counter(descs[2], t.Tx.Packets, labels...)
	ch <- counter(descs[3], t.Tx.Bytes, labels...)
}

func emitVLANCounts(ch chan<- prometheus.Metric, network string, vs []api.VLANCount, packets, bytes *prometheus.Desc) {
	for _, v := range vs {
		vid := strconv.Itoa(int(v.VLAN))
		ch <- counter(packets, v.Packets, network, vid)
		ch <- counter(bytes, v.Bytes, network, vid)
	}
}

func counter(d *prometheus.Desc, v uint64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}
