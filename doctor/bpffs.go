package doctor

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// bpffsRoot is where a bpf filesystem is conventionally mounted.
const bpffsRoot = "/sys/fs/bpf"

// checkBPFFS says whether dir, or its nearest existing parent when dir does
// not exist yet (the agent creates it), is on a bpf filesystem. It mounts
// nothing.
func checkBPFFS(dir string) Check {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Check{Name: CheckBPFFS, Detail: fmt.Sprintf("--bpffs %q: %v", dir, err), Impact: bpffsImpact(dir)}
	}
	at, magic, err := statfsNearest(abs)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) { // /sys/fs/bpf is 0700 under systemd
		return Check{Name: CheckBPFFS, Detail: err.Error() + " (" + needsRoot + ")", Skipped: true}
	}
	if err != nil {
		return Check{Name: CheckBPFFS, Detail: err.Error(), Impact: bpffsImpact(abs)}
	}
	where := at
	if at != abs {
		where = fmt.Sprintf("%s (nearest existing parent of %s)", at, abs)
	}
	if magic != unix.BPF_FS_MAGIC {
		return Check{
			Name:   CheckBPFFS,
			Detail: fmt.Sprintf("%s is on %s, not bpf", where, fsName(magic)),
			Impact: bpffsImpact(abs),
		}
	}
	return Check{Name: CheckBPFFS, OK: true, Detail: where + " is on bpffs"}
}

// statfsNearest returns the filesystem magic of path or of its nearest
// existing parent, and which of them it is.
func statfsNearest(path string) (string, int64, error) {
	for p := path; ; p = filepath.Dir(p) {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			return p, int64(st.Type), nil
		}
		if !errors.Is(err, unix.ENOENT) || p == "/" {
			return "", 0, fmt.Errorf("statfs %s: %w", p, err)
		}
	}
}

// bpffsImpact says what a missing bpffs means and how to mount it.
func bpffsImpact(dir string) string {
	mnt := dir
	if dir == bpffsRoot || strings.HasPrefix(dir, bpffsRoot+"/") {
		mnt = bpffsRoot
	}
	return fmt.Sprintf("bpffs not mounted at %s: the agent mounts it (or: mount -t bpf bpf %s); "+
		"without it counters do not survive an agent restart", mnt, mnt)
}

// fsName names the filesystems a --bpffs path is likely to be on instead.
func fsName(magic int64) string {
	switch magic {
	case unix.SYSFS_MAGIC:
		return "sysfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	}
	return fmt.Sprintf("a filesystem of type %#x", magic)
}
