package dashboards

//lint:file-ignore SA1019 the v1 dashboard model (schemaVersion 42) is what Grafana imports and provisions from files; v2 needs feature flags.

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// network: one network across the hosts that have it: endpoints,
// traffic, drops, flood, address pools.
func network() *dashboard.DashboardBuilder {
	// One network, matched exactly: Grafana escapes a single value for a
	// regular expression only in multi-value variables (lan.50 would
	// match lanX50).
	const n = `instance=~"$instance", network="$network"`
	return newBoard("mvlan-network", "mvlan / Network",
		"One network across hosts: its endpoints, traffic, drops by reason, flood and address pools.").
		WithVariable(instanceVar()).
		WithVariable(networkVar(false)).
		WithRow(dashboard.NewRowBuilder("Endpoints and addresses")).
		WithPanel(single("Endpoints", "Containers attached to the network, per host.", unitNone,
			instant(`sum by (instance) (mvlan_endpoints{`+n+`})`, "{{instance}}")).
			ColorMode("value").
			Span(8)).
		WithPanel(single("Free addresses", "Addresses left for allocation in each subnet (gateway and aux addresses excluded); on a cluster network, in the blocks each host holds (a host takes another block when they run out).", unitNone,
			instant(`mvlan_ipam_addresses{`+n+`, state="free"}`, "{{instance}} {{subnet}}")).
			Thresholds(steps("red", 1.0, "green")).
			Span(8)).
		WithPanel(bars("Address pool fill", "Share of each subnet's assignable addresses held by endpoints (not shown for cluster networks, whose hosts each count only their own blocks).", unitPercent,
			instant(`network_subnet:mvlan_ipam_addresses_used:ratio{`+n+`}`, "{{instance}} {{subnet}}")).
			Max(1).
			Thresholds(fillSteps()).
			Span(8).
			Height(5)).
		WithRow(dashboard.NewRowBuilder("Traffic")).
		WithPanel(graph("Packets/s of the endpoints", "Frames received and sent by the network's containers (drops excluded).", unitPPS, false,
			q(`sum by (instance) (network:mvlan_network_rx_packets:rate5m{`+n+`})`, "{{instance}} received"),
			q(`sum by (instance) (network:mvlan_network_tx_packets:rate5m{`+n+`})`, "{{instance}} sent"))).
		WithPanel(graph("Bits/s of the endpoints", "Bits received and sent by the network's containers (drops excluded).", unitBPS, false,
			q(`8 * sum by (instance) (network:mvlan_network_rx_bytes:rate5m{`+n+`})`, "{{instance}} received"),
			q(`8 * sum by (instance) (network:mvlan_network_tx_bytes:rate5m{`+n+`})`, "{{instance}} sent"))).
		WithPanel(graph("Drops by reason", "Frames of the network's containers the datapath dropped, by reason (see the Overview).", unitPPS, true,
			q(`sum by (instance, reason) (network_reason:mvlan_policy_drops:rate5m{`+n+`})`, "{{instance}} {{reason}}"))).
		WithPanel(graph("Flood", "Broadcast and multicast frames on the network's parent: rx from the wire, tx from its containers.", unitPPS, true,
			q(`sum by (instance, kind, direction) (network_vlan_kind_direction:mvlan_flood_packets:rate5m{`+n+`})`, "{{instance}} {{kind}} {{direction}}"))).
		WithPanel(graph("Hairpin and east-west", "Frames routed back to the network from the wire (hairpin), and frames between its local containers (east-west).", unitPPS, false,
			q(`sum by (instance) (network_vlan:mvlan_hairpin_packets:rate5m{`+n+`})`, "{{instance}} hairpin"),
			q(`sum by (instance) (network_vlan:mvlan_eastwest_packets:rate5m{`+n+`})`, "{{instance}} east-west")).
			Span(12)).
		WithPanel(graph("Host shim", "The host's own traffic with the network's containers through its shim link (-o host_shim), as the kernel counts it: received by the host, sent by the host. Empty without a shim.", unitPPS, false,
			q(`sum by (instance) (network:mvlan_host_shim_rx_packets:rate5m{`+n+`})`, "{{instance}} received by the host"),
			q(`sum by (instance) (network:mvlan_host_shim_tx_packets:rate5m{`+n+`})`, "{{instance}} sent by the host")).
			Span(12))
}
