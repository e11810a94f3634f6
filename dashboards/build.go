package dashboards

//lint:file-ignore SA1019 the v1 dashboard model (schemaVersion 42) is what Grafana imports and provisions from files; v2 needs feature flags.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Tag is on every mvlan dashboard; their links to each other use it.
const Tag = "mvlan"

// builders are the dashboards by file name.
var builders = map[string]func() *dashboard.DashboardBuilder{
	"mvlan-overview.json": overview,
	"mvlan-vlans.json":    vlans,
	"mvlan-network.json":  network,
}

// Render returns every dashboard's JSON by file name.
func Render() (map[string][]byte, error) {
	out := make(map[string][]byte, len(builders))
	for name, build := range builders {
		d, err := build().Build()
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		numberPanels(&d)
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", name, err)
		}
		out[name] = append(b, '\n')
	}
	return out, nil
}

// Write renders the dashboards into dir, replacing files that differ.
func Write(dir string) error {
	files, err := Render()
	if err != nil {
		return err
	}
	for name, b := range files {
		path := filepath.Join(dir, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
			continue
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// numberPanels gives rows and panels ids 1, 2, ... in layout order.
func numberPanels(d *dashboard.Dashboard) {
	id := uint32(0)
	next := func() *uint32 { id++; v := id; return &v }
	for _, p := range d.Panels {
		switch {
		case p.Panel != nil:
			p.Panel.Id = next()
		case p.RowPanel != nil:
			p.RowPanel.Id = *next()
			for i := range p.RowPanel.Panels {
				p.RowPanel.Panels[i].Id = next()
			}
		}
	}
}

// newBoard starts a dashboard with mvlan's defaults: the datasource
// variable first, links to the other mvlan dashboards, the last hour.
func newBoard(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{Tag}).
		Editable().
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Link(dashboard.NewDashboardLinkBuilder("mvlan").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{Tag}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true)).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
			Label("Data source").
			Type("prometheus"))
}

// ds is the datasource of every panel and variable: the dashboard's
// datasource variable.
func ds() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
}

// Variable queries. Each narrows by the variables before it.
const (
	instanceQuery = `label_values(mvlan_build_info, instance)`
	parentQuery   = `label_values(mvlan_vlan_rx_packets_total{instance=~"$instance"}, parent)`
	vlanQuery     = `label_values(mvlan_vlan_rx_packets_total{instance=~"$instance", parent=~"$parent"}, vlan)`
	networkQuery  = `label_values(mvlan_endpoints{instance=~"$instance"}, network)`
)

// queryVar is a variable filled by a label_values query; with all, it
// offers "All" (matching everything) and several values at once.
func queryVar(name, label, query string, all bool, sort dashboard.VariableSort) *dashboard.QueryVariableBuilder {
	v := dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(ds()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(sort)
	if all {
		v = v.Multi(true).IncludeAll(true).AllValue(".*")
	}
	return v
}

func instanceVar() *dashboard.QueryVariableBuilder {
	return queryVar("instance", "Host", instanceQuery, true, dashboard.VariableSortAlphabeticalAsc)
}

func parentVar() *dashboard.QueryVariableBuilder {
	return queryVar("parent", "Parent link", parentQuery, true, dashboard.VariableSortAlphabeticalAsc)
}

func vlanVar() *dashboard.QueryVariableBuilder {
	return queryVar("vlan", "VLAN", vlanQuery, true, dashboard.VariableSortNumericalAsc)
}

func networkVar(all bool) *dashboard.QueryVariableBuilder {
	return queryVar("network", "Network", networkQuery, all, dashboard.VariableSortAlphabeticalAsc)
}
