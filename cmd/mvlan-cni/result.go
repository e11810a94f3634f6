package main

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/mvlan/mvlan/api"
)

// result describes endpoint e of network n the CNI way: its interface in
// the sandbox, its addresses with their gateway, the default routes the
// agent installed, and on a DHCP network the DNS of its leases.
func result(n api.Network, e api.Endpoint) *current.Result {
	r := &current.Result{CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: e.IfName, Mac: e.MAC, Sandbox: e.Netns}},
		DNS:        leaseDNS(e.Lease, e.Lease6)}
	for _, p := range e.Addrs {
		gw := gatewayOf(n, e, p)
		ipc := &current.IPConfig{Interface: current.Int(0), Address: ipNet(p)}
		if gw.IsValid() {
			ipc.Gateway = net.IP(gw.AsSlice())
		}
		r.IPs = append(r.IPs, ipc)
		if gw.IsValid() && !n.Internal && !slices.Contains(e.Unrouted, gw) {
			bits := 32
			if gw.Is6() {
				bits = 128
			}
			r.Routes = append(r.Routes, &types.Route{
				Dst: net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)}, GW: net.IP(gw.AsSlice())})
		}
	}
	return r
}

// gatewayOf is the gateway of e's address p: its pool's; on a DHCP
// network the router of its DHCPv4 lease while live (DHCPv6 has none).
// An internal network's routes, and those e kept another default route
// of the family for (Unrouted: a Multus pod's primary interface), are not
// installed: result lists the gateway, not the route.
func gatewayOf(n api.Network, e api.Endpoint, p netip.Prefix) netip.Addr {
	if n.IPAMDriver == api.IPAMDHCP {
		if l := e.Lease; l != nil && l.Addr == p && l.State != api.LeaseExpired {
			return l.Router
		}
		return netip.Addr{}
	}
	for _, q := range n.Pools {
		if q.Subnet.Contains(p.Addr()) {
			return q.Gateway
		}
	}
	return netip.Addr{}
}

// leaseDNS is what the leases (either may be nil) say of DNS: the servers
// of both; the domain name and search list of the DHCPv4 lease, or of the
// DHCPv6 one without it (a container mvlan makes gets them in its
// resolv.conf, at most three servers, the domain as the search list).
func leaseDNS(v4, v6 *api.Lease) types.DNS {
	var d types.DNS
	for _, l := range []*api.Lease{v4, v6} {
		if l == nil {
			continue
		}
		for _, a := range l.DNS {
			d.Nameservers = append(d.Nameservers, a.String())
		}
	}
	if l := cmp.Or(v4, v6); l != nil {
		d.Domain, d.Search = l.Domain, l.Search
	}
	return d
}

func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// compare says how the result of an ADD (prevResult) differs from the
// endpoint the agent has now: interface, MAC, addresses.
func compare(prev types.Result, e api.Endpoint) error {
	if prev == nil {
		return nil // libcni passes none for 0.4.0 configs without a cache
	}
	r, err := readPrev(prev)
	if err != nil {
		return err
	}
	idx := slices.IndexFunc(r.Interfaces, func(i *current.Interface) bool { return i.Name == e.IfName && i.Sandbox != "" })
	if idx < 0 {
		return drift("prevResult has no interface %s in a sandbox, the agent's endpoint %s has", e.IfName, e.Name)
	}
	if mac := r.Interfaces[idx].Mac; mac != "" && mac != e.MAC {
		return drift("interface %s has MAC %s, prevResult says %s", e.IfName, e.MAC, mac)
	}
	want, have := prevAddrs(r, idx), []string(nil)
	for _, p := range e.Addrs {
		have = append(have, p.String())
	}
	slices.Sort(want)
	slices.Sort(have)
	if !slices.Equal(want, have) {
		return drift("endpoint %s has addresses %v, prevResult says %v", e.Name, have, want)
	}
	return nil
}

// prevAddrs are the addresses r gives interface idx; if it gives it none
// by index, those of no interface (a plugin of the chain may add some of
// its own that way: they are not mvlan's while any is indexed).
func prevAddrs(r *current.Result, idx int) []string {
	var indexed, loose []string
	for _, ip := range r.IPs {
		switch {
		case ip.Interface == nil:
			loose = append(loose, ip.Address.String())
		case *ip.Interface == idx:
			indexed = append(indexed, ip.Address.String())
		}
	}
	if len(indexed) > 0 {
		return indexed
	}
	return loose
}

func drift(format string, args ...any) error {
	return types.NewError(errDrift, fmt.Sprintf(format, args...)+"; DEL and ADD the attachment again", "")
}

// readPrev converts prevResult to the current version; an entry that is
// null is a decoding failure, not a crash.
func readPrev(prev types.Result) (*current.Result, error) {
	r, err := current.NewResultFromResult(prev)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot read prevResult: "+err.Error(), "")
	}
	if slices.Contains(r.Interfaces, nil) || slices.Contains(r.IPs, nil) || slices.Contains(r.Routes, nil) {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot read prevResult: an entry of interfaces, ips or routes is null", "")
	}
	return r, nil
}

// withPrev is the result of an ADD given the result of the plugins before
// mvlan in a chain (prevResult, nil if none): theirs with mvlan's
// interface, addresses and routes after, as the spec asks of a plugin
// given one; their DNS, or mvlan's (a lease's) if they have none.
func withPrev(prev types.Result, r *current.Result) (*current.Result, error) {
	if prev == nil {
		return r, nil
	}
	p, err := readPrev(prev)
	if err != nil {
		return nil, err
	}
	for _, ip := range r.IPs {
		ip.Interface = current.Int(*ip.Interface + len(p.Interfaces))
	}
	p.Interfaces = append(p.Interfaces, r.Interfaces...)
	p.IPs = append(p.IPs, r.IPs...)
	p.Routes = append(p.Routes, r.Routes...)
	if p.DNS.IsEmpty() {
		p.DNS = r.DNS
	}
	return p, nil
}

// routedIn is the gateways of the default routes prev lists, for CHECK: a
// later plugin of the chain may have removed mvlan's and taken it out of
// the result (the spec lets it). Nil without prev: all of them.
func routedIn(prev types.Result) ([]netip.Addr, error) {
	if prev == nil {
		return nil, nil
	}
	p, err := readPrev(prev)
	if err != nil {
		return nil, err
	}
	routed := []netip.Addr{}
	for _, r := range p.Routes {
		ones, _ := r.Dst.Mask.Size()
		if gw, ok := netip.AddrFromSlice(r.GW); ok && ones == 0 && r.GW != nil {
			routed = append(routed, gw.Unmap())
		}
	}
	return routed, nil
}
