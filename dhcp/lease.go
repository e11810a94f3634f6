// Package dhcp is mvlan's DHCPv4 and DHCPv6 client for one endpoint: it
// acquires, renews and releases a lease from inside the endpoint's network
// namespace, on its own link, so that the server sees the container's MAC
// (DHCPv6: its link-local address and DUID). Packets are built and parsed
// by github.com/insomniacslk/dhcp (nclient4, nclient6). It keeps no state:
// the engine stores the Lease (with the server's DHCPACK or Reply as sent)
// and calls Renew (Renew6) at T1 and T2 and Release (Release6) on removal.
package dhcp

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/mvlan/mvlan/api"
)

// State is where a lease is in its life (RFC 2131 4.4).
type State uint8

// Lease states.
const (
	Bound     State = iota // before T1
	Renewing               // T1 passed, its server has not answered
	Rebinding              // T2 passed, any server may answer
	Expired                // past its expiry: the address is off the link
)

var stateNames = []string{api.LeaseBound, api.LeaseRenewing, api.LeaseRebinding, api.LeaseExpired}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("lease-state(%d)", uint8(s))
}

// States lists every state, for metrics that show each one.
func States() []State { return []State{Bound, Renewing, Rebinding, Expired} }

// Lease is one endpoint's lease.
type Lease struct {
	State    State
	Server   netip.Addr
	Addr     netip.Prefix
	Router   netip.Addr // zero: the server gave none
	DNS      []netip.Addr
	Domain   string   // option 15
	Search   []string // option 119, the DNS search list
	ClientID []byte
	Obtained time.Time
	Renew    time.Time // T1
	Rebind   time.Time // T2
	Expiry   time.Time
	ACK      []byte    // the server's last DHCPACK
	Err      string    // the last failed renewal
	LastTry  time.Time // when it failed (not stored)
	Refused  int       // refusals (DHCPNAK) in a row since it expired (not stored)
	// RetryFuzz, in [-1, 1], is where in its window the next try of an
	// expired lease after LastTry falls (the engine's; not stored).
	RetryFuzz float64
}

// ClientID is the client identifier (option 61) of endpoint name on
// network (an identity unique to the host, not just a name): type 0 and
// a hash of both, so that a re-created container
// asks for the same lease and no two endpoints share one.
func ClientID(network, name string) []byte {
	h := sha256.Sum256([]byte("mvlan-dhcp\x00" + network + "\x00" + name))
	return append([]byte{0}, h[:15]...)
}

// fromACK makes a new lease of a DHCPACK received at t.
func fromACK(ack *dhcpv4.DHCPv4, clientID []byte, t time.Time) (Lease, error) {
	return parseACK(ack, clientID, t, nil)
}

// fromRenewal makes the lease a DHCPACK received at t to a renewal (or
// rebinding) of old gives. Only its address and times are authoritative:
// what it leaves out (subnet mask, router, DNS servers, domain, search
// list, server identifier) stays old's. A server should send them all
// again (RFC 2131 4.3.2); not every one does.
func fromRenewal(ack *dhcpv4.DHCPv4, old Lease, t time.Time) (Lease, error) {
	return parseACK(ack, old.ClientID, t, &old)
}

// parseACK is fromACK, with prev (when not nil) the lease ack renews.
// The lease's times are wall-clock (wallClock).
func parseACK(ack *dhcpv4.DHCPv4, clientID []byte, t time.Time, prev *Lease) (Lease, error) {
	t = wallClock(t)
	l := Lease{State: Bound, ClientID: clientID, Obtained: t, ACK: ack.ToBytes()}
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() {
		return l, fmt.Errorf("DHCP server answered without a usable address (yiaddr %v)", ack.YourIPAddr)
	}
	bits, err := maskBits(ack, ip, prev)
	if err != nil {
		return l, err
	}
	l.Addr = netip.PrefixFrom(ip, bits)
	if l.Server = addr4(ack.ServerIdentifier()); !l.Server.IsValid() && prev != nil {
		l.Server = prev.Server
	}
	if !l.Server.IsValid() {
		return l, fmt.Errorf("DHCP server's answer for %s has no server identifier (option 54)", ip)
	}
	if err := l.setOptions(ack, prev); err != nil {
		return l, err
	}
	return l, l.setTimes(ack, t)
}

// maskBits is the prefix length of ip that ack's subnet mask gives; with
// no mask in ack, prev's (when not nil).
func maskBits(ack *dhcpv4.DHCPv4, ip netip.Addr, prev *Lease) (int, error) {
	if prev != nil && !ack.Options.Has(dhcpv4.OptionSubnetMask) {
		return prev.Addr.Bits(), nil
	}
	mask := ack.SubnetMask()
	ones, bits := mask.Size()
	if mask == nil || bits != 32 || ones == 0 {
		return 0, fmt.Errorf("DHCP server gave %s without a valid subnet mask (option 1)", ip)
	}
	return ones, nil
}

// setOptions sets l's router, DNS servers, domain and search list from
// ack; each that ack leaves out is prev's (when not nil), a router only
// if still on l's subnet.
func (l *Lease) setOptions(ack *dhcpv4.DHCPv4, prev *Lease) error {
	kept := func(o dhcpv4.OptionCode) bool { return prev != nil && !ack.Options.Has(o) }
	if kept(dhcpv4.OptionRouter) {
		if l.Addr.Contains(prev.Router) {
			l.Router = prev.Router
		}
	} else if rs := ack.Router(); len(rs) > 0 {
		if l.Router = addr4(rs[0]); l.Router.IsValid() && !l.Addr.Contains(l.Router) {
			return fmt.Errorf("DHCP server %s gave router %s outside %s", l.Server, l.Router, l.Addr.Masked())
		}
	}
	if kept(dhcpv4.OptionDomainNameServer) {
		l.DNS = slices.Clone(prev.DNS)
	}
	for _, d := range ack.DNS() {
		if a := addr4(d); a.IsValid() {
			l.DNS = append(l.DNS, a)
		}
	}
	l.Domain, l.Search = dnsNames(ack)
	if kept(dhcpv4.OptionDomainName) {
		l.Domain = prev.Domain
	}
	if kept(dhcpv4.OptionDNSDomainSearchList) {
		l.Search = slices.Clone(prev.Search)
	}
	return nil
}

// setTimes sets l's T1, T2 and expiry from ack's times (option 51, 58,
// 59) counted from t; T1 and T2 default to 1/2 and 7/8 of the lease, and
// so does one at or past the expiry (which would leave no time to renew).
func (l *Lease) setTimes(ack *dhcpv4.DHCPv4, t time.Time) error {
	lt := ack.IPAddressLeaseTime(0)
	if lt <= 0 {
		return fmt.Errorf("DHCP server gave %s without a lease time (option 51)", l.Addr.Addr())
	}
	t1, t2 := ack.IPAddressRenewalTime(lt/2), ack.IPAddressRebindingTime(lt*7/8)
	if t1 <= 0 || t1 >= lt {
		t1 = lt / 2
	}
	if t2 < t1 || t2 >= lt {
		t2 = max(t1, lt*7/8)
	}
	l.Renew, l.Rebind, l.Expiry = t.Add(t1), t.Add(t2), t.Add(lt)
	return nil
}

// fuzzShare is how much earlier than the server's T1 and T2 a lease's
// are, at most, as a share of each: every lease gets a random share, so
// that leases got together (an agent's endpoints once their server is
// back) are not renewed together (RFC 2131 4.4.5: "some random fuzz").
// Never later: that would cut the time the server left to renew, or to
// rebind, before the lease ends.
const fuzzShare = 0.1

// fuzz is l with its T1 and T2 moved earlier by random shares
// (fuzzed).
func fuzz(l Lease) Lease { return l.fuzzed(rand.Float64(), rand.Float64()) }

// fuzzed is l with T1 and T2 each moved earlier by u1 and u2 (in [0, 1],
// clamped) times fuzzShare of its time from l.Obtained: T1 stays after
// l.Obtained, T2 at or after T1 and both before the expiry.
func (l Lease) fuzzed(u1, u2 float64) Lease {
	earlier := func(d time.Duration, u float64) time.Duration {
		return d - time.Duration(min(max(u, 0), 1)*fuzzShare*float64(d))
	}
	t1 := earlier(l.Renew.Sub(l.Obtained), u1)
	t2 := max(earlier(l.Rebind.Sub(l.Obtained), u2), t1)
	l.Renew, l.Rebind = l.Obtained.Add(t1), l.Obtained.Add(t2)
	return l
}

// dnsNames are the domain (option 15) and search list (option 119) of
// ack, each name kept only if it is a plain DNS name (it goes into the
// container's resolv.conf: no spaces, no newlines).
func dnsNames(ack *dhcpv4.DHCPv4) (domain string, search []string) {
	if d := strings.TrimSuffix(ack.DomainName(), "."); dnsName(d) {
		domain = d
	}
	if s := ack.DomainSearch(); s != nil {
		for _, d := range s.Labels {
			if d = strings.TrimSuffix(d, "."); dnsName(d) {
				search = append(search, d)
			}
		}
	}
	return domain, search
}

// dnsName reports whether s is a DNS name resolv.conf can take.
func dnsName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func addr4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// StateAt is the state of a bound lease at t.
func (l Lease) StateAt(t time.Time) State {
	switch {
	case !t.Before(l.Expiry):
		return Expired
	case !t.Before(l.Rebind):
		return Rebinding
	case !t.Before(l.Renew):
		return Renewing
	}
	return Bound
}

// API is the lease as the API and the store keep it.
// Its state is the one its times give, unless it expired already.
func (l Lease) API() *api.Lease {
	st := l.State
	if st != Expired {
		st = l.StateAt(time.Now())
	}
	return &api.Lease{State: st.String(), Server: l.Server, Addr: l.Addr, Router: l.Router, DNS: l.DNS,
		Domain: l.Domain, Search: l.Search, ClientID: fmt.Sprintf("%x", l.ClientID), Obtained: l.Obtained, Renew: l.Renew, Rebind: l.Rebind,
		Expiry: l.Expiry, ACK: l.ACK, Error: l.Err}
}

// FromAPI reads a stored lease back.
func FromAPI(a api.Lease) (Lease, error) {
	l := Lease{Server: a.Server, Addr: a.Addr, Router: a.Router, DNS: a.DNS, Domain: a.Domain, Search: a.Search, Obtained: a.Obtained,
		Renew: a.Renew, Rebind: a.Rebind, Expiry: a.Expiry, ACK: a.ACK, Err: a.Error}
	st := -1
	for i, n := range stateNames {
		if n == a.State {
			st = i
		}
	}
	if st < 0 {
		return l, fmt.Errorf("unknown lease state %q", a.State)
	}
	l.State = State(st)
	if _, err := fmt.Sscanf(a.ClientID, "%x", &l.ClientID); err != nil {
		return l, fmt.Errorf("lease client id %q: %w", a.ClientID, err)
	}
	if l.Addr.Addr().Is6() {
		return l, checkReply(a.ACK)
	}
	if _, err := dhcpv4.FromBytes(a.ACK); err != nil {
		return l, errors.Join(errors.New("stored DHCPACK does not parse"), err)
	}
	return l, nil
}

// wallClock is t without its monotonic reading, so that a lease's times
// compare with now on the wall clock: a lease runs out on the server's
// clock also while this host is suspended, which Go's monotonic clock
// (CLOCK_MONOTONIC) does not count.
func wallClock(t time.Time) time.Time { return t.Round(0) }
