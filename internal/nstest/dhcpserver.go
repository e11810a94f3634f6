package nstest

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// DHCPServer is a small DHCPv4 server (insomniacslk/dhcp's server4) for
// the tests dnsmasq cannot serve: leases of seconds (dnsmasq's least is
// 2 min), and a server that stops answering and starts again with its
// bindings kept. It binds each client (by client-id, else MAC) to the
// next free address after its own, acknowledges any request for that
// binding, and forgets it on DHCPRELEASE; told to (Refuse), it refuses
// every request (DHCPNAK), which dnsmasq cannot be made to do for an
// address it offered. The DHCP tests run dnsmasq, a real server; this one
// only stands in where they cannot.
type DHCPServer struct {
	Addr   netip.Prefix // the server's address on its link (also the router)
	Lease  time.Duration
	T1, T2 time.Duration

	quiet  atomic.Bool
	refuse atomic.Bool
	srv    *server4.Server

	mu       sync.Mutex
	dns      []net.IP // option 6 of its answers (SetDNS)
	released []netip.Addr
	binds    map[string]netip.Addr
	acks     int
	naks     int
	declines int
}

// StartDHCPServer serves on link ifName of namespace ns, where addr (e.g.
// 192.168.70.1/24) is put on the link, with leases of lease and T1, T2 at
// 1/3 and 2/3 of it.
func StartDHCPServer(t testing.TB, ns, ifName string, addr netip.Prefix, lease time.Duration) *DHCPServer {
	t.Helper()
	s := &DHCPServer{Addr: addr, Lease: lease, T1: lease / 3, T2: lease * 2 / 3, binds: map[string]netip.Addr{}}
	if out, err := RunErr(ns, "ip", "addr", "add", addr.String(), "dev", ifName); err != nil {
		t.Fatalf("address of the DHCP server: %v\n%s", err, out)
	}
	err := In(ns, func() (err error) {
		s.srv, err = server4.NewServer(ifName, nil, s.handle)
		return err
	})
	if err != nil {
		t.Fatalf("DHCP server on %s: %v", ifName, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.srv.Serve()
	}()
	t.Cleanup(func() {
		_ = s.srv.Close()
		<-done
	})
	return s
}

// Quiet makes the server stop answering (true) or answer again (false);
// its bindings stay.
func (s *DHCPServer) Quiet(q bool) { s.quiet.Store(q) }

// Refuse makes the server answer every DHCPREQUEST with a DHCPNAK (true)
// or as before (false); it still offers addresses.
func (s *DHCPServer) Refuse(r bool) { s.refuse.Store(r) }

// SetDNS makes its answers name these DNS servers (option 6); none: no
// option 6.
func (s *DHCPServer) SetDNS(addrs ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dns = nil
	for _, a := range addrs {
		s.dns = append(s.dns, net.IP(a.AsSlice()))
	}
}

// Released is the addresses (ciaddr) of the DHCPRELEASEs it heard.
func (s *DHCPServer) Released() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.released)
}

// Naks is how many DHCPNAKs it sent.
func (s *DHCPServer) Naks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.naks
}

// Acks is how many DHCPACKs it sent.
func (s *DHCPServer) Acks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acks
}

// Declines is how many DHCPDECLINEs it heard.
func (s *DHCPServer) Declines() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.declines
}

// Move binds the client with that MAC to addr instead: its next renewal
// is acknowledged with addr.
func (s *DHCPServer) Move(mac string, addr netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.binds["mac "+mac]
	if !ok {
		return
	}
	for k, a := range s.binds {
		if a == old {
			s.binds[k] = addr
		}
	}
}

// Bound returns the address bound to a client with that MAC, if any.
func (s *DHCPServer) Bound(mac string) (netip.Addr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.binds["mac "+mac]
	return a, ok
}

func (s *DHCPServer) handle(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
	if s.quiet.Load() || m.OpCode != dhcpv4.OpcodeBootRequest {
		return
	}
	var typ dhcpv4.MessageType
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		if s.refuse.Load() {
			s.nak(conn, m)
			return
		}
		typ = dhcpv4.MessageTypeAck
	case dhcpv4.MessageTypeRelease:
		s.mu.Lock()
		if a, ok := netip.AddrFromSlice(m.ClientIPAddr.To4()); ok {
			s.released = append(s.released, a)
		}
		s.mu.Unlock()
		s.unbind(m)
		return
	case dhcpv4.MessageTypeDecline:
		s.mu.Lock()
		s.declines++
		s.mu.Unlock()
		s.unbind(m)
		return
	default:
		return
	}
	ip, err := s.bind(m, typ == dhcpv4.MessageTypeAck)
	if err != nil {
		return
	}
	srv := net.IP(s.Addr.Addr().AsSlice())
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(typ), dhcpv4.WithYourIP(net.IP(ip.AsSlice())),
		dhcpv4.WithNetmask(net.CIDRMask(s.Addr.Bits(), 32)), dhcpv4.WithRouter(srv), dhcpv4.WithServerIP(srv),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(srv)), dhcpv4.WithLeaseTime(uint32(s.Lease / time.Second)),
		dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(s.T1)), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(s.T2))}
	s.mu.Lock()
	if len(s.dns) > 0 {
		mods = append(mods, dhcpv4.WithDNS(s.dns...))
	}
	s.mu.Unlock()
	reply, err := dhcpv4.NewReplyFromRequest(m, mods...)
	if err != nil {
		return
	}
	_, _ = conn.WriteTo(reply.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
}

// nak refuses request m.
func (s *DHCPServer) nak(conn net.PacketConn, m *dhcpv4.DHCPv4) {
	srv := net.IP(s.Addr.Addr().AsSlice())
	reply, err := dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(dhcpv4.MessageTypeNak), dhcpv4.WithServerIP(srv),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(srv)), dhcpv4.WithOption(dhcpv4.OptMessage("refused by the test")))
	if err != nil {
		return
	}
	s.mu.Lock()
	s.naks++
	s.mu.Unlock()
	_, _ = conn.WriteTo(reply.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
}

func clientKey(m *dhcpv4.DHCPv4) string {
	if id := m.Options.Get(dhcpv4.OptionClientIdentifier); len(id) > 0 {
		return "id " + string(id)
	}
	return "mac " + m.ClientHWAddr.String()
}

// bind returns the client's address: its binding, else the next free one.
func (s *DHCPServer) bind(m *dhcpv4.DHCPv4, ack bool) (netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := clientKey(m)
	ip, ok := s.binds[key]
	if !ok {
		used := map[netip.Addr]bool{s.Addr.Addr(): true}
		for _, a := range s.binds {
			used[a] = true
		}
		for ip = s.Addr.Addr().Next(); used[ip]; ip = ip.Next() {
		}
		if !s.Addr.Contains(ip) {
			return ip, errors.New("no free address")
		}
	}
	if ack {
		s.binds[key], s.binds["mac "+m.ClientHWAddr.String()] = ip, ip
		s.acks++
	}
	return ip, nil
}

func (s *DHCPServer) unbind(m *dhcpv4.DHCPv4) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.binds, clientKey(m))
	delete(s.binds, "mac "+m.ClientHWAddr.String())
}
