package main

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestARPProbeForNeighbour: a container probing a neighbour's address
// (RFC 5227: sender 0.0.0.0), past its own egress as CAP_NET_RAW can
// (PACKET_QDISC_BYPASS), reaches neither the neighbour's stack nor the
// wire: each probe is dropped on c1's ingress and the parent's egress
// (arp_spoof by exactly 2n), and c1 answers none (a host probing its
// address would take the answer for a conflict), while it answers c2's
// plain request for the same address.
func TestARPProbeForNeighbour(t *testing.T) {
	t.Parallel()
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newDPEnv(t, m)
			_, c2, ep1, ep2 := e.pubNetPair()
			addr1, addr2 := netip.MustParseAddr("172.16.86.10"), netip.MustParseAddr("172.16.86.11")
			if len(ep1.Addrs) != 1 || ep1.Addrs[0].Addr() != addr1 {
				t.Fatalf("premise: c1 has %v, want %s", ep1.Addrs, addr1)
			}
			mac1, _ := net.ParseMAC(ep1.MAC)
			mac2, _ := net.ParseMAC(ep2.MAC)
			const drops, n = "mvlan_policy_drops_total", 3
			lb := map[string]string{"network": "pub_net", "reason": "arp_spoof"}
			before := counter(e.view("", "").scrape(), drops, lb)
			capture := nstest.NewCapture(t, c2, "eth0")
			sendEachWith(t, c2, "eth0", arpRequest(mac2, netip.IPv4Unspecified(), addr1), n, true)
			text := e.waitCounter(drops, lb, before+2*n, nil)
			if d := counter(text, drops, lb) - before; d != 2*n {
				t.Errorf("%d probes of c2 for c1's address: arp_spoof moved by %d, want %d (c1's ingress, the parent's egress)", n, d, 2*n)
			}
			sendEachWith(t, c2, "eth0", arpRequest(mac2, addr2, addr1), 1, true)
			// c1's replies to c2: to a probe with target 0.0.0.0, to the request with c2's address.
			replyTo := func(f []byte, to netip.Addr) bool {
				a := to.As4()
				return len(f) >= 42 && binary.BigEndian.Uint16(f[12:]) == unix.ETH_P_ARP && binary.BigEndian.Uint16(f[20:]) == 2 &&
					bytes.Equal(f[22:28], mac1) && bytes.Equal(f[38:42], a[:])
			}
			answered := 0
			if _, err := capture.Wait(2*time.Second, func(f []byte) bool {
				if replyTo(f, netip.IPv4Unspecified()) {
					answered++
				}
				return replyTo(f, addr2)
			}); err != nil {
				t.Errorf("c1 did not answer c2's request for its address: %v", err)
			}
			if answered > 0 {
				t.Errorf("c1 answered %d of c2's probes for its address; want none", answered)
			}
		})
	}
}
