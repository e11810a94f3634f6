package loader

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	tc "github.com/florianl/go-tc"
	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

// lab is a sandbox host (netns) whose eth0 is the parent of network 1,
// 10.1.0.0/24, with the wire's end wire0 at 10.1.0.1 and two containers c1
// (10.1.0.10) and c2 (10.1.0.11) with macvlan slaves (bridge mode) on eth0.
// IPv6 is off and neighbours are static, so the only frames are the test's.
type lab struct {
	sb     *nstest.Sandbox
	eth0   int // ifindex in the host netns
	c1, c2 container
}

type container struct {
	path    string
	ifindex int
	mac     net.HardwareAddr
	ip      netip.Addr
}

var wireMAC = mac("02:00:00:00:00:01")

// echoFrameLen is the size of nstest.Ping's IPv4 echo frames at TC:
// Ethernet 14 + IPv4 20 + ICMP 8 + "mvlan-nstest-ping" 17.
const echoFrameLen = 59

func newLab(t *testing.T) *lab {
	t.Helper()
	sb := nstest.NewSandbox(t)
	l := &lab{sb: sb}
	for _, ns := range []string{sb.Path, sb.WirePath} {
		noIPv6(t, sb, ns)
	}
	sb.Run(t, sb.WirePath, "ip", "link", "set", "wire0", "address", wireMAC.String())
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "10.1.0.1/24", "dev", "wire0")
	l.eth0 = ifindex(t, sb.Path, "eth0")
	l.c1 = l.container(t, "c1", macA, "10.1.0.10")
	l.c2 = l.container(t, "c2", macB, "10.1.0.11")
	l.neighbours(t, l.c1.path, l.c2, wireMAC, "10.1.0.1")
	l.neighbours(t, l.c2.path, l.c1, wireMAC, "10.1.0.1")
	for _, c := range []container{l.c1, l.c2} {
		sb.Run(t, sb.WirePath, "ip", "neigh", "add", c.ip.String(), "lladdr", c.mac.String(), "dev", "wire0", "nud", "permanent")
	}
	return l
}

func noIPv6(t *testing.T, sb *nstest.Sandbox, ns string) {
	for _, k := range []string{"all", "default"} {
		sb.Run(t, ns, "sysctl", "-q", "-w", "net.ipv6.conf."+k+".disable_ipv6=1")
	}
}

func (l *lab) container(t *testing.T, name string, hw net.HardwareAddr, ip string) container {
	t.Helper()
	sb := l.sb
	path := sb.Netns(t, name)
	noIPv6(t, sb, path)
	slave := "mv-" + name
	sb.Run(t, sb.Path, "ip", "link", "add", "link", "eth0", "name", slave, "type", "macvlan", "mode", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "set", slave, "netns", filepath.Base(path))
	sb.Run(t, path, "ip", "link", "set", slave, "name", "eth0", "address", hw.String())
	sb.Run(t, path, "ip", "addr", "add", ip+"/24", "dev", "eth0")
	sb.Run(t, path, "ip", "link", "set", "eth0", "up")
	return container{path: path, ifindex: ifindex(t, path, "eth0"), mac: hw, ip: netip.MustParseAddr(ip)}
}

func (l *lab) neighbours(t *testing.T, ns string, peer container, gwMAC net.HardwareAddr, gw string) {
	l.sb.Run(t, ns, "ip", "neigh", "add", peer.ip.String(), "lladdr", peer.mac.String(), "dev", "eth0", "nud", "permanent")
	l.sb.Run(t, ns, "ip", "neigh", "add", gw, "lladdr", gwMAC.String(), "dev", "eth0", "nud", "permanent")
}

// setup fills d's tables for the lab: eth0 parent of network 1, c1 and c2.
func (l *lab) setup(t *testing.T, d *Datapath) {
	t.Helper()
	if err := d.SetParent(l.eth0, netA, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []container{l.c1, l.c2} {
		cookie, err := NetnsCookie(c.path)
		if err != nil {
			t.Fatal(err)
		}
		ep := Endpoint{NetnsCookie: cookie, Ifindex: c.ifindex, MAC: c.mac, IPs: []netip.Addr{c.ip}, NetworkID: netA}
		if err := d.SetEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
}

// attach attaches everything of the lab in mode.
func (l *lab) attach(t *testing.T, d *Datapath, mode Mode) {
	t.Helper()
	ctx := t.Context()
	if err := d.AttachParent(ctx, l.sb.Path, l.eth0, mode); err != nil {
		t.Fatal(err)
	}
	for _, c := range []container{l.c1, l.c2} {
		if err := d.AttachEndpoint(ctx, c.path, c.ifindex, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func ping(t *testing.T, from container, to string, n int) {
	t.Helper()
	if err := nstest.Ping(from.path, netip.MustParseAddr(to), n, 2*time.Second); err != nil {
		t.Fatal(err)
	}
}

func ifindex(t testing.TB, ns, name string) int {
	t.Helper()
	var idx int
	err := nstest.In(ns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err == nil {
			idx = ifi.Index
		}
		return err
	})
	if err != nil {
		t.Fatalf("ifindex of %s in %s: %v", name, ns, err)
	}
	return idx
}

// sendFrames sends frame n times out of link ifName in ns with an
// AF_PACKET socket.
func sendFrames(t testing.TB, ns, ifName string, frame []byte, n int) {
	t.Helper()
	idx := ifindex(t, ns, ifName)
	var fd int
	err := nstest.In(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatalf("packet socket in %s: %v", ns, err)
	}
	defer unix.Close(fd)
	for i := 0; i < n; i++ {
		err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: idx})
		if err != nil && !errors.Is(err, unix.ENOBUFS) { // ENOBUFS: dropped at TC egress
			t.Fatalf("send frame in %s: %v", ns, err)
		}
	}
}

// hookPrograms lists what is attached to a hook, as "tcx:NAME" (program
// name) and "tc:NAME" (cls_bpf filter name, or the classifier kind).
func hookPrograms(t testing.TB, ns string, ifidx int, hook Hook) []string {
	t.Helper()
	var out []string
	err := nstest.In(ns, func() error {
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifidx, Attach: tcxAttachType(hook)})
		if err != nil {
			return fmt.Errorf("query tcx: %w", err)
		}
		for _, p := range res.Programs {
			out = append(out, "tcx:"+programName(t, p.ID))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return append(out, tcFilters(t, ns, ifidx, hook)...)
}

func programName(t testing.TB, id ebpf.ProgramID) string {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		t.Fatalf("program %d: %v", id, err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatalf("program %d: %v", id, err)
	}
	return info.Name
}

func tcFilters(t testing.TB, ns string, ifidx int, hook Hook) []string {
	var out []string
	err := withTC(target{netns: ns}, func(rtnl *tc.Tc) error {
		if has, err := hasClsact(rtnl, ifidx); err != nil || !has {
			return err
		}
		fs, err := rtnl.Filter().Get(&tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(ifidx), Parent: tcParent(hook)})
		for _, f := range fs {
			if f.Handle == 0 {
				continue // the dump's entry for a priority, not a filter
			}
			name := f.Kind
			if f.BPF != nil && f.BPF.Name != nil {
				name = *f.BPF.Name
			}
			out = append(out, "tc:"+name)
		}
		return err
	})
	if err != nil {
		t.Fatalf("list tc filters: %v", err)
	}
	return out
}

// foreignProgram is someone else's TC program: it returns "next".
func foreignProgram(t testing.TB) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "foreign", Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
