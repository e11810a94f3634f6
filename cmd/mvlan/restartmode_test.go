package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/mvlan/mvlan/loader"
)

// TestRestartSwitchesMode: an agent restarted with another --attach-mode
// does not keep endpoints whose programs run in the old mode (start-up
// adopts only what it would have attached): the default puts them on
// clsact, and after a restart with --attach-mode tcx every hook of the
// parent and of both containers is on TCX, and no filter of ours is left.
func TestRestartSwitchesMode(t *testing.T) {
	t.Parallel()
	e := newDPEnv(t, dpModes[0])
	c1, c2, _, _ := e.pubNetPair()
	e.mode = dpModes[1]
	e.flags = append([]string{"--metrics-addr", metricsAddr}, e.mode.flags...)
	e.restart()
	e.wantMode(6)
	for _, c := range []string{c1, c2} {
		e.wantAttached(c, "eth0")
	}
}

// TestRestartSwitchesEndpointPath: an agent restarted with another
// --endpoint-programs re-attaches what the old one attached. Under stub
// each container's hooks run stubs of its own; under direct both run the
// same two shared programs, the stubs are freed (no filter, pin or fd
// holds them) and their pins are gone; and back. Pings between the two
// pass all along.
func TestRestartSwitchesEndpointPath(t *testing.T) {
	t.Parallel()
	if !loader.HaveDirectPath() {
		t.Skip("the kernel has no bpf_cast_to_kern_ctx: only the stub path")
	}
	stub := dpMode{"auto-stub", "tcx", "tc", []string{"--endpoint-programs", "stub"}}
	direct := dpMode{"auto-direct", "tcx", "tc", []string{"--endpoint-programs", "direct"}}
	e := newDPEnv(t, stub)
	c1, c2, _, _ := e.pubNetPair()
	check := func(shared bool) []ebpf.ProgramID {
		t.Helper()
		p1, p2 := e.wantAttached(c1, "eth0"), e.wantAttached(c2, "eth0")
		if slices.Equal(p1, p2) != shared {
			t.Errorf("%s runs %v, %s %v; want the same programs: %v (--endpoint-programs %s)", c1, p1, c2, p2, shared, e.mode.flags[1])
		}
		if out, err := e.pingFrom(c1, "172.16.86.11", false); err != nil {
			t.Errorf("ping %s → %s under --endpoint-programs %s: %v\n%s", c1, c2, e.mode.flags[1], err, out)
		}
		return append(p1, p2...)
	}
	stubs := check(false)
	for _, m := range []dpMode{direct, stub} {
		e.mode = m
		e.flags = append([]string{"--metrics-addr", metricsAddr}, m.flags...)
		e.restart()
		e.wantMode(6)
		check(m.name == direct.name)
		if m.name == direct.name {
			waitFreed(t, "stubs after a restart with --endpoint-programs direct", stubs)
			if pins, _ := os.ReadDir(filepath.Join(e.a.dir, "bpf", "stubs")); len(pins) != 0 {
				t.Errorf("stub pins left under --endpoint-programs direct: %v", pins)
			}
		}
	}
}
