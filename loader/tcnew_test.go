package loader

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	tc "github.com/florianl/go-tc"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestAttachNewEndpoint: on a link just made, the tc attach creates the
// clsact qdisc (recorded as ours) and both filters, direct-action, running
// the namespace's stubs; on a link that has someone's clsact already, it
// ends like AttachEndpoint (both filters there, the qdisc not ours: the
// detach leaves it); a foreign filter at our place is an error and stays.
func TestAttachNewEndpoint(t *testing.T) {
	requireMode(t, ModeTC)
	sb := nstest.NewSandbox(t)
	d := newTestDatapath(t)
	ns := sb.Netns(t, "fresh")
	for i, tt := range []struct {
		name        string
		prep        func(t *testing.T, idx int) // what is on the link before
		wantIngress []string
		wantErr     string
		ours        bool // the qdisc is recorded as ours
	}{
		{name: "new", wantIngress: []string{"tc:mvlan:ep_ingress"}, ours: true},
		{name: "foreign clsact", prep: func(t *testing.T, idx int) { addForeignFilter(t, ns, idx, 100) },
			wantIngress: []string{"tc:foreign", "tc:mvlan:ep_ingress"}},
		{name: "foreign at our place", prep: func(t *testing.T, idx int) { addForeignFilter(t, ns, idx, FilterPriority) },
			wantIngress: []string{"tc:foreign"}, wantErr: "foreign bpf filter holds priority"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dev := fmt.Sprintf("d%d", i)
			sb.Run(t, ns, "ip", "link", "add", dev, "type", "veth", "peer", "name", "p"+dev)
			idx := ifindex(t, ns, dev)
			if tt.prep != nil {
				tt.prep(t, idx)
			}
			cookie, err := NetnsCookie(ns)
			if err != nil {
				t.Fatal(err)
			}
			err = d.AttachNewEndpoint(t.Context(), ns, cookie, idx, ModeTC)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("AttachNewEndpoint = %v, want error %q", err, tt.wantErr)
			}
			got := hookPrograms(t, ns, idx, Ingress)
			slices.Sort(got)
			if !slices.Equal(got, tt.wantIngress) {
				t.Errorf("ingress holds %q, want %q", got, tt.wantIngress)
			}
			if d.qdiscs[ifaceKey{cookie, idx}] != tt.ours {
				t.Errorf("clsact recorded as ours: %v, want %v", !tt.ours, tt.ours)
			}
			if err != nil {
				return
			}
			p := d.epProgs[cookie]
			for hook, want := range map[Hook]uint32{Ingress: uint32(programID(p.ingress)), Egress: uint32(programID(p.egress))} {
				if id, flags := ourFilterOn(t, ns, idx, hook); id != want || flags&bpfFlagDirect == 0 {
					t.Errorf("%s: our filter runs program %d (flags %#x), want %d direct-action", hook, id, flags, want)
				}
			}
			if err := d.DetachEndpoint(t.Context(), ns, idx); err != nil {
				t.Fatal(err)
			}
			if out := sb.Run(t, ns, "tc", "qdisc", "show", "dev", dev); strings.Contains(out, "clsact") == tt.ours {
				t.Errorf("after the detach: %s; want the clsact gone only if it was ours", out)
			}
		})
	}
}

// addForeignFilter adds a clsact qdisc and someone else's cls_bpf filter
// at priority prio, handle FilterHandle, on the ingress of ifindex.
func addForeignFilter(t *testing.T, ns string, ifindex int, prio uint32) {
	t.Helper()
	prog := foreignProgram(t)
	err := withTC(target{netns: ns}, func(rtnl *tc.Tc) error {
		q := tc.Object{Msg: tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(ifindex), Handle: clsactHandle, Parent: tc.HandleIngress},
			Attribute: tc.Attribute{Kind: "clsact"}}
		if err := rtnl.Qdisc().Add(&q); err != nil {
			return err
		}
		fd, flags, name := uint32(prog.FD()), uint32(bpfFlagDirect), "foreign"
		obj := filterObject(ifindex, Ingress)
		obj.Info = prio<<16 | ethPAllNet
		obj.Attribute = tc.Attribute{Kind: "bpf", BPF: &tc.Bpf{FD: &fd, Name: &name, Flags: &flags}}
		return rtnl.Filter().Add(&obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ourFilterOn returns the program ID and flags of our filter on the hook.
func ourFilterOn(t *testing.T, ns string, ifindex int, hook Hook) (id, flags uint32) {
	t.Helper()
	err := withTC(target{netns: ns}, func(rtnl *tc.Tc) error {
		fs, err := rtnl.Filter().Get(&tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(ifindex), Parent: tcParent(hook)})
		for _, f := range fs {
			if f.Info>>16 == FilterPriority && f.Handle == FilterHandle && f.BPF != nil && f.BPF.ID != nil && f.BPF.Flags != nil {
				id, flags = *f.BPF.ID, *f.BPF.Flags
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id, flags
}

// TestAttachNewEndpointTCX: in TCX mode a link just made gets both TCX
// links (no clsact), and the detach takes them off.
func TestAttachNewEndpointTCX(t *testing.T) {
	requireMode(t, ModeTCX)
	sb := nstest.NewSandbox(t)
	d := newTestDatapath(t)
	ns := sb.Netns(t, "fresh")
	sb.Run(t, ns, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "p0")
	idx := ifindex(t, ns, "d0")
	if err := d.AttachNewEndpoint(t.Context(), ns, mustCookie(t, ns), idx, ModeTCX); err != nil {
		t.Fatal(err)
	}
	for _, detached := range []bool{false, true} {
		for hook, want := range map[Hook][]string{Ingress: {"tcx:ep_ingress"}, Egress: {"tcx:ep_egress"}} {
			if detached {
				want = nil
			}
			if got := hookPrograms(t, ns, idx, hook); !slices.Equal(got, want) {
				t.Errorf("%s (detached %v) holds %q, want %q", hook, detached, got, want)
			}
		}
		if err := d.DetachEndpoint(t.Context(), ns, idx); err != nil {
			t.Fatal(err)
		}
	}
}
