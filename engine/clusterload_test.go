package engine_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/agent/store"
)

// TestClusterStartQuarantinesRefusedAddresses is
// TestStartQuarantinesRefusedAddresses on a cluster network: an endpoint
// record whose address the network's space refuses (the gateway, one
// outside the subnet) is quarantined on start and the agent starts, the
// other endpoints keeping their addresses; neither theirs nor the
// quarantined record's are handed out again while its container lives,
// this start or the next; once it is gone the next start drops the
// record and its address is free again.
func TestClusterStartQuarantinesRefusedAddresses(t *testing.T) {
	for _, tc := range []struct {
		what string
		addr netip.Prefix
	}{
		{"the gateway", netip.MustParsePrefix("10.77.0.1/24")},
		{"outside the subnet", netip.MustParsePrefix("203.0.113.7/24")},
	} {
		t.Run(tc.what, func(t *testing.T) {
			_, h1, _, _, _ := sharedCnet(t, "10.77.0.0/24")
			good, bad := h1.run("good", "cnet"), h1.run("bad", "cnet")
			h1.stop()
			st, err := store.Open(h1.dir)
			if err != nil {
				t.Fatal(err)
			}
			bad.Addrs = append(bad.Addrs, tc.addr)
			if err := st.UpdateEndpoint(bad); err != nil {
				t.Fatal(err)
			}
			st.Close()
			h1.start()
			if got := h1.endpoints(); len(got) != 1 || got["good"] != "ready" {
				t.Fatalf("endpoints after start: %v; want good alone, bad quarantined", got)
			}
			if ls := h1.k.NetnsLinks(bad.Netns); len(ls) != 1 {
				t.Errorf("links of the quarantined endpoint: %+v; want its eth0 kept", ls)
			}
			taken := []netip.Addr{good.Addrs[0].Addr(), bad.Addrs[0].Addr()}
			for i := range 2 {
				if i == 1 {
					h1.stop()
					h1.start()
				}
				if a := h1.runAddr(fmt.Sprintf("next%d", i), "cnet"); slices.Contains(taken, a) {
					t.Errorf("new endpoint %d got %v: good's or the quarantined record's (%v)", i, a, taken)
				}
			}
			drift, err := h1.e.Check(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(drift) != 1 || !strings.Contains(drift[0], bad.ID+" is quarantined") {
				t.Errorf("drift: %q; want bad's quarantine alone", drift)
			}
			h1.k.RemoveNetns(bad.Netns)
			h1.stop()
			h1.start()
			if a := h1.runAddr("next2", "cnet"); a != bad.Addrs[0].Addr() {
				t.Errorf("with the quarantined record's container gone, a new endpoint got %v; want %v, its address free again", a, bad.Addrs[0].Addr())
			}
			h1.noDrift()
		})
	}
}
