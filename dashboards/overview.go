package dashboards

//lint:file-ignore SA1019 the v1 dashboard model (schemaVersion 42) is what Grafana imports and provisions from files; v2 needs feature flags.

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// Selectors of the Overview dashboard.
const (
	selHost    = `instance=~"$instance"`
	selHostNet = `instance=~"$instance", network=~"$network"`
)

// overview: the agents' health, endpoints and networks per host, address
// pools, and what the datapath dropped.
func overview() *dashboard.DashboardBuilder {
	b := newBoard("mvlan-overview", "mvlan / Overview",
		"mvlan agents: health, endpoints and networks per host, address pools, datapath drops.").
		WithVariable(instanceVar()).
		WithVariable(networkVar(true))
	agentsRow(b)
	poolsRow(b)
	dropsRow(b)
	return b
}

// agentsRow adds the row "Agents".
func agentsRow(b *dashboard.DashboardBuilder) {
	b.
		WithRow(dashboard.NewRowBuilder("Agents")).
		WithPanel(single("Agents up",
			"1 when Prometheus scraped the agent's /metrics (up), for every host that has reported mvlan_build_info in the last day.",
			unitNone,
			instant(`up{`+selHost+`} and on (instance, job) last_over_time(mvlan_build_info[1d])`, "{{instance}}")).
			Mappings(upDown("up", "down")).
			Thresholds(steps("red", 1.0, "green")).
			Span(8)).
		WithPanel(single("Datapath scrape errors",
			"1 when the agent could not read its BPF counter maps at the last scrape (its log says why): the datapath series are missing meanwhile.",
			unitNone,
			instant(`mvlan_datapath_scrape_error{`+selHost+`}`, "{{instance}}")).
			Mappings(upDown("error", "ok")).
			Thresholds(steps("green", 1.0, "red")).
			Span(8)).
		WithPanel(single("Programs attached",
			"BPF programs the agent has attached, by mode (tcx or tc: clsact + cls_bpf): two per parent link and two per endpoint.",
			unitNone,
			instant(`count by (instance, mode) (mvlan_attach_info{`+selHost+`})`, "{{instance}} {{mode}}")).
			ColorMode("value").
			Span(8)).
		WithPanel(infoTable("Agent builds", "mvlan_build_info of each agent.",
			[]string{"instance", "version", "revision", "goversion"},
			instant(`mvlan_build_info{`+selHost+`}`, "")).
			Span(8).
			Height(8)).
		WithPanel(graph("Map full",
			"Inserts a full BPF map refused, per second, by map: a lost count (vlan_stats, drop_stats) or a refused network or endpoint entry (the agent's tables). Any raises MvlanCountsLost.",
			unitCPS, false,
			q(`sum by (instance, map) (map:mvlan_datapath_map_full:rate5m{`+selHost+`})`, "{{instance}} {{map}}")).
			Span(8)).
		WithPanel(graph("Reconcile duration",
			"How long the last reconcile of state and kernel took (at start, and after a parent link comes back).",
			unitSeconds, false,
			q(`mvlan_reconcile_duration_seconds{`+selHost+`}`, "{{instance}}")).
			Span(8)).
		WithPanel(graph("Tampers and repairs",
			"Tampers with containers' links the agent found in the last 10 minutes (a program detached, a foreign program first, a link of the container's own on the parent, a changed MAC or macvlan mode, a filter of its own after mvlan's), and those it repaired, by reason. Any tamper raises MvlanEndpointTampered, any repair MvlanProgramsReattached.",
			unitNone, false,
			q(`sum by (instance, reason) (increase(mvlan_datapath_tamper_total{`+selHost+`}[10m]))`, "{{instance}} tampered {{reason}}"),
			q(`sum by (instance, reason) (increase(mvlan_datapath_reattach_total{`+selHost+`}[10m]))`, "{{instance}} repaired {{reason}}")).
			Span(12)).
		WithPanel(graph("Drift findings",
			"Disagreements between state, kernel and IPAM the agent's drift check reports (mvlan doctor lists them), by kind. Any for 5 minutes raises MvlanDriftReported.",
			unitNone, false,
			q(`mvlan_drift{`+selHost+`}`, "{{instance}} {{kind}}")).
			Span(12))
}

// poolsRow adds the row "Endpoints and address pools".
func poolsRow(b *dashboard.DashboardBuilder) {
	b.
		WithRow(dashboard.NewRowBuilder("Endpoints and address pools")).
		WithPanel(graph("Endpoints per host", "Containers attached to mvlan networks, per host.", unitNone, true,
			q(`sum by (instance) (mvlan_endpoints{`+selHostNet+`})`, "{{instance}}"))).
		WithPanel(graph("Networks per host", "Networks the agent has, per host.", unitNone, false,
			q(`count by (instance) (mvlan_endpoints{`+selHostNet+`})`, "{{instance}}"))).
		WithPanel(bars("Address pool fill per subnet",
			"Share of each subnet's assignable addresses (gateway and aux addresses excluded) held by endpoints. Orange from 80%, red from 90% (alert MvlanIPAMPoolNearlyFull).",
			unitPercent,
			instant(`network_subnet:mvlan_ipam_addresses_used:ratio{`+selHostNet+`}`, "{{instance}} {{network}} {{subnet}}")).
			Max(1).
			Thresholds(fillSteps()).
			Span(24))
}

// dropsRow adds the row "Datapath drops".
func dropsRow(b *dashboard.DashboardBuilder) {
	b.
		WithRow(dashboard.NewRowBuilder("Datapath drops")).
		WithPanel(graph("Policy drops by reason",
			"Frames the endpoint programs dropped, per second, by reason: a source MAC, address, ARP sender or ND target not the container's own (*_spoof), a frame for another network (cross_network), a router advertisement or DHCP server reply the container may not send (ra_guard, dhcp_guard), a DHCP request, release or decline in another client's name (dhcp_guard), a frame too odd to check (unparsable), a router advertisement from the wire on a network that ignores them (ra_ignore) or from another router than its ipv6_ra_source (ra_source), a container's frame through the host shim to an address not the shim's, which the host would route (host_route), a unicast for another MAC than the receiving container's (foreign_dst: its link switched to macvlan source mode to copy a neighbour's frames). *_spoof also counts a host on the wire claiming a container's address, and a link on the parent not the host's (a container's nested link) claiming a gateway. Any drop but ra_ignore and ra_source raises MvlanSpoofingDetected; ra_source raises MvlanRogueRouterAdvertisement.",
			unitPPS, true,
			q(`sum by (reason) (network_reason:mvlan_policy_drops:rate5m{`+selHostNet+`})`, "{{reason}}"))).
		WithPanel(graph("Policy drops by network",
			"The same drops per host, network and reason.",
			unitPPS, true,
			q(`sum by (instance, network, reason) (network_reason:mvlan_policy_drops:rate5m{`+selHostNet+`}) > 0`, "{{instance}} {{network}} {{reason}}"))).
		WithPanel(graph("Malformed frames by program",
			"Truncated or unparsable frames each program saw (a container's are also dropped, under policy drops; others pass), per second.",
			unitPPS, true,
			q(`sum by (program) (program:mvlan_malformed_packets:rate5m{`+selHost+`})`, "{{program}}")).
			Span(24))
}
