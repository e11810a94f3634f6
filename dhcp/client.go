package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/mvlan/mvlan/probe"
)

// Link is where a client runs: the endpoint's link in its namespace,
// found by index and checked (iface.go).
type Link struct {
	Netns    string // namespace path, e.g. /run/netns/c1
	Ifindex  int    // the link's index in Netns
	Parent   int    // when > 0, the link must be a macvlan of this link of the host
	MAC      net.HardwareAddr
	ClientID []byte
	Hostname string       // sent as option 12; "" sends none
	Subnet   netip.Prefix // when valid, offers outside it are refused
	Want     netip.Addr   // when valid, asked for (option 50)
	// Refuse says why the link must not take an address (it is the
	// network's host shim's, its router's, another endpoint's), "" when it
	// may: offered or assigned, such an address is refused like one
	// outside Subnet. Nil refuses none.
	Refuse func(netip.Addr) string
	// Probing, when set, is told before the client probes an address
	// acknowledged (on true) and after (on false): a link whose frames
	// are checked lets its probes ask for an address not yet its own.
	Probing func(ctx context.Context, on bool)
}

// whose is whose a is of the addresses the link must not take, "" if none.
func (l Link) whose(a netip.Addr) string {
	if l.Refuse == nil {
		return ""
	}
	return l.Refuse(a)
}

// refused is why the server's address a is not the link's (server names
// the server, what says what it did: "offered", "acknowledged"; routers
// are the routers it names), nil when it is fine.
func (l Link) refused(server any, what string, a netip.Addr, routers ...netip.Addr) error {
	who := fmt.Sprintf("DHCP server %v", server)
	if s, ok := server.(netip.Addr); ok && !s.IsValid() {
		who = "DHCPv6 server" // known by its DUID only
	}
	switch {
	case a.IsValid() && slices.Contains(routers, a):
		return fmt.Errorf("%s %s %s, the router it names itself; fix the server's range", who, what, a)
	case l.Subnet.IsValid() && !l.Subnet.Contains(a):
		return fmt.Errorf("%s %s %s, outside the network's --subnet %s; fix the server's range or the network's --subnet", who, what, a, l.Subnet)
	}
	if whose := l.whose(a); whose != "" { // asked once: it looks at the host
		return fmt.Errorf("%s %s %s, %s; leave it out of the server's range", who, what, a, whose)
	}
	return nil
}

// routersOf are the routers m names (option 3).
func routersOf(m *dhcpv4.DHCPv4) []netip.Addr {
	var out []netip.Addr
	for _, r := range m.Router() {
		if a := addr4(r); a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// ErrNAK means the server refused the request (DHCPNAK).
var ErrNAK = errors.New("DHCP server refused the request (DHCPNAK)")

// ErrNoAnswer means no server answered in time.
var ErrNoAnswer = errors.New("no DHCP server answered")

// retry is how many times nclient4 (and nclient6) sends one message; it
// waits timeout (timeout6) for an answer to the first, and twice as long
// as the last time for each next one.
const (
	retry   = 3
	timeout = 2 * time.Second
)

// window is how long an exchange begun now under ctx waits for an answer
// from a client that sends tries times, waiting first after the first
// send: the sum of its doubling waits, or less when ctx's deadline is
// sooner.
func window(ctx context.Context, first time.Duration, tries int) time.Duration {
	w := first * time.Duration(1<<tries-1)
	if d, ok := ctx.Deadline(); ok {
		w = min(w, time.Until(d))
	}
	return max(w, 0).Round(100 * time.Millisecond)
}

// run runs fn with a client on l's link, inside l's namespace: the
// client's packet socket is made there and bound to the link's index.
func run(ctx context.Context, l Link, fn func(*nclient4.Client) error, opts ...nclient4.ClientOpt) error {
	return onLink(ctx, l, "DHCP client", func(ifi *net.Interface) error {
		conn, err := rawConn4(ifi)
		if err != nil {
			return fmt.Errorf("DHCP client: %w", err)
		}
		opts = append([]nclient4.ClientOpt{nclient4.WithTimeout(timeout), nclient4.WithRetry(retry)}, opts...)
		c, err := nclient4.NewWithConn(conn, l.MAC, opts...)
		if err != nil {
			return errors.Join(fmt.Errorf("DHCP client on link %d (%s): %w", ifi.Index, ifi.Name, err), conn.Close())
		}
		return errors.Join(fn(c), c.Close())
	})
}

func (l Link) modifiers() []dhcpv4.Modifier {
	m := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(l.ClientID)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionDomainName, dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue),
	}
	if l.Hostname != "" {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptHostName(l.Hostname)))
	}
	return m
}

// ErrInUse means a host on the wire answered for an acknowledged address
// (ARP): the lease was declined (DHCPDECLINE).
var ErrInUse = errors.New("address in use on the wire")

// maxDeclines is how many leases one Acquire declines before it gives up.
// RFC 2131 4.4.1 asks a client to wait ten seconds after a DHCPDECLINE
// before it starts over, against loops; Acquire starts over at once, a
// bounded number of times, so that an attach does not wait for it.
const maxDeclines = 3

// Acquire runs DISCOVER, OFFER, REQUEST, ACK on l. An offer outside
// l.Subnet is refused before it is requested, so the server binds nothing.
// The address acknowledged is probed on the link (ARP, RFC 2131 4.4.1 and
// RFC 5227) before it is taken: one that a host on the wire answers for
// is declined, and another asked for (ErrInUse after maxDeclines).
func Acquire(ctx context.Context, l Link) (Lease, error) {
	var declined []error
	for range maxDeclines {
		lease, err := acquire(ctx, l)
		if err != nil {
			return lease, errors.Join(append(declined, err)...)
		}
		switch err := l.check(ctx, lease); {
		case err == nil:
			return lease, nil
		case !errors.Is(err, ErrInUse): // not checked: not taken
			rerr := Release(context.WithoutCancel(ctx), l, lease)
			return Lease{}, errors.Join(append(declined, err, rerr)...)
		default:
			declined = append(declined, err)
			l.Want = netip.Addr{}
		}
	}
	return Lease{}, errors.Join(declined...)
}

// acquire is one DISCOVER, OFFER, REQUEST, ACK.
func acquire(ctx context.Context, l Link) (lease Lease, err error) {
	var routers []netip.Addr // the ACK's
	err = run(ctx, l, func(c *nclient4.Client) error {
		mods, wait := l.modifiers(), window(ctx, timeout, retry)
		if l.Want.IsValid() {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP(l.Want.AsSlice()))))
		}
		offer, err := c.DiscoverOffer(ctx, mods...)
		if err != nil {
			return noAnswer(ctx, "DHCPDISCOVER", wait, err)
		}
		if err := l.refused(offer.ServerIdentifier(), "offered", addr4(offer.YourIPAddr), routersOf(offer)...); err != nil {
			return err
		}
		wait = window(ctx, timeout, retry)
		nl, err := c.RequestFromOffer(ctx, offer, l.modifiers()...)
		if err != nil {
			return requestErr(ctx, wait, err)
		}
		if lease, err = fromACK(nl.ACK, l.ClientID, nl.CreationTime); err == nil {
			lease = fuzz(lease)
		}
		routers = routersOf(nl.ACK)
		return err
	})
	if err == nil {
		if rerr := l.refused(lease.Server, "acknowledged", lease.Addr.Addr(), routers...); rerr != nil {
			err = errors.Join(rerr, Release(context.WithoutCancel(ctx), l, lease)) // also at the deadline
		}
	}
	return lease, err
}

// check probes lease's address out of l's link: when a host answers, it
// declines the lease and returns ErrInUse. A probe that cannot run checks
// nothing: the lease is taken, as a client without the check would. One
// that ctx ends before it heard an answer fails (ctx's error).
func (l Link) check(ctx context.Context, lease Lease) error {
	a := lease.Addr.Addr()
	return onLinkNow(l, "address check", func(ifi *net.Interface) error {
		if l.Probing != nil {
			l.Probing(ctx, true)
			defer l.Probing(ctx, false)
		}
		used, _ := probe.InUseOn(ctx, ifi, []netip.Addr{a}, probe.Options{}) // no probe: no answer
		switch {
		case len(used) > 0: // also when ctx ended after the answer
		case ctx.Err() != nil:
			return fmt.Errorf("address check of %s: %w", a, ctx.Err())
		default:
			return nil
		}
		inUse := fmt.Errorf("%w: DHCP server %v acknowledged %s, and a host on the wire answers for it (ARP): declined (DHCPDECLINE); free the address or leave it out of the server's range",
			ErrInUse, lease.Server, a)
		m, err := declineMessage(l, lease)
		if err == nil {
			err = sendBroadcast(ifi, m)
		}
		if err != nil {
			return errors.Join(inUse, fmt.Errorf("DHCPDECLINE: %w", err))
		}
		return inUse
	})
}

// declineMessage is l's DHCPDECLINE of lease (RFC 2131 table 5): the
// address as option 50, the server named; ciaddr empty.
func declineMessage(l Link, lease Lease) (*dhcpv4.DHCPv4, error) {
	m, err := dhcpv4.New(dhcpv4.WithHwAddr(l.MAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP(lease.Addr.Addr().AsSlice()))),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(lease.Server.AsSlice()))),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(l.ClientID)))
	if err != nil {
		return nil, fmt.Errorf("DHCPDECLINE: %w", err)
	}
	return m, nil
}

// Release tells the server that l gives lease back (DHCPRELEASE, with the
// address in ciaddr; no answer). It goes unicast to the server from the
// leased address (RFC 2131 4.4.6) when that is on the link, else (an ACK
// refused as outside the network's subnet, a lease not applied, one
// expired) broadcast from 0.0.0.0 on the link: a server's kernel drops a
// unicast datagram from 0.0.0.0 but takes a broadcast one.
func Release(ctx context.Context, l Link, lease Lease) error {
	m, err := releaseMessage(l, lease)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("DHCPRELEASE: %w", err)
	}
	return onLinkNow(l, "DHCPRELEASE", func(ifi *net.Interface) error {
		uerr := sendUnicast(ifi, lease.Addr.Addr(), lease.Server, m)
		if uerr == nil {
			return nil
		}
		if err := sendBroadcast(ifi, m); err != nil {
			return fmt.Errorf("DHCPRELEASE: %w", errors.Join(uerr, err))
		}
		return nil
	})
}

// releaseMessage is l's DHCPRELEASE of lease (RFC 2131 table 5): ciaddr
// is the address; it names the lease's server; its xid is new.
func releaseMessage(l Link, lease Lease) (*dhcpv4.DHCPv4, error) {
	if !lease.Addr.Addr().Is4() || !lease.Server.Is4() {
		return nil, fmt.Errorf("lease of %s from %s is not a DHCPv4 lease", lease.Addr, lease.Server)
	}
	m, err := dhcpv4.New(dhcpv4.WithHwAddr(l.MAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease),
		dhcpv4.WithClientIP(net.IP(lease.Addr.Addr().AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(lease.Server.AsSlice()))),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(l.ClientID)))
	if err != nil {
		return nil, fmt.Errorf("DHCPRELEASE: %w", err)
	}
	return m, nil
}

// sendUnicast sends m from addr to server, as UDP from port 68 to 67,
// out of ifi whatever the namespace's routes say. Called in the link's
// namespace.
func sendUnicast(ifi *net.Interface, addr, server netip.Addr, m *dhcpv4.DHCPv4) error {
	pc, err := udpConn4(ifi, addr)
	if err != nil {
		return err
	}
	_, err = pc.WriteTo(m.ToBytes(), &net.UDPAddr{IP: net.IP(server.AsSlice()), Port: nclient4.ServerPort})
	return errors.Join(err, pc.Close())
}

// sendBroadcast sends m from 0.0.0.0 port 68 to 255.255.255.255 port 67
// on ifi, through a packet socket (the link needs no address). Called in
// the link's namespace.
func sendBroadcast(ifi *net.Interface, m *dhcpv4.DHCPv4) error {
	c, err := rawConn4(ifi)
	if err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	_, err = c.WriteTo(m.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: nclient4.ServerPort})
	return errors.Join(err, c.Close())
}

// requestErr is the error of a DHCPREQUEST that waited wait.
func requestErr(ctx context.Context, wait time.Duration, err error) error {
	var nak *nclient4.ErrNak
	if errors.As(err, &nak) {
		return nakErr(nak.Nak)
	}
	return noAnswer(ctx, "DHCPREQUEST", wait, err)
}

// nakErr is ErrNAK with the server's message, if it gave one.
func nakErr(nak *dhcpv4.DHCPv4) error {
	if msg := nak.Message(); msg != "" {
		return fmt.Errorf("%w: %q", ErrNAK, msg)
	}
	return ErrNAK
}

// noAnswer is the error of an exchange of what that waited wait (window)
// and failed with err: ErrNoAnswer when nothing came in time.
func noAnswer(ctx context.Context, what string, wait time.Duration, err error) error {
	if ctx.Err() == nil && !errors.Is(err, nclient4.ErrNoResponse) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%w to %s within %v", ErrNoAnswer, what, wait)
}
