package netconf

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/mvlan/mvlan/ipam"
)

// OptHostShim is the option that gives the host a macvlan of its own on
// the network's parent, so that it reaches the network's containers:
// -o host_shim=auto (addresses from the pool), -o host_shim=IP[,IP6], and
// on `network update` also -o host_shim=off.
const OptHostShim = "host_shim"

// HostShim is a validated host_shim option.
type HostShim struct {
	Off   bool         // "off": no shim (network update only)
	Auto  bool         // "auto": one address per family from the pool
	Addrs []netip.Addr // the addresses asked for, at most one per family
}

// String is the option's canonical value.
func (h HostShim) String() string {
	switch {
	case h.Off:
		return "off"
	case h.Auto:
		return "auto"
	}
	s := make([]string, len(h.Addrs))
	for i, a := range h.Addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// ParseHostShim validates the value of -o host_shim for a network with
// the given pools and macvlan mode. off is accepted only when allowOff.
func ParseHostShim(v, mode string, pools []ipam.PoolConfig, allowOff bool) (HostShim, error) {
	if mode == "passthru" {
		return HostShim{}, fmt.Errorf("option %s=%s: a passthru network's parent takes one macvlan only (the container's), so the host cannot have a shim on it; use -o macvlan_mode=bridge", OptHostShim, v)
	}
	switch v {
	case "auto":
		return HostShim{Auto: true}, nil
	case "off":
		if allowOff {
			return HostShim{Off: true}, nil
		}
		return HostShim{}, fmt.Errorf("option %s=off: a new network has no shim unless asked; leave the option out, or use auto or IP[,IP6]", OptHostShim)
	case "":
		return HostShim{}, fmt.Errorf("option %s has no value; use %s=auto or %s=IP[,IP6] (e.g. 172.16.86.2,2001:db8::2)", OptHostShim, OptHostShim, OptHostShim)
	}
	var h HostShim
	for _, s := range strings.Split(v, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || a.Zone() != "" {
			return HostShim{}, fmt.Errorf("option %s=%s: %q is not an IP address; use auto or IP[,IP6] such as 172.16.86.2,2001:db8::2", OptHostShim, v, s)
		}
		a = a.Unmap()
		if slices.ContainsFunc(h.Addrs, func(b netip.Addr) bool { return b.Is4() == a.Is4() }) {
			return HostShim{}, fmt.Errorf("option %s=%s: two addresses of one family; give at most one IPv4 and one IPv6 address", OptHostShim, v)
		}
		if len(pools) == 0 {
			return HostShim{}, fmt.Errorf("option %s=%s: the network has no subnet to put %s in; give it --subnet (a DHCP network learns one from its first lease)", OptHostShim, v, a)
		}
		if !slices.ContainsFunc(pools, func(p ipam.PoolConfig) bool { return p.Subnet.Contains(a) }) {
			return HostShim{}, fmt.Errorf("option %s=%s: %s is in none of the network's subnets (%s); pick an address of one of them", OptHostShim, v, a, subnetsOf(pools))
		}
		h.Addrs = append(h.Addrs, a)
	}
	return h, nil
}

func subnetsOf(pools []ipam.PoolConfig) string {
	s := make([]string, len(pools))
	for i, p := range pools {
		s[i] = p.Subnet.String()
	}
	return strings.Join(s, ", ")
}
