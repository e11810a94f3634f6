package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (creates links in a throwaway netns and loads BPF programs)")
	}
}

// TestRunThisKernel runs every check for real. The expectations for
// 8021q and dummy come from witnesses outside doctor, read after Run (whose
// probes load the modules if the kernel has them): /proc/net/vlan exists
// once 8021q is loaded, /sys/module/dummy once dummy is. On the development
// machines (6.18, no 8021q, no dummy) both are missing. TCX is expected
// from the kernel's version: Linux 6.6 brought it.
func TestRunThisKernel(t *testing.T) {
	requireRoot(t)
	r, err := Run(context.Background(), "/sys/fs/bpf/mvlan-doctor-test/pins")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, c := range r.Checks {
		t.Logf("%-8s ok=%-5v %s | %s", c.Name, c.OK, c.Detail, c.Impact)
		if c.Skipped {
			t.Errorf("check %s skipped as root: %s", c.Name, c.Detail)
		}
		if !c.OK && c.Impact == "" && c.Name != CheckBridge {
			t.Errorf("check %s is missing but has no impact", c.Name)
		}
	}
	want := map[string]bool{
		CheckMacvlan: true, CheckVeth: true, CheckBridge: true,
		CheckTCX: kernelAtLeast(t, r.Kernel, 6, 6), CheckClsact: true, CheckBTF: true,
		CheckDirect: kernelAtLeast(t, r.Kernel, 6, 2),
		CheckVLAN:   exists("/proc/net/vlan"),
		CheckDummy:  exists("/sys/module/dummy"),
	}
	for name, ok := range want {
		if _, found := r.Check(name); !found {
			t.Errorf("no %s check in the report", name)
		} else if r.OK(name) != ok {
			t.Errorf("%s ok = %v, want %v", name, r.OK(name), ok)
		}
	}
	assertImpacts(t, r)
}

func assertImpacts(t *testing.T, r Report) {
	t.Helper()
	if c, _ := r.Check(CheckVLAN); !c.OK && !strings.Contains(c.Impact, "NAME.VID") {
		t.Errorf("8021q impact %q does not name NAME.VID", c.Impact)
	}
	if c, _ := r.Check(CheckDummy); !c.OK && r.OK(CheckBridge) && !strings.Contains(c.Impact, "port-less bridge") {
		t.Errorf("dummy impact %q does not name the bridge fallback", c.Impact)
	}
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/bpf", &st) == nil && st.Type != unix.BPF_FS_MAGIC {
		if c, _ := r.Check(CheckBPFFS); c.OK || !strings.HasPrefix(c.Impact, "bpffs not mounted at /sys/fs/bpf:") {
			t.Errorf("bpffs check = %+v; want not mounted at /sys/fs/bpf", c)
		}
	}
}

// TestBPFFSNotMounted reports a path under /sys/fs/bpf when no bpffs is
// mounted there (the case on the development machines); it mounts nothing.
func TestBPFFSNotMounted(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err != nil {
		t.Skipf("skipping: /sys/fs/bpf: %v", err)
	}
	if st.Type == unix.BPF_FS_MAGIC {
		t.Skip("skipping: a bpffs is mounted at /sys/fs/bpf on this machine")
	}
	c := checkBPFFS("/sys/fs/bpf/mvlan")
	if c.OK || c.Skipped {
		t.Fatalf("checkBPFFS = %+v; want missing", c)
	}
	want := "bpffs not mounted at /sys/fs/bpf: the agent mounts it (or: mount -t bpf bpf /sys/fs/bpf); " +
		"without it counters do not survive an agent restart"
	if c.Impact != want {
		t.Errorf("impact = %q, want %q", c.Impact, want)
	}
	if !strings.Contains(c.Detail, "/sys/fs/bpf") {
		t.Errorf("detail %q does not name /sys/fs/bpf", c.Detail)
	}
}

// TestRunLeavesRootNetnsAlone compares the root namespace's links before
// and after Run (read-only).
func TestRunLeavesRootNetnsAlone(t *testing.T) {
	requireRoot(t)
	before := ipLinks(t)
	if _, err := Run(context.Background(), DefaultBPFFS); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if after := ipLinks(t); after != before {
		t.Errorf("root netns links changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func ipLinks(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatalf("ip -o link: %v", err)
	}
	return string(out)
}

// kernelAtLeast reports whether release (uname -r, e.g. "6.1.0-28-amd64")
// is at least major.minor.
func kernelAtLeast(t *testing.T, release string, major, minor int) bool {
	t.Helper()
	var maj, min int
	if _, err := fmt.Sscanf(release, "%d.%d", &maj, &min); err != nil {
		t.Fatalf("kernel release %q: %v", release, err)
	}
	return maj > major || maj == major && min >= minor
}

func TestKernelAtLeast(t *testing.T) {
	for rel, want := range map[string]bool{"6.6.0": true, "6.18.44-fc": true, "6.1.0-28-amd64": false,
		"5.15.0": false, "7.0": true, "6.5.9": false} {
		if got := kernelAtLeast(t, rel, 6, 6); got != want {
			t.Errorf("kernelAtLeast(%q, 6.6) = %v, want %v", rel, got, want)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestCheckBPFFSNoAccess: a directory doctor may not look into (as
// /sys/fs/bpf, 0700 under systemd, is for a non-root user) makes the
// bpffs check "needs root", not "bpffs not mounted". The test binary runs
// itself without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (setpriv) on a
// directory of another user's, mode 0700.
func TestCheckBPFFSNoAccess(t *testing.T) {
	if p := os.Getenv("MVLAN_TEST_BPFFS_NOACCESS"); p != "" { // the child
		_ = json.NewEncoder(os.Stdout).Encode(checkBPFFS(p))
		return
	}
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "closed")
	if err := errors.Join(os.Mkdir(dir, 0o700), os.Chown(dir, 65534, 65534)); err != nil {
		t.Fatal(err)
	}
	var c Check
	inChildWithout(t, "-dac_override,-dac_read_search", "MVLAN_TEST_BPFFS_NOACCESS="+filepath.Join(dir, "mvlan"), &c)
	if c.OK || !c.Skipped || !strings.Contains(c.Detail, needsRoot) || !strings.Contains(c.Detail, "permission denied") {
		t.Errorf("checkBPFFS of a directory it cannot read = %+v; want skipped, needs root", c)
	}
}

// TestRunWithoutSysAdmin: as root without CAP_SYS_ADMIN (a container's
// root), the probes cannot make their namespaces: their checks say so
// (not run, and why), and the rest of the report is there. The test
// binary runs itself under setpriv.
func TestRunWithoutSysAdmin(t *testing.T) {
	if os.Getenv("MVLAN_TEST_NO_SYS_ADMIN") != "" { // the child
		r, err := run(context.Background(), filepath.Join(t.TempDir(), "pins"), true)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	requireRoot(t)
	var r Report
	inChildWithout(t, "-sys_admin", "MVLAN_TEST_NO_SYS_ADMIN=1", &r)
	for _, name := range privilegedNames {
		if c, ok := r.Check(name); !ok || c.OK || !c.Skipped || !strings.Contains(c.Detail, "not probed: ") || !strings.Contains(c.Detail, "not permitted") {
			t.Errorf("check %s = %+v (found %v); want not probed, not permitted", name, c, ok)
		}
	}
	for _, name := range []string{CheckBTF, CheckBPFFS} {
		if _, ok := r.Check(name); !ok {
			t.Errorf("check %s missing from the report", name)
		}
	}
}

// inChildWithout runs the calling test again in a child process of the
// test binary, as root without the capabilities caps (setpriv's
// --bounding-set syntax; inherited and ambient ones dropped too) and
// with env set, and decodes the JSON value the child prints into v.
func inChildWithout(t *testing.T, caps, env string, v any) {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipping: needs setpriv (util-linux)")
	}
	cmd := exec.Command("setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set", caps, "--",
		os.Args[0], "-test.run=^"+t.Name()+"$")
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("setpriv: %v\n%s", err, out)
	}
	if err := json.NewDecoder(bytes.NewReader(out)).Decode(v); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
