package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// query is one PromQL query of a panel and its legend.
type query struct {
	expr, legend string
	instant      bool // one value per series (bar gauges, tables), not a graph
}

func q(expr, legend string) query { return query{expr: expr, legend: legend} }

func instant(expr, legend string) query { return query{expr: expr, legend: legend, instant: true} }

// targets are the queries as Prometheus data queries, refIds A, B, ...
func targets(qs []query) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(qs))
	for i, x := range qs {
		b := prometheus.NewDataqueryBuilder().
			Datasource(ds()).
			RefId(string(rune('A' + i))).
			Expr(x.expr).
			LegendFormat(x.legend)
		if x.instant {
			b = b.Instant()
		} else {
			b = b.Range()
		}
		out = append(out, b)
	}
	return out
}

// Units (Grafana's names).
const (
	unitPPS     = "pps"
	unitBPS     = "bps"
	unitPercent = "percentunit"
	unitSeconds = "s"
	unitNone    = "none"
	unitCPS     = "cps" // events per second
)

// graph is a time series panel, half the width: a table legend with
// mean and max, every series in the tooltip; stacked areas if stack.
func graph(title, description, unit string, stack bool, qs ...query) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(ds()).
		Targets(targets(qs)).
		Unit(unit).
		Min(0).
		Span(12).
		Height(8).
		FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			Calcs([]string{"mean", "max", "lastNotNull"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
	if stack {
		p = p.FillOpacity(40).Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
	}
	return p
}

// single is a stat panel showing the last value of each series.
func single(title, description, unit string, qs ...query) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(ds()).
		Targets(targets(qs)).
		Unit(unit).
		Span(6).
		Height(5).
		ColorMode(common.BigValueColorModeBackground).
		GraphMode(common.BigValueGraphModeNone).
		Orientation(common.VizOrientationAuto).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
}

// bars is a horizontal bar gauge of the last value of each series.
func bars(title, description, unit string, qs ...query) *bargauge.PanelBuilder {
	return bargauge.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(ds()).
		Targets(targets(qs)).
		Unit(unit).
		Span(12).
		Height(8).
		Min(0).
		Orientation(common.VizOrientationHorizontal).
		DisplayMode(common.BarGaugeDisplayModeGradient).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
}

// infoTable is a table of the labels of instant series (an info metric).
func infoTable(title, description string, columns []string, qs ...query) *table.PanelBuilder {
	keep := map[string]any{}
	for i, c := range columns {
		keep[c] = i
	}
	return table.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(ds()).
		Targets(targets(qs)).
		Span(12).
		Height(5).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"})).
		WithTransformation(dashboard.DataTransformerConfig{Id: "labelsToFields", Options: map[string]any{}}).
		WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
			"includeByName": map[string]bool{},
			"indexByName":   keep,
			"excludeByName": map[string]bool{"Time": true, "Value": true, "__name__": true, "job": true},
		}})
}

// steps are absolute thresholds: base colour, then (value, colour) pairs.
func steps(base string, more ...any) *dashboard.ThresholdsConfigBuilder {
	s := []dashboard.Threshold{{Color: base}}
	for i := 0; i+1 < len(more); i += 2 {
		v := more[i].(float64)
		s = append(s, dashboard.Threshold{Value: &v, Color: more[i+1].(string)})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(s)
}

// fillSteps colour an address pool: orange from 80%, red from 90%
// (the MvlanIPAMPoolNearlyFull alert).
func fillSteps() *dashboard.ThresholdsConfigBuilder {
	return steps("green", 0.8, "orange", 0.9, "red")
}

// upDown maps 1 and 0 to words.
func upDown(one, zero string) []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"1": {Text: cog.ToPtr(one)},
			"0": {Text: cog.ToPtr(zero)},
		},
	}}}
}

// thresholdLine draws a graph's thresholds as dashed lines.
func thresholdLine() *common.GraphThresholdsStyleConfigBuilder {
	return common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed)
}
