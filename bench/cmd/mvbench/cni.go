package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// The anchor of the control section: the reference CNI plugins at pinned
// versions, built from the Go module proxy with `go install pkg@version`
// (no change to mvlan's go.mod) into a cache directory that is not
// committed.
const (
	cniPluginsVersion = "v1.10.0" // github.com/containernetworking/plugins
	cniToolVersion    = "v1.3.1"  // github.com/containernetworking/cni (cnitool)
)

// cniPackages are built with one `go install` per module (it takes the
// packages of one module at one version per call).
var cniPackages = [][]string{
	{"github.com/containernetworking/plugins/plugins/main/macvlan@" + cniPluginsVersion,
		"github.com/containernetworking/plugins/plugins/ipam/host-local@" + cniPluginsVersion},
	{"github.com/containernetworking/cni/cnitool@" + cniToolVersion},
}

// cni runs cnitool against one macvlan + host-local network whose master
// is a veth in the sandbox's host namespace, as a CNI runtime would.
type cni struct {
	bin     string // directory with cnitool, macvlan, host-local
	confDir string
	net     string // network name; cnitool's result cache files start with it
	host    string // namespace cnitool runs in (where the master is)
	path    string // CNI_PATH when not bin (mvlan-cni's directory first)
	env     []string
}

// cniCacheDir is where the pinned builds go (bench/cache/ under the
// directory make runs in, ignored by git), so a second run builds nothing.
var cniCacheDir = filepath.Join("bench", "cache", "cni-plugins-"+cniPluginsVersion+"-cnitool-"+cniToolVersion)

// buildCNI builds the three binaries unless the cache has them.
func buildCNI(ctx context.Context, dir string) error {
	have := true
	for _, b := range []string{"cnitool", "macvlan", "host-local"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			have = false
		}
	}
	if have {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, pkgs := range cniPackages {
		progress("control: building the CNI anchor into %s: %s", dir, strings.Join(pkgs, " "))
		cmd := exec.CommandContext(ctx, "go", append([]string{"install"}, pkgs...)...)
		cmd.Dir = os.TempDir() // outside mvlan's module: pkg@version needs no go.mod
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build the CNI plugins (go install, from the Go module proxy): %v: %s", err, out)
		}
	}
	return nil
}

// newCNI builds the plugins if needed and writes a network config: a
// macvlan (bridge mode) on master with host-local addresses from subnet,
// the gateway its first address and a default route through it (what
// `mvlan run` gives an endpoint).
func (e *env) newCNI(ctx context.Context, host, master, subnet string) (*cni, error) {
	return e.newCNITagged(ctx, host, master, subnet, "cni")
}

// newCNITagged is newCNI under network name BASE-TAG, its config in its
// own directory: several such networks can be used in one run.
func (e *env) newCNITagged(ctx context.Context, host, master, subnet, tag string) (*cni, error) {
	bin, err := filepath.Abs(cniCacheDir)
	if err != nil {
		return nil, err
	}
	if err := buildCNI(ctx, bin); err != nil {
		return nil, err
	}
	c := &cni{bin: bin, confDir: filepath.Join(e.tmp, tag+"-conf"), net: e.base + "-" + tag, host: host}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       c.net,
		"plugins": []any{map[string]any{
			"type":   "macvlan",
			"master": master,
			"mode":   "bridge",
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": subnet}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": filepath.Join(e.tmp, tag+"-ipam"),
			},
		}},
	}
	if err := c.writeConf(conf); err != nil {
		return nil, err
	}
	e.forgetResults(c.net)
	return c, nil
}

// run times `cnitool VERB NET NETNS`, started from a thread inside the
// sandbox's host namespace (no nsenter process in the measurement: the
// child inherits the thread's namespace).
func (c *cni) run(ctx context.Context, verb, netns string) (time.Duration, error) {
	var d time.Duration
	err := nstest.In(c.host, func() error {
		cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "cnitool"), verb, c.net, netns)
		cmd.Env = append(os.Environ(), "CNI_PATH="+cmp.Or(c.path, c.bin), "NETCONFPATH="+c.confDir)
		cmd.Env = append(cmd.Env, c.env...)
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		d = time.Since(t0)
		if err != nil {
			return fmt.Errorf("cnitool %s %s %s: %v: %s", verb, c.net, netns, err, strings.TrimSpace(string(out)))
		}
		return nil
	})
	return d, err
}

// forgetResults: cnitool keeps each ADD's result under /var/lib/cni/results
// until the DEL; anything an interrupted run left behind goes.
func (e *env) forgetResults(net string) {
	e.onCleanup("remove cnitool results of "+net, func() error {
		m, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", net+"-*"))
		for _, f := range m {
			_ = os.Remove(f)
		}
		return nil
	})
}

func (c *cni) writeConf(conf map[string]any) error {
	b, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.confDir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.confDir, c.net+".conflist"), b, 0o600)
}

// newMvlanCNI is cnitool with mvlan-cni (bin/mvlan-cni next to the mvlan
// under test, as CNI type "mvlan") on the agent's network mvnet, the
// plugin finding the agent through MVLAN_SOCKET.
func (e *env) newMvlanCNI(ref *cni, socket, mvnet string) (*cni, error) {
	plugin, err := filepath.Abs(filepath.Join(filepath.Dir(e.cfg.mvlan), "mvlan-cni"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(plugin); err != nil {
		return nil, fmt.Errorf("mvlan-cni (make build makes it next to mvlan): %w", err)
	}
	dir := filepath.Join(e.tmp, "cni-mvlan")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Symlink(plugin, filepath.Join(dir, "mvlan")); err != nil {
		return nil, err
	}
	c := &cni{bin: ref.bin, confDir: filepath.Join(e.tmp, "cni-conf-mvlan"), net: e.base + "-mvcni", host: ref.host,
		path: dir + string(os.PathListSeparator) + ref.bin, env: []string{"MVLAN_SOCKET=" + socket}}
	e.forgetResults(c.net)
	return c, c.writeConf(map[string]any{"cniVersion": "1.1.0", "name": c.net,
		"plugins": []any{map[string]any{"type": "mvlan", "network": mvnet}}})
}

// nopPlugin is a CNI plugin that does nothing: it reads its configuration
// and prints an empty result (ADD) or nothing (DEL).
const nopPlugin = `#!/bin/sh
cat >/dev/null
if [ "$CNI_COMMAND" = ADD ]; then echo '{"cniVersion":"1.1.0"}'; fi
`

// newNopCNI is cnitool with nopPlugin (CNI type nop): the time cnitool
// and a plugin process take with no work at all.
func (e *env) newNopCNI(ref *cni) (*cni, error) {
	dir := filepath.Join(e.tmp, "cni-nop")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "nop"), []byte(nopPlugin), 0o755); err != nil {
		return nil, err
	}
	c := &cni{bin: ref.bin, confDir: filepath.Join(e.tmp, "cni-conf-nop"), net: e.base + "-nop", host: ref.host,
		path: dir + string(os.PathListSeparator) + ref.bin}
	e.forgetResults(c.net)
	return c, c.writeConf(map[string]any{"cniVersion": "1.1.0", "name": c.net, "plugins": []any{map[string]any{"type": "nop"}}})
}

// newGoNopCNI is cnitool with cninop (CNI type cninop), built here: the
// time cnitool and a Go plugin process on the CNI project's skel take
// with no work at all, the floor under mvlan-cni.
func (e *env) newGoNopCNI(ctx context.Context, ref *cni) (*cni, error) {
	dir := filepath.Join(e.tmp, "cni-gonop")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "cninop"), "./bench/cmd/cninop")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build cninop: %w: %s", err, out)
	}
	c := &cni{bin: ref.bin, confDir: filepath.Join(e.tmp, "cni-conf-gonop"), net: e.base + "-gonop", host: ref.host,
		path: dir + string(os.PathListSeparator) + ref.bin}
	e.forgetResults(c.net)
	return c, c.writeConf(map[string]any{"cniVersion": "1.1.0", "name": c.net, "plugins": []any{map[string]any{"type": "cninop"}}})
}
