package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"
	"github.com/insomniacslk/dhcp/iana"
)

// DHCPv6 (RFC 8415) for one endpoint: one IA_NA with one address, leased
// from the link's link-local address (UDP 546 to ff02::1:2 port 547).
// l.ClientID is the DUID (DUID6), l.Subnet the network's IPv6 --subnet
// (when valid, the address must be in it and is put on the link with its
// prefix length, which DHCPv6 does not carry; else it is a /128).

// timeout6 is the first wait for an answer; nclient6 doubles it on each
// of retry sends (1+2+4 s).
const timeout6 = time.Second

// linkLocalWait bounds the wait for the link's link-local address to be
// usable (present and past DAD): the client's socket is bound to it.
const linkLocalWait = 3 * time.Second

// IAID is the endpoint's one IA_NA (the datapath holds the DHCPv6
// messages of an endpoint of a DHCP network to it: bpf/include/dhcp.h,
// DHCP6_IAID). The DUID is already the endpoint's
// own on the network, so one constant IAID keeps the binding stable.
var IAID = [4]byte{'m', 'v', 'l', '6'}

// run6 runs fn with a DHCPv6 client on l's link, inside l's namespace.
func run6(ctx context.Context, l Link, tries int, fn func(*nclient6.Client) error) error {
	return onLink(ctx, l, "DHCPv6 client", func(ifi *net.Interface) error {
		c, err := newClient6(ctx, l, ifi, tries)
		if err != nil {
			return err
		}
		return errors.Join(fn(c), c.Close())
	})
}

// newClient6 makes a client bound to the link-local address of l's link,
// waiting for it: a link just brought up has none for a moment, and one
// still in DAD (tentative) cannot be bound. Called in l's namespace.
func newClient6(ctx context.Context, l Link, ifi *net.Interface, tries int) (*nclient6.Client, error) {
	deadline := time.Now().Add(linkLocalWait)
	for {
		conn, err := newConn6(ifi)
		if err == nil {
			c, err := nclient6.NewWithConn(conn, l.MAC, nclient6.WithTimeout(timeout6), nclient6.WithRetry(tries))
			if err != nil {
				return nil, errors.Join(fmt.Errorf("DHCPv6 client on link %d (%s): %w", ifi.Index, ifi.Name, err), conn.Close())
			}
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("DHCPv6 client on link %d (%s): no usable link-local address within %v: %w", ifi.Index, ifi.Name, linkLocalWait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mods6 are the options every message of l carries.
func (l Link) mods6() []dhcpv6.Modifier {
	m := []dhcpv6.Modifier{
		dhcpv6.WithOption(dhcpv6.OptClientID(duidOf(l.ClientID))),
		dhcpv6.WithRequestedOptions(dhcpv6.OptionDNSRecursiveNameServer),
	}
	if l.Hostname != "" {
		m = append(m, dhcpv6.WithFQDN(0, l.Hostname))
	}
	return m
}

// Acquire6 runs Solicit, Advertise, Request, Reply on l. An advertised
// address outside l.Subnet is refused before it is requested.
func Acquire6(ctx context.Context, l Link) (lease Lease, err error) {
	err = run6(ctx, l, retry, func(c *nclient6.Client) error {
		mods := append(l.mods6(), dhcpv6.WithIAID(IAID))
		if l.Want.IsValid() && l.Want.Is6() {
			mods = append(mods, dhcpv6.WithIANA(dhcpv6.OptIAAddress{IPv6Addr: net.IP(l.Want.AsSlice())}))
		}
		adv, a, err := solicit(ctx, c, l, mods)
		if err != nil {
			return err
		}
		if l.Subnet.IsValid() && !l.Subnet.Contains(a) {
			return fmt.Errorf("DHCPv6 server advertised %s, outside the network's IPv6 --subnet %s; fix the server's range or the network's --subnet", a, l.Subnet)
		}
		if who := l.whose(a); who != "" {
			return fmt.Errorf("DHCPv6 server advertised %s, %s; leave it out of the server's range", a, who)
		}
		wait := window(ctx, timeout6, retry)
		reply, err := c.Request(ctx, adv, l.mods6()...)
		if err != nil {
			return noAnswer6(ctx, "Request", wait, err)
		}
		if lease, err = fromReply(reply, l, time.Now()); err == nil {
			lease = fuzz(lease)
		}
		return err
	})
	if err == nil && l.Subnet.IsValid() && !l.Subnet.Contains(lease.Addr.Addr()) {
		err = errors.Join(fmt.Errorf("DHCPv6 server assigned %s, outside the network's IPv6 --subnet %s", lease.Addr.Addr(), l.Subnet), Release6(context.WithoutCancel(ctx), l, lease))
	}
	if who := l.whose(lease.Addr.Addr()); err == nil && who != "" {
		err = errors.Join(fmt.Errorf("DHCPv6 server assigned %s, %s; leave it out of the server's range", lease.Addr.Addr(), who), Release6(context.WithoutCancel(ctx), l, lease))
	}
	return lease, err
}

// solicit sends l's Solicit and returns the first Advertise with an
// address for l, and that address. An Advertise with none (NoAddrsAvail:
// a server whose range is used up) is ignored (RFC 8415 18.2.9); when no
// other comes within advertiseGrace of it, it is the error.
func solicit(ctx context.Context, c *nclient6.Client, l Link, mods []dhcpv6.Modifier) (*dhcpv6.Message, netip.Addr, error) {
	m, err := dhcpv6.NewSolicit(l.MAC, mods...)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("DHCPv6 Solicit: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var ignored error // why the last Advertise ignored has no address
	var grace *time.Timer
	match := func(adv *dhcpv6.Message) bool {
		if adv.MessageType != dhcpv6.MessageTypeAdvertise {
			return false
		}
		if _, _, ignored = iaAddr(adv, l.Want); ignored != nil && grace == nil {
			grace = time.AfterFunc(advertiseGrace, cancel)
		}
		return ignored == nil
	}
	wait := window(ctx, timeout6, retry)
	adv, err := c.SendAndRead(sctx, c.RemoteAddr(), m, match)
	if grace != nil {
		grace.Stop()
	}
	switch {
	case err != nil && ignored != nil && ctx.Err() == nil:
		return nil, netip.Addr{}, fmt.Errorf("%w, and no other server advertised an address within %v of it; widen the server's range or free addresses it holds", ignored, advertiseGrace)
	case err != nil:
		return nil, netip.Addr{}, noAnswer6(ctx, "Solicit", wait, err)
	}
	a, _, err := iaAddr(adv, l.Want)
	return adv, a, err
}

// advertiseGrace is how long a Solicit answered by an Advertise without an
// address waits for another: the first retransmission time (RFC 8415
// 18.2.1, SOL_TIMEOUT), in which a client collects Advertises.
const advertiseGrace = time.Second

// Renew6 extends old: a Renew to its server before T2, a Rebind to any
// server after. A Reply with NoBinding (a server that lost its bindings)
// is followed by a Request for old's address to the server that answered
// (RFC 8415 18.2.10.1: reinstate), whose Reply renews the lease. A
// Request refused, NotOnLink and a valid lifetime of 0 are ErrNAK; a
// Request not answered is not: the address stays until it expires.
func Renew6(ctx context.Context, l Link, old Lease) (lease Lease, err error) {
	m, err := ia6Message(old, dhcpv6.MessageTypeRenew)
	if err != nil {
		return old, err
	}
	if old.StateAt(time.Now()) >= Rebinding {
		m.MessageType = dhcpv6.MessageTypeRebind
		m.Options.Del(dhcpv6.OptionServerID)
	}
	for _, mod := range l.mods6() {
		mod(m)
	}
	var refusal error             // the renewed address is not the endpoint's to take
	var withdrawn *WithdrawnError // and the server took old's address back
	err = run6(ctx, l, retry, func(c *nclient6.Client) error {
		reply, err := sendRead6(ctx, c, m)
		if err != nil {
			return err
		}
		lease, err = fromRenewReply(reply, l, old, time.Now())
		how := "valid lifetime 0"
		if se := (*StatusError)(nil); errors.As(err, &se) && se.Code == iana.StatusNoBinding {
			lease, err = reinstate(ctx, c, l, old, reply, err)
			how = "NoBinding" // old is bound no more, whatever the Request got
		}
		if err == nil {
			lease, refusal = fuzz(lease), l.refused(netip.Addr{}, "renewed the lease with", lease.Addr.Addr())
			if refusal != nil && (how == "NoBinding" || zeroLifetime(reply, old.Addr.Addr())) {
				withdrawn = &WithdrawnError{Addr: old.Addr.Addr(), How: how, Moved: refusal}
			}
		}
		return err
	})
	switch {
	case withdrawn != nil: // neither address is the endpoint's: off the link, asked for anew
		err = errors.Join(withdrawn, Release6(context.WithoutCancel(ctx), l, lease))
	case refusal != nil && lease.Addr.Addr() != old.Addr.Addr(): // a new address beside old's: given back
		err = errors.Join(fmt.Errorf("%w; the lease stays as it was, and %s is given back", refusal, lease.Addr.Addr()), Release6(context.WithoutCancel(ctx), l, lease))
	case refusal != nil:
		err = fmt.Errorf("%w; the lease stays as it was", refusal)
	}
	return lease, err
}

// zeroLifetime says whether r's IA_NA lists a with a valid lifetime of 0:
// the server withdrew it (RFC 8415 18.2.10.1: the client stops using it).
func zeroLifetime(r *dhcpv6.Message, a netip.Addr) bool {
	ia := r.Options.OneIANA()
	if ia == nil {
		return false
	}
	for _, o := range ia.Options.Addresses() {
		if ip, ok := netip.AddrFromSlice(o.IPv6Addr.To16()); ok && ip == a {
			return o.ValidLifetime == 0
		}
	}
	return false
}

// reinstate sends the server that answered a Renew or Rebind of old with
// NoBinding (reply, refused) a Request for old's IA_NA and address (RFC
// 8415 18.2.10.1) and makes a lease of its Reply. A Reply that refuses is
// refused joined with why (ErrNAK); none, or a Request not sent, leaves the
// lease as it was (an error, not ErrNAK).
func reinstate(ctx context.Context, c *nclient6.Client, l Link, old Lease, reply *dhcpv6.Message, refused error) (Lease, error) {
	req, err := ia6Message(old, dhcpv6.MessageTypeRequest)
	if err != nil {
		return Lease{}, errors.Join(refused, err)
	}
	if sid := reply.Options.ServerID(); sid != nil {
		req.Options.Del(dhcpv6.OptionServerID)
		req.AddOption(dhcpv6.OptServerID(sid))
	}
	for _, mod := range l.mods6() {
		mod(req)
	}
	got, err := sendRead6(ctx, c, req)
	if err != nil {
		return Lease{}, fmt.Errorf("%s; its Request to reinstate %s: %w", refused, old.Addr.Addr(), err)
	}
	lease, err := fromRenewReply(got, l, old, time.Now())
	if err != nil {
		return lease, errors.Join(refused, fmt.Errorf("request to reinstate %s: %w", old.Addr.Addr(), err))
	}
	return lease, nil
}

// sendRead6 sends m to the servers and returns the first Reply to it.
func sendRead6(ctx context.Context, c *nclient6.Client, m *dhcpv6.Message) (*dhcpv6.Message, error) {
	wait := window(ctx, timeout6, retry)
	reply, err := c.SendAndRead(ctx, c.RemoteAddr(), m, nclient6.IsMessageType(dhcpv6.MessageTypeReply))
	if err != nil {
		return nil, noAnswer6(ctx, m.MessageType.String(), wait, err)
	}
	return reply, nil
}

// Release6 gives lease back (Release, and the server's Reply, waited for
// once). It is sent from the link-local address, which the link keeps
// until it is deleted. Like Release it takes no exchange slot (onLinkNow):
// behind exchanges waiting for a server that does not answer, a removal's
// release would be skipped. Only the socket is made in the link's
// namespace (it stays there): the wait for the Reply holds no thread of
// its own, however many removals release at once.
func Release6(ctx context.Context, l Link, lease Lease) error {
	m, err := ia6Message(lease, dhcpv6.MessageTypeRelease)
	if err != nil {
		return err
	}
	var c *nclient6.Client
	err = onLinkNow(l, "DHCPv6 release", func(ifi *net.Interface) (err error) {
		c, err = newClient6(ctx, l, ifi, 1)
		return err
	})
	if err != nil {
		return err
	}
	wait := window(ctx, timeout6, 1)
	_, err = c.SendAndRead(ctx, c.RemoteAddr(), m, nclient6.IsMessageType(dhcpv6.MessageTypeReply))
	if err != nil {
		err = noAnswer6(ctx, "Release", wait, err)
	}
	return errors.Join(err, c.Close())
}

// ia6Message is a message of type t about lease's address: its client
// and server IDs (from the stored Reply) and its IA_NA.
func ia6Message(lease Lease, t dhcpv6.MessageType) (*dhcpv6.Message, error) {
	reply, err := dhcpv6.MessageFromBytes(lease.ACK)
	if err != nil {
		return nil, fmt.Errorf("stored DHCPv6 Reply: %w", err)
	}
	sid := reply.Options.ServerID()
	if sid == nil {
		return nil, errors.New("stored DHCPv6 Reply has no server ID")
	}
	m, err := dhcpv6.NewMessage()
	if err != nil {
		return nil, err
	}
	m.MessageType = t
	m.AddOption(dhcpv6.OptClientID(duidOf(lease.ClientID)))
	m.AddOption(dhcpv6.OptServerID(sid))
	m.AddOption(dhcpv6.OptElapsedTime(0))
	ia := &dhcpv6.OptIANA{IaId: IAID}
	ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.IP(lease.Addr.Addr().AsSlice())})
	m.AddOption(ia)
	return m, nil
}

// StatusError is a DHCPv6 server's refusal (a Status Code option).
type StatusError struct {
	Code iana.StatusCode
	Msg  string
}

func (e *StatusError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("DHCPv6 server answered %s", e.Code)
	}
	return fmt.Sprintf("DHCPv6 server answered %s: %q", e.Code, e.Msg)
}

// Is makes NoBinding and NotOnLink ErrNAK: the binding is not the
// client's any more, it must start again (RFC 8415 18.2.10.1; Renew6
// first asks to reinstate a binding answered NoBinding).
func (e *StatusError) Is(target error) bool {
	return target == ErrNAK && (e.Code == iana.StatusNoBinding || e.Code == iana.StatusNotOnLink)
}

// WithdrawnError is a Reply that takes back Addr, the lease's address
// (How: a valid lifetime of 0, or NoBinding to a renewal whose Request to
// reinstate it got another): the client may no longer use it (RFC 8415
// 18.2.10.1), ErrNAK. Moved says why the address the server gives instead
// is refused (nil: it gives none); that one is given back (Release).
type WithdrawnError struct {
	Addr  netip.Addr
	How   string
	Moved error
}

func (e *WithdrawnError) Error() string {
	if e.Moved == nil {
		return fmt.Sprintf("DHCPv6 server gave %s a valid lifetime of 0 (withdrawn)", e.Addr)
	}
	return fmt.Sprintf("%v; it withdrew %s (%s), so the endpoint may use neither and the refused one is given back", e.Moved, e.Addr, e.How)
}

// Is makes it ErrNAK.
func (e *WithdrawnError) Is(target error) bool { return target == ErrNAK }

// Unwrap is Moved.
func (e *WithdrawnError) Unwrap() error { return e.Moved }

func statusErr(s *dhcpv6.OptStatusCode) error {
	if s == nil || s.StatusCode == iana.StatusSuccess {
		return nil
	}
	return &StatusError{Code: s.StatusCode, Msg: s.StatusMessage}
}

// noAnswer6 is noAnswer for DHCPv6.
func noAnswer6(ctx context.Context, what string, wait time.Duration, err error) error {
	if ctx.Err() == nil && !errors.Is(err, nclient6.ErrNoResponse) {
		return fmt.Errorf("DHCPv6 %s: %w", what, err)
	}
	return fmt.Errorf("%w to DHCPv6 %s within %v", ErrNoAnswer, what, wait)
}
