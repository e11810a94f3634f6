package cluster

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// TestSameAgentID: two installations (state dirs) with one agent ID, as
// a cloned machine has. The first registers the identity; the second
// fails with ErrIdentityClash naming the ID and what to do, and leases,
// claims and hands out nothing, while the first goes on. The first
// started again on its state registers fine.
func TestSameAgentID(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.86.0.0/24")}
	ctx := context.Background()
	a := newLiveHost(t, e.URL, "clone", cfg, 2*time.Second, 2*time.Second, "")
	if err := a.c.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.p.Allocate(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	b := newLiveHost(t, e.URL, "clone", cfg, 2*time.Second, 2*time.Second, "")
	err := b.c.Register(ctx)
	if !errors.Is(err, ErrIdentityClash) || !strings.Contains(err.Error(), "agent ID clone") || !strings.Contains(err.Error(), "state dir") {
		t.Fatalf("second installation of agent ID clone: %v; want ErrIdentityClash naming the ID and what to do", err)
	}
	for _, tc := range []struct {
		what string
		do   func() error
	}{
		{"allocate", func() error { _, err := b.p.Allocate(ctx, "b"); return err }},
		{"claim", func() error { _, err := b.p.Request(ctx, netip.MustParseAddr("10.86.0.200"), "b"); return err }},
		{"join", func() error { return b.c.Join(ctx, "rnet", b.nw.ID) }},
	} {
		if err := tc.do(); !errors.Is(err, ErrIdentityClash) {
			t.Errorf("%s on the second installation: %v; want ErrIdentityClash", tc.what, err)
		}
	}
	if _, err := a.p.Allocate(ctx, "a2"); err != nil {
		t.Errorf("the first installation after the clash: %v", err)
	}
	again, err := Dial(Config{URL: e.URL, Host: "clone", Timeout: time.Second, Dir: a.dir, TTL: 2 * time.Second, Grace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := again.Register(ctx); err != nil {
		t.Errorf("the first installation started again: %v", err)
	}
}

// TestInstallTokenFile: the token is made once and kept; a file of
// another machine gets a new one; a corrupt file is named.
func TestInstallTokenFile(t *testing.T) {
	dir := t.TempDir()
	quiet := func(string, ...any) {}
	first, _, err := readInstall(dir, quiet)
	if err != nil || len(first) != 32 {
		t.Fatalf("new token: %q %v", first, err)
	}
	if again, made, err := readInstall(dir, quiet); again != first || made || err != nil {
		t.Errorf("token read again: %q %v; want %q", again, err, first)
	}
	file := filepath.Join(dir, InstallFile)
	if err := os.WriteFile(file, []byte(`{"token":"`+first+`","machine":"another"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if moved, made, err := readInstall(dir, quiet); moved == first || !made || err != nil {
		t.Errorf("token of a state made on another machine: %q %v; want a new one", moved, err)
	}
	if err := os.WriteFile(file, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readInstall(dir, quiet); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("corrupt token file: %v; want an error naming %s", err, file)
	}
}
