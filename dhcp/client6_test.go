package dhcp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mvlan/mvlan/internal/nstest"
)

// dnsmasq6 serves DHCPv6 from range (e.g. "fd00:60::10,fd00:60::20")
// on the sandbox's wire0 (fd00:60::1/64); its lease file is leases.
type dnsmasq6 struct {
	cmd    *exec.Cmd
	log    bytes.Buffer
	leases string
}

func startDnsmasq6(t *testing.T, sb *nstest.Sandbox, rng string) *dnsmasq6 {
	t.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		t.Skip("dnsmasq not installed (Debian: dnsmasq-base)")
	}
	dir := t.TempDir()
	d := &dnsmasq6{leases: filepath.Join(dir, "leases")}
	d.cmd = exec.Command("nsenter", "--net="+sb.WirePath, "--", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--port=0", "--user=root", "--bind-interfaces", "--interface=wire0", "--pid-file="+filepath.Join(dir, "pid"),
		"--log-facility=-", "--log-dhcp", "--dhcp-authoritative", "--dhcp-range="+rng+",64,2m", "--dhcp-leasefile="+d.leases)
	d.cmd.Stdout, d.cmd.Stderr = &d.log, &d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		_ = d.cmd.Wait()
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(d.leases); err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq did not start:\n%s", d.log.String())
		}
	}
}

// has reports whether the lease file binds addr, polling for up to 2 s
// until it is want (dnsmasq writes the file after answering).
func (d *dnsmasq6) has(t *testing.T, addr netip.Addr, want bool) bool {
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		data, err := os.ReadFile(d.leases)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[2] == addr.String() {
				found = true
			}
		}
		if found == want || time.Now().After(deadline) {
			if found != want {
				t.Logf("lease file:\n%s", data)
			}
			return found
		}
	}
}

// TestDHCPv6Client: the client against a real server (dnsmasq) on a veth:
// Solicit..Reply gives an address of the range with the server's times, a
// Renew extends it, Release removes it from the server's lease file, the
// same DUID gets the same address back, another DUID another address, and
// an advertised address outside the subnet is refused.
func TestDHCPv6Client(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:60::1/64", "dev", "wire0", "nodad")
	srv := startDnsmasq6(t, sb, "fd00:60::10,fd00:60::20")
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	l := Link{Netns: sb.Path, IfName: "eth0", MAC: mac, ClientID: DUID6("net", "c1"), Hostname: "c1",
		Subnet: netip.MustParsePrefix("fd00:60::/64")}
	ctx := context.Background()
	lease, err := Acquire6(ctx, l)
	if err != nil {
		t.Fatalf("acquire: %v\n%s", err, srv.log.String())
	}
	t.Logf("lease %s renew %v rebind %v expiry %v", lease.Addr, lease.Renew.Sub(lease.Obtained), lease.Rebind.Sub(lease.Obtained), lease.Expiry.Sub(lease.Obtained))
	if lease.Addr.Bits() != 64 || !netip.MustParsePrefix("fd00:60::/64").Contains(lease.Addr.Addr()) {
		t.Fatalf("lease %s, want an address of fd00:60::10-20 /64", lease.Addr)
	}
	if !srv.has(t, lease.Addr.Addr(), true) {
		t.Fatalf("the server's lease file has no %s", lease.Addr)
	}
	time.Sleep(1100 * time.Millisecond)
	renewed, err := Renew6(ctx, l, lease)
	if err != nil || renewed.Addr != lease.Addr || !renewed.Expiry.After(lease.Expiry) {
		t.Fatalf("renew: %v, %s until %v (was until %v)", err, renewed.Addr, renewed.Expiry, lease.Expiry)
	}
	if err := Release6(ctx, l, renewed); err != nil {
		t.Fatalf("release: %v", err)
	}
	if srv.has(t, lease.Addr.Addr(), false) {
		t.Fatalf("%s still in the server's lease file after Release", lease.Addr)
	}
	again, err := Acquire6(ctx, l)
	if err != nil || again.Addr != lease.Addr {
		t.Fatalf("acquire again: %v, %s, want %s back", err, again.Addr, lease.Addr)
	}
	other := l
	other.ClientID = DUID6("net", "c2")
	o, err := Acquire6(ctx, other)
	if err != nil || o.Addr == lease.Addr {
		t.Fatalf("another DUID: %v, %s (c1 has %s)", err, o.Addr, lease.Addr)
	}
	narrow := l
	narrow.ClientID, narrow.Subnet = DUID6("net", "c3"), netip.MustParsePrefix("fd00:61::/64")
	if _, err := Acquire6(ctx, narrow); err == nil || !strings.Contains(err.Error(), "outside the network's IPv6 --subnet fd00:61::/64") {
		t.Fatalf("acquire outside the subnet: %v", err)
	}
	if _, err := Renew6(ctx, other, Lease{Addr: netip.MustParsePrefix("fd00:60::99/64"), ClientID: other.ClientID, ACK: o.ACK,
		Renew: time.Now(), Rebind: time.Now().Add(time.Minute), Expiry: time.Now().Add(time.Hour)}); !errors.Is(err, ErrNAK) {
		t.Fatalf("renew of an address the server never gave: %v, want ErrNAK", err)
	}
}

// TestRebind6OtherServer: as TestRebindOtherServer for DHCPv6. The
// lease's server (dnsmasq, DUID 1) stops and a partner (another address,
// DUID 2, its own lease file) serves the prefix. Renewing (a Renew to the
// lease's server, T1..T2) gets no answer; rebinding (a Rebind to any,
// after T2) gets the partner's Reply: the same address, the partner's
// DUID as the lease's server, and the partner's lease file has it.
func TestRebind6OtherServer(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:60::1/64", "dev", "wire0", "nodad")
	flags := func(duid string) []string {
		return []string{"--dhcp-authoritative", "--dhcp-range=fd00:60::10,fd00:60::20,64,2m", "--dhcp-duid=" + duid}
	}
	first := nstest.StartDnsmasq(t, sb.WirePath, "wire0", flags("1,01")...)
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	l := Link{Netns: sb.Path, IfName: "eth0", MAC: mac, ClientID: DUID6("net", "c1"), Subnet: netip.MustParsePrefix("fd00:60::/64")}
	lease, err := Acquire6(context.Background(), l)
	if err != nil {
		t.Fatalf("acquire: %v\n%s", err, first.Log())
	}
	first.Stop()
	sb.Run(t, sb.WirePath, "ip", "addr", "del", "fd00:60::1/64", "dev", "wire0")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:60::2/64", "dev", "wire0", "nodad")
	partner := nstest.StartDnsmasq(t, sb.WirePath, "wire0", flags("1,02")...)

	now := time.Now()
	renewing := lease
	renewing.Renew, renewing.Rebind = now.Add(-time.Second), now.Add(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := Renew6(ctx, l, renewing); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("renewing with the lease's server gone: %v, want ErrNoAnswer", err)
	}
	rebinding := lease
	rebinding.Renew, rebinding.Rebind = now.Add(-time.Minute), now.Add(-time.Second)
	got, err := Renew6(context.Background(), l, rebinding)
	if err != nil {
		t.Fatalf("rebinding with the partner there: %v\n%s", err, partner.Log())
	}
	before, _ := dhcpv6.MessageFromBytes(lease.ACK)
	after, _ := dhcpv6.MessageFromBytes(got.ACK)
	if got.Addr != lease.Addr || !got.Expiry.After(lease.Expiry) || after.Options.ServerID().Equal(before.Options.ServerID()) {
		t.Errorf("rebound: %s until %v from %v; want %s after %v from another server than %v",
			got.Addr, got.Expiry, after.Options.ServerID(), lease.Addr, lease.Expiry, before.Options.ServerID())
	}
	if err := partner.WaitLease(lease.Addr.Addr(), true, 2*time.Second); err != nil {
		t.Error(err)
	}
}
