package dhcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/mvlan/mvlan/internal/nstest"
)

// lan4 is the subnet of the DHCPv4 tests' servers (range .100-.150).
var lan4 = netip.MustParsePrefix("192.168.62.0/24")

// dnsmasqFlags serve lan4 with 2 min leases (dnsmasq's least), a router
// and two DNS servers, as authoritative: a failover partner's way.
var dnsmasqFlags = []string{"--dhcp-authoritative", "--dhcp-range=192.168.62.100,192.168.62.150,255.255.255.0,2m",
	"--dhcp-option=option:router,192.168.62.1", "--dhcp-option=option:dns-server,192.168.62.53,192.168.62.54",
	"--dhcp-option=option:domain-name,lan.example"}

// sandbox4 is a sandbox whose wire has addr (the server's) on wire0, and
// the client's Link on its eth0 (its own MAC: a server answers a client
// that has no address yet at that MAC).
func sandbox4(t *testing.T, addr string) (*nstest.Sandbox, Link) {
	t.Helper()
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", addr, "dev", "wire0")
	l := Link{Netns: sb.Path, IfName: "eth0", ClientID: ClientID("net", "c1"), Hostname: "c1", Subnet: lan4}
	err := nstest.In(sb.Path, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil {
			l.MAC = ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb, l
}

// acquireOn leases l's address and puts it on l's link, as the engine does.
func acquireOn(t *testing.T, sb *nstest.Sandbox, l Link, srv *nstest.Dnsmasq) Lease {
	t.Helper()
	lease, err := Acquire(context.Background(), l)
	if err != nil {
		t.Fatalf("acquire: %v\n%s", err, srv.Log())
	}
	sb.Run(t, sb.Path, "ip", "addr", "add", lease.Addr.String(), "dev", l.IfName)
	return lease
}

// TestRenewRequest: a renewal's DHCPREQUEST carries the address in ciaddr,
// neither a requested address nor a server identifier (which would make
// it a SELECTING one that only that server answers), the endpoint's MAC
// and client-id, and a transaction id of its own each time: not the one
// of the exchange that got the lease.
func TestRenewRequest(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	l := Link{MAC: mac, ClientID: ClientID("lan", "c1")}
	old, err := fromACK(ack(t), l.ClientID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := dhcpv4.FromBytes(old.ACK)
	seen := map[dhcpv4.TransactionID]bool{stored.TransactionID: true}
	for i := range 3 {
		req, err := renewRequest(l, old)
		if err != nil {
			t.Fatal(err)
		}
		if seen[req.TransactionID] {
			t.Errorf("request %d: xid %s used before", i, req.TransactionID)
		}
		seen[req.TransactionID] = true
		if !req.ClientIPAddr.Equal(net.IPv4(192, 168, 60, 120)) || req.ClientHWAddr.String() != mac.String() ||
			req.MessageType() != dhcpv4.MessageTypeRequest || string(req.Options.Get(dhcpv4.OptionClientIdentifier)) != string(l.ClientID) {
			t.Errorf("request %d: %s", i, req.Summary())
		}
		for _, o := range []dhcpv4.OptionCode{dhcpv4.OptionServerIdentifier, dhcpv4.OptionRequestedIPAddress} {
			if req.Options.Has(o) {
				t.Errorf("request %d carries %s", i, o)
			}
		}
	}
}

// TestRebindOtherServer: the server of a lease stops and its failover
// partner (another address, dnsmasq with --dhcp-authoritative) takes the
// subnet over. While renewing (T1..T2) the client takes an answer from the
// lease's server only; once rebinding (after T2) it takes the partner's
// DHCPACK: the same address, the partner as the lease's server, and the
// partner's lease file has the binding.
func TestRebindOtherServer(t *testing.T) {
	sb, l := sandbox4(t, "192.168.62.1/24")
	first := nstest.StartDnsmasq(t, sb.WirePath, "wire0", dnsmasqFlags...)
	lease := acquireOn(t, sb, l, first)
	if lease.Server != netip.MustParseAddr("192.168.62.1") {
		t.Fatalf("lease from %s, want 192.168.62.1", lease.Server)
	}
	first.Stop()
	sb.Run(t, sb.WirePath, "ip", "addr", "del", "192.168.62.1/24", "dev", "wire0")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.62.2/24", "dev", "wire0")
	partner := nstest.StartDnsmasq(t, sb.WirePath, "wire0", dnsmasqFlags...)

	now := time.Now()
	renewing := lease
	renewing.Renew, renewing.Rebind = now.Add(-time.Second), now.Add(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if got, err := Renew(ctx, l, renewing); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("renewing with the lease's server gone: %v (lease from %s), want ErrNoAnswer", err, got.Server)
	}

	rebinding := lease
	rebinding.Renew, rebinding.Rebind = now.Add(-time.Minute), now.Add(-time.Second)
	got, err := Renew(context.Background(), l, rebinding)
	if err != nil {
		t.Fatalf("rebinding with the partner there: %v\n%s", err, partner.Log())
	}
	if got.Addr != lease.Addr || got.Server != netip.MustParseAddr("192.168.62.2") || !got.Expiry.After(lease.Expiry) {
		t.Errorf("rebound: %s from %s until %v; want %s from 192.168.62.2 after %v", got.Addr, got.Server, got.Expiry, lease.Addr, lease.Expiry)
	}
	if err := partner.WaitLease(lease.Addr.Addr(), true, 2*time.Second); err != nil {
		t.Error(err)
	}
}
