package dashboards

//lint:file-ignore SA1019 the v1 dashboard model (schemaVersion 42) is what Grafana imports and provisions from files; v2 needs feature flags.

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// Selectors of the VLANs dashboard.
const (
	selVLAN  = `instance=~"$instance", parent=~"$parent", vlan=~"$vlan"`
	selFlood = `instance=~"$instance", network=~"$network", vlan=~"$vlan"`
	perVLAN  = "sum by (instance, parent, vlan) "
	legend   = "{{instance}} {{parent}} VLAN {{vlan}}"
	both     = "A frame of a tagged VLAN is counted on the trunk and on its sub-interface: pick one with the parent variable before adding them up."
)

// vlans: traffic per parent link and VLAN, flood, hairpin and east-west.
func vlans() *dashboard.DashboardBuilder {
	b := newBoard("mvlan-vlans", "mvlan / VLANs",
		"Traffic per parent link and VLAN (0: untagged), broadcast and multicast flood, hairpin and east-west traffic.").
		WithVariable(instanceVar()).
		WithVariable(parentVar()).
		WithVariable(vlanVar()).
		WithVariable(networkVar(true))
	trafficRow(b)
	floodRow(b)
	localRow(b)
	return b
}

// trafficRow adds the row "Traffic per VLAN".
func trafficRow(b *dashboard.DashboardBuilder) {
	b.
		WithRow(dashboard.NewRowBuilder("Traffic per VLAN")).
		WithPanel(graph("Received packets/s per VLAN", "Frames received on each parent or trunk link, per VLAN. "+both, unitPPS, true,
			q(perVLAN+`(parent_vlan:mvlan_vlan_rx_packets:rate5m{`+selVLAN+`})`, legend))).
		WithPanel(graph("Sent packets/s per VLAN", "Frames sent on each parent or trunk link, per VLAN. "+both, unitPPS, true,
			q(perVLAN+`(parent_vlan:mvlan_vlan_tx_packets:rate5m{`+selVLAN+`})`, legend))).
		WithPanel(graph("Received bits/s per VLAN", "Bits received on each parent or trunk link, per VLAN. "+both, unitBPS, true,
			q(`8 * `+perVLAN+`(parent_vlan:mvlan_vlan_rx_bytes:rate5m{`+selVLAN+`})`, legend))).
		WithPanel(graph("Sent bits/s per VLAN", "Bits sent on each parent or trunk link, per VLAN. "+both, unitBPS, true,
			q(`8 * `+perVLAN+`(parent_vlan:mvlan_vlan_tx_bytes:rate5m{`+selVLAN+`})`, legend))).
		WithPanel(bars("Top 10 VLANs by packets/s", "The ten busiest parent link and VLAN pairs, frames received and sent.", unitPPS,
			instant(`topk(10, `+perVLAN+`(parent_vlan:mvlan_vlan_rx_packets:rate5m{`+selVLAN+`} + parent_vlan:mvlan_vlan_tx_packets:rate5m{`+selVLAN+`}))`, legend))).
		WithPanel(bars("Top 10 VLANs by bits/s", "The ten busiest parent link and VLAN pairs, bits received and sent.", unitBPS,
			instant(`topk(10, 8 * `+perVLAN+`(parent_vlan:mvlan_vlan_rx_bytes:rate5m{`+selVLAN+`} + parent_vlan:mvlan_vlan_tx_bytes:rate5m{`+selVLAN+`}))`, legend)))
}

// floodRow adds the row "Flood".
func floodRow(b *dashboard.DashboardBuilder) {
	b.
		WithRow(dashboard.NewRowBuilder("Flood")).
		WithPanel(graph("Flood by kind and direction",
			"Broadcast and multicast frames on each network's parent, per second: rx came from the wire, tx from the network's containers.",
			unitPPS, true,
			q(`sum by (instance, network, vlan, kind, direction) (network_vlan_kind_direction:mvlan_flood_packets:rate5m{`+selFlood+`})`,
				"{{instance}} {{network}} VLAN {{vlan}} {{kind}} {{direction}}"))).
		WithPanel(graph("Flood ratio per VLAN",
			"Share of a VLAN's frames on a host that are broadcast or multicast. MvlanFloodStorm fires above 50% with more than 1000 flood frames/s for 5 minutes.",
			unitPercent, false,
			q(`vlan:mvlan_flood_ratio:rate5m{instance=~"$instance", vlan=~"$vlan"}`, "{{instance}} VLAN {{vlan}}")).
			Max(1).
			Thresholds(steps("green", 0.5, "red")).
			ThresholdsStyle(thresholdLine()))
}

// localRow adds the row "Hairpin and east-west".
func localRow(b *dashboard.DashboardBuilder) {
	b.
		WithRow(dashboard.NewRowBuilder("Hairpin and east-west")).
		WithPanel(graph("Hairpin packets/s per network",
			"Frames from the wire whose source address is a local endpoint's but whose source MAC is not: traffic between local containers that went out to a router and came back.",
			unitPPS, true,
			q(`sum by (instance, network, vlan) (network_vlan:mvlan_hairpin_packets:rate5m{`+selFlood+`})`, "{{instance}} {{network}} VLAN {{vlan}}"))).
		WithPanel(graph("East-west packets/s per network",
			"Frames between two local endpoints of the same network, seen on the parent (macvlan bridge mode).",
			unitPPS, true,
			q(`sum by (instance, network, vlan) (network_vlan:mvlan_eastwest_packets:rate5m{`+selFlood+`})`, "{{instance}} {{network}} VLAN {{vlan}}")))
}
