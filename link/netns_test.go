package link_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

func TestCreateNetns(t *testing.T) {
	nstest.RequireRoot(t)
	var b [4]byte
	rand.Read(b[:])
	name := "mvt-" + hex.EncodeToString(b[:]) + "-n"
	t.Cleanup(func() { link.DeleteNetns(name) })

	path, err := link.CreateNetns(name, "")
	if err != nil || path != link.NetnsPath(name) || path != "/run/netns/"+name {
		t.Fatalf("CreateNetns = %q, %v", path, err)
	}
	// iproute2 sees it and can run commands in it; it is a fresh namespace.
	if out, err := exec.Command("ip", "netns", "exec", name, "ip", "-o", "link").CombinedOutput(); err != nil {
		t.Fatalf("ip netns exec %s: %v: %s", name, err, out)
	} else if got := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; got != 1 || !strings.Contains(string(out), "lo:") {
		t.Errorf("new namespace has links other than lo:\n%s", out)
	}
	if out, _ := exec.Command("ip", "netns", "list").CombinedOutput(); !strings.Contains(string(out), name) {
		t.Errorf("ip netns list does not show %s:\n%s", name, out)
	}
	// It is usable by the rest of the package.
	if links, err := link.EndpointLinks(path); err != nil || len(links) != 1 {
		t.Errorf("EndpointLinks(%s) = %v, %v; want only lo", path, links, err)
	}
	if _, err := link.CreateNetns(name, ""); !errors.Is(err, link.ErrExists) {
		t.Errorf("second CreateNetns error = %v; want ErrExists", err)
	}
	if err := link.DeleteNetns(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists after DeleteNetns (%v)", path, err)
	}
	if err := link.DeleteNetns(name); err != nil {
		t.Errorf("DeleteNetns of a missing namespace = %v; want nil", err)
	}
}

func TestCreateNetnsBadNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "../etc", strings.Repeat("x", 65)} {
		if _, err := link.CreateNetns(name, ""); err == nil || errors.Is(err, link.ErrExists) {
			t.Errorf("CreateNetns(%q) error = %v; want a validation error", name, err)
		}
		if err := link.DeleteNetns(name); err == nil {
			t.Errorf("DeleteNetns(%q) succeeded; want a validation error", name)
		}
	}
}
