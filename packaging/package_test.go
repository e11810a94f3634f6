package packaging

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPackage: make package builds a .deb whose control data and files
// are as README says; dpkg installs it into a throwaway root (maintainer
// scripts included, chrootless) with the right modes, the group mvlan,
// the unit enabled and the state directory 0700; systemd-analyze verify
// is silent on the installed unit; the package's md5sums has the files'
// sums (not the conffile's) and dpkg --verify finds a changed one; a
// changelog is there; the bash, zsh and fish completions
// load and complete from the installed mvlan; an upgrade keeps the unit
// as the operator set it (reinstall); remove keeps /etc/default/mvlan,
// purge removes it and the state. About 20 s (a build).
func TestPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (dpkg --root, a mount namespace for systemd-analyze)")
	}
	for _, tool := range []string{"dpkg-deb", "dpkg", "systemd-analyze", "unshare", "bash", "zsh", "fish"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (make deps)", tool)
		}
	}
	deb := build(t)
	info := run(t, "dpkg-deb", "--info", deb)
	for _, want := range []string{"Package: mvlan", "Version: 1.2.3", "Architecture: ", "postinst", "prerm", "postrm", "conffiles"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb --info lacks %q:\n%s", want, info)
		}
	}
	contents := run(t, "dpkg-deb", "--contents", deb)
	root := t.TempDir()
	prepareRoot(t, root)
	run(t, "dpkg", "--root="+root, "--force-script-chrootless", "-i", deb)
	for path, mode := range map[string]fs.FileMode{
		"usr/bin/mvlan": 0o755, "usr/bin/mvlan-agent": 0o755, "usr/lib/cni/mvlan": 0o755,
		"lib/systemd/system/mvlan.service": 0o644, "etc/default/mvlan": 0o644,
		"usr/share/bash-completion/completions/mvlan":              0o644,
		"usr/share/zsh/vendor-completions/_mvlan":                  0o644,
		"usr/share/fish/vendor_completions.d/mvlan.fish":           0o644,
		"usr/share/man/man8/mvlan.8.gz":                            0o644,
		"usr/share/doc/mvlan/changelog.gz":                         0o644,
		"var/lib/mvlan":                                            fs.ModeDir | 0o700,
		"etc/systemd/system/multi-user.target.wants/mvlan.service": fs.ModeSymlink | 0o777,
	} {
		st, err := os.Lstat(filepath.Join(root, path))
		switch {
		case err != nil:
			t.Errorf("installed root lacks %s: %v\ndpkg-deb --contents:\n%s", path, err, contents)
		case st.Mode()&(fs.ModeType|fs.ModePerm) != mode:
			t.Errorf("%s has mode %v, want %v", path, st.Mode(), mode)
		}
	}
	verify(t, root)
	sums := run(t, "dpkg-deb", "--info", deb, "md5sums")
	for _, f := range []string{"usr/bin/mvlan-agent", "usr/share/doc/mvlan/changelog.gz"} {
		if line := md5Line(t, root, f); !strings.Contains(sums, line) {
			t.Errorf("md5sums lacks %q:\n%s", line, sums)
		}
	}
	if strings.Contains(sums, "etc/default/mvlan") {
		t.Errorf("md5sums lists the conffile etc/default/mvlan (dpkg keeps its sum):\n%s", sums)
	}
	if group, _ := os.ReadFile(filepath.Join(root, "etc/group")); !bytes.Contains(group, []byte("\nmvlan:x:")) {
		t.Errorf("postinst made no group mvlan:\n%s", group)
	}
	verifyUnit(t, root)
	bashCompletion(t, root)
	zshCompletion(t, root)
	fishCompletion(t, root)
	reinstall(t, root, deb)
	run(t, "dpkg", "--root="+root, "--force-script-chrootless", "-r", "mvlan")
	for path, want := range map[string]bool{"usr/bin/mvlan": false, "etc/default/mvlan": true,
		"etc/systemd/system/multi-user.target.wants/mvlan.service": false, "var/lib/mvlan": true} {
		if _, err := os.Lstat(filepath.Join(root, path)); (err == nil) != want {
			t.Errorf("after dpkg -r, %s present: %v, want %v", path, err == nil, want)
		}
	}
	run(t, "dpkg", "--root="+root, "--force-script-chrootless", "-P", "mvlan")
	for _, path := range []string{"etc/default/mvlan", "var/lib/mvlan"} {
		if _, err := os.Lstat(filepath.Join(root, path)); err == nil {
			t.Errorf("after dpkg -P, %s is still there", path)
		}
	}
}

// reinstall: an upgrade (the package installed again) leaves the unit
// disabled if the operator disabled it; the package back after a removal
// (which disabled it) enables it again.
func reinstall(t *testing.T, root, deb string) {
	t.Helper()
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/mvlan.service")
	run(t, "systemctl", "--root="+root, "disable", "mvlan.service")
	run(t, "dpkg", "--root="+root, "--force-script-chrootless", "-i", deb)
	if _, err := os.Lstat(wants); err == nil {
		t.Error("an upgrade enabled mvlan.service again after the operator disabled it")
	}
	run(t, "systemctl", "--root="+root, "enable", "mvlan.service")
	run(t, "dpkg", "--root="+root, "--force-script-chrootless", "-r", "mvlan")
	if _, err := os.Lstat(wants); err == nil {
		t.Error("dpkg -r left mvlan.service enabled")
	}
	run(t, "dpkg", "--root="+root, "--force-script-chrootless", "-i", deb)
	if _, err := os.Lstat(wants); err != nil {
		t.Errorf("mvlan.service not enabled again when the package came back after a removal: %v", err)
	}
}

// build runs make package (version 1.2.3) and returns the .deb.
func build(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("make", "-C", "..", "package", "DEBVERSION=1.2.3")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob("../bin/mvlan_1.2.3_*.deb")
	if len(debs) != 1 {
		t.Fatalf("make package made %v, want one bin/mvlan_1.2.3_ARCH.deb", debs)
	}
	t.Cleanup(func() { os.Remove(debs[0]) })
	return debs[0]
}

// md5Line is the md5sums line of the installed file f (relative to root).
func md5Line(t *testing.T, root, f string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, f))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x  %s\n", md5.Sum(b), f)
}

// verify: dpkg --verify finds the installed files as packaged (md5sums),
// and a file changed since.
func verify(t *testing.T, root string) {
	t.Helper()
	if out, err := exec.Command("dpkg", "--root="+root, "--verify", "mvlan").CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("dpkg --verify mvlan after install: %v\n%s", err, out)
	}
	const doc = "/usr/share/doc/mvlan/README.md"
	f, err := os.OpenFile(filepath.Join(root, doc), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString("changed\n")
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("dpkg", "--root="+root, "--verify", "mvlan").CombinedOutput()
	if !strings.Contains(string(out), "??5?????? ") || !strings.Contains(string(out), doc) {
		t.Errorf("dpkg --verify mvlan with %s changed: %q; want its checksum reported", doc, out)
	}
}

// prepareRoot makes the least a root needs for dpkg and groupadd.
func prepareRoot(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{"var/lib/dpkg/status": "", "etc/group": "root:x:0:\n",
		"etc/gshadow": "root:*::\n", "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// verifyUnit runs systemd-analyze verify on the installed unit, in a mount
// namespace whose /usr/bin also shows the root's (it checks ExecStart).
func verifyUnit(t *testing.T, root string) {
	t.Helper()
	script := `mount --make-rprivate / && mount -t overlay overlay -o lowerdir="$1/usr/bin":/usr/bin /usr/bin &&
		exec systemd-analyze verify --man=no "$1/lib/systemd/system/mvlan.service"`
	out, err := exec.Command("unshare", "-m", "sh", "-c", script, "sh", root).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify mvlan.service: %v\n%s", err, out)
	}
}

// bashCompletion loads the installed completion in bash and completes
// "mvlan netw" and "mvlan network " with the installed mvlan.
func bashCompletion(t *testing.T, root string) {
	t.Helper()
	script := `set -u; source "$1/usr/share/bash-completion/completions/mvlan"; complete -p mvlan
		COMP_WORDS=(mvlan netw); COMP_CWORD=1; _mvlan; echo "1: ${COMPREPLY[*]}"
		COMP_WORDS=(mvlan network ""); COMP_CWORD=2; _mvlan; echo "2: ${COMPREPLY[*]}"
		COMP_WORDS=(mvlan ps --); COMP_CWORD=2; _mvlan; echo "3: ${COMPREPLY[*]}"`
	cmd := exec.Command("bash", "--norc", "-c", script, "bash", root)
	cmd.Env = []string{"PATH=" + filepath.Join(root, "usr/bin") + ":/usr/bin:/bin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	got := string(out)
	if err != nil || stderr.Len() > 0 || !strings.Contains(got, "-F _mvlan mvlan") ||
		!strings.Contains(got, "1: network\n") || !hasWords(got, "2:", "create", "ls", "inspect", "rm") ||
		!strings.Contains(got, "--format") || !strings.Contains(got, "--quiet") {
		t.Errorf("bash completion: %v\n%s\nstderr: %s", err, got, stderr.String())
	}
}

// zshCompletion loads the installed completion as zsh does, from its
// fpath through compinit (the file is autoloaded as the body of _mvlan at
// the first Tab), and completes "mvlan ", "mvlan network " and
// "mvlan ps --" with the installed mvlan. compadd and _files work only in
// a completion widget: here they print what _mvlan hands them (the real
// compadd then keeps those matching the word typed).
func zshCompletion(t *testing.T, root string) {
	t.Helper()
	script := `fpath=("$1/usr/share/zsh/vendor-completions" $fpath)
		autoload -U compinit && compinit -u -d "$2/zcompdump"
		print -r -- "comp: $_comps[mvlan]"
		compadd() { [[ $1 == -a ]] && print -r -- "${(@P)2}" }
		_files() { print -r -- _files }
		words=(mvlan netw); CURRENT=2; print -rn -- "1: "; _mvlan
		words=(mvlan network ""); CURRENT=3; print -rn -- "2: "; _mvlan
		words=(mvlan ps --); CURRENT=3; print -rn -- "3: "; _mvlan`
	got, stderr, err := shell(root, "zsh", "-f", "-c", script, "zsh", root, t.TempDir())
	if err != nil || stderr != "" || !strings.Contains(got, "comp: _mvlan\n") || !hasWords(got, "1:", "network", "run", "ps") ||
		!hasWords(got, "2:", "create", "ls", "inspect", "rm") || !hasWords(got, "3:", "--format", "--quiet") {
		t.Errorf("zsh completion: %v\n%s\nstderr: %s", err, got, stderr)
	}
}

// fishCompletion loads the installed completion in fish and asks fish
// what it completes (complete -C) with the installed mvlan, in an empty
// directory (fish adds file names where a command takes arguments).
func fishCompletion(t *testing.T, root string) {
	t.Helper()
	script := `source $argv[1]/usr/share/fish/vendor_completions.d/mvlan.fish; cd $argv[2]
		set i 0
		for line in "mvlan netw" "mvlan network " "mvlan ps --" "mvlan network create --sub"
			set i (math $i + 1)
			echo $i: (complete -C $line | string replace -r '\t.*' '')
		end`
	got, stderr, err := shell(root, "fish", "--no-config", "-c", script, root, t.TempDir())
	if err != nil || stderr != "" || !hasWords(got, "1:", "network") || !hasWords(got, "2:", "create", "ls", "inspect", "rm") ||
		!hasWords(got, "3:", "--format", "--quiet") || !hasWords(got, "4:", "--subnet") {
		t.Errorf("fish completion: %v\n%s\nstderr: %s", err, got, stderr)
	}
}

// shell runs a shell with only the installed root's /usr/bin and the
// system's in PATH.
func shell(root, name string, args ...string) (string, string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=" + filepath.Join(root, "usr/bin") + ":/usr/bin:/bin", "HOME=" + root}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// hasWords: out has a line starting with prefix that holds every word.
func hasWords(out, prefix string, words ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == prefix {
			for _, w := range words {
				if !slices.Contains(f[1:], w) {
					return false
				}
			}
			return true
		}
	}
	return false
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
