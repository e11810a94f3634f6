package netconf

import (
	"fmt"
	"strconv"
)

// First-hop options of a network (-o KEY=VALUE). Every guard is on unless
// the network lifts it; see README "Threat model".
const (
	// OptAllowRouter=true lets the network's containers send router
	// advertisements and redirects (a container that is the router).
	OptAllowRouter = "allow_router"
	// OptAllowDHCPServer=true lets them send DHCP server replies (UDP
	// from port 67 and 547).
	OptAllowDHCPServer = "allow_dhcp_server"
	// OptIPv6RA=accept lets containers with IPv6 accept router
	// advertisements from the wire (accept_ra=1); the default, ignore,
	// sets accept_ra=0 on their link.
	OptIPv6RA = "ipv6_ra"
)

// FirstHop is what a network lets its containers send and receive at the
// first hop.
type FirstHop struct {
	AllowRouter     bool // send RAs and redirects
	AllowDHCPServer bool // send DHCP server replies
	AcceptRA        bool // accept RAs from the wire
}

// FirstHopOf reads the first-hop options of a network's validated options
// (Config.Options, api.Network.Options); absent ones keep the guards on.
func FirstHopOf(opts map[string]string) FirstHop {
	return FirstHop{
		AllowRouter:     opts[OptAllowRouter] == "true",
		AllowDHCPServer: opts[OptAllowDHCPServer] == "true",
		AcceptRA:        opts[OptIPv6RA] == "accept",
	}
}

// checkFirstHop validates the value of a first-hop option; ok is false
// when k is not one.
func checkFirstHop(k, v string) (canon string, ok bool, err error) {
	switch k {
	case OptAllowRouter, OptAllowDHCPServer:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", true, fmt.Errorf("option %s=%q: want true or false", k, v)
		}
		return strconv.FormatBool(b), true, nil
	case OptIPv6RA:
		if v != "accept" && v != "ignore" {
			return "", true, fmt.Errorf("option %s=%q: want accept (take router advertisements from the wire) or ignore (the default)", k, v)
		}
		return v, true, nil
	}
	return "", false, nil
}
