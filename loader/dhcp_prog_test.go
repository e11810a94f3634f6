package loader

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mvlan/mvlan/dhcp"
)

// Client identities as the agent's DHCP client makes them (dhcp.ClientID,
// dhcp.DUID6): a type-0 client identifier and a DUID-UUID.
var (
	idA   = append([]byte{0}, bytes.Repeat([]byte{0xa1}, 15)...)
	idB   = append([]byte{0}, bytes.Repeat([]byte{0xb1}, 15)...)
	duidA = (&dhcpv6.DUIDUUID{UUID: [16]byte{0xa6, 1, 2, 3}}).ToBytes()
	duidB = (&dhcpv6.DUIDUUID{UUID: [16]byte{0xb6, 1, 2, 3}}).ToBytes()
)

// dhcp4 is a DHCPv4 client message of type t from hw, with the options,
// as insomniacslk/dhcp (the agent's client) writes it, from 0.0.0.0:68.
func dhcp4(t testing.TB, typ dhcpv4.MessageType, hw net.HardwareAddr, opts ...dhcpv4.Option) []byte {
	t.Helper()
	mods := []dhcpv4.Modifier{dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(typ)}
	for _, o := range opts {
		mods = append(mods, dhcpv4.WithOption(o))
	}
	m, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	return bootpFrame(m.ToBytes(), 0)
}

// bootpFrame is a BOOTP message in a broadcast from 0.0.0.0:68 to 67 of
// A; fragOff is the IPv4 header's flags and offset field.
func bootpFrame(msg []byte, fragOff uint16) []byte {
	ip := ipv4Packet("0.0.0.0", "255.255.255.255", 17, bootpUDP(msg))
	ip[6], ip[7] = byte(fragOff>>8), byte(fragOff)
	return ethFrame(broadcastMAC, macA, 0x0800, ip)
}

// bootpUDP is a BOOTP message in a datagram from port 68 to 67.
func bootpUDP(msg []byte) []byte {
	p := udp(68, 67, len(msg))
	copy(p[8:], msg)
	return p
}

// dhcp6 is a DHCPv6 message of type t with the client DUID (none: nil)
// from A's link-local address to the servers' group.
func dhcp6(t testing.TB, typ dhcpv6.MessageType, duid []byte) []byte {
	t.Helper()
	m, err := dhcpv6.NewMessage()
	if err != nil {
		t.Fatal(err)
	}
	m.MessageType = typ
	if duid != nil {
		d, err := dhcpv6.DUIDFromBytes(duid)
		if err != nil {
			t.Fatal(err)
		}
		m.AddOption(dhcpv6.OptClientID(d))
	}
	m.AddOption(dhcpv6.OptElapsedTime(0))
	m.AddOption(&dhcpv6.OptIANA{IaId: dhcp.IAID})
	return dhcp6Frame(m.ToBytes())
}

func dhcp6Frame(msg []byte) []byte {
	p := udp(546, 547, len(msg))
	copy(p[8:], msg)
	return ethFrame(dhcp6Mcast, macA, 0x86dd, ipv6Packet(llA, "ff02::1:2", 17, p))
}

func duidLL(hw net.HardwareAddr) []byte {
	return (&dhcpv6.DUIDLL{HWType: 1, LinkLayerAddr: hw}).ToBytes()
}

func duidLLT(hw net.HardwareAddr) []byte {
	return (&dhcpv6.DUIDLLT{HWType: 1, Time: 7, LinkLayerAddr: hw}).ToBytes()
}

// withRaw is a DHCPv4 message from A (client identifier 01:A) with raw
// option bytes put before its end option.
func withRaw(t testing.TB, raw []byte) []byte {
	t.Helper()
	m, err := dhcpv4.New(dhcpv4.WithHwAddr(macA), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest))
	if err != nil {
		t.Fatal(err)
	}
	b := m.ToBytes()
	end := bytes.IndexByte(b[240:], 255) + 240
	return bootpFrame(append(append(append([]byte(nil), b[:end]...), raw...), b[end:]...), 0)
}

// maxDHCPOpts is the bound on the options the guard walks (MAX_DHCP_OPTS).
const maxDHCPOpts = 24

// TestDHCPClientGuard: an endpoint's DHCP client messages must be in its
// own name (bpf/include/dhcp.h): its MAC as the hardware address, its
// identity as the client identifier and DUID. Without identities of its
// own (not a DHCP network) an identity made of its MAC is its own.
func TestDHCPClientGuard(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	guard, unparsable := dropA("dhcp_guard"), dropA("unparsable")
	cid := dhcpv4.OptClientIdentifier
	macID := func(hw net.HardwareAddr) []byte { return append([]byte{1}, hw...) }
	pads := withRaw(t, bytes.Repeat([]byte{0}, maxDHCPOpts))
	hw6 := dhcp4(t, dhcpv4.MessageTypeDiscover, macA)
	hw6[14+20+8+1] = 6 // IEEE 802 hardware type
	noCookie := dhcp4(t, dhcpv4.MessageTypeDiscover, macA)
	copy(noCookie[14+20+8+236:], []byte{0, 0, 0, 0})
	op2 := dhcp4(t, dhcpv4.MessageTypeRequest, macA)
	op2[14+20+8] = 2
	relayed := dhcp4(t, dhcpv4.MessageTypeDiscover, macA)
	copy(relayed[14+20+8+24:], []byte{10, 1, 0, 1})
	runCases(t, d, "ep_egress", []progCase{
		{"discover, no client id", dhcp4(t, dhcpv4.MessageTypeDiscover, macA), verdictNext, txA},
		{"request, client id of its mac", dhcp4(t, dhcpv4.MessageTypeRequest, macA, cid(macID(macA))), verdictNext, txA},
		{"bootp, no options", noCookie, verdictNext, txA},
		{"solicit, ia_na of any iaid (not a dhcp network)", dhcp6Frame(append(dhcp6Bytes(t, dhcpv6.MessageTypeSolicit, duidLL(macA)), dhcp6Opt(3, make([]byte, 12))...)), verdictNext, txA},
		{"a reply as a request (op 2)", op2, verdictDrop, guard},
		{"relayed (giaddr)", relayed, verdictDrop, guard},
		{"relay agent information", withRaw(t, []byte{82, 4, 1, 2, 0, 0}), verdictDrop, guard},
		{"solicit, duid-ll of its mac", dhcp6(t, dhcpv6.MessageTypeSolicit, duidLL(macA)), verdictNext, txA},
		{"information-request, any duid", dhcp6(t, dhcpv6.MessageTypeInformationRequest, duidB), verdictNext, txA},
		{"solicit, no duid", dhcp6(t, dhcpv6.MessageTypeSolicit, nil), verdictNext, txA},
		{"discover for a neighbour's mac", dhcp4(t, dhcpv4.MessageTypeDiscover, macB), verdictDrop, guard},
		{"another hardware type", hw6, verdictDrop, guard},
		{"release, a neighbour's mac as client id", dhcp4(t, dhcpv4.MessageTypeRelease, macA, cid(macID(macB))), verdictDrop, guard},
		{"release, an agent-made client id", dhcp4(t, dhcpv4.MessageTypeRelease, macA, cid(idB)), verdictDrop, guard},
		{"request, its own then a foreign client id", withRaw(t, append([]byte{61, 7, 1}, append(macA, append([]byte{61, 7, 1}, macB...)...)...)), verdictDrop, guard},
		{"release, duid-ll of a neighbour", dhcp6(t, dhcpv6.MessageTypeRelease, duidLL(macB)), verdictDrop, guard},
		{"release, an agent-made duid", dhcp6(t, dhcpv6.MessageTypeRelease, duidB), verdictDrop, guard},
		{"relay-forw", dhcp6Frame([]byte{12, 0, 0, 0}), verdictDrop, guard},
		{"release, duid-llt of its mac (any time: 2^32 identities)", dhcp6(t, dhcpv6.MessageTypeRelease, duidLLT(macA)), verdictDrop, guard},
		{"release, its duid then a neighbour's", dhcp6Frame(append(dhcp6Bytes(t, dhcpv6.MessageTypeRelease, duidLL(macA)), dhcp6Opt(1, duidLL(macB))...)), verdictDrop, guard},
		{"request, its client id twice (joined: another identity)", withRaw(t, bytes.Repeat(append([]byte{61, 7, 1}, macA...), 2)), verdictDrop, guard},
		{"decline of a neighbour's address", dhcp4(t, dhcpv4.MessageTypeDecline, macA, dhcpv4.OptRequestedIPAddress(net.IPv4(10, 1, 0, 11))), verdictDrop, guard},
		{"decline of any address, not checking an offer", dhcp4(t, dhcpv4.MessageTypeDecline, macA, dhcpv4.OptRequestedIPAddress(net.IPv4(10, 1, 0, 99))), verdictDrop, guard},
		{"a request that also says decline", withRaw(t, []byte{53, 1, 4}), verdictDrop, guard},
		{"udp length 0", udpLength(dhcp6(t, dhcpv6.MessageTypeRelease, duidLL(macB)), 0), verdictDrop, unparsable},
		{"udp length past the ip payload", udpLength(dhcp4(t, dhcpv4.MessageTypeDiscover, macA), 2000), verdictDrop, unparsable},
		{"udp length short of the client id", udpLength(dhcp4(t, dhcpv4.MessageTypeRelease, macA, cid(macID(macB))), 8+240), verdictNext, txA},
		{"option overload", withRaw(t, []byte{52, 1, 3}), verdictDrop, unparsable},
		{"more options than the bound", pads, verdictDrop, unparsable},
		{"first fragment", bootpFrame(dhcp4Bytes(t, macA), 0x2000), verdictDrop, unparsable},
		{"first fragment v6", ethFrame(dhcp6Mcast, macA, 0x86dd, ipv6Packet(llA, "ff02::1:2", 44, fragment(0, 17, udp(546, 547, 40)))), verdictDrop, unparsable},
	})

	// The agent's client declines an address its check found in use (a
	// neighbour's, when a server lost its leases) while it checks it
	// (probing), the first one too; without the mark, with or without an
	// address, a decline is a container's.
	decline := dhcp4(t, dhcpv4.MessageTypeDecline, macA, dhcpv4.OptRequestedIPAddress(net.IPv4(10, 1, 0, 11)))
	for _, c := range []struct {
		ep   Endpoint
		want uint32
	}{
		{Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA, IPs: addrs("2001:db8:1::10"), DHCPClientID: idA, Probing: true}, verdictNext},
		{Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA, IPs: addrs("10.1.0.10"), Probing: true}, verdictNext},
		{Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA, IPs: addrs("2001:db8:1::10"), DHCPClientID: idA}, verdictDrop},
		{Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA, IPs: addrs("2001:db8:1::10")}, verdictDrop},
	} {
		if err := d.SetEndpoint(c.ep); err != nil {
			t.Fatal(err)
		}
		want := txA
		if c.want == verdictDrop {
			want = guard
		}
		runCases(t, d, "ep_egress", []progCase{{fmt.Sprintf("decline, v4 %v, probing %v, dhcp network %v", c.ep.IPs[0].Is4(), c.ep.Probing, c.ep.DHCPClientID != nil), decline, c.want, want}})
	}

	// On a DHCP network: the agent's identities, and no other.
	if err := d.SetEndpoint(Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA,
		IPs: addrs("10.1.0.10", "2001:db8:1::10"), DHCPClientID: idA, DHCPDUID: duidA}); err != nil {
		t.Fatal(err)
	}
	runCases(t, d, "ep_egress", []progCase{
		{"request, its client id", dhcp4(t, dhcpv4.MessageTypeRequest, macA, cid(idA)), verdictNext, txA},
		{"renew, its duid", dhcp6(t, dhcpv6.MessageTypeRenew, duidA), verdictNext, txA},
		{"solicit, its duid, a second ia_na", dhcp6Frame(append(dhcp6Bytes(t, dhcpv6.MessageTypeSolicit, duidA), dhcp6Opt(3, make([]byte, 12))...)), verdictDrop, guard},
		{"solicit, its duid, an ia_pd", dhcp6Frame(append(dhcp6Bytes(t, dhcpv6.MessageTypeSolicit, duidA), dhcp6Opt(25, make([]byte, 12))...)), verdictDrop, guard},
		{"solicit, its duid, an ia_ta", dhcp6Frame(append(dhcp6Bytes(t, dhcpv6.MessageTypeSolicit, duidA), dhcp6Opt(4, make([]byte, 4))...)), verdictDrop, guard},
		{"request, client id of its mac", dhcp4(t, dhcpv4.MessageTypeRequest, macA, cid(macID(macA))), verdictDrop, guard},
		{"release, a neighbour's client id", dhcp4(t, dhcpv4.MessageTypeRelease, macA, cid(idB)), verdictDrop, guard},
		{"release, its client id cut short", dhcp4(t, dhcpv4.MessageTypeRelease, macA, cid(idA[:15])), verdictDrop, guard},
		{"solicit, duid-ll of its mac", dhcp6(t, dhcpv6.MessageTypeSolicit, duidLL(macA)), verdictDrop, guard},
		{"decline, a neighbour's duid", dhcp6(t, dhcpv6.MessageTypeDecline, duidB), verdictDrop, guard},
	})

	// A DHCP server or relay container: others' requests pass.
	if err := d.SetEndpoint(Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA,
		IPs: addrs("10.1.0.10", "2001:db8:1::10"), Allow: AllowDHCPServer}); err != nil {
		t.Fatal(err)
	}
	runCases(t, d, "ep_egress", []progCase{
		{"relayed discover, allowed", dhcp4(t, dhcpv4.MessageTypeDiscover, macB, cid(idB)), verdictNext, txA},
		{"relay-forw, allowed", dhcp6Frame([]byte{12, 0, 0, 0}), verdictNext, txA},
	})
}

// dhcp6Bytes is dhcp6's message alone.
func dhcp6Bytes(t testing.TB, typ dhcpv6.MessageType, duid []byte) []byte {
	f := dhcp6(t, typ, duid)
	return f[14+40+8:]
}

// dhcp6Opt is a DHCPv6 option.
func dhcp6Opt(code uint16, data []byte) []byte {
	return append([]byte{byte(code >> 8), byte(code), byte(len(data) >> 8), byte(len(data))}, data...)
}

// udpLength sets the UDP length field of an untagged IPv4 or IPv6 frame.
func udpLength(frame []byte, n uint16) []byte {
	off := 14 + 20
	if frame[12] == 0x86 {
		off = 14 + 40
	}
	frame[off+4], frame[off+5] = byte(n>>8), byte(n)
	return frame
}

// dhcp4Bytes is a DHCPDISCOVER of hw, the BOOTP message alone.
func dhcp4Bytes(t testing.TB, hw net.HardwareAddr) []byte {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(hw)
	if err != nil {
		t.Fatal(err)
	}
	return m.ToBytes()
}

// TestDHCPIDsFollowRows: an endpoint's DHCP identities are in dhcp_ids
// while its row is, settle with a moving row, and go with it; PruneOrphans
// takes those of no row.
func TestDHCPIDsFollowRows(t *testing.T) {
	d := newTestDatapath(t)
	ep := Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA, IPs: addrs("10.1.0.10"),
		DHCPClientID: idA, DHCPDUID: duidA, Moving: true}
	if err := d.SetEndpoint(ep); err != nil {
		t.Fatal(err)
	}
	ids := func(hw net.HardwareAddr) (v dhcpIDs, ok bool) {
		return v, d.maps.DhcpIds.Lookup(&macKey{MAC: [6]byte(hw)}, &v) == nil
	}
	if v, ok := ids(macA); !ok || !bytes.Equal(v.ID4[:v.Len4], idA) || !bytes.Equal(v.ID6[:v.Len6], duidA) {
		t.Fatalf("dhcp_ids of A: %+v (present %v), want %x and %x", v, ok, idA, duidA)
	}
	if err := d.settleMoving(ep.NetnsCookie, ep.Ifindex); err != nil {
		t.Fatal(err)
	}
	if v, ok := ids(macA); !ok || !bytes.Equal(v.ID4[:v.Len4], idA) {
		t.Fatalf("dhcp_ids of A after its row settled: %+v (present %v), want %x", v, ok, idA)
	}
	if err := d.SetEndpoint(Endpoint{NetnsCookie: testCookie, Ifindex: 2, MAC: macB, NetworkID: netA,
		DHCPClientID: bytes.Repeat([]byte{1}, DHCPIDMax+1)}); err == nil {
		t.Fatal("SetEndpoint took a client id of 33 bytes")
	}
	if _, ok := ids(macB); ok {
		t.Fatal("a refused row left its DHCP identity")
	}
	if err := d.DeleteEndpoint(ep.NetnsCookie, ep.Ifindex); err != nil {
		t.Fatal(err)
	}
	if _, ok := ids(macA); ok {
		t.Fatal("dhcp_ids of A outlived its row")
	}
	if err := d.maps.DhcpIds.Put(&macKey{MAC: [6]byte(macC)}, &dhcpIDs{Len4: 1}); err != nil {
		t.Fatal(err)
	}
	if err := d.PruneOrphans(); err != nil {
		t.Fatal(err)
	}
	if _, ok := ids(macC); ok {
		t.Fatal("PruneOrphans left the DHCP identity of a MAC without a row")
	}
}

// laterFragment is the IPv4 packet ip made a later fragment (offset 8
// bytes, no more fragments): no UDP header of its own.
func laterFragment(ip []byte) []byte {
	ip[6], ip[7] = 0, 1
	return ip
}

// gsoSizeOff is the offset of gso_size in struct __sk_buff.
const gsoSizeOff = 176

// TestDHCPClientGuardGSO: a UDP GSO datagram to a server port is
// unparsable: the kernel cuts it into messages of gso_size after the
// check, which saw only the first (its own release, then one naming a
// neighbour). The same datagram without GSO passes.
func TestDHCPClientGuardGSO(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	p, err := d.endpointPrograms(testCookie)
	if err != nil {
		t.Fatal(err)
	}
	frame := dhcp4(t, dhcpv4.MessageTypeRelease, macA)
	for _, tc := range []struct {
		gso  uint32
		want uint32
		c    counts
	}{{0, verdictPass, txA(len(frame))}, {548, verdictDrop, dropA("unparsable")(len(frame))}} {
		ctx := make([]byte, gsoSizeOff+4)
		binary.LittleEndian.PutUint32(ctx[gsoSizeOff:], tc.gso)
		before := snapshot(t, d)
		got, err := p.egress.Run(&ebpf.RunOptions{Data: frame, Context: ctx})
		if err != nil {
			t.Fatalf("test run with gso_size %d: %v", tc.gso, err)
		}
		if got != tc.want {
			t.Errorf("gso_size %d: verdict %#x, want %#x", tc.gso, got, tc.want)
		}
		expectDelta(t, d, before, tc.c)
	}
}

// TestDHCPClientGuardOldRow: a row an older agent wrote (no EP_DHCP_IDS:
// its identities are not in dhcp_ids yet) has its client identifier and
// DUID taken as they come, until the agent writes it again; its hardware
// address is still checked.
func TestDHCPClientGuardOldRow(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	key := epKey{NetnsCookie: testCookie, Ifindex: 1}
	var info epInfo
	if err := d.maps.EpTable.Lookup(&key, &info); err != nil {
		t.Fatal(err)
	}
	info.Flags &^= epDHCPIDs
	for _, put := range []error{d.maps.Endpoints.Put(&info.Slot, &info), d.maps.EpTable.Put(&key, &info), d.maps.EpByMac.Put(&macKey{MAC: info.MAC}, &info)} {
		if put != nil {
			t.Fatal(put)
		}
	}
	runCases(t, d, "ep_egress", []progCase{
		{"request, an agent-made client id", dhcp4(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.OptClientIdentifier(idA)), verdictNext, txA},
		{"renew, an agent-made duid", dhcp6(t, dhcpv6.MessageTypeRenew, duidA), verdictNext, txA},
		{"discover for a neighbour's mac", dhcp4(t, dhcpv4.MessageTypeDiscover, macB), verdictDrop, dropA("dhcp_guard")},
	})
}
