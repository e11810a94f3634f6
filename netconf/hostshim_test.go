package netconf

import (
	"strings"
	"testing"

	"github.com/mvlan/mvlan/api"
)

func TestParseHostShim(t *testing.T) {
	base := func(opts ...string) api.NetworkCreate {
		return api.NetworkCreate{Name: "n", IPv6: true, Subnets: []string{"10.5.0.0/24", "fd05::/64"},
			Options: append([]string{"parent=eth0"}, opts...)}
	}
	good := []struct{ opt, canon string }{
		{"host_shim=auto", "auto"},
		{"host_shim=10.5.0.2", "10.5.0.2"},
		{"host_shim=10.5.0.2,fd05::2", "10.5.0.2,fd05::2"},
		{"host_shim=fd05::2, 10.5.0.2", "fd05::2,10.5.0.2"},
		{"host_shim=::ffff:10.5.0.9", "10.5.0.9"},
	}
	for _, tt := range good {
		c, err := Parse(base(tt.opt))
		if err != nil {
			t.Errorf("%s: %v", tt.opt, err)
			continue
		}
		if c.HostShim == nil || c.HostShim.String() != tt.canon || c.Options[OptHostShim] != tt.canon {
			t.Errorf("%s: shim %+v, option %q; want %q", tt.opt, c.HostShim, c.Options[OptHostShim], tt.canon)
		}
	}
	if c, err := Parse(base()); err != nil || c.HostShim != nil {
		t.Errorf("no option: shim %+v, err %v; want none", c.HostShim, err)
	}
	bad := []struct {
		opts []string
		want string
	}{
		{[]string{"host_shim="}, "has no value"},
		{[]string{"host_shim=off"}, "host_shim=off"},
		{[]string{"host_shim=banana"}, `"banana" is not an IP address`},
		{[]string{"host_shim=10.6.0.2"}, "10.6.0.2 is in none of the network's subnets (10.5.0.0/24, fd05::/64)"},
		{[]string{"host_shim=10.5.0.2,10.5.0.3"}, "at most one IPv4 and one IPv6"},
		{[]string{"host_shim=fe80::1%eth0"}, "not an IP address"},
		{[]string{"host_shim=auto", "macvlan_mode=passthru"}, "passthru"},
		{[]string{"macvlan_mode=passthru", "host_shim=10.5.0.2"}, "use -o macvlan_mode=bridge"},
	}
	for _, tt := range bad {
		_, err := Parse(base(tt.opts...))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v; want one containing %q", tt.opts, err, tt.want)
		}
	}
	if _, err := ParseHostShim("10.5.0.2", "bridge", nil, true); err == nil || !strings.Contains(err.Error(), "no subnet to put 10.5.0.2 in; give it --subnet") {
		t.Errorf("an address on a network without a subnet: %v; want it refused, naming --subnet", err)
	}
	if h, err := ParseHostShim("off", "bridge", nil, true); err != nil || !h.Off || h.String() != "off" {
		t.Errorf("update off: %+v, %v", h, err)
	}
}
