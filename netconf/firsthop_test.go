package netconf

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/api"
)

func TestFirstHopOptions(t *testing.T) {
	tests := []struct {
		opts []string
		want FirstHop
		err  []string // substrings of the error; nil: accepted
	}{
		{nil, FirstHop{}, nil},
		{[]string{"allow_router=true"}, FirstHop{AllowRouter: true}, nil},
		{[]string{"allow_router=false", "allow_dhcp_server=1"}, FirstHop{AllowDHCPServer: true}, nil},
		{[]string{"ipv6_ra=accept", "ipv6_ra_source=fe80::1"}, FirstHop{AcceptRA: true, RASource: netip.MustParseAddr("fe80::1")}, nil},
		{[]string{"ipv6_ra=accept", "ipv6_ra_source=00:00:5E:00:53:01,FE80::0:1"},
			FirstHop{AcceptRA: true, RASource: netip.MustParseAddr("fe80::1"), RASourceMAC: "00:00:5e:00:53:01"}, nil},
		{[]string{"ipv6_ra=accept"}, FirstHop{}, []string{"ipv6_ra=accept needs", "ipv6_ra_source=LL[,MAC]"}},
		{[]string{"ipv6_ra_source=fe80::1"}, FirstHop{}, []string{"ipv6_ra_source has no use without", "ipv6_ra=accept"}},
		{[]string{"ipv6_ra=accept", "ipv6_ra_source=2001:db8::1"}, FirstHop{}, []string{`"2001:db8::1"`, "link-local"}},
		{[]string{"ipv6_ra=accept", "ipv6_ra_source=01:00:5e:00:00:01"}, FirstHop{}, []string{`"01:00:5e:00:00:01"`, "unicast MAC"}},
		{[]string{"ipv6_ra=accept", "ipv6_ra_source=fe80::1,fe80::2"}, FirstHop{}, []string{`"fe80::2"`}},
		{[]string{"ipv6_ra=accept", "ipv6_ra_source="}, FirstHop{}, []string{"ipv6_ra_source has no value"}},
		{[]string{"ipv6_ra=ignore", "allow_dhcp_server=TRUE"}, FirstHop{AllowDHCPServer: true}, nil},
		{[]string{"allow_router=yes"}, FirstHop{}, []string{`allow_router="yes"`, "true or false"}},
		{[]string{"allow_dhcp_server="}, FirstHop{}, []string{`allow_dhcp_server=""`, "true or false"}},
		{[]string{"ipv6_ra=on"}, FirstHop{}, []string{`ipv6_ra="on"`, "accept", "ignore"}},
		{[]string{"allow_routers=true"}, FirstHop{}, []string{"allow_routers=true", "allow_router=true"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.opts, ","), func(t *testing.T) {
			c, err := Parse(api.NetworkCreate{Name: "n", IPv6: true, Subnets: []string{"10.0.0.0/24", "fd00:1::/64"}, Options: tt.opts})
			if tt.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := FirstHopOf(c.Options); got != tt.want {
					t.Fatalf("FirstHopOf(%v) = %+v, want %+v", c.Options, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %v", tt.opts)
			}
			for _, w := range tt.err {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
