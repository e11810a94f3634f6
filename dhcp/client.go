package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/mvlan/mvlan/nsthread"
)

// Link is where a client runs: the endpoint's link in its namespace.
type Link struct {
	Netns    string // namespace path, e.g. /run/netns/c1
	IfName   string
	MAC      net.HardwareAddr
	ClientID []byte
	Hostname string       // sent as option 12; "" sends none
	Subnet   netip.Prefix // when valid, offers outside it are refused
	Want     netip.Addr   // when valid, asked for (option 50)
}

// ErrNAK means the server refused the request (DHCPNAK).
var ErrNAK = errors.New("DHCP server refused the request (DHCPNAK)")

// ErrNoAnswer means no server answered in time.
var ErrNoAnswer = errors.New("no DHCP server answered")

// retry is how often one message is sent (each waits for timeout).
const (
	retry   = 3
	timeout = 2 * time.Second
)

// run runs fn with a client on l's link, inside l's namespace: the
// client's raw socket is made there and bound to the link.
func run(ctx context.Context, l Link, fn func(*nclient4.Client) error, opts ...nclient4.ClientOpt) error {
	return nsthread.DoPath(l.Netns, func() error {
		opts = append([]nclient4.ClientOpt{nclient4.WithHWAddr(l.MAC), nclient4.WithTimeout(timeout), nclient4.WithRetry(retry)}, opts...)
		c, err := nclient4.New(l.IfName, opts...)
		if err != nil {
			return fmt.Errorf("DHCP client on %s: %w", l.IfName, err)
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

// Acquire runs DISCOVER, OFFER, REQUEST, ACK on l. An offer outside
// l.Subnet is refused before it is requested, so the server binds nothing.
func Acquire(ctx context.Context, l Link) (lease Lease, err error) {
	err = run(ctx, l, func(c *nclient4.Client) error {
		mods := l.modifiers()
		if l.Want.IsValid() {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP(l.Want.AsSlice()))))
		}
		offer, err := c.DiscoverOffer(ctx, mods...)
		if err != nil {
			return noAnswer(ctx, "DHCPDISCOVER", err)
		}
		if ip := addr4(offer.YourIPAddr); l.Subnet.IsValid() && !l.Subnet.Contains(ip) {
			return fmt.Errorf("DHCP server %v offered %v, outside the network's --subnet %s; fix the server's range or the network's --subnet", offer.ServerIdentifier(), offer.YourIPAddr, l.Subnet)
		}
		nl, err := c.RequestFromOffer(ctx, offer, l.modifiers()...)
		if err != nil {
			return requestErr(ctx, err)
		}
		lease, err = fromACK(nl.ACK, l.ClientID, nl.CreationTime)
		return err
	})
	if err == nil && l.Subnet.IsValid() && !l.Subnet.Contains(lease.Addr.Addr()) {
		err = errors.Join(fmt.Errorf("DHCP server %s acknowledged %s, outside the network's --subnet %s", lease.Server, lease.Addr, l.Subnet), Release(ctx, l, lease))
	}
	return lease, err
}

// Renew asks for old's lease again (a DHCPREQUEST with ciaddr, broadcast
// on the link: it serves both renewing and rebinding).
func Renew(ctx context.Context, l Link, old Lease) (lease Lease, err error) {
	ack, err := dhcpv4.FromBytes(old.ACK)
	if err != nil {
		return old, fmt.Errorf("stored DHCPACK: %w", err)
	}
	err = run(ctx, l, func(c *nclient4.Client) error {
		nl, err := c.Renew(ctx, &nclient4.Lease{Offer: ack, ACK: ack}, l.modifiers()...)
		if err != nil {
			return requestErr(ctx, err)
		}
		lease, err = fromACK(nl.ACK, l.ClientID, nl.CreationTime)
		return err
	})
	return lease, err
}

// Release tells the server that l gives lease back (DHCPRELEASE; no
// answer). It is sent from the leased address, which must still be on the
// link: a server's kernel drops a unicast datagram from 0.0.0.0.
func Release(ctx context.Context, l Link, lease Lease) error {
	ack, err := dhcpv4.FromBytes(lease.ACK)
	if err != nil {
		return fmt.Errorf("stored DHCPACK: %w", err)
	}
	return run(ctx, l, func(c *nclient4.Client) error {
		return c.Release(&nclient4.Lease{Offer: ack, ACK: ack}, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(l.ClientID)))
	}, nclient4.WithUnicast(&net.UDPAddr{IP: net.IP(lease.Addr.Addr().AsSlice()), Port: nclient4.ClientPort}))
}

func requestErr(ctx context.Context, err error) error {
	var nak *nclient4.ErrNak
	if errors.As(err, &nak) {
		if msg := nak.Nak.Message(); msg != "" {
			return fmt.Errorf("%w: %q", ErrNAK, msg)
		}
		return ErrNAK
	}
	return noAnswer(ctx, "DHCPREQUEST", err)
}

func noAnswer(ctx context.Context, what string, err error) error {
	if ctx.Err() == nil && !errors.Is(err, nclient4.ErrNoResponse) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%w to %s within %v", ErrNoAnswer, what, retry*timeout)
}
