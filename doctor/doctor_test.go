package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReportOK(t *testing.T) {
	r := Report{Checks: []Check{
		{Name: CheckMacvlan, OK: true},
		{Name: CheckVLAN, Impact: impactVLAN},
		{Name: CheckTCX, Detail: needsRoot, Skipped: true},
	}}
	for name, want := range map[string]bool{CheckMacvlan: true, CheckVLAN: false, CheckTCX: false, "nosuch": false} {
		if got := r.OK(name); got != want {
			t.Errorf("OK(%q) = %v, want %v", name, got, want)
		}
	}
	if c, ok := r.Check(CheckVLAN); !ok || c.Impact != impactVLAN {
		t.Errorf("Check(%q) = %+v, %v", CheckVLAN, c, ok)
	}
}

func TestRunNotRoot(t *testing.T) {
	r, err := run(context.Background(), filepath.Join(t.TempDir(), "pins"), false)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if r.Kernel == "" {
		t.Error("no kernel release")
	}
	for _, name := range privilegedNames {
		c, ok := r.Check(name)
		if !ok || !c.Skipped || c.OK || c.Detail != needsRoot {
			t.Errorf("check %s = %+v (found %v); want skipped with %q", name, c, ok, needsRoot)
		}
	}
	for _, name := range []string{CheckBTF, CheckBPFFS} {
		if _, ok := r.Check(name); !ok {
			t.Errorf("check %s missing from report", name)
		}
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := run(ctx, t.TempDir(), false); err == nil {
		t.Fatal("run with a canceled context succeeded")
	}
}

func TestLocalImpacts(t *testing.T) {
	tests := []struct {
		dummy, bridge         bool
		wantDummy, wantBridge string // substrings; "" means empty
	}{
		{true, true, "", ""},
		{false, true, "port-less bridge", ""},
		{true, false, "", "only the fallback"},
		{false, false, "cannot be created", "cannot be created"},
	}
	for _, tt := range tests {
		d, b := localImpacts(tt.dummy, tt.bridge)
		if !impactMatches(d, tt.wantDummy) || !impactMatches(b, tt.wantBridge) {
			t.Errorf("localImpacts(%v, %v) = %q, %q", tt.dummy, tt.bridge, d, b)
		}
	}
}

// impactMatches: an empty want needs an empty impact (nothing is lost);
// otherwise the impact must say want.
func impactMatches(got, want string) bool {
	if want == "" {
		return got == ""
	}
	return strings.Contains(got, want)
}

func TestCheckBPFFSNotBPF(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{dir, filepath.Join(dir, "a", "b")} {
		c := checkBPFFS(p)
		if c.OK || c.Skipped {
			t.Fatalf("checkBPFFS(%s) = %+v; want missing", p, c)
		}
		if !strings.Contains(c.Detail, dir) || !strings.Contains(c.Detail, "not bpf") {
			t.Errorf("detail %q: want it to name %s and say not bpf", c.Detail, dir)
		}
		if !strings.Contains(c.Impact, "mount -t bpf bpf "+p) {
			t.Errorf("impact %q: want the mount command for %s", c.Impact, p)
		}
	}
}

func TestBPFFSImpact(t *testing.T) {
	for dir, mnt := range map[string]string{
		"/sys/fs/bpf":         "/sys/fs/bpf",
		"/sys/fs/bpf/mvlan":   "/sys/fs/bpf",
		"/sys/fs/bpfx":        "/sys/fs/bpfx",
		"/run/mvlan/bpf/pins": "/run/mvlan/bpf/pins",
	} {
		want := "bpffs not mounted at " + mnt + ": the agent mounts it (or: mount -t bpf bpf " + mnt +
			"); without it counters do not survive an agent restart"
		if got := bpffsImpact(dir); got != want {
			t.Errorf("bpffsImpact(%s) = %q, want %q", dir, got, want)
		}
	}
}

func TestStatfsNearest(t *testing.T) {
	dir := t.TempDir()
	at, _, err := statfsNearest(filepath.Join(dir, "x", "y"))
	if err != nil || at != dir {
		t.Fatalf("statfsNearest = %q, %v; want %q", at, err, dir)
	}
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := statfsNearest(filepath.Join(f, "below")); err == nil {
		t.Error("statfs below a regular file succeeded; want ENOTDIR")
	}
}
