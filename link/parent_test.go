package link_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/mvlan/mvlan/link"
)

func TestParseParent(t *testing.T) {
	tests := []struct {
		in      string
		want    link.Parent
		wantErr string // substring of the error; "" means success
	}{
		{in: "eth0", want: link.Parent{Name: "eth0"}},
		{in: "foo", want: link.Parent{Name: "foo"}},
		{in: "enp0s31f6", want: link.Parent{Name: "enp0s31f6"}},
		{in: "eth0.50", want: link.Parent{Name: "eth0.50", Lower: "eth0", VID: 50}},
		{in: "eth0.1", want: link.Parent{Name: "eth0.1", Lower: "eth0", VID: 1}},
		{in: "eth0.4094", want: link.Parent{Name: "eth0.4094", Lower: "eth0", VID: 4094}},
		{in: "bond0.10.20", want: link.Parent{Name: "bond0.10.20", Lower: "bond0.10", VID: 20}},
		{in: "abcdefghij.4094", want: link.Parent{Name: "abcdefghij.4094", Lower: "abcdefghij", VID: 4094}},
		{in: "", wantErr: "parent name is empty"},
		{in: "lo", wantErr: `parent "lo" is the loopback device; use an Ethernet link such as eth0`},
		{in: "lo.5", wantErr: `parent "lo.5" is on the loopback device`},
		{in: "abcdefghijklmnop", wantErr: `parent name "abcdefghijklmnop" is 16 bytes; Linux link names are at most 15`},
		{in: "abcdefghijk.4094", wantErr: `is 16 bytes; Linux link names are at most 15`},
		{in: "eth0.", wantErr: `parent "eth0." has an empty VLAN id; use NAME.VID with VID 1-4094`},
		{in: "eth0.0", wantErr: `VLAN id "0" in parent "eth0.0" is out of range; use 1-4094`},
		{in: "eth0.4095", wantErr: `VLAN id "4095" in parent "eth0.4095" is out of range; use 1-4094`},
		{in: "e.999999999999", wantErr: "is out of range; use 1-4094"},
		{in: "eth0.abc", wantErr: `VLAN id "abc" in parent "eth0.abc" is not a number; use NAME.VID with VID 1-4094`},
		{in: "eth0.-5", wantErr: `VLAN id "-5" in parent "eth0.-5" is not a number`},
		{in: "eth0.+5", wantErr: "is not a number"},
		{in: "eth0.050", wantErr: `VLAN id "050" in parent "eth0.050" has a leading zero; use eth0.50`},
		{in: ".50", wantErr: `parent ".50" has no link name before the dot`},
		{in: ".", wantErr: `parent name "." is not a valid link name`},
		{in: "..", wantErr: `parent name ".." is not a valid link name`},
		{in: "eth/0", wantErr: `parent name "eth/0" contains '/'`},
		{in: "eth0:1", wantErr: `contains ':'`},
		{in: "eth 0", wantErr: `contains ' '`},
		{in: "eth0\t", wantErr: `contains '\t'`},
		{in: "eth\x000", wantErr: `contains '\x00'`},
		{in: "eth%d", wantErr: `parent name "eth%d" contains '%'; link names cannot contain '/', ':', '%', spaces`},
		{in: "eth0.%d", wantErr: `parent name "eth0.%d" contains '%'`},
		{in: "%", wantErr: `contains '%'`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := link.ParseParent(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseParent(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseParent(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParseParent(f *testing.F) {
	for _, s := range []string{"eth0", "eth0.50", "eth0.", "lo", "eth0.4095", ".5", "a.b.c", "eth0.050", "x\x00.1", "eth%d", "e%d.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := link.ParseParent(s)
		if err != nil {
			if p != (link.Parent{}) {
				t.Fatalf("error with non-zero result %+v", p)
			}
			return
		}
		if p.Name != s || len(s) == 0 || len(s) > link.MaxNameLen || s == "lo" {
			t.Fatalf("accepted %q as %+v", s, p)
		}
		if strings.ContainsFunc(s, func(r rune) bool { return r == '/' || r == ':' || r == '%' || unicode.IsSpace(r) }) {
			t.Fatalf("accepted %q with a forbidden character", s)
		}
		if p.IsVLAN() != (p.Lower != "") || (p.IsVLAN() && (p.VID < 1 || p.VID > 4094)) {
			t.Fatalf("accepted %q with bad VLAN fields %+v", s, p)
		}
		if p.IsVLAN() && !strings.HasPrefix(s, p.Lower+".") {
			t.Fatalf("lower %q is not the prefix of %q", p.Lower, s)
		}
		if !p.IsVLAN() && strings.Contains(s, ".") {
			t.Fatalf("accepted %q with a dot as a plain name", s)
		}
	})
}

// TestCheckIfName: --ifname follows the kernel's rules for a new link's
// name, and refuses '%', which the kernel takes as a template (eth%d
// would become eth0, not found by its name).
func TestCheckIfName(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"eth0", ""},
		{"net1", ""},
		{"eth.lan", ""},
		{"eth%d", `interface name "eth%d" contains '%'`},
		{"%d", `interface name "%d" contains '%'`},
		{"eth/0", `interface name "eth/0" contains '/'`},
		{"eth:0", `contains ':'`},
		{"eth 0", `contains ' '`},
		{".", `interface name "." is not a valid link name`},
		{"..", `interface name ".." is not a valid link name`},
		{"all", `interface name "all" is the kernel's own (net.*.conf.all)`},
		{"default", `interface name "default" is the kernel's own`},
		{"alle", ""},
		{"", "interface name is empty"},
		{"abcdefghijklmnop", "at most 15"},
	}
	for _, tt := range tests {
		err := link.CheckIfName(tt.in)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("CheckIfName(%q) = %v; want error containing %q", tt.in, err, tt.wantErr)
		}
	}
}
