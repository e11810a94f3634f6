package nstest

import (
	"encoding/hex"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/server6"
	"github.com/insomniacslk/dhcp/iana"
)

// DHCPv6Server is a small DHCPv6 server (insomniacslk/dhcp's server6) for
// what dnsmasq cannot do in a test's time: lifetimes of seconds (dnsmasq's
// least is 2 min, and it fixes T1 at half of it), a server that stops
// answering and starts again with its bindings kept, and one that forgets
// its bindings. It binds each client's IA_NA (by DUID) to the next free
// address after its own, answers Renew and Rebind for that binding (else
// NoBinding) and forgets it on Release. The DHCPv6 tests run dnsmasq, a
// real server; this one only stands in where they cannot.
type DHCPv6Server struct {
	Addr   netip.Prefix  // the server's address on its link
	Valid  time.Duration // lifetimes of the addresses (preferred = valid)
	T1, T2 time.Duration

	duid  dhcpv6.DUID
	quiet atomic.Bool
	delay atomic.Int64 // before each Advertise and Reply (Slow)
	srv   *server6.Server

	mu       sync.Mutex
	binds    map[string]netip.Addr // by DUID (hex)
	retired  map[netip.Addr]bool   // addresses Forget took back: not given again
	withdraw map[string]netip.Addr // by DUID: listed with lifetimes 0 in the next Reply (Move)
	released []netip.Addr
	replies  int
}

// StartDHCPv6Server serves on link ifName of namespace ns, where addr (e.g.
// fd00:72::1/64) is put on the link, with lifetimes of valid and T1, T2
// at 1/3 and 2/3 of it.
func StartDHCPv6Server(t testing.TB, ns, ifName string, addr netip.Prefix, valid time.Duration) *DHCPv6Server {
	t.Helper()
	s := &DHCPv6Server{Addr: addr, Valid: valid, T1: valid / 3, T2: valid * 2 / 3,
		duid:  &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0x5e, 0, 0, 6}},
		binds: map[string]netip.Addr{}, retired: map[netip.Addr]bool{}, withdraw: map[string]netip.Addr{}}
	if out, err := RunErr(ns, "ip", "addr", "add", addr.String(), "dev", ifName, "nodad"); err != nil {
		t.Fatalf("address of the DHCPv6 server: %v\n%s", err, out)
	}
	err := In(ns, func() (err error) {
		s.srv, err = server6.NewServer(ifName, nil, s.handle)
		return err
	})
	if err != nil {
		t.Fatalf("DHCPv6 server on %s: %v", ifName, err)
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
func (s *DHCPv6Server) Quiet(q bool) { s.quiet.Store(q) }

// Slow makes the server wait d before each Advertise and Reply: another
// server on the link answers first.
func (s *DHCPv6Server) Slow(d time.Duration) { s.delay.Store(int64(d)) }

// Forget drops every binding, as a server that lost its lease database
// (or was renumbered): their addresses are not given again, and renewing
// one is answered NoBinding.
func (s *DHCPv6Server) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, a := range s.binds {
		s.retired[a] = true
		delete(s.binds, k)
	}
}

// Move binds the client holding from to to instead. With withdraw, its
// next Reply lists from with lifetimes of 0 beside to, as a server that
// moves a client does (RFC 8415 18.3.4); else to alone.
func (s *DHCPv6Server) Move(from, to netip.Addr, withdraw bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, a := range s.binds {
		if a == from {
			s.binds[k] = to
			if withdraw {
				s.withdraw[k] = from
			}
		}
	}
}

// Released is the addresses of the Releases it heard, in order.
func (s *DHCPv6Server) Released() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.released)
}

// Replies is how many Replies binding an address it sent.
func (s *DHCPv6Server) Replies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replies
}

func (s *DHCPv6Server) handle(conn net.PacketConn, peer net.Addr, m dhcpv6.DHCPv6) {
	msg, err := m.GetInnerMessage()
	if err != nil || s.quiet.Load() || msg.Options.ClientID() == nil {
		return
	}
	var resp *dhcpv6.Message
	switch msg.MessageType {
	case dhcpv6.MessageTypeSolicit:
		resp, err = dhcpv6.NewAdvertiseFromSolicit(msg, s.answer(msg, false)...)
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind:
		resp, err = dhcpv6.NewReplyFromMessage(msg, s.answer(msg, true)...)
	case dhcpv6.MessageTypeRelease:
		s.release(msg)
		resp, err = dhcpv6.NewReplyFromMessage(msg, dhcpv6.WithServerID(s.duid))
	default:
		return
	}
	if err == nil {
		time.Sleep(time.Duration(s.delay.Load()))
		_, _ = conn.WriteTo(resp.ToBytes(), peer)
	}
}

// answer is the server ID and the IA_NA for msg's client: its binding
// (made, with commit, if it has none and asks for one) or NoBinding.
func (s *DHCPv6Server) answer(msg *dhcpv6.Message, commit bool) []dhcpv6.Modifier {
	s.mu.Lock()
	defer s.mu.Unlock()
	ia := &dhcpv6.OptIANA{}
	if req := msg.Options.OneIANA(); req != nil {
		ia.IaId = req.IaId
	}
	key := hex.EncodeToString(msg.Options.ClientID().ToBytes())
	ip, bound := s.binds[key]
	renew := msg.MessageType == dhcpv6.MessageTypeRenew || msg.MessageType == dhcpv6.MessageTypeRebind
	if renew && !bound {
		ia.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding, StatusMessage: "no binding for this client"})
		return []dhcpv6.Modifier{dhcpv6.WithServerID(s.duid), dhcpv6.WithOption(ia)}
	}
	if !bound {
		for ip = s.Addr.Addr().Next(); s.retired[ip] || s.used(ip); ip = ip.Next() {
		}
	}
	if commit {
		s.binds[key] = ip
		s.replies++
	}
	ia.T1, ia.T2 = s.T1, s.T2
	if old, ok := s.withdraw[key]; ok && commit {
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.IP(old.AsSlice())})
		delete(s.withdraw, key)
	}
	ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.IP(ip.AsSlice()), PreferredLifetime: s.Valid, ValidLifetime: s.Valid})
	return []dhcpv6.Modifier{dhcpv6.WithServerID(s.duid), dhcpv6.WithOption(ia)}
}

// release forgets the binding of msg's client and notes the addresses
// msg gives back.
func (s *DHCPv6Server) release(msg *dhcpv6.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.binds, hex.EncodeToString(msg.Options.ClientID().ToBytes()))
	if ia := msg.Options.OneIANA(); ia != nil {
		for _, a := range ia.Options.Addresses() {
			if ip, ok := netip.AddrFromSlice(a.IPv6Addr.To16()); ok {
				s.released = append(s.released, ip)
			}
		}
	}
}

func (s *DHCPv6Server) used(ip netip.Addr) bool {
	for _, a := range s.binds {
		if a == ip {
			return true
		}
	}
	return false
}
