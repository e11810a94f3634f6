package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// TestExamples: the configurations in examples/cni (README's) are valid
// lists whose mvlan plugin configuration the plugin accepts as written,
// at a cniVersion that runtimes of a libcni older than 1.2 (containerd
// 1.7's 1.1.2, whose results go to 1.0.0) take; one with cniVersions
// gets 1.1.0 (GC, STATUS) from a newer libcni.
func TestExamples(t *testing.T) {
	for _, c := range []struct {
		file, network string
		inline        bool
		picked        string // the version libcni 1.3 selects
	}{
		{"mvnet.conflist", "pub_net", false, "1.0.0"},
		{"containerd.conflist", "lan", true, "1.1.0"},
		{"multus-nad.yaml", "vlan40", true, "1.0.0"},
	} {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile("../../examples/cni/" + c.file)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(c.file, ".yaml") {
				data = []byte(nadConfig(t, string(data)))
			}
			l, err := libcni.NetworkConfFromBytes(data)
			if err != nil {
				t.Fatalf("libcni: %v", err)
			}
			var top struct {
				CNIVersion string `json:"cniVersion"`
			}
			if err := json.Unmarshal(data, &top); err != nil || top.CNIVersion != "1.0.0" {
				t.Errorf("cniVersion %q (%v); want 1.0.0, the newest libcni < 1.2 takes", top.CNIVersion, err)
			}
			if l.CNIVersion != c.picked {
				t.Errorf("libcni picked version %s; want %s", l.CNIVersion, c.picked)
			}
			if len(l.Plugins) != 1 || l.Plugins[0].Network.Type != "mvlan" {
				t.Fatalf("plugins %+v; want one of type mvlan", l.Plugins)
			}
			conf, err := parseConf(l.Plugins[0].Bytes)
			if err != nil {
				t.Fatalf("mvlan-cni refuses it: %v", err)
			}
			if conf.Network != c.network || conf.Inline() != c.inline {
				t.Errorf("network %q inline %t; want %q inline %t", conf.Network, conf.Inline(), c.network, c.inline)
			}
		})
	}
}

// nadConfig returns spec.config of a NetworkAttachmentDefinition (the
// block after "config: |", unindented).
func nadConfig(t *testing.T, yaml string) string {
	t.Helper()
	_, block, ok := strings.Cut(yaml, "config: |\n")
	if !ok {
		t.Fatal("no spec.config block")
	}
	var b strings.Builder
	for _, line := range strings.Split(block, "\n") {
		b.WriteString(strings.TrimPrefix(line, "    ") + "\n")
	}
	return b.String()
}

// TestCNIToolQuickStart: README's quick start with cnitool (built at the
// CNI version go.mod pins) and examples/cni/mvnet.conflist as is: add
// prints the result, mvlan ps shows the endpoint, check passes, del
// removes it.
func TestCNIToolQuickStart(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	conf := t.TempDir()
	data, err := os.ReadFile("../../examples/cni/mvnet.conflist")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "mvnet.conflist"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ns := e.sb.Netns(t, "q")
	cnitool := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(filepath.Dir(cniDir), "cnitool"), args...)
		cmd.Env = append(os.Environ(), "CNI_PATH="+cniDir, "NETCONFPATH="+conf, "MVLAN_SOCKET="+e.a.Socket)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cnitool %s: %v\n%s\nagent log:\n%s", strings.Join(args, " "), err, out, e.a.Log())
		}
		return string(out)
	}
	var r current.Result
	if err := json.Unmarshal([]byte(cnitool("add", "mvnet", ns)), &r); err != nil || len(r.IPs) != 1 || !strings.HasPrefix(r.IPs[0].Address.String(), "172.16.86.") {
		t.Fatalf("cnitool add printed %+v (%v); want an address of pub_net", r, err)
	}
	if ps := e.a.CLI("ps"); !strings.Contains(ps, r.IPs[0].Address.String()) || !strings.Contains(ps, ns) {
		t.Errorf("mvlan ps after cnitool add:\n%s", ps)
	}
	cnitool("check", "mvnet", ns)
	cnitool("del", "mvnet", ns)
	if eps := e.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after cnitool del: %+v", eps)
	}
}

// TestCNIVersionInfo: VERSION lists exactly the spec versions the plugin
// speaks, and a configuration of an older one is refused with code 1.
func TestCNIVersionInfo(t *testing.T) {
	binaries(t)
	cfg := libcni.NewCNIConfigWithCacheDir([]string{cniDir}, t.TempDir(), nil)
	info, err := cfg.GetVersionInfo(context.Background(), "mvlan")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(info.SupportedVersions(), " "); got != "0.4.0 1.0.0 1.1.0" {
		t.Errorf("VERSION: %s; want 0.4.0 1.0.0 1.1.0", got)
	}
	l, err := libcni.NetworkConfFromBytes([]byte(`{"cniVersion":"0.3.1","name":"old","plugins":[{"type":"mvlan"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cfg.AddNetworkList(context.Background(), l, &libcni.RuntimeConf{ContainerID: "c", NetNS: "/proc/self/ns/net", IfName: "eth0"})
	if cniCode(err) != types.ErrIncompatibleCNIVersion {
		t.Errorf("ADD of a 0.3.1 configuration: %v; want code %d", err, types.ErrIncompatibleCNIVersion)
	}
}
