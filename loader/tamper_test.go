package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	tc "github.com/florianl/go-tc"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/nsthread"
)

// TestInspectRepair: each way a container can switch off its endpoint's
// programs is found on the hook it touched, and repaired where mvlan can;
// the repaired endpoint is clean again. Both attach modes.
func TestInspectRepair(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeTC} {
		t.Run(string(mode), func(t *testing.T) {
			requireMode(t, mode)
			l := newLab(t)
			d := newTestDatapath(t)
			ctx := context.Background()
			c := l.c1
			if err := d.AttachEndpoint(ctx, c.path, c.ifindex, mode); err != nil {
				t.Fatal(err)
			}
			expectFindings(t, d, c, nil)

			// Detached: the container removes what it can reach.
			if mode == ModeTC {
				l.sb.Run(t, c.path, "tc", "qdisc", "del", "dev", "eth0", "clsact")
			} else {
				cookie, err := NetnsCookie(c.path)
				if err != nil {
					t.Fatal(err)
				}
				if err := d.detachTCX(target{netns: c.path, cookie: cookie, ifindex: c.ifindex}, Egress); err != nil {
					t.Fatal(err)
				}
			}
			detached := []Finding{{Egress, TamperDetached}}
			if mode == ModeTC {
				detached = []Finding{{Ingress, TamperDetached}, {Egress, TamperDetached}}
			}
			expectFindings(t, d, c, detached)
			if err := d.RepairEndpoint(ctx, c.path, c.ifindex, detached); err != nil {
				t.Fatal(err)
			}
			expectFindings(t, d, c, nil)

			// A pass-everything TCX program before mvlan's on egress.
			fl := passFirstTCX(t, c)
			first := []Finding{{Egress, TamperForeignFirst}}
			expectFindings(t, d, c, first)
			if err := d.RepairEndpoint(ctx, c.path, c.ifindex, first); err != nil {
				t.Fatal(err)
			}
			expectFindings(t, d, c, nil)
			// Ours runs first (under tc: the hook moved to TCX, as TCX
			// runs before every tc filter); the foreign one stays after it.
			if got := hookModes(d, c); got[Ingress] != mode || got[Egress] != ModeTCX {
				t.Errorf("after the repair the hooks are attached %v; want ingress %s, egress tcx", got, mode)
			}
			if n := tcxPrograms(target{netns: c.path, ifindex: c.ifindex}, Egress); n != 2 {
				t.Errorf("%d TCX programs on egress after the repair, want 2 (ours, then the foreign one)", n)
			}
			fl.Close()
			expectFindings(t, d, c, nil)

			// A filter of a root qdisc of the container's (runs after
			// ours): found, and deleted with the qdisc left as it was.
			l.sb.Run(t, c.path, "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb")
			addRootFilter(t, c, foreignProgram(t))
			late := []Finding{{Egress, TamperLateFilter}}
			expectFindings(t, d, c, late)
			if err := d.RepairEndpoint(ctx, c.path, c.ifindex, late); err != nil {
				t.Fatal(err)
			}
			expectFindings(t, d, c, nil)
			if out := l.sb.Run(t, c.path, "tc", "filter", "show", "dev", "eth0", "parent", "1:"); out != "" {
				t.Errorf("filters of the root qdisc after the repair:\n%s", out)
			}
			if out := l.sb.Run(t, c.path, "tc", "qdisc", "show", "dev", "eth0", "root"); !strings.Contains(out, "htb 1:") {
				t.Errorf("the container's root qdisc went with its filters:\n%s", out)
			}
			// In another chain and under a class too: all go.
			l.sb.Run(t, c.path, "tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", "1gbit")
			for _, args := range [][]string{{"parent", "1:", "chain", "5"}, {"parent", "1:10"}} {
				l.sb.Run(t, c.path, append(append([]string{"tc", "filter", "add", "dev", "eth0"}, args...), "bpf", "bytecode", "1,6 0 0 0,")...)
			}
			expectFindings(t, d, c, late)
			if err := d.RepairEndpoint(ctx, c.path, c.ifindex, late); err != nil {
				t.Fatal(err)
			}
			expectFindings(t, d, c, nil)
			for _, parent := range []string{"1:", "1:10"} {
				if out := l.sb.Run(t, c.path, "tc", "filter", "show", "dev", "eth0", "parent", parent); out != "" {
					t.Errorf("filters of %s after the repair:\n%s", parent, out)
				}
			}
			// More classes than a check lists: reported, and the repair
			// takes the root qdisc away with them (their filters could
			// not be listed to go).
			var batch strings.Builder
			for i := 0x100; i < 0x100+maxLateParents+50; i++ {
				fmt.Fprintf(&batch, "class add dev eth0 parent 1: classid 1:%x htb rate 1mbit\n", i)
			}
			file := filepath.Join(t.TempDir(), "classes")
			if err := os.WriteFile(file, []byte(batch.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			l.sb.Run(t, c.path, "tc", "-batch", file)
			if got, err := d.InspectEndpoint(ctx, c.path, c.ifindex); !errors.Is(err, errTooManyParents) || !slices.Equal(got, late) {
				t.Fatalf("findings %v (%v), want %v with too many to list", got, err, late)
			}
			if err := d.RepairEndpoint(ctx, c.path, c.ifindex, late); err != nil {
				t.Fatal(err)
			}
			expectFindings(t, d, c, nil)
			if out := l.sb.Run(t, c.path, "tc", "qdisc", "show", "dev", "eth0", "root"); strings.Contains(out, "htb") {
				t.Errorf("the root qdisc of %d classes is still there after the repair:\n%s", maxLateParents+50, out)
			}
			// Detaching the endpoint removes ours in either mode.
			if err := d.DetachEndpoint(ctx, c.path, c.ifindex); err != nil {
				t.Fatal(err)
			}
			if n := tcxPrograms(target{netns: c.path, ifindex: c.ifindex}, Egress); n != 0 {
				t.Errorf("%d TCX programs on egress after DetachEndpoint, want 0", n)
			}
		})
	}
}

// hookModes: how this Datapath attached c's hooks.
func hookModes(d *Datapath, c container) map[Hook]Mode {
	out := map[Hook]Mode{}
	for _, a := range d.Attachments() {
		if a.Ifindex == c.ifindex {
			out[a.Hook] = a.Mode
		}
	}
	return out
}

func expectFindings(t *testing.T, d *Datapath, c container, want []Finding) {
	t.Helper()
	got, err := d.InspectEndpoint(context.Background(), c.path, c.ifindex)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
}

// passFirstTCX attaches, inside c's netns, a TCX egress program that
// passes every frame, before all others; detached when the test ends.
func passFirstTCX(t *testing.T, c container) link.Link {
	t.Helper()
	prog := foreignProgram(t)
	var l link.Link
	err := nstest.In(c.path, func() error {
		var err error
		l, err = link.AttachTCX(link.TCXOptions{Interface: c.ifindex, Program: prog, Attach: ebpf.AttachTCXEgress, Anchor: link.Head()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// tcxPrograms counts the TCX programs on the hook (0 where the kernel has
// no TCX), entering t's namespace.
func tcxPrograms(t target, hook Hook) int {
	n := 0
	_ = nsthread.DoPath(t.netns, func() error {
		n = tcxCount(t.ifindex, hook)
		return nil
	})
	return n
}

// TestInspectSquatters: under tc, a filter a container puts in our place
// (our priority and handle) after deleting ours is ours detached, whatever
// it is (a matchall, a cls_bpf filter named as ours); one it adds at our
// priority runs before ours (cls_bpf runs a priority's filters newest
// first). Each is found and repaired: the repair deletes what is at our
// priority and is not ours, and our program runs in our place again.
func TestInspectSquatters(t *testing.T) {
	l, d, c := attachedTC(t)
	ctx := context.Background()
	expectFindings(t, d, c, nil)
	prio := strconv.Itoa(FilterPriority)
	repair := func(want []Finding) {
		t.Helper()
		expectFindings(t, d, c, want)
		if err := d.RepairEndpoint(ctx, c.path, c.ifindex, want); err != nil {
			t.Fatal(err)
		}
		expectFindings(t, d, c, nil)
		if out := l.sb.Run(t, c.path, "tc", "filter", "show", "dev", "eth0", "egress"); strings.Contains(out, "matchall") || strings.Contains(out, "handle 0x2") {
			t.Errorf("a foreign filter at our priority survived the repair:\n%s", out)
		}
	}

	l.sb.Run(t, c.path, "tc", "filter", "del", "dev", "eth0", "egress", "pref", prio)
	if out, err := nstest.RunErr(c.path, "tc", "filter", "add", "dev", "eth0", "egress", "pref", prio, "handle", "1", "protocol", "all", "matchall", "action", "ok"); err != nil {
		t.Logf("no matchall squatter (the kernel has no cls_matchall or act_gact: %v: %s)", err, strings.TrimSpace(out))
		if err := d.RepairEndpoint(ctx, c.path, c.ifindex, []Finding{{Egress, TamperDetached}}); err != nil {
			t.Fatal(err)
		}
	} else {
		repair([]Finding{{Egress, TamperDetached}})
	}

	l.sb.Run(t, c.path, "tc", "filter", "del", "dev", "eth0", "egress", "pref", prio)
	foreignFilter(t, c, FilterHandle, FilterNamePrefix+"ep_egress")
	if missing, err := d.Missing(c.path, c.ifindex, ModeTC); err != nil || !slices.Equal(missing, []Hook{Egress}) {
		t.Errorf("Missing with a filter named as ours in our place: %v, %v; want [egress]", missing, err)
	}
	repair([]Finding{{Egress, TamperDetached}})

	foreignFilter(t, c, FilterHandle+1, "foreign")
	repair([]Finding{{Egress, TamperForeignFirst}})

	// An attach (a restart's) finding another filter in our place takes
	// the place back instead of failing, which would leave the hook bare.
	// (Where the repair moved egress to TCX, our place there is free.)
	_, _ = nstest.RunErr(c.path, "tc", "filter", "del", "dev", "eth0", "egress", "pref", prio)
	foreignFilter(t, c, FilterHandle, "foreign")
	if err := d.AttachEndpoint(ctx, c.path, c.ifindex, ModeTC); err != nil {
		t.Fatalf("attach with another filter in our place: %v", err)
	}
	expectFindings(t, d, c, nil)
}

// TestEvictSquattersKeepsOurs: the eviction deletes the filter a
// container added at our priority, by its handle, and leaves ours in
// place: the hook is never bare while the repair runs.
func TestEvictSquattersKeepsOurs(t *testing.T) {
	l, d, c := attachedTC(t)
	foreignFilter(t, c, FilterHandle+1, "foreign")
	expectFindings(t, d, c, []Finding{{Egress, TamperForeignFirst}})
	cookie, err := NetnsCookie(c.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := evictSquatters(target{netns: c.path, cookie: cookie, ifindex: c.ifindex}, Egress, d.epProgs[cookie].id(Egress)); err != nil {
		t.Fatal(err)
	}
	out := l.sb.Run(t, c.path, "tc", "filter", "show", "dev", "eth0", "egress")
	if strings.Contains(out, "handle 0x2") || !strings.Contains(out, FilterNamePrefix+"ep_egress") {
		t.Errorf("after the eviction, want ours and not the squatter:\n%s", out)
	}
	expectFindings(t, d, c, nil)
}

// TestInspectGoneBehindForeign: our filter deleted and another put at a
// lower priority is foreign_first, not detached: attached again at our
// priority ours would run after it; the repair puts ours before it.
func TestInspectGoneBehindForeign(t *testing.T) {
	l, d, c := attachedTC(t)
	ctx := context.Background()
	l.sb.Run(t, c.path, "tc", "filter", "del", "dev", "eth0", "egress", "pref", strconv.Itoa(FilterPriority))
	l.sb.Run(t, c.path, "tc", "filter", "add", "dev", "eth0", "egress", "pref", "1", "bpf", "bytecode", "1,6 0 0 4294967295")
	want := []Finding{{Egress, TamperForeignFirst}}
	expectFindings(t, d, c, want)
	if err := d.RepairEndpoint(ctx, c.path, c.ifindex, want); err != nil {
		t.Fatal(err)
	}
	if tcx, _ := tcxAvailable(); !tcx {
		expectFindings(t, d, c, want) // no place before a lower priority without TCX
		return
	}
	expectFindings(t, d, c, nil)
}

// attachedTC is a lab whose container 1 has the datapath's programs
// attached with tc.
func attachedTC(t *testing.T) (*lab, *Datapath, container) {
	t.Helper()
	requireMode(t, ModeTC)
	l := newLab(t)
	d := newTestDatapath(t)
	if err := d.AttachEndpoint(context.Background(), l.c1.path, l.c1.ifindex, ModeTC); err != nil {
		t.Fatal(err)
	}
	return l, d, l.c1
}

// foreignFilter adds, in c's namespace, a cls_bpf filter at our priority
// on egress with handle and name, running a program of its own.
func foreignFilter(t *testing.T, c container, handle uint32, name string) {
	t.Helper()
	prog := foreignProgram(t)
	err := withTC(target{netns: c.path}, func(rtnl *tc.Tc) error {
		fd, flags := uint32(prog.FD()), uint32(bpfFlagDirect)
		obj := filterObject(c.ifindex, Egress)
		obj.Handle = handle
		obj.Attribute = tc.Attribute{Kind: "bpf", BPF: &tc.Bpf{FD: &fd, Name: &name, Flags: &flags}}
		return rtnl.Filter().Add(&obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestInspectFailedAttach: an endpoint whose attach failed (here: an
// ingress qdisc, which excludes clsact) has no record of its hooks; the
// check still expects them, in the mode that attach asked for, finds
// them detached, and the repair attaches them once it can.
func TestInspectFailedAttach(t *testing.T) {
	requireMode(t, ModeTC)
	l := newLab(t)
	d := newTestDatapath(t)
	ctx := context.Background()
	c := l.c1
	l.sb.Run(t, c.path, "tc", "qdisc", "add", "dev", "eth0", "ingress")
	if err := d.AttachEndpoint(ctx, c.path, c.ifindex, ModeTC); err == nil {
		t.Fatal("premise: the attach next to an ingress qdisc worked")
	}
	detached := []Finding{{Ingress, TamperDetached}, {Egress, TamperDetached}}
	expectFindings(t, d, c, detached)
	l.sb.Run(t, c.path, "tc", "qdisc", "del", "dev", "eth0", "ingress")
	if err := d.RepairEndpoint(ctx, c.path, c.ifindex, detached); err != nil {
		t.Fatal(err)
	}
	expectFindings(t, d, c, nil)
	if got := hookModes(d, c); got[Ingress] != ModeTC || got[Egress] != ModeTC {
		t.Errorf("after the repair the hooks are attached %v; want tc", got)
	}
	if err := d.DetachEndpoint(ctx, c.path, c.ifindex); err != nil {
		t.Fatal(err)
	}
	expectFindings(t, d, c, nil) // detached by us: nothing expected any more
}

// addRootFilter puts prog, as a cls_bpf filter, under the root qdisc 1:
// of c's eth0.
func addRootFilter(t testing.TB, c container, prog *ebpf.Program) {
	t.Helper()
	err := withTC(target{netns: c.path}, func(rtnl *tc.Tc) error {
		fd, flags, name := uint32(prog.FD()), uint32(bpfFlagDirect), "late"
		obj := tc.Object{
			Msg:       tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(c.ifindex), Handle: 1, Parent: 0x10000, Info: 1<<16 | ethPAllNet},
			Attribute: tc.Attribute{Kind: "bpf", BPF: &tc.Bpf{FD: &fd, Name: &name, Flags: &flags}},
		}
		return rtnl.Filter().Add(&obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}
