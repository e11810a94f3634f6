package format

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

type net struct {
	Name   string
	ID     string
	Labels map[string]string
	Config []pool
}

type pool struct{ Subnet, Gateway string }

var nets = []net{
	{Name: "pub_net", ID: "0123456789abcdef", Labels: map[string]string{"env": "lab"},
		Config: []pool{{"172.16.86.0/24", "172.16.86.1"}, {"fd11::/64", "fd11::1"}}},
	{Name: "mcv0", ID: "fedcba9876543210", Config: []pool{{"192.168.136.0/24", "192.168.136.1"}}},
}

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		format string
		items  []net
		want   string
	}{
		{"json", nil, "[]\n"},
		{"json", nets[1:], `[
    {
        "Name": "mcv0",
        "ID": "fedcba9876543210",
        "Labels": null,
        "Config": [
            {
                "Subnet": "192.168.136.0/24",
                "Gateway": "192.168.136.1"
            }
        ]
    }
]
`},
		{"{{.Name}}", nets, "pub_net\nmcv0\n"},
		{"{{.Name}}", nil, ""},
		{`{{.Name}}\t{{len .Config}}`, nets, "pub_net\t2\nmcv0\t1\n"},
		{"{{json .Config}}", nets[1:], `[{"Subnet":"192.168.136.0/24","Gateway":"192.168.136.1"}]` + "\n"},
		{"{{json .Labels}}", nets, `{"env":"lab"}` + "\nnull\n"},
		{"{{upper .Name}} {{lower \"AB\"}} {{title \"pub net\"}}", nets[:1], "PUB_NET ab Pub Net\n"},
		{`{{join (split "a,b,c" ",") "+"}}`, nets[:1], "a+b+c\n"},
		{"{{range .Config}}{{println .Subnet}}{{end}}", nets[:1], "172.16.86.0/24\nfd11::/64\n\n"},
		{"[{{pad .Name 1 2}}] {{truncate .ID 12}}", nets[:1], "[ pub_net  ] 0123456789ab\n"},
		{"{{index .Labels \"env\"}}", nets[:1], "lab\n"},
		{`table {{.ID}}\t{{.Name}}`, nets, "NETWORK ID         NAME\n0123456789abcdef   pub_net\nfedcba9876543210   mcv0\n"},
		{`table {{.Name}}\t{{len .Config}} subnets\t{{json .Labels}}`, nets, "NAME      CONFIG      LABELS\npub_net   2 subnets   {\"env\":\"lab\"}\nmcv0      1 subnets   null\n"},
		{`table {{.Name}}`, nil, "NAME\n"},
	} {
		f, err := Parse(tc.format)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.format, err)
			continue
		}
		var b bytes.Buffer
		if err := Write(&b, f, tc.items, map[string]string{"ID": "NETWORK ID"}); err != nil {
			t.Errorf("%q: %v", tc.format, err)
			continue
		}
		if b.String() != tc.want {
			t.Errorf("%q printed\n%s\nwant\n%s", tc.format, b.String(), tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind Kind
		bad  string // part of the error
	}{
		{"", Table, ""}, {"table", Table, ""}, {"json", JSON, ""}, {"{{.Name}}", Template, ""},
		{"table {{.Name}}", Template, ""},
		{"yaml", 0, `"yaml": use table, json or a Go template`},
		{"JSON", 0, `"JSON": use table, json`},
		{"{{.Name", 0, "unclosed action"},
		{"{{nosuchfunc .Name}}", 0, `function "nosuchfunc" not defined`},
	} {
		f, err := Parse(tc.in)
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("Parse(%q): %v", tc.in, err)
		case tc.bad == "" && f.Kind != tc.kind:
			t.Errorf("Parse(%q) = kind %d, want %d", tc.in, f.Kind, tc.kind)
		case tc.bad != "" && (!errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("Parse(%q) = %v, want an ErrFormat containing %q", tc.in, err, tc.bad)
		}
	}
}

// TestExecuteError: a template that names a missing field fails with the
// template and the field in the message, and prints nothing for that item.
func TestExecuteError(t *testing.T) {
	f, err := Parse("{{.Nope}}")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	err = Write(&b, f, nets, nil)
	if err == nil || !strings.Contains(err.Error(), "Nope") || !strings.Contains(err.Error(), `"{{.Nope}}"`) || b.Len() != 0 {
		t.Errorf("Write {{.Nope}} = %v, printed %q", err, b.String())
	}
}

// inspected has a field whose JSON name differs from its Go name, as a
// network's ID is "Id" in docker network inspect's JSON.
type inspected struct {
	ID     string `json:"Id"`
	Name   string
	Count  int
	Labels map[string]string
}

// TestInspect: for inspect, a template that fails on the Go value runs
// again on its JSON object, as docker inspect does: {{.Id}} works as
// well as {{.ID}}, numbers print as written, a missing key fails naming
// it. Write (ls, ps) does not fall back.
func TestInspect(t *testing.T) {
	items := []inspected{{ID: "0123456789abcdef", Name: "pub_net", Count: 3, Labels: map[string]string{"env": "lab"}}}
	for _, tc := range []struct {
		format, want, bad string
	}{
		{"{{.ID}}", "0123456789abcdef\n", ""},
		{"{{.Id}} {{.Name}} {{.Count}}", "0123456789abcdef pub_net 3\n", ""},
		{"{{.Id}} {{json .Labels}} {{.Labels.env}}", `0123456789abcdef {"env":"lab"} lab` + "\n", ""},
		{`table {{.Id}}\t{{.Name}}`, "ID                 NAME\n0123456789abcdef   pub_net\n", ""},
		{"{{.Id}} {{.Labels.nope}}", "", `"nope"`},
		{"{{.Nope}}", "", `"Nope"`},
	} {
		f, err := Parse(tc.format)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.format, err)
		}
		var b bytes.Buffer
		err = Inspect(&b, f, items, nil)
		if tc.bad == "" && (err != nil || b.String() != tc.want) || tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("Inspect %q: %v, printed %q; want %q or an error naming %s", tc.format, err, b.String(), tc.want, tc.bad)
		}
	}
	f, _ := Parse("{{.Id}}")
	if err := Write(&bytes.Buffer{}, f, items, nil); err == nil {
		t.Errorf("Write {{.Id}} on a field ID: no error; only Inspect falls back to the JSON object")
	}
}

// FuzzParse: any --format value is refused as ErrFormat or parses; never
// a panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "table", "json", "{{.Name}}", "table {{.Name}}\\t{{.ID}}", "{{", "{{json .}}", "{{range .Config}}{{.}}{{end}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := Parse(s); err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("Parse(%q): %v; want ErrFormat", s, err)
		}
	})
}
