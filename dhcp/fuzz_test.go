package dhcp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
)

// leaseSane fails t unless a lease the parsers made of an answer at t0 is
// one the engine can keep: an address, times in order after t0, and a
// stored answer that parses again.
func leaseSane(t *testing.T, l Lease, t0 time.Time) {
	t.Helper()
	if !l.Addr.IsValid() || !l.Addr.Addr().IsGlobalUnicast() && !l.Addr.Addr().IsPrivate() {
		t.Fatalf("lease address %v", l.Addr)
	}
	if l.Renew.Before(t0) || l.Rebind.Before(l.Renew) || !l.Expiry.After(t0) || l.Expiry.Before(l.Rebind) {
		t.Fatalf("times out of order: obtained %v, T1 %v, T2 %v, expiry %v", t0, l.Renew, l.Rebind, l.Expiry)
	}
	if _, err := FromAPI(*l.API()); err != nil {
		t.Fatalf("the stored lease does not load: %v", err)
	}
}

// FuzzFromReply: any DHCPv6 message off the wire either becomes a sane
// lease (leaseSane) or an error; never a panic.
func FuzzFromReply(f *testing.F) {
	f.Add(reply6(f, nil).ToBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv6.MessageFromBytes(b)
		if err != nil {
			return
		}
		t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		l, err := fromReply(m, Link{ClientID: DUID6("lan", "c1"), Subnet: netip.MustParsePrefix("fd00:60::/64")}, t0)
		if err == nil {
			leaseSane(t, l, l.Obtained)
		}
	})
}

// FuzzFromACK: as FuzzFromReply for a DHCPACK.
func FuzzFromACK(f *testing.F) {
	f.Add(ack(f).ToBytes())
	f.Add(ack(f, dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(time.Hour))).ToBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		l, err := fromACK(m, ClientID("lan", "c1"), t0)
		if err == nil {
			leaseSane(t, l, l.Obtained)
		}
	})
}

// FuzzServerUDP6: any frame a packet socket reads either is a server's
// message, whose payload lies within the frame's UDP datagram, or is
// skipped; never a panic.
func FuzzServerUDP6(f *testing.F) {
	f.Add(udp6(547, 546, []byte("reply")))
	f.Add(udp6(546, 547, nil))
	f.Fuzz(func(t *testing.T, p []byte) {
		payload, src, ok := serverUDP6(p)
		if ok && (len(payload) > len(p)-48 || !src.Is6()) {
			t.Fatalf("payload of %d bytes from %v out of a %d-byte frame", len(payload), src, len(p))
		}
	})
}
