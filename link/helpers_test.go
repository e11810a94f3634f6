package link_test

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// openHost opens the sandbox's host namespace, closed when the test ends.
func openHost(t *testing.T, sb *nstest.Sandbox) *link.Host {
	t.Helper()
	h, err := link.OpenHost(sb.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close host: %v", err)
		}
	})
	return h
}

// linkNames lists the sorted link names of a namespace ("" for h's).
func linkNames(t *testing.T, h *link.Host, nsPath string) []string {
	t.Helper()
	var infos []link.Info
	var err error
	if nsPath == "" {
		infos, err = h.Links()
	} else {
		infos, err = link.EndpointLinks(nsPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range infos {
		names = append(names, in.Name)
	}
	slices.Sort(names)
	return names
}

// sameLinks fails the test unless the namespace has exactly the links want.
func sameLinks(t *testing.T, h *link.Host, nsPath string, want []string) {
	t.Helper()
	got := linkNames(t, h, nsPath)
	if !slices.Equal(got, want) {
		t.Errorf("links in %s: got %v, want %v", cmpOr(nsPath, "host"), got, want)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// sysctl reads /proc/sys/net/... inside namespace ns.
func sysctl(t *testing.T, sb *nstest.Sandbox, ns, path string) string {
	t.Helper()
	return strings.TrimSpace(sb.Run(t, ns, "cat", "/proc/sys/net/"+path))
}

func mustContain(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, out)
		}
	}
}

// runUnshared runs a shell command in a network namespace of its own.
func runUnshared(cmd string) error {
	return exec.Command("unshare", "--net", "sh", "-c", cmd).Run()
}

func netip4(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
