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
)

// Renew extends old. A renewal that moves the lease to another address
// has it probed as Acquire does: in use, it is declined (ErrInUse), and
// the lease stays as it was; refused (renewedIn, or an ACK that does not
// parse as a lease), it is given back
// (DHCPRELEASE), so that the next renewal may have old's address bound
// again rather than refused as not the client's. Before T2 (RENEWING) the DHCPREQUEST goes
// unicast to old's server from old's address, and only that server may
// answer; from T2 on (REBINDING, RFC 2131 4.4.5 and table 4) it is
// broadcast and any server may: a failover partner that took over. Both
// send a DHCPREQUEST of their own (a new xid) with the address in ciaddr
// and no server identifier.
func Renew(ctx context.Context, l Link, old Lease) (lease Lease, err error) {
	req, err := renewRequest(l, old)
	if err != nil {
		return old, err
	}
	ack, err := renewExchange(ctx, l, old, req)
	if err != nil {
		return lease, err
	}
	if lease, err = fromRenewal(ack, old, time.Now()); err == nil {
		lease, err = fuzz(lease), l.renewedIn(lease, routersOf(ack)...)
	}
	if moved := addr4(ack.YourIPAddr); err != nil && moved.IsValid() && moved != old.Addr.Addr() {
		err = errors.Join(err, giveBack(ctx, l, ack, old, moved)) // the server bound it to the endpoint
	}
	if err == nil && lease.Addr.Addr() != old.Addr.Addr() {
		err = l.check(ctx, lease) // a new address is probed as a first one is
	}
	return lease, err
}

// giveBack releases moved, the address ack (a renewal of old) bound to
// the endpoint, which it does not take.
func giveBack(ctx context.Context, l Link, ack *dhcpv4.DHCPv4, old Lease, moved netip.Addr) error {
	server := addr4(ack.ServerIdentifier())
	if !server.IsValid() {
		server = old.Server
	}
	return Release(context.WithoutCancel(ctx), l, Lease{Addr: netip.PrefixFrom(moved, 32), Server: server})
}

// renewExchange sends req, l's renewal of old, and returns the DHCPACK:
// RENEWING, unicast to old's server from old's address (unicastConn),
// waiting for that server's answer; when that cannot be sent (the address
// is not on the link, no route to the server, port 68 taken), and
// REBINDING, broadcast from 0.0.0.0 on the link. A DHCPNAK is ErrNAK.
func renewExchange(ctx context.Context, l Link, old Lease, req *dhcpv4.DHCPv4) (ack *dhcpv4.DHCPv4, err error) {
	match := nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	renewing := old.StateAt(time.Now()) < Rebinding
	if renewing {
		match = nclient4.IsAll(nclient4.IsCorrectServer(net.IP(old.Server.AsSlice())), match)
	}
	err = onLink(ctx, l, "DHCP client", func(ifi *net.Interface) error {
		if renewing {
			conn, err := unicastConn(ifi, old.Addr.Addr())
			if err == nil {
				server := &net.UDPAddr{IP: net.IP(old.Server.AsSlice()), Port: nclient4.ServerPort}
				ack, err = exchange(ctx, l, ifi, conn, server, req, match)
			}
			if !errors.Is(err, errUnsent) {
				return err
			}
		}
		conn, err := rawConn4(ifi)
		if err != nil {
			return fmt.Errorf("DHCP client: %w", err)
		}
		ack, err = exchange(ctx, l, ifi, conn, &net.UDPAddr{IP: net.IPv4bcast, Port: nclient4.ServerPort}, req, match)
		return err
	})
	return ack, err
}

// exchange sends req to dest on conn, a client's connection on l's link
// ifi, which it closes, resending as nclient4 does, and returns the first
// answer that match takes: a DHCPNAK is ErrNAK.
func exchange(ctx context.Context, l Link, ifi *net.Interface, conn net.PacketConn, dest *net.UDPAddr, req *dhcpv4.DHCPv4, match nclient4.Matcher) (*dhcpv4.DHCPv4, error) {
	c, err := nclient4.NewWithConn(conn, l.MAC, nclient4.WithTimeout(timeout), nclient4.WithRetry(retry))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("DHCP client on link %d (%s): %w", ifi.Index, ifi.Name, err), conn.Close())
	}
	wait := window(ctx, timeout, retry)
	ack, err := c.SendAndRead(ctx, dest, req, match)
	if err != nil {
		return nil, errors.Join(noAnswer(ctx, "DHCPREQUEST", wait, err), c.Close())
	}
	if err := c.Close(); err != nil {
		return nil, fmt.Errorf("DHCP client on link %d (%s): %w", ifi.Index, ifi.Name, err)
	}
	if ack.MessageType() == dhcpv4.MessageTypeNak {
		return nil, nakErr(ack)
	}
	return ack, nil
}

// errUnsent marks a unicast DHCP message that could not be sent: the
// caller broadcasts it instead.
var errUnsent = errors.New("unicast not sent")

// sendConn is a client's connection that reads off the link's packet
// socket (a server's answer reaches it whether it is unicast to the
// client's address or broadcast, and whatever the container's firewall
// does with it) and sends through a UDP socket on the client's address,
// which the kernel routes and resolves: unicast from the leased address.
type sendConn struct {
	net.PacketConn                // the packet socket (rawConn4)
	udp            net.PacketConn // the UDP socket (udpConn4)
}

// unicastConn is a connection for a client on ifi that has address addr
// on it (sendConn); errUnsent when it cannot be made.
func unicastConn(ifi *net.Interface, addr netip.Addr) (net.PacketConn, error) {
	udp, err := udpConn4(ifi, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnsent, err)
	}
	raw, err := rawConn4(ifi)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%w: %w", errUnsent, err), udp.Close())
	}
	return &sendConn{PacketConn: raw, udp: udp}, nil
}

// WriteTo sends b to to through the UDP socket; its failure is errUnsent.
func (c *sendConn) WriteTo(b []byte, to net.Addr) (int, error) {
	n, err := c.udp.WriteTo(b, to)
	if err != nil {
		return n, fmt.Errorf("%w: %w", errUnsent, err)
	}
	return n, nil
}

// Close closes both sockets.
func (c *sendConn) Close() error {
	return errors.Join(c.PacketConn.Close(), c.udp.Close())
}

// renewedIn refuses a renewal's address outside l.Subnet or in l.Refuse:
// from T2 any server may answer, one misconfigured too, and a renewal
// changes the address the endpoint may use. Acquire refuses such offers
// the same way.
func (l Link) renewedIn(lease Lease, routers ...netip.Addr) error {
	if err := l.refused(lease.Server, "renewed the lease with", lease.Addr.Addr(), append(routers, lease.Router)...); err != nil {
		return fmt.Errorf("%w; the lease stays as it was", err)
	}
	return nil
}

// renewRequest is the DHCPREQUEST of a client renewing or rebinding old
// (RFC 2131 4.3.2 and table 5): ciaddr is its address; it carries neither
// a requested address nor a server identifier; its xid is new, as each
// exchange's must be (a retransmission keeps it).
func renewRequest(l Link, old Lease) (*dhcpv4.DHCPv4, error) {
	if !old.Addr.Addr().Is4() {
		return nil, fmt.Errorf("lease of %s is not a DHCPv4 lease", old.Addr)
	}
	req, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithHwAddr(l.MAC),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.IP(old.Addr.Addr().AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)),
	}, l.modifiers()...)...)
	if err != nil {
		return nil, fmt.Errorf("DHCPREQUEST: %w", err)
	}
	return req, nil
}
