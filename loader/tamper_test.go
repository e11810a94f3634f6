package loader

import (
	"context"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/mvlan/mvlan/internal/nstest"
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
			err := d.RepairEndpoint(ctx, c.path, c.ifindex, first)
			if mode == ModeTC {
				// TCX runs before every tc filter; not mvlan's to remove.
				if err == nil {
					t.Error("repair under tc with a foreign TCX program first: no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			expectFindings(t, d, c, nil)
			fl.Close()
			expectFindings(t, d, c, nil)
		})
	}
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
