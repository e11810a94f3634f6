package netconf

import (
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
		{[]string{"ipv6_ra=accept"}, FirstHop{AcceptRA: true}, nil},
		{[]string{"ipv6_ra=ignore", "allow_dhcp_server=TRUE"}, FirstHop{AllowDHCPServer: true}, nil},
		{[]string{"allow_router=yes"}, FirstHop{}, []string{`allow_router="yes"`, "true or false"}},
		{[]string{"allow_dhcp_server="}, FirstHop{}, []string{`allow_dhcp_server=""`, "true or false"}},
		{[]string{"ipv6_ra=on"}, FirstHop{}, []string{`ipv6_ra="on"`, "accept", "ignore"}},
		{[]string{"allow_routers=true"}, FirstHop{}, []string{"allow_routers=true", "allow_router=true"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.opts, ","), func(t *testing.T) {
			c, err := Parse(api.NetworkCreate{Name: "n", Subnets: []string{"10.0.0.0/24"}, Options: tt.opts})
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
