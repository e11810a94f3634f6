package loader

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// counts is a Snapshot flattened to readable keys, e.g. "vlan 1/50 rx",
// "net 1 tx", "flood 1/0 broadcast rx", "hairpin 1/0", "eastwest 1/0",
// "drop 1 ip_spoof", "malformed ep_egress". Zero counters are left out.
type counts map[string]Counter

func flatten(s Snapshot) counts {
	c := counts{}
	put := func(k string, v Counter) {
		if v != (Counter{}) {
			c[k] = v
		}
	}
	for k, v := range s.VLAN {
		put(fmt.Sprintf("vlan %d/%d rx", k.Ifindex, k.VID), v.Rx)
		put(fmt.Sprintf("vlan %d/%d tx", k.Ifindex, k.VID), v.Tx)
	}
	for k, v := range s.Network {
		put(fmt.Sprintf("net %d rx", k), v.Rx)
		put(fmt.Sprintf("net %d tx", k), v.Tx)
	}
	for k, v := range s.Flood {
		put(fmt.Sprintf("flood %d/%d %s %s", k.NetworkID, k.VID, k.Kind, k.Direction), v)
	}
	for k, v := range s.Hairpin {
		put(fmt.Sprintf("hairpin %d/%d", k.NetworkID, k.VID), v)
	}
	for k, v := range s.EastWest {
		put(fmt.Sprintf("eastwest %d/%d", k.NetworkID, k.VID), v)
	}
	for k, v := range s.Drops {
		put(fmt.Sprintf("drop %d %s", k.NetworkID, k.Reason), v)
	}
	for k, v := range s.Malformed {
		put("malformed "+k, v)
	}
	return c
}

// minus returns c - before, without zero entries.
func (c counts) minus(before counts) counts {
	out := counts{}
	for k, v := range c {
		b := before[k]
		if d := (Counter{v.Packets - b.Packets, v.Bytes - b.Bytes}); d != (Counter{}) {
			out[k] = d
		}
	}
	return out
}

func (c counts) String() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(c)) {
		fmt.Fprintf(&b, "\n  %s: %d packets, %d bytes", k, c[k].Packets, c[k].Bytes)
	}
	if b.Len() == 0 {
		return " (none)"
	}
	return b.String()
}

// snapshot reads the datapath's counters, flattened.
func snapshot(t testing.TB, d *Datapath) counts {
	t.Helper()
	s, err := d.Counters(MaxNetworkID)
	if err != nil {
		t.Fatalf("counters: %v", err)
	}
	return flatten(s)
}

// expectDelta fails unless the counters moved by exactly want since before.
func expectDelta(t testing.TB, d *Datapath, before, want counts) {
	t.Helper()
	got := snapshot(t, d).minus(before)
	if !maps.Equal(got, want) {
		t.Errorf("counter deltas:%s\nwant:%s", got, want)
	}
}

// one is a single packet of n bytes.
func one(n int) Counter { return Counter{Packets: 1, Bytes: uint64(n)} }
