package netconf

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// First-hop options of a network (-o KEY=VALUE). Every guard is on unless
// the network lifts it; see README "Threat model".
const (
	// OptAllowRouter=true lets the network's containers send router
	// advertisements and redirects (a container that is the router).
	OptAllowRouter = "allow_router"
	// OptAllowDHCPServer=true lets them send DHCP server replies (UDP
	// from port 67 and 547) and relay others' requests (DHCP client
	// messages in another client's name).
	OptAllowDHCPServer = "allow_dhcp_server"
	// OptIPv6RA=accept lets containers with IPv6 accept router
	// advertisements from the wire (accept_ra=1); the default, ignore,
	// sets accept_ra=0 on their link.
	OptIPv6RA = "ipv6_ra"
	// OptIPv6RASource=LL[,MAC] is where the router advertisements the
	// containers accept come from: the gateway's link-local address (the
	// IPv6 source of its RAs), its MAC, or both. ipv6_ra=accept needs it:
	// an RA from any other source is dropped on the endpoints' ingress
	// (ra_source), so a rogue RA on the LAN reaches no container.
	OptIPv6RASource = "ipv6_ra_source"
)

// FirstHop is what a network lets its containers send and receive at the
// first hop.
type FirstHop struct {
	AllowRouter     bool // send RAs and redirects
	AllowDHCPServer bool // send DHCP server replies
	AcceptRA        bool // accept RAs from the wire
	// RASource and RASourceMAC are where accepted RAs come from
	// (ipv6_ra_source); invalid / "" when not given.
	RASource    netip.Addr
	RASourceMAC string
}

// FirstHopOf reads the first-hop options of a network's validated options
// (Config.Options, api.Network.Options); absent ones keep the guards on.
func FirstHopOf(opts map[string]string) FirstHop {
	f := FirstHop{
		AllowRouter:     opts[OptAllowRouter] == "true",
		AllowDHCPServer: opts[OptAllowDHCPServer] == "true",
		AcceptRA:        opts[OptIPv6RA] == "accept",
	}
	f.RASource, f.RASourceMAC, _ = parseRASource(opts[OptIPv6RASource])
	return f
}

// parseRASource reads LL[,MAC] in either order, each at most once.
func parseRASource(v string) (ll netip.Addr, mac string, err error) {
	if v == "" {
		return ll, "", nil
	}
	for _, part := range strings.Split(v, ",") {
		if a, err := netip.ParseAddr(part); err == nil && !ll.IsValid() && a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == "" {
			ll = a
			continue
		}
		if m, err := net.ParseMAC(part); err == nil && mac == "" && len(m) == 6 && m[0]&1 == 0 {
			mac = m.String()
			continue
		}
		return netip.Addr{}, "", fmt.Errorf("option %s=%q: %q is not the gateway's IPv6 link-local address or unicast MAC; want LL[,MAC], e.g. fe80::1 or fe80::1,00:00:5e:00:53:01", OptIPv6RASource, v, part)
	}
	return ll, mac, nil
}

// checkRASource: ipv6_ra=accept takes RAs only from ipv6_ra_source, which
// has no use without it.
func checkRASource(opts map[string]string) error {
	_, given := opts[OptIPv6RASource]
	switch accept := opts[OptIPv6RA] == "accept"; {
	case accept && !given:
		return fmt.Errorf("option %s=accept needs -o %s=LL[,MAC]: the gateway's IPv6 link-local address (and/or MAC) its router advertisements come from, e.g. fe80::1; RAs from any other source are dropped", OptIPv6RA, OptIPv6RASource)
	case given && !accept:
		return fmt.Errorf("option %s has no use without -o %s=accept (containers ignore router advertisements by default)", OptIPv6RASource, OptIPv6RA)
	}
	return nil
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
	case OptIPv6RASource:
		ll, mac, err := parseRASource(v)
		if err == nil && !ll.IsValid() && mac == "" {
			err = fmt.Errorf("option %s has no value; want LL[,MAC], e.g. fe80::1", k)
		}
		if err != nil {
			return "", true, err
		}
		return strings.Trim(strings.Join([]string{addrString(ll), mac}, ","), ","), true, nil
	}
	return "", false, nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
