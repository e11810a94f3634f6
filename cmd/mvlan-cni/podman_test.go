package main

// Podman as the runtime: Debian's podman (4.3) with network_backend "cni"
// runs the built plugin from examples/cni/mvnet.conflist. It runs in the sandbox's host
// namespace (nsenter) with everything of its own in a temporary directory
// (containers.conf, storage.conf with the vfs driver, run root, CNI
// configuration); its image is imported from busybox-static (no pull).

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

const podmanImage = "localhost/mvt-busybox"

type podman struct {
	t   *testing.T
	sb  *nstest.Sandbox
	bin string
	dir string
	env []string
}

// newPodman writes podman's configuration (its CNI network "mvnet" is
// mvlan's pub_net through the agent of e) and imports the image; podman's
// containers and files are removed when the test ends.
func newPodman(t *testing.T, e *env) *podman {
	t.Helper()
	bin, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("the Podman test needs podman: apt-get install podman")
	}
	busybox, err := nstest.StaticBusybox()
	if err != nil {
		t.Skipf("the Podman test makes its image from a static busybox: %v", err)
	}
	dir, err := os.MkdirTemp("", "mvt-pm")
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{t: t, sb: e.sb, bin: bin, dir: dir,
		env: []string{"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf"), "CONTAINERS_STORAGE_CONF=" + filepath.Join(dir, "storage.conf")}}
	t.Cleanup(p.destroy)
	p.write("containers.conf", fmt.Sprintf(`[containers]
# the machine's hard limits may be lower than podman's defaults
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_backend = "cni"
cni_plugin_dirs = [%q]
network_config_dir = "%[2]s/net.d"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "%[2]s/events.log"
tmp_dir = "%[2]s/tmp"
static_dir = "%[2]s/static"
volume_path = "%[2]s/volumes"
`, cniDir, dir))
	p.write("storage.conf", fmt.Sprintf("[storage]\ndriver = \"vfs\"\nrunroot = \"%[1]s/run\"\ngraphroot = \"%[1]s/storage\"\n", dir))
	// The README's example, as is: the plugin finds the agent through
	// MVLAN_SOCKET, which podman passes on.
	conflist, err := os.ReadFile("../../examples/cni/mvnet.conflist")
	if err != nil {
		t.Fatal(err)
	}
	p.write("net.d/mvnet.conflist", string(conflist))
	p.env = append(p.env, "MVLAN_SOCKET="+e.a.Socket)
	rootfs, err := nstest.BusyboxTar(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := p.runIn(bytes.NewReader(rootfs), "import", "-", podmanImage); err != nil {
		t.Fatalf("podman import: %v\n%s", err, out)
	}
	return p
}

func (p *podman) write(name, content string) {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// run runs podman in the sandbox's host namespace: combined output, error.
func (p *podman) run(args ...string) (string, error) { return p.runIn(nil, args...) }

func (p *podman) runIn(stdin *bytes.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + p.sb.Path, "--", p.bin}, args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Dir = p.dir
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *podman) ok(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// destroy removes podman's containers (a CNI DEL each), then whatever of
// its processes and mounts are left, then its directory.
func (p *podman) destroy() {
	if out, err := p.run("rm", "-a", "-f", "-t", "0"); err != nil {
		p.t.Errorf("cleanup: podman rm -a -f: %v\n%s", err, out)
	}
	if err := nstest.Reap(p.dir); err != nil {
		p.t.Errorf("cleanup: %v", err)
	}
	if err := os.RemoveAll(p.dir); err != nil {
		p.t.Errorf("cleanup: %v", err)
	}
}

// TestPodman: `podman run --network mvnet` gets its address (the one
// asked for with --ip, and the MAC of --mac-address) from mvlan, shows in
// `mvlan ps` under its name, is pinged by a second container, and the
// echoes move the network's counters; podman rm releases everything.
func TestPodman(t *testing.T) {
	const pings, slack = 5, 6 // slack: ARP, and the announcements of the transient container's link
	e := newEnv(t)
	e.pubNet()
	p := newPodman(t, e)
	name := e.sb.Name + "-p1"
	p.ok("run", "-d", "--name", name, "--network", "mvnet", "--ip", "172.16.86.20", "--mac-address", "02:42:ac:10:56:14",
		podmanImage, "sleep", "600")
	ep := e.endpoint(name)
	if len(ep.Addrs) != 1 || ep.Addrs[0].String() != "172.16.86.20/24" || ep.MAC != "02:42:ac:10:56:14" || ep.CNI == nil || ep.CNI.Network != "mvnet" {
		t.Errorf("the endpoint of %s: %+v; want 172.16.86.20/24, MAC 02:42:ac:10:56:14, CNI network mvnet", name, ep)
	}
	if ps := e.a.CLI("ps"); !strings.Contains(ps, name) || !strings.Contains(ps, "172.16.86.20/24") {
		t.Errorf("mvlan ps:\n%s\nwant %s with 172.16.86.20/24", ps, name)
	}
	if out := p.ok("exec", name, "ip", "addr", "show", "eth0"); !strings.Contains(out, "inet 172.16.86.20/24") || !strings.Contains(out, "02:42:ac:10:56:14") {
		t.Errorf("inside %s:\n%s\nwant 172.16.86.20/24 with 02:42:ac:10:56:14", name, out)
	}
	before := e.stats()
	out := p.ok("run", "--rm", "--network", "mvnet", podmanImage, "ping", "-c", fmt.Sprint(pings), "-W", "1", "172.16.86.20")
	if !strings.Contains(out, fmt.Sprintf("%d packets received", pings)) {
		t.Errorf("ping from a second container:\n%s", out)
	}
	after := e.stats()
	for _, c := range []struct {
		what     string
		from, to uint64
	}{{"rx", before.Rx.Packets, after.Rx.Packets}, {"tx", before.Tx.Packets, after.Tx.Packets}} {
		t.Logf("pub_net %s packets: +%d", c.what, c.to-c.from)
		if d := c.to - c.from; d < 2*pings || d > 2*pings+slack {
			t.Errorf("pub_net %s packets moved by %d for %d echoes; want %d..%d", c.what, d, pings, 2*pings, 2*pings+slack)
		}
	}
	if eps := e.endpoints(); len(eps) != 1 {
		t.Errorf("endpoints after podman run --rm: %+v; want only %s", eps, name)
	}
	p.ok("rm", "-f", "-t", "0", name)
	if eps := e.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after podman rm: %+v; want none", eps)
	}
	if _, err := os.Stat(ep.Netns); err == nil {
		t.Errorf("%s (the container's namespace) is still there after podman rm", ep.Netns)
	}
	// DEL answers once the container is unreachable; the link's deletion
	// (and then the record's) finishes in the background: "removing"
	// until then, gone within seconds.
	cl := api.NewClient(e.a.Socket)
	defer cl.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n, err := cl.Network(context.Background(), "pub_net")
		if err == nil && len(n.Endpoints) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("pub_net 10 s after podman rm: %v, endpoints %+v; want none", err, n.Endpoints)
			break
		}
	}
	e.noDrift()
}
