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
// the sandbox, its addresses with their gateway (a leased one's: its
// lease's router, none once expired), the default routes the agent installed (none on an
// internal network, nor where the namespace had one of the family before
// (e.Unrouted), as a Multus pod has through its primary interface), and
// the DNS servers and domains of its DHCP leases.
func result(n api.Network, e api.Endpoint) *current.Result {
	r := &current.Result{CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: e.IfName, Mac: e.MAC, Sandbox: e.Netns}},
		DNS:        leaseDNS(e.Lease, e.Lease6)}
	for _, p := range e.Addrs {
		gw := gatewayOf(n, p.Addr())
		if l := e.Lease; l != nil && l.Addr == p {
			gw = l.Router
			if l.State == api.LeaseExpired { // off the link, and its route with it
				gw = netip.Addr{}
			}
		}
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

// leaseDNS is what the leases (either may be nil) say of DNS, as the
// agent takes it for the resolv.conf of a container it makes: the
// servers of both; the domain name and search list of the DHCPv4 lease,
// or of the DHCPv6 one without it.
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

func gatewayOf(n api.Network, a netip.Addr) netip.Addr {
	for _, p := range n.Pools {
		if p.Subnet.Contains(a) {
			return p.Gateway
		}
	}
	return netip.Addr{}
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
	var want, have []string
	for _, ip := range r.IPs {
		if ip.Interface == nil || *ip.Interface == idx {
			want = append(want, ip.Address.String())
		}
	}
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
