package dhcp

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// A DHCPv6 lease is a Lease too: Addr is the IA_NA address (a /128, or
// with the network's IPv6 --subnet's length), ClientID the DUID, ACK the
// server's last Reply; Server and Router stay zero (the server is known
// by its DUID, in the Reply; IPv6 routers come from router advertisements).

// DUID6 is the DHCPv6 client DUID of endpoint name on network (an
// identity unique to the host, as for ClientID): a DUID-UUID (RFC 6355)
// whose UUID is a hash of both, so that a re-created container asks for
// the same binding whatever its MAC.
func DUID6(network, name string) []byte {
	h := sha256.Sum256([]byte("mvlan-dhcp6\x00" + network + "\x00" + name))
	var d dhcpv6.DUIDUUID
	copy(d.UUID[:], h[:16])
	return d.ToBytes()
}

// duidOf is a stored DUID as the library takes it (any type, opaque if
// it does not parse).
func duidOf(b []byte) dhcpv6.DUID {
	if d, err := dhcpv6.DUIDFromBytes(b); err == nil {
		return d
	}
	return &dhcpv6.DUIDOpaque{Data: b}
}

// iaAddr is the address of m's IA_NA the client takes (iaAddress), or
// why there is none.
func iaAddr(m *dhcpv6.Message, want netip.Addr) (netip.Addr, *dhcpv6.OptIAAddress, error) {
	if err := statusErr(m.Options.Status()); err != nil {
		return netip.Addr{}, nil, err
	}
	ia := m.Options.OneIANA()
	if ia == nil || ia.IaId != IAID {
		return netip.Addr{}, nil, fmt.Errorf("DHCPv6 server's %s has no IA_NA for the endpoint", m.MessageType)
	}
	if err := statusErr(ia.Options.Status()); err != nil {
		return netip.Addr{}, nil, err
	}
	if ia.T1 > ia.T2 && ia.T2 > 0 {
		return netip.Addr{}, nil, fmt.Errorf("DHCPv6 server's %s has an IA_NA with T1 %v after T2 %v, which the client discards (RFC 8415 21.4); fix the server's times", m.MessageType, ia.T1, ia.T2)
	}
	a := iaAddress(ia, want)
	switch {
	case a == nil && len(ia.Options.Addresses()) == 0:
		return netip.Addr{}, nil, fmt.Errorf("DHCPv6 server's %s has no address in its IA_NA", m.MessageType)
	case a == nil:
		return netip.Addr{}, nil, fmt.Errorf("DHCPv6 server's %s has no address in its IA_NA whose preferred lifetime is within its valid one; the client discards the others (RFC 8415 21.6); fix the server's lifetimes", m.MessageType)
	}
	if err := statusErr(a.Options.Status()); err != nil {
		return netip.Addr{}, nil, err
	}
	ip, ok := netip.AddrFromSlice(a.IPv6Addr.To16())
	if !ok || ip.Is4In6() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return netip.Addr{}, nil, fmt.Errorf("DHCPv6 server's %s has no usable address (%v)", m.MessageType, a.IPv6Addr)
	}
	return ip, a, nil
}

// iaAddress is the address of ia the client takes, of those whose
// preferred lifetime is within their valid one (or withdrawn): want, when ia gives
// it a valid lifetime, else the first it gives one (a server that moves
// the client lists the old address with a valid lifetime of 0 beside the
// new one, RFC 8415 18.3.4); when it gives none, the first (withdrawn:
// fromReply says so). Nil when ia has none.
func iaAddress(ia *dhcpv6.OptIANA, want netip.Addr) *dhcpv6.OptIAAddress {
	var all, valid []*dhcpv6.OptIAAddress
	for _, a := range ia.Options.Addresses() {
		switch {
		case a.ValidLifetime == 0: // withdrawn, whatever its preferred lifetime
			all = append(all, a)
		case a.PreferredLifetime > a.ValidLifetime: // discarded (RFC 8415 21.6)
		default:
			valid, all = append(valid, a), append(all, a)
		}
	}
	for _, a := range valid {
		if ip, ok := netip.AddrFromSlice(a.IPv6Addr.To16()); ok && want.IsValid() && ip == want {
			return a
		}
	}
	if len(valid) == 0 {
		valid = all
	}
	if len(valid) == 0 {
		return nil
	}
	return valid[0]
}

// fromReply makes a lease of a Reply l received at t: the address, its
// valid lifetime (the expiry) and T1/T2 of the IA_NA, which default to
// 0.5 and 0.8 of the preferred lifetime (RFC 8415 21.4) when 0 or wrong.
func fromReply(r *dhcpv6.Message, l Link, t time.Time) (Lease, error) {
	t = wallClock(t) // as parseACK's
	lease := Lease{State: Bound, ClientID: l.ClientID, Obtained: t, ACK: r.ToBytes()}
	ip, a, err := iaAddr(r, l.Want)
	if err != nil {
		return lease, err
	}
	if r.Options.ServerID() == nil {
		return lease, fmt.Errorf("DHCPv6 server's Reply for %s has no server ID", ip)
	}
	bits := 128
	if l.Subnet.IsValid() && l.Subnet.Addr().Is6() {
		bits = l.Subnet.Bits()
	}
	lease.Addr = netip.PrefixFrom(ip, bits)
	ia := r.Options.OneIANA()
	valid, pref := a.ValidLifetime, min(a.PreferredLifetime, a.ValidLifetime)
	if valid <= 0 {
		return lease, &WithdrawnError{Addr: ip, How: "valid lifetime 0"}
	}
	if pref <= 0 {
		pref = valid
	}
	t1, t2 := ia.T1, ia.T2
	if t1 <= 0 || t1 >= valid { // at the expiry there is no time to renew
		t1 = pref / 2
	}
	if t2 < t1 || t2 >= valid {
		t2 = max(t1, pref*4/5)
	}
	for _, d := range r.Options.DNS() {
		if a, ok := netip.AddrFromSlice(d.To16()); ok && !a.IsUnspecified() {
			lease.DNS = append(lease.DNS, a)
		}
	}
	lease.Renew, lease.Rebind, lease.Expiry = t.Add(t1), t.Add(t2), t.Add(valid)
	return lease, nil
}

// fromRenewReply is fromReply for a Reply to a Renew, Rebind or Request
// of old: only its address and lifetimes are authoritative, so DNS
// servers it leaves out stay old's.
func fromRenewReply(r *dhcpv6.Message, l Link, old Lease, t time.Time) (Lease, error) {
	l.Want = old.Addr.Addr() // kept when the Reply still gives it
	lease, err := fromReply(r, l, t)
	if err == nil && r.Options.GetOne(dhcpv6.OptionDNSRecursiveNameServer) == nil {
		lease.DNS = slices.Clone(old.DNS)
	}
	return lease, err
}

// checkReply checks that a stored Reply parses (FromAPI).
func checkReply(b []byte) error {
	if _, err := dhcpv6.MessageFromBytes(b); err != nil {
		return errors.Join(errors.New("stored DHCPv6 Reply does not parse"), err)
	}
	return nil
}
