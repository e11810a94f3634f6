package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// reply6 is a server's Reply for the endpoint's IA_NA: fd00:60::15,
// preferred 100 s, valid 120 s, T1 60 s, T2 105 s, changed by mod.
func reply6(t testing.TB, mod func(m *dhcpv6.Message, ia *dhcpv6.OptIANA, a *dhcpv6.OptIAAddress)) *dhcpv6.Message {
	t.Helper()
	m, err := dhcpv6.NewMessage()
	if err != nil {
		t.Fatal(err)
	}
	m.MessageType = dhcpv6.MessageTypeReply
	m.AddOption(dhcpv6.OptServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}))
	m.AddOption(dhcpv6.OptClientID(duidOf(DUID6("lan", "c1"))))
	a := &dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("fd00:60::15"), PreferredLifetime: 100 * time.Second, ValidLifetime: 120 * time.Second}
	ia := &dhcpv6.OptIANA{IaId: IAID, T1: 60 * time.Second, T2: 105 * time.Second}
	if mod != nil {
		mod(m, ia, a)
	}
	ia.Options.Add(a)
	m.AddOption(ia)
	m.AddOption(dhcpv6.OptDNS(net.ParseIP("fd00:60::53")))
	// As it comes off the wire.
	back, err := dhcpv6.MessageFromBytes(m.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// TestFromReply: a Reply becomes a lease with the IA_NA's times (T1 and T2
// defaulting to 0.5 and 0.8 of the preferred lifetime), the --subnet's
// prefix length or /128; refusals and unusable answers are errors naming
// what is wrong, and those that end the binding are ErrNAK.
func TestFromReply(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	status := func(c iana.StatusCode) *dhcpv6.OptStatusCode {
		return &dhcpv6.OptStatusCode{StatusCode: c, StatusMessage: "no"}
	}
	for _, tc := range []struct {
		name       string
		mod        func(m *dhcpv6.Message, ia *dhcpv6.OptIANA, a *dhcpv6.OptIAAddress)
		subnet     string
		bits       int
		renew, reb time.Duration
		err        string
		nak        bool
		want       string // Link.Want
	}{
		{name: "given times", subnet: "fd00:60::/64", bits: 64, renew: 60 * time.Second, reb: 105 * time.Second},
		{name: "no subnet: /128", bits: 128, renew: 60 * time.Second, reb: 105 * time.Second},
		{name: "T1 and T2 left to the client", mod: func(_ *dhcpv6.Message, ia *dhcpv6.OptIANA, _ *dhcpv6.OptIAAddress) { ia.T1, ia.T2 = 0, 0 },
			bits: 128, renew: 50 * time.Second, reb: 80 * time.Second},
		{name: "T1 and T2 past the lifetime", mod: func(_ *dhcpv6.Message, ia *dhcpv6.OptIANA, _ *dhcpv6.OptIAAddress) {
			ia.T1, ia.T2 = time.Hour, time.Hour
		},
			bits: 128, renew: 50 * time.Second, reb: 80 * time.Second},
		{name: "T1 after T2", mod: func(_ *dhcpv6.Message, ia *dhcpv6.OptIANA, _ *dhcpv6.OptIAAddress) { ia.T1 = time.Hour },
			err: "T1 1h0m0s after T2 1m45s, which the client discards (RFC 8415 21.4)"},
		{name: "preferred after valid", mod: func(_ *dhcpv6.Message, _ *dhcpv6.OptIANA, a *dhcpv6.OptIAAddress) { a.PreferredLifetime = time.Hour },
			err: "whose preferred lifetime is within its valid one"},
		{name: "preferred after valid, another address fine", mod: func(_ *dhcpv6.Message, ia *dhcpv6.OptIANA, a *dhcpv6.OptIAAddress) {
			a.PreferredLifetime = time.Hour
			ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("fd00:60::15"), PreferredLifetime: 100 * time.Second, ValidLifetime: 120 * time.Second})
			a.IPv6Addr = net.ParseIP("fd00:60::16")
		}, bits: 128, renew: 60 * time.Second, reb: 105 * time.Second},
		{name: "T1 and T2 at the expiry", mod: func(_ *dhcpv6.Message, ia *dhcpv6.OptIANA, _ *dhcpv6.OptIAAddress) {
			ia.T1, ia.T2 = 120*time.Second, 120*time.Second
		},
			bits: 128, renew: 50 * time.Second, reb: 80 * time.Second},
		{name: "no preferred lifetime", mod: func(_ *dhcpv6.Message, ia *dhcpv6.OptIANA, a *dhcpv6.OptIAAddress) {
			ia.T1, ia.T2, a.PreferredLifetime = 0, 0, 0
		}, bits: 128, renew: 60 * time.Second, reb: 96 * time.Second},
		{name: "moved: the old address withdrawn before the new", mod: func(_ *dhcpv6.Message, ia *dhcpv6.OptIANA, _ *dhcpv6.OptIAAddress) {
			ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("fd00:60::14")})
		}, want: "fd00:60::14", bits: 128, renew: 60 * time.Second, reb: 105 * time.Second},
		{name: "the address asked for, given second", mod: func(_ *dhcpv6.Message, ia *dhcpv6.OptIANA, _ *dhcpv6.OptIAAddress) {
			ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("fd00:60::16"), PreferredLifetime: time.Hour, ValidLifetime: time.Hour})
		}, want: "fd00:60::15", bits: 128, renew: 60 * time.Second, reb: 105 * time.Second},
		{name: "withdrawn", mod: func(_ *dhcpv6.Message, _ *dhcpv6.OptIANA, a *dhcpv6.OptIAAddress) { a.ValidLifetime = 0 },
			err: "valid lifetime of 0", nak: true},
		{name: "NoBinding", mod: func(_ *dhcpv6.Message, ia *dhcpv6.OptIANA, _ *dhcpv6.OptIAAddress) {
			ia.Options.Add(status(iana.StatusNoBinding))
		}, err: "NoBinding", nak: true},
		{name: "NotOnLink", mod: func(m *dhcpv6.Message, _ *dhcpv6.OptIANA, _ *dhcpv6.OptIAAddress) {
			m.AddOption(status(iana.StatusNotOnLink))
		}, err: "NotOnLink", nak: true},
		{name: "NoAddrsAvail", mod: func(_ *dhcpv6.Message, ia *dhcpv6.OptIANA, _ *dhcpv6.OptIAAddress) {
			ia.Options.Add(status(iana.StatusNoAddrsAvail))
		}, err: "NoAddrsAvail"},
		{name: "another IA", mod: func(_ *dhcpv6.Message, ia *dhcpv6.OptIANA, _ *dhcpv6.OptIAAddress) { ia.IaId = [4]byte{1, 2, 3, 4} },
			err: "no IA_NA for the endpoint"},
		{name: "link-local address", mod: func(_ *dhcpv6.Message, _ *dhcpv6.OptIANA, a *dhcpv6.OptIAAddress) {
			a.IPv6Addr = net.ParseIP("fe80::1")
		},
			err: "no usable address (fe80::1)"},
		{name: "no server id", mod: func(m *dhcpv6.Message, _ *dhcpv6.OptIANA, _ *dhcpv6.OptIAAddress) {
			m.Options.Del(dhcpv6.OptionServerID)
		},
			err: "no server ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := Link{ClientID: DUID6("lan", "c1")}
			if tc.want != "" {
				l.Want = netip.MustParseAddr(tc.want)
			}
			if tc.subnet != "" {
				l.Subnet = netip.MustParsePrefix(tc.subnet)
			}
			got, err := fromReply(reply6(t, tc.mod), l, t0)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || errors.Is(err, ErrNAK) != tc.nak {
					t.Fatalf("err %v (ErrNAK %v), want one with %q (ErrNAK %v)", err, errors.Is(err, ErrNAK), tc.err, tc.nak)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := netip.PrefixFrom(netip.MustParseAddr("fd00:60::15"), tc.bits)
			if got.Addr != want || got.Expiry != t0.Add(120*time.Second) || len(got.DNS) != 1 || got.DNS[0] != netip.MustParseAddr("fd00:60::53") {
				t.Errorf("lease %s until %v, DNS %v; want %s until +120 s, DNS fd00:60::53", got.Addr, got.Expiry, got.DNS, want)
			}
			if got.Renew.Sub(t0) != tc.renew || got.Rebind.Sub(t0) != tc.reb {
				t.Errorf("T1 %v T2 %v, want %v %v", got.Renew.Sub(t0), got.Rebind.Sub(t0), tc.renew, tc.reb)
			}
			back, err := FromAPI(*got.API())
			if err != nil || back.Addr != got.Addr || string(back.ClientID) != string(got.ClientID) || string(back.ACK) != string(got.ACK) {
				t.Errorf("through the API: %+v (%v)", back, err)
			}
			if _, err := ia6Message(back, dhcpv6.MessageTypeRenew); err != nil {
				t.Errorf("a Renew from the stored lease: %v", err)
			}
		})
	}
}

// TestDUID6: a DUID-UUID, stable per network and name, different otherwise
// (and from the DHCPv4 client-id).
func TestDUID6(t *testing.T) {
	a, b, c := DUID6("lan", "c1"), DUID6("lan", "c2"), DUID6("lan2", "c1")
	d, err := dhcpv6.DUIDFromBytes(a)
	if err != nil || d.DUIDType() != dhcpv6.DUID_UUID || len(a) != 18 {
		t.Fatalf("DUID %x: %v, %v; want an 18-byte DUID-UUID", a, d, err)
	}
	if string(a) != string(DUID6("lan", "c1")) || string(a) == string(b) || string(a) == string(c) || string(a[2:]) == string(ClientID("lan", "c1")[1:]) {
		t.Errorf("DUIDs %x %x %x", a, b, c)
	}
}

// TestFromRenewReply: a Reply to a Renew or Rebind that leaves the DNS
// servers out keeps the renewed lease's; one that gives them, its own.
func TestFromRenewReply(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l := Link{ClientID: DUID6("lan", "c1")}
	old := Lease{Addr: netip.MustParsePrefix("fd00:60::15/128"), DNS: []netip.Addr{netip.MustParseAddr("fd00:60::99")}}
	bare := reply6(t, nil)
	bare.Options.Del(dhcpv6.OptionDNSRecursiveNameServer)
	for _, tc := range []struct {
		name  string
		reply *dhcpv6.Message
		want  string
	}{
		{"DNS given", reply6(t, nil), "[fd00:60::53]"},
		{"DNS left out", bare, "[fd00:60::99]"},
	} {
		got, err := fromRenewReply(tc.reply, l, old, t0)
		if err != nil || fmt.Sprint(got.DNS) != tc.want || got.Expiry != t0.Add(120*time.Second) {
			t.Errorf("%s: DNS %v until %v (%v), want %s until +120 s", tc.name, got.DNS, got.Expiry, err, tc.want)
		}
	}
}
