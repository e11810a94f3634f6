package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// sysBPF is where bpffs is mounted by convention.
const sysBPF = "/sys/fs/bpf"

// ensureBPFFS makes dir a directory on a bpffs. If no bpffs covers it, one is
// mounted: on /sys/fs/bpf when dir is below it, else on dir itself (never on
// an unrelated parent such as /run). A mount here is in the caller's mount
// namespace.
func ensureBPFFS(dir string) error {
	dir = filepath.Clean(dir)
	on, err := onBPFFS(dir)
	if err != nil {
		return err
	}
	if !on {
		if err := mountBPFFS(mountPointFor(dir)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin directory: %w", err)
	}
	if on, err = onBPFFS(dir); err != nil || !on {
		return errors.Join(err, fmt.Errorf("%s is not on a bpffs after mounting one", dir))
	}
	return nil
}

func mountPointFor(dir string) string {
	if dir == sysBPF || strings.HasPrefix(dir, sysBPF+"/") {
		return sysBPF
	}
	return dir
}

func mountBPFFS(at string) error {
	if err := os.MkdirAll(at, 0o700); err != nil {
		return fmt.Errorf("create bpffs mount point: %w", err)
	}
	if err := unix.Mount("bpf", at, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs on %s: %w", at, err)
	}
	return nil
}

// onBPFFS reports whether the nearest existing ancestor of dir (or dir) is on
// a bpffs.
func onBPFFS(dir string) (bool, error) {
	for p := dir; ; p = filepath.Dir(p) {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			return st.Type == unix.BPF_FS_MAGIC, nil
		}
		if !errors.Is(err, unix.ENOENT) || p == "/" {
			return false, fmt.Errorf("statfs %s: %w", p, err)
		}
	}
}
