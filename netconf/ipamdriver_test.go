package netconf

import (
	"strings"
	"testing"

	"github.com/mvlan/mvlan/api"
)

// TestIPAMDriver: --ipam-driver dhcp takes no --subnet or one IPv4 one,
// with --ipv6 (DHCPv6) also one IPv6 one or none, and refuses, naming
// them, what only local pools have.
func TestIPAMDriver(t *testing.T) {
	base := api.NetworkCreate{Name: "lan", Options: []string{"parent=eth0"}, IPAMDriver: api.IPAMDHCP}
	for _, tc := range []struct {
		name string
		mod  func(*api.NetworkCreate)
		err  string
	}{
		{"no subnet", func(*api.NetworkCreate) {}, ""},
		{"one subnet", func(r *api.NetworkCreate) { r.Subnets = []string{"192.168.60.0/24"} }, ""},
		{"default driver needs a subnet", func(r *api.NetworkCreate) { r.IPAMDriver = "" }, "--subnet is required"},
		{"unknown driver", func(r *api.NetworkCreate) { r.IPAMDriver = "infoblox"; r.Subnets = []string{"10.0.0.0/24"} }, `unknown --ipam-driver "infoblox"`},
		{"IPv6 subnet", func(r *api.NetworkCreate) { r.Subnets = []string{"2001:db8::/64"} }, "is IPv6"},
		{"two subnets", func(r *api.NetworkCreate) { r.Subnets = []string{"10.0.0.0/24", "10.0.1.0/24"} }, "at most one IPv4 and (with --ipv6) one IPv6 --subnet"},
		{"--ipv6", func(r *api.NetworkCreate) { r.IPv6 = true; r.Subnets = []string{"10.0.0.0/24", "2001:db8::/64"} }, ""},
		{"--ipv6 without subnets", func(r *api.NetworkCreate) { r.IPv6 = true }, ""},
		{"--ipv6 with an IPv4 subnet", func(r *api.NetworkCreate) { r.IPv6 = true; r.Subnets = []string{"10.0.0.0/24"} }, ""},
		{"two IPv6 subnets", func(r *api.NetworkCreate) { r.IPv6 = true; r.Subnets = []string{"2001:db8::/64", "2001:db8:1::/64"} }, "2001:db8:1::/64"},
		{"IPv6 gateway", func(r *api.NetworkCreate) {
			r.IPv6 = true
			r.Subnets = []string{"2001:db8::/64"}
			r.Gateways = []string{"2001:db8::1"}
		}, "leave out --gateway"},
		{"--gateway", func(r *api.NetworkCreate) { r.Subnets = []string{"10.0.0.0/24"}; r.Gateways = []string{"10.0.0.1"} }, "leave out --gateway"},
		{"serial", func(r *api.NetworkCreate) { r.IPAMOptions = []string{"allocation=serial"} }, "the DHCP server allocates"},
	} {
		req := base
		tc.mod(&req)
		c, err := Parse(req)
		switch {
		case tc.err == "" && (err != nil || !c.DHCP && req.IPAMDriver == api.IPAMDHCP):
			t.Errorf("%s: %v (DHCP %v)", tc.name, err, c.DHCP)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: err %v, want one with %q", tc.name, err, tc.err)
		}
	}
}
