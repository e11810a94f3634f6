package api

import (
	"context"
	"time"
)

// Stats is the answer of GET /v1/stats: every datapath counter, with the
// names an operator knows instead of the datapath's numbers. Values are
// absolute (since the counter maps were created; they survive agent
// restarts), the same values /metrics exports.
type Stats struct {
	Time     time.Time      `json:"time"`
	VLANs    []VLANStats    `json:"vlans"`
	Networks []NetworkStats `json:"networks"`
	// Malformed counts truncated or unparsable frames by program (a
	// container's are also dropped as unparsable or vlan_tag; others pass).
	Malformed   map[string]Count `json:"malformed"`
	Attachments []Attachment     `json:"attachments"`
	// MapFull counts, by BPF map, inserts refused because the map was
	// full (a lost count, or a refused table entry); every map is listed.
	MapFull map[string]uint64 `json:"map_full"`
	// Tamper counts, by reason, what the agent found done to endpoints'
	// programs and links since it started (detached, foreign_first,
	// late_filter, nested_link, mac_changed, mode_changed); Reattach, by
	// the same
	// reasons, what it repaired.
	Tamper   map[string]uint64 `json:"tamper"`
	Reattach map[string]uint64 `json:"reattach"`
	// NoEndpoint counts frames the endpoint programs dropped on a link
	// whose endpoint was not in the table (of no network): a link that
	// outlived its entry, or an entry a full table refused.
	NoEndpoint Count `json:"no_endpoint"`
}

// Count is a packet and byte count.
type Count struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Traffic is a count per direction: rx is into the link or endpoint, tx
// out of it.
type Traffic struct {
	Rx Count `json:"rx"`
	Tx Count `json:"tx"`
}

// VLANStats is the traffic of one VLAN on a parent or trunk link (VLAN 0:
// untagged on a link that is not a VLAN sub-interface).
type VLANStats struct {
	Parent string `json:"parent"`
	VLAN   uint16 `json:"vlan"`
	Traffic
}

// NetworkStats is what the datapath counted for one network: the traffic
// of its endpoints, its policy drops by reason (mac_spoof, ip_spoof,
// arp_spoof, nd_spoof, cross_network), and the broadcast/multicast,
// hairpin and east-west frames seen on its parent.
type NetworkStats struct {
	Network string `json:"network"`
	Traffic
	Drops    map[string]Count `json:"drops"`
	Flood    []FloodStats     `json:"flood"`
	Hairpin  []VLANCount      `json:"hairpin"`
	EastWest []VLANCount      `json:"east_west"`
	// HostShim is the traffic of the network's host shim link as the
	// kernel counts it (rx: to the host); nil without a shim. The
	// datapath counts the shim's frames in Traffic too (it is an
	// endpoint of the network there).
	HostShim *Traffic `json:"host_shim,omitempty"`
}

// FloodStats counts broadcast or multicast frames of a network's VLAN in
// one direction (rx or tx) on its parent.
type FloodStats struct {
	VLAN      uint16 `json:"vlan"`
	Kind      string `json:"kind"`
	Direction string `json:"direction"`
	Count
}

// VLANCount is a count for one VLAN of a network.
type VLANCount struct {
	VLAN uint16 `json:"vlan"`
	Count
}

// Attachment is a BPF program the agent attached: Link is a host link's
// name for parent programs, "ENDPOINT/IFNAME" (e.g. "c1/eth0") for an
// endpoint's programs inside its container.
type Attachment struct {
	Link    string `json:"link"`
	Hook    string `json:"hook"`
	Program string `json:"program"`
	Mode    string `json:"mode"`
}

// DropTotal sums the drops of a network over reasons.
func (n NetworkStats) DropTotal() Count {
	return sumCounts(n.Drops)
}

// FloodTotal sums a network's flood counts.
func (n NetworkStats) FloodTotal() Count {
	var c Count
	for _, f := range n.Flood {
		c = c.Add(f.Count)
	}
	return c
}

// VLANTotal sums counts over VLANs.
func VLANTotal(vs []VLANCount) Count {
	var c Count
	for _, v := range vs {
		c = c.Add(v.Count)
	}
	return c
}

// Add returns c + o.
func (c Count) Add(o Count) Count {
	return Count{Packets: c.Packets + o.Packets, Bytes: c.Bytes + o.Bytes}
}

func sumCounts(m map[string]Count) Count {
	var c Count
	for _, v := range m {
		c = c.Add(v)
	}
	return c
}

// Stats reads the datapath counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := c.Do(ctx, "GET", "/v1/stats", nil, &s)
	return s, err
}
