package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestThinClient: the CLI links only the API client and its printing. A
// CLI process that initialises netlink, BPF, Prometheus, bbolt or net/http
// pays for it on every call (issue 12: mvlan --version within 1.5× a
// hello-world Go binary).
func TestThinClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-tags", "urfave_cli_no_docs", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	ours := map[string]bool{ // the module's packages the CLI may link
		"github.com/mvlan/mvlan/api": true, "github.com/mvlan/mvlan/version": true,
		"github.com/mvlan/mvlan/nsthread": true, "github.com/mvlan/mvlan/internal/nsfile": true,
		"github.com/mvlan/mvlan/internal/format": true,
		"github.com/mvlan/mvlan/cmd/mvlan":       true,
	}
	heavy := []string{"github.com/cilium/", "github.com/vishvananda/netlink", "github.com/prometheus/",
		"go.etcd.io/bbolt", "github.com/florianl/go-tc", "github.com/mdlayher/", "google.golang.org/protobuf",
		"github.com/cpuguy83/go-md2man", "net/http"}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 10 {
		t.Fatalf("go list -deps printed %d packages: %q", len(pkgs), out)
	}
	for _, p := range pkgs {
		if strings.HasPrefix(p, "github.com/mvlan/mvlan/") && !ours[p] {
			t.Errorf("the CLI links %s; only the API client and printing belong in it (daemon code goes in mvlan-agent)", p)
		}
		for _, h := range heavy {
			if p == h || strings.HasPrefix(p, strings.TrimSuffix(h, "/")+"/") {
				t.Errorf("the CLI links %s", p)
			}
		}
	}
}

// TestAgentNotFound: without mvlan-agent next to it or in PATH, `mvlan
// agent` says what is missing and how to get it.
func TestAgentNotFound(t *testing.T) {
	if mvlanBin == "" {
		t.Skip("needs root (TestMain builds the binaries then)")
	}
	dir := t.TempDir()
	lone := filepath.Join(dir, "mvlan")
	data, err := os.ReadFile(mvlanBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(lone, "agent", "--state-dir", dir)
	cmd.Env = []string{"PATH=" + dir}
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 || !strings.Contains(string(out), "mvlan-agent") ||
		!strings.Contains(string(out), "make build") {
		t.Errorf("mvlan agent without mvlan-agent: exit %d, %q; want exit 1 naming mvlan-agent and make build", code, out)
	}
}
