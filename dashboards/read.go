package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// File is a dashboard file read back: what the tests check and ask
// Prometheus. Rows are in Panels too, with their own panels inside.
type File struct {
	Name      string     `json:"-"`
	UID       string     `json:"uid"`
	Title     string     `json:"title"`
	Schema    int        `json:"schemaVersion"`
	Panels    []Panel    `json:"panels"`
	Templates templating `json:"templating"`
}

type templating struct {
	List []Variable `json:"list"`
}

// Panel is a panel or a row of a dashboard.
type Panel struct {
	ID         int      `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	Datasource *Ref     `json:"datasource"`
	Targets    []Target `json:"targets"`
	Panels     []Panel  `json:"panels"`
}

// Target is one query of a panel.
type Target struct {
	Datasource *Ref   `json:"datasource"`
	RefID      string `json:"refId"`
	Expr       string `json:"expr"`
	Legend     string `json:"legendFormat"`
	Instant    bool   `json:"instant"`
}

// Ref names a data source.
type Ref struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is a template variable. Query is a string, or an object with a
// "query" member (Grafana writes both).
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *Ref            `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

// QueryText is the variable's query.
func (v Variable) QueryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

// Variables are the dashboard's template variables.
func (f File) Variables() []Variable { return f.Templates.List }

// Leaves are the panels that are not rows, including those inside rows.
func (f File) Leaves() []Panel {
	var out []Panel
	for _, p := range f.Panels {
		if p.Type != "row" {
			out = append(out, p)
		}
		out = append(out, p.Panels...)
	}
	return out
}

// Read decodes dashboard file name.
func Read(name string, data []byte) (File, error) {
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return File{}, fmt.Errorf("dashboard %s: %w", name, err)
	}
	f.Name = name
	return f, nil
}

// ReadDir reads every mvlan-*.json file of dir, sorted by name.
func ReadDir(dir string) ([]File, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "mvlan-*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no mvlan-*.json dashboard in %s", dir)
	}
	slices.Sort(paths)
	out := make([]File, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		f, err := Read(filepath.Base(p), b)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

var (
	quoted    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	ranges    = regexp.MustCompile(`\[[^\]]*\]`)
	ident     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	varRef    = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)
	labelVals = regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`)
)

// MetricNames are the metric names a query of mvlan's dashboards or rules
// reads: names starting with mvlan_, recorded names (level:metric:op) and
// up. (Not a PromQL parser: it relies on every mvlan name having one of
// these shapes; label values and range durations are skipped.)
func MetricNames(expr string) []string {
	var out []string
	for _, id := range ident.FindAllString(ranges.ReplaceAllString(quoted.ReplaceAllString(expr, `""`), ""), -1) {
		if strings.HasPrefix(id, "mvlan_") || strings.Contains(id, ":") || id == "up" {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out
}

// VariableRefs are the names of the variables expr uses ($x or ${x}).
func VariableRefs(expr string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1]+m[2])
	}
	return out
}

// Expand replaces $x and ${x} by values[x]; unknown names stay.
func Expand(expr string, values map[string]string) string {
	return varRef.ReplaceAllStringFunc(expr, func(m string) string {
		name := strings.Trim(m, "${}")
		if v, ok := values[name]; ok {
			return v
		}
		return m
	})
}

// LabelValues splits a variable query label_values(SELECTOR, LABEL).
func LabelValues(query string) (selector, label string, ok bool) {
	m := labelVals.FindStringSubmatch(strings.TrimSpace(query))
	if m == nil {
		return "", "", false
	}
	return strings.TrimSpace(m[1]), m[2], true
}
