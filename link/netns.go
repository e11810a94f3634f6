package link

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"

	"github.com/mvlan/mvlan/internal/nsfile"
)

// NetnsDir holds the bind mounts of named network namespaces, as iproute2's.
const NetnsDir = "/run/netns"

// NetnsPath returns the path of the named network namespace name.
func NetnsPath(name string) string { return filepath.Join(NetnsDir, name) }

// setDisableIPv6 writes net.ipv6.conf.IFNAME.disable_ipv6 in namespace ns.
// A kernel without IPv6 (no /proc/sys/net/ipv6) has nothing to disable.
func setDisableIPv6(ns netns.NsHandle, ifName string, disable bool) error {
	val := "0\n"
	if disable {
		val = "1\n"
	}
	return nsthread.Do(ns, func() error { return writeIPv6Conf(ifName, "disable_ipv6", val) })
}

// CheckNetnsName validates the name of a named network namespace.
func CheckNetnsName(name string) error {
	switch {
	case name == "":
		return errors.New("netns name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("netns name %q is not valid; use a plain name such as c1", name)
	case len(name) > 64:
		return fmt.Errorf("netns name %q is %d bytes; use at most 64", name, len(name))
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("netns name %q contains '/'; use a plain name such as c1", name)
	}
	return nil
}

// CreateNetns creates a new network namespace and bind-mounts it on
// /run/netns/NAME, as `ip netns add NAME` does, so `ip netns exec NAME` works
// on it. The mount is made in the calling process's mount namespace. The
// error wraps ErrExists when the name is taken.
//
// The new namespace has lo up, and lo carries mark as its alias (if mark
// is not empty) before the namespace appears at its path, so whoever made
// it can tell it from one of the same name made by someone else
// (NetnsMark).
func CreateNetns(name, mark string) (path string, err error) {
	return createNetns(name, newMountPoint, func(path string) error { return mountNewNetns(path, mark) })
}

// createNetns makes /run/netns/NAME with point, which must fail when the
// name exists (os.ErrExist), and has mount bind a namespace there; the
// file goes again if that fails.
func createNetns(name string, point, mount func(path string) error) (path string, err error) {
	if err := CheckNetnsName(name); err != nil {
		return "", err
	}
	if err := prepareNetnsDir(); err != nil {
		return "", fmt.Errorf("create netns %s: %w", name, err)
	}
	path = NetnsPath(name)
	err = point(path)
	if errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create netns %s: %s %w", name, path, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("create netns %s: %w", name, err)
	}
	if err := mount(path); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("create netns %s: %w", name, err)
	}
	return path, nil
}

// newMountPoint creates the empty file a namespace is bound on, as
// iproute2 does; it fails if path exists.
func newMountPoint(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// bindNetns binds the namespace at src (a /proc path of it) on path.
func bindNetns(src, path string) error {
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", path, err)
	}
	return nil
}

// mountNewNetns makes a new network namespace on a fresh thread
// (nsthread.Fresh) and binds it on path: the namespace lives exactly as
// long as the mount.
func mountNewNetns(path, mark string) error {
	_, err := nsthread.Fresh(context.Background(), 0, func() (struct{}, error) {
		if err := setupLoopback(mark); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, bindNetns(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()), path)
	})
	return err
}

var (
	netnsDirMu     sync.Mutex
	netnsDirShared bool // prepareNetnsDir succeeded in this process
)

// prepareNetnsDir makes /run/netns a shared mount point, as iproute2 does,
// so namespace mounts propagate to mount namespaces created from this one.
// Once per process: MS_REC walks every mount under it (one per namespace;
// change_mnt_propagation and invent_group_ids grew with them), and a
// namespace mounted later under a shared mount point is shared already.
func prepareNetnsDir() error {
	netnsDirMu.Lock()
	defer netnsDirMu.Unlock()
	if netnsDirShared {
		return nil
	}
	if err := nsfile.MkdirAll(NetnsDir, 0o755); err != nil { // as ip netns makes it
		return err
	}
	err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		netnsDirShared = true
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s shared: %w", NetnsDir, err)
	}
	// Not a mount point yet: bind it on itself first.
	if err := unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", NetnsDir, err)
	}
	if err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", NetnsDir, err)
	}
	netnsDirShared = true
	return nil
}

// DeleteNetns unmounts and removes /run/netns/NAME, as `ip netns del NAME`.
// The namespace itself goes when its last process or reference goes. A
// missing name is not an error.
func DeleteNetns(name string) error {
	if err := CheckNetnsName(name); err != nil {
		return err
	}
	path := NetnsPath(name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete netns %s: unmount: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// setupLoopback brings lo up in the calling thread's namespace and sets
// its alias to mark.
func setupLoopback(mark string) error {
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in new netns: %w", err)
	}
	defer nl.Close()
	return loopback(nl, mark, true)
}

// loopback sets the alias of lo (through nl) to mark, if any, and brings
// it up if up.
func loopback(nl *netlink.Handle, mark string, up bool) error {
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if mark != "" {
		if err := nl.LinkSetAlias(lo, mark); err != nil {
			return fmt.Errorf("mark lo: %w", err)
		}
	}
	if !up {
		return nil
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// NetnsMark returns the mark (lo's alias) of the namespace at path.
func NetnsMark(path string) (string, error) {
	var mark string
	err := inNetns(path, func(nl *netlink.Handle) error {
		lo, err := nl.LinkByName("lo")
		if err != nil {
			return err
		}
		mark = lo.Attrs().Alias
		return nil
	}, false)
	return mark, err
}

// CheckNetns reports whether path is a network namespace (a /proc/PID/ns/net
// link or a bind mount of one) and returns its inode. The error names the
// path and what would be right; it wraps fs.ErrNotExist for a path that is
// not there and ErrNotNetns for one that is no network namespace. It never waits on what the path names
// instead (a FIFO, a socket), nor longer than nsfile.Timeout on a lookup.
func CheckNetns(path string) (uint64, error) {
	if !filepath.IsAbs(path) {
		return 0, fmt.Errorf("namespace path %q is not absolute; give /proc/PID/ns/net or /run/netns/NAME", path)
	}
	f, err := nsfile.Open(path)
	if errors.Is(err, nsfile.ErrNotNamespace) {
		return 0, &kernelError{fmt.Sprintf("%s is not a namespace; give /proc/PID/ns/net or /run/netns/NAME", path), ErrNotNetns, err}
	}
	if err != nil {
		return 0, fmt.Errorf("namespace %s: %w; give /proc/PID/ns/net or /run/netns/NAME", path, err)
	}
	defer f.Close()
	fd := int(f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("namespace %s: %w", path, err)
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil || typ != unix.CLONE_NEWNET {
		return 0, &kernelError{fmt.Sprintf("%s is not a network namespace; give /proc/PID/ns/net or /run/netns/NAME", path), ErrNotNetns, err}
	}
	return st.Ino, nil
}
