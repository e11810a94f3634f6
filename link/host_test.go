package link_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

func TestHostLinks(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	in, err := h.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if in.Kind != "veth" || !in.Up || in.Index == 0 || len(in.MAC) != 6 {
		t.Errorf("Link(eth0) = %+v; want an up veth with a MAC", in)
	}
	sameLinks(t, h, "", []string{"eth0", "lo"})
	_, err = h.Link("eth9")
	if !errors.Is(err, link.ErrNotFound) || !strings.Contains(err.Error(), "eth9") {
		t.Errorf("Link(eth9) error = %v; want ErrNotFound naming eth9", err)
	}
	if err := h.Delete("eth9"); err != nil {
		t.Errorf("Delete of a missing link = %v; want nil", err)
	}
	if _, err := link.OpenHost("/run/netns/mvt-does-not-exist"); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("OpenHost(missing) error = %v; want ErrNotFound", err)
	}
}

func TestCreateHostOnly(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	feats, err := link.ProbeFeatures()
	if err != nil {
		t.Fatal(err)
	}
	wantKind := link.KindBridge
	if feats.Dummy {
		wantKind = link.KindDummy
	}
	const alias = "mvlan/test/net/n1"
	kind, err := h.CreateHostOnly(context.Background(), "mvh-n1", alias)
	if err != nil || kind != wantKind {
		t.Fatalf("CreateHostOnly = %q, %v; want %q", kind, err, wantKind)
	}
	in, err := h.Link("mvh-n1")
	if err != nil {
		t.Fatal(err)
	}
	if in.Kind != wantKind || in.Alias != alias || !in.Up {
		t.Errorf("host-only link = %+v; want an up %s with alias %q", in, wantKind, alias)
	}
	if got := sysctl(t, sb, sb.Path, "ipv6/conf/mvh-n1/disable_ipv6"); got != "1" {
		t.Errorf("disable_ipv6 on the host-only link = %q; want 1", got)
	}
	out := sb.Run(t, sb.Path, "ip", "-o", "link", "show", "mvh-n1")
	mustContain(t, "ip link show mvh-n1", out, "LOWER_UP", "alias "+alias)
	sameLinks(t, h, "", []string{"eth0", "lo", "mvh-n1"}) // no temporary link left

	if _, err := h.CreateHostOnly(context.Background(), "mvh-n1", alias); !errors.Is(err, link.ErrExists) {
		t.Errorf("second CreateHostOnly error = %v; want ErrExists", err)
	}
	if err := h.Delete("mvh-n1"); err != nil {
		t.Fatal(err)
	}
	sameLinks(t, h, "", []string{"eth0", "lo"})
}

func TestCreateVLAN(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	feats, err := link.ProbeFeatures()
	if err != nil {
		t.Fatal(err)
	}
	before := linkNames(t, h, "")
	ctx := context.Background()
	p, err := link.ParseParent("eth0.50")
	if err != nil {
		t.Fatal(err)
	}
	err = h.CreateVLAN(ctx, p, "mvlan/test/parent/eth0.50")
	if !feats.VLAN {
		want := "cannot create eth0.50: this kernel has no 802.1q (8021q) support; " +
			"create the link yourself or load the 8021q module"
		if !errors.Is(err, link.ErrNotSupported) || err.Error() != want {
			t.Errorf("CreateVLAN error = %v; want ErrNotSupported saying %q", err, want)
		}
		sameLinks(t, h, "", before)
	} else {
		checkVLAN(t, h, err)
	}
	missing, _ := link.ParseParent("eth7.50")
	if err := h.CreateVLAN(ctx, missing, "a"); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("CreateVLAN on a missing lower = %v; want ErrNotFound", err)
	}
	sameLinks(t, h, "", before)
}

// checkVLAN verifies a successful CreateVLAN of eth0.50 (kernels with 8021q).
func checkVLAN(t *testing.T, h *link.Host, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("CreateVLAN: %v", err)
	}
	in, err := h.Link("eth0.50")
	if err != nil {
		t.Fatal(err)
	}
	if in.Kind != "vlan" || in.VID != 50 || !in.Up || in.Alias != "mvlan/test/parent/eth0.50" {
		t.Errorf("vlan link = %+v", in)
	}
	if err := h.Delete("eth0.50"); err != nil {
		t.Fatal(err)
	}
}

func TestProbeFeatures(t *testing.T) {
	nstest.RequireRoot(t)
	f, err := link.ProbeFeatures()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("features: %+v", f)
	// Cross-check every answer with iproute2 in a namespace of its own.
	for _, c := range []struct {
		name string
		got  bool
		cmd  string
	}{
		{"macvlan", f.Macvlan, "ip link add name pl type veth peer name pp && ip link add link pl name pm type macvlan"},
		{"vlan", f.VLAN, "ip link add name pl type veth peer name pp && ip link add link pl name pl.5 type vlan id 5"},
		{"dummy", f.Dummy, "ip link add name pd type dummy"},
		{"bridge", f.Bridge, "ip link add name pb type bridge"},
	} {
		want := runUnshared(c.cmd) == nil
		if c.got != want {
			t.Errorf("%s: ProbeFeatures says %v, iproute2 says %v (%s)", c.name, c.got, want, f.Errs[c.name])
		}
		if !c.got && f.Errs[c.name] == "" {
			t.Errorf("%s: missing without a reason in Errs", c.name)
		}
	}
	if !f.Macvlan || !f.Bridge {
		t.Errorf("mvlan needs macvlan and bridge: %+v", f)
	}
}
