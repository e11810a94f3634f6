package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// conn6 is a DHCPv6 client's connection on a link: it sends from the UDP
// socket on the link-local address (udpConn6) and reads the servers'
// messages from IPv6 frames of a packet socket bound to the link's index,
// as the DHCPv4 client does. A process in the container's namespace can
// send to the UDP socket's address itself (through loopback, past every
// program on the link), in microseconds, with the transaction ID it saw
// go out: the agent would take its Advertise and Reply for the server's,
// and allow the container any address of the subnet. What the packet
// socket gets came through the link, after the endpoint's programs (a
// socket of one protocol gets a frame after TC), and never what the link
// sends. The UDP socket's own queue is never read.
type conn6 struct {
	net.PacketConn // sends
	raw            *packet.Conn
	buf            []byte
}

// newConn6 is conn6 on ifi; it fails as udpConn6 does.
func newConn6(ifi *net.Interface) (net.PacketConn, error) {
	udp, err := udpConn6(ifi)
	if err != nil {
		return nil, err
	}
	raw, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_IPV6, nil)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("packet socket on link %d (%s): %w", ifi.Index, ifi.Name, err), udp.Close())
	}
	return &conn6{PacketConn: udp, raw: raw, buf: make([]byte, 64<<10)}, nil
}

// ReadFrom returns the next UDP payload from a server (port 547) to the
// client's port (546) that came through the link.
func (c *conn6) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, _, err := c.raw.ReadFrom(c.buf)
		if errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
			return 0, nil, net.ErrClosed // what nclient6 takes for the end
		}
		if err != nil {
			return 0, nil, err
		}
		if payload, src, ok := serverUDP6(c.buf[:n]); ok {
			return copy(b, payload), &net.UDPAddr{IP: src.AsSlice(), Port: dhcpv6.DefaultServerPort}, nil
		}
	}
}

func (c *conn6) Close() error { return errors.Join(c.PacketConn.Close(), c.raw.Close()) }

func (c *conn6) SetDeadline(t time.Time) error {
	return errors.Join(c.PacketConn.SetDeadline(t), c.raw.SetDeadline(t))
}

func (c *conn6) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

// serverUDP6 is the payload of IPv6 packet p (from its fixed header) if
// it is UDP from port 547 to port 546, and its source. Extension headers
// are not walked: a server's messages have none. The checksum is not
// checked (as nclient4 does not): a packet socket gets a frame from a
// veth or a local sender before its checksum is filled in.
func serverUDP6(p []byte) (payload []byte, src netip.Addr, ok bool) {
	const ipLen, udpLen = 40, 8
	if len(p) < ipLen+udpLen || p[0]>>4 != 6 || p[6] != unix.IPPROTO_UDP {
		return nil, src, false
	}
	plen := int(binary.BigEndian.Uint16(p[4:6]))
	if plen < udpLen || ipLen+plen > len(p) {
		return nil, src, false
	}
	udp := p[ipLen : ipLen+plen]
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if binary.BigEndian.Uint16(udp[0:2]) != dhcpv6.DefaultServerPort || binary.BigEndian.Uint16(udp[2:4]) != dhcpv6.DefaultClientPort ||
		ulen < udpLen || ulen > len(udp) {
		return nil, src, false
	}
	src = netip.AddrFrom16([16]byte(p[8:24]))
	return udp[udpLen:ulen], src, true
}
