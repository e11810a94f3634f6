package dashboards

//lint:file-ignore SA1019 the strict check decodes the v1 dashboard model on purpose (see build.go).

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// TestUpToDate: the committed JSON files are what the Go code renders
// (`make dashboards` regenerates them; CI's check-generate does too).
func TestUpToDate(t *testing.T) {
	files, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v (run make dashboards)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the Go code renders: run make dashboards and commit it", name)
		}
	}
}

// TestLint checks the committed files as Grafana will read them. What
// needs a real agent and Prometheus (every name exists in /metrics, every
// query returns data) is TestDashboardsPrometheus in cmd/mvlan.
func TestLint(t *testing.T) {
	files, err := ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	recorded := recordedNames(t)
	seenVars := map[string]bool{}
	for _, f := range files {
		t.Run(f.Name, func(t *testing.T) {
			raw, _ := os.ReadFile(f.Name)
			if !json.Valid(raw) {
				t.Fatalf("not valid JSON")
			}
			if err := strict(raw); err != nil {
				t.Errorf("not a dashboard of Grafana's schema (SDK strict decoding): %v", err)
			}
			if f.UID == "" || f.Title == "" || f.Schema < 39 {
				t.Errorf("uid %q, title %q, schemaVersion %d: want a uid, a title and the current schema (>= 39)", f.UID, f.Title, f.Schema)
			}
			vars := lintVariables(t, f)
			for v := range vars {
				seenVars[v] = true
			}
			lintPanels(t, f, vars, recorded)
		})
	}
	for _, v := range []string{"datasource", "instance", "parent", "vlan", "network"} {
		if !seenVars[v] {
			t.Errorf("no dashboard has the %s variable", v)
		}
	}
}

// strict decodes a dashboard with the Foundation SDK's schema types,
// refusing unknown fields, missing required ones and unknown panel types.
func strict(raw []byte) error {
	plugins.RegisterDefaultPlugins() // panel options and queries by type
	var d dashboard.Dashboard
	err := d.UnmarshalJSONStrict(raw)
	if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
		return nil // the SDK returns an empty list for success
	}
	return err
}

// lintVariables: the first variable is the Prometheus datasource; every
// other one is a label_values query on it that uses only variables
// defined before it. It returns the defined names.
func lintVariables(t *testing.T, f File) map[string]bool {
	t.Helper()
	vs := f.Variables()
	if len(vs) == 0 || vs[0].Name != "datasource" || vs[0].Type != "datasource" || vs[0].QueryText() != "prometheus" {
		t.Fatalf("first variable %+v: want datasource, of type datasource, for prometheus", vs)
	}
	defined := map[string]bool{"datasource": true}
	for _, v := range vs[1:] {
		if defined[v.Name] {
			t.Errorf("variable %s defined twice", v.Name)
		}
		if v.Type != "query" || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s: type %q, datasource %+v; want a query on ${datasource}", v.Name, v.Type, v.Datasource)
		}
		if _, _, ok := LabelValues(v.QueryText()); !ok {
			t.Errorf("variable %s: query %q is not label_values(SELECTOR, LABEL)", v.Name, v.QueryText())
		}
		for _, r := range VariableRefs(v.QueryText()) {
			if !defined[r] {
				t.Errorf("variable %s uses $%s, which is not defined before it", v.Name, r)
			}
		}
		defined[v.Name] = true
	}
	return defined
}

// lintPanels: unique ids (rows included), every panel and query on the
// datasource variable, refIds unique per panel, variables defined, names
// either mvlan_* (checked against an agent in cmd/mvlan), up, or recorded
// by the rules.
func lintPanels(t *testing.T, f File, vars, recorded map[string]bool) {
	t.Helper()
	ids := map[int]string{}
	all := slices.Clone(f.Panels)
	for _, p := range f.Panels {
		all = append(all, p.Panels...) // a collapsed row's
	}
	for _, p := range all {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel id %d used by %q and %q", p.ID, prev, p.Title)
		}
		ids[p.ID] = p.Title
	}
	for _, p := range f.Leaves() {
		if p.ID == 0 || p.Title == "" || len(p.Targets) == 0 {
			t.Errorf("panel %q (id %d): want an id, a title and a query", p.Title, p.ID)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v; want ${datasource}", p.Title, p.Datasource)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if q.Datasource == nil || q.Datasource.UID != "${datasource}" || q.RefID == "" || refs[q.RefID] || q.Expr == "" {
				t.Errorf("panel %q query %+v: want ${datasource}, a unique refId and an expression", p.Title, q)
			}
			refs[q.RefID] = true
			lintExpr(t, p.Title, q.Expr, vars, recorded)
			lintSingle(t, f, p.Title, q.Expr)
		}
	}
}

// lintSingle: a variable of one value (not multi) is matched with =, not
// =~: Grafana escapes a value for a regular expression in multi-value
// variables only (a network lan.50 would match lanX50 too).
func lintSingle(t *testing.T, f File, panel, expr string) {
	t.Helper()
	for _, v := range f.Variables() {
		if !v.Multi && v.Name != "datasource" && strings.Contains(expr, `=~"$`+v.Name+`"`) {
			t.Errorf("panel %q matches $%s (one value) as a regular expression: %s", panel, v.Name, expr)
		}
	}
}

func lintExpr(t *testing.T, panel, expr string, vars, recorded map[string]bool) {
	t.Helper()
	for _, r := range VariableRefs(expr) {
		if !vars[r] {
			t.Errorf("panel %q uses $%s, which the dashboard does not define", panel, r)
		}
	}
	names := MetricNames(expr)
	if len(names) == 0 {
		t.Errorf("panel %q reads no metric: %s", panel, expr)
	}
	for _, n := range names {
		if bytes.ContainsRune([]byte(n), ':') && !recorded[n] {
			t.Errorf("panel %q reads %s, which rules/mvlan.rules.yml does not record", panel, n)
		}
	}
}

var recordRE = regexp.MustCompile(`(?m)^\s*- record:\s*(\S+)\s*$`)

func recordedNames(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../rules/mvlan.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, r := range recordRE.FindAllSubmatch(b, -1) {
		m[string(r[1])] = true
	}
	if len(m) == 0 {
		t.Fatal("rules/mvlan.rules.yml records nothing")
	}
	return m
}

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`up{instance=~"$instance"} and on (instance, job) last_over_time(mvlan_build_info[1d])`, []string{"up", "mvlan_build_info"}},
		{`sum by (reason) (network_reason:mvlan_policy_drops:rate5m{network=~"mvlan_x"})`, []string{"network_reason:mvlan_policy_drops:rate5m"}},
		{`8 * sum(a:b:c{x="y"} + a:b:c)`, []string{"a:b:c"}},
		{`rate(node_cpu_seconds_total[5m:1m])`, nil},
	} {
		if got := MetricNames(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("MetricNames(%s) = %q; want %q", c.expr, got, c.want)
		}
	}
}

func TestExpandAndLabelValues(t *testing.T) {
	got := Expand(`x{a=~"$instance", b="${network}", c="$__rate_interval"}`, map[string]string{"instance": ".*", "network": "red"})
	if want := `x{a=~".*", b="red", c="$__rate_interval"}`; got != want {
		t.Errorf("Expand = %s; want %s", got, want)
	}
	for _, c := range []struct{ q, sel, label string }{
		{`label_values(mvlan_build_info, instance)`, "mvlan_build_info", "instance"},
		{` label_values(m{a=~"$x", b="1"}, vlan) `, `m{a=~"$x", b="1"}`, "vlan"},
		{`query_result(up)`, "", ""},
	} {
		sel, label, ok := LabelValues(c.q)
		if sel != c.sel || label != c.label || ok != (c.sel != "") {
			t.Errorf("LabelValues(%s) = %q, %q, %v; want %q, %q", c.q, sel, label, ok, c.sel, c.label)
		}
	}
}
