package loader

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

// privateBPFFS mounts a bpffs of the test's own on a temporary directory and
// unmounts it when the test ends; it returns a pin directory inside it.
func privateBPFFS(t testing.TB) string {
	t.Helper()
	nstest.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount private bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount private bpffs: %v", err)
		}
	})
	return filepath.Join(dir, "mvlan")
}

// testPath is how the tests' Datapaths run their endpoint programs:
// as the kernel allows (PathAuto), and PathStub for the tests
// TestStubPath runs again.
var testPath = PathAuto

// loadAt loads a Datapath at pinDir and closes it when the test ends.
func loadAt(t testing.TB, pinDir string) *Datapath {
	t.Helper()
	return loadPath(t, pinDir, testPath)
}

// loadPath is loadAt with the endpoint programs' path given.
func loadPath(t testing.TB, pinDir string, path EndpointPath) *Datapath {
	t.Helper()
	d, err := Load(context.Background(), pinDir, path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d
}

func newTestDatapath(t testing.TB) *Datapath {
	t.Helper()
	return loadAt(t, privateBPFFS(t))
}

const (
	verdictNext = 0xffffffff // TC_ACT_UNSPEC as the uint32 Run returns: on to the hook's next program
	verdictPass = 0          // TC_ACT_OK, TCX_PASS: passed, the hook's last word
)

// passes is the verdict prog gives a frame it lets through: ep_egress's is
// the hook's last word (no program a container adds after it runs); the
// others let the hook's next program run. Case tables write verdictNext
// for a pass; runCases asks for the program's own.
func passes(prog string) uint32 {
	if prog == "ep_egress" {
		return verdictPass
	}
	return verdictNext
}

// run runs prog once on frame with BPF_PROG_TEST_RUN; the skb's device is
// the loopback of the test's netns (ifindex 1).
func run(t testing.TB, prog runner, frame []byte) uint32 {
	t.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret
}

// skbCtx is the head of struct __sk_buff, as far as a test run takes it
// (len and pkt_type must be zero).
type skbCtx struct {
	Len, PktType, Mark uint32
}

// runMark runs prog once on frame with skb->mark set to mark and returns
// the verdict and the mark the program left.
func runMark(t testing.TB, prog runner, frame []byte, mark uint32) (uint32, uint32) {
	t.Helper()
	out := make([]byte, 256) // at least sizeof(struct __sk_buff), else ENOSPC
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, Context: skbCtx{Mark: mark}, ContextOut: out})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret, binary.LittleEndian.Uint32(out[8:]) // skbCtx.Mark
}

// Frame builders. Checksums are left zero: the programs never read them.

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

var broadcastMAC = mac("ff:ff:ff:ff:ff:ff")

func ethFrame(dst, src net.HardwareAddr, ethertype uint16, payload []byte) []byte {
	b := append(append(append([]byte{}, dst...), src...), byte(ethertype>>8), byte(ethertype))
	return append(b, payload...)
}

// tagged inserts an 802.1Q (or 802.1ad) tag after the MACs.
func tagged(frame []byte, tpid, vid uint16) []byte {
	tag := []byte{byte(tpid >> 8), byte(tpid), byte(vid >> 8), byte(vid)}
	out := append(append([]byte{}, frame[:12]...), tag...)
	return append(out, frame[12:]...)
}

func ipv4Packet(src, dst string, proto byte, payload []byte) []byte {
	h := make([]byte, 20)
	h[0], h[8], h[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return append(h, payload...)
}

func ipv6Packet(src, dst string, next byte, payload []byte) []byte {
	h := make([]byte, 40)
	h[0], h[6], h[7] = 0x60, next, 255
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

func arpPacket(op uint16, sha net.HardwareAddr, spa string, tha net.HardwareAddr, tpa string) []byte {
	b := []byte{0, 1, 0x08, 0x00, 6, 4, byte(op >> 8), byte(op)}
	s, d := netip.MustParseAddr(spa).As4(), netip.MustParseAddr(tpa).As4()
	b = append(append(b, sha...), s[:]...)
	return append(append(b, tha...), d[:]...)
}

// icmpEcho is an ICMP (or ICMPv6, typ 128) echo request of n payload bytes.
func icmpEcho(typ byte, n int) []byte {
	return append([]byte{typ, 0, 0, 0, 0, 1, 0, 1}, make([]byte, n)...)
}

// neighborAdvert is an ICMPv6 NA for target with a target link-layer
// address option (nil: none).
func neighborAdvert(target string, tlla net.HardwareAddr) []byte {
	b := []byte{136, 0, 0, 0, 0x60, 0, 0, 0}
	a := netip.MustParseAddr(target).As16()
	b = append(b, a[:]...)
	if tlla != nil {
		b = append(append(b, 2, 1), tlla...)
	}
	return b
}

// runner is what run needs of a program.
type runner interface {
	Run(*ebpf.RunOptions) (uint32, error)
}

// longIHL makes an IPv4 header announce 60 header bytes. The kernel's test
// run refuses IPv4 frames with less than 20 bytes of IP header, so this is
// how a test run gets a truncated IPv4 header; shorter ones are sent for
// real in TestTruncatedOnTheWire.
func longIHL(ip []byte) []byte {
	ip = append([]byte{}, ip...)
	ip[0] = 0x4f
	return ip
}

// sizedFrame is an IPv4 echo request of exactly n bytes from a host on the
// wire (198.51.100.7 via the router) to endpoint A (10.1.0.10).
func sizedFrame(n int) []byte {
	return ethFrame(macA, macRouter, 0x0800, ipv4Packet("198.51.100.7", "10.1.0.10", 1, icmpEcho(8, n-14-20-8)))
}
