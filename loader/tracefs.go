package loader

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// sysTracing is where tracefs is mounted by convention (systemd's
// sys-kernel-tracing.mount).
const sysTracing = "/sys/kernel/tracing"

// ensureTracefs mounts tracefs on /sys/kernel/tracing unless it, or
// debugfs's tracing directory, has one (a tracefs mounted elsewhere is
// found by the library, so a failure here is not the last word): the tracepoints tcx_watch attaches
// to are named there, and a host whose init did not mount it (a minimal
// VM, a container with a /sys of its own) would run without the watch.
// Like ensureBPFFS's, the mount is in the caller's mount namespace. It
// must come before the process's first tracepoint attach: the library
// looks for tracefs once.
func ensureTracefs() error {
	for _, p := range []struct {
		path string
		fs   int64
	}{{sysTracing, unix.TRACEFS_MAGIC}, {"/sys/kernel/debug/tracing", unix.TRACEFS_MAGIC}, {"/sys/kernel/debug/tracing", unix.DEBUGFS_MAGIC}} {
		var st unix.Statfs_t
		if unix.Statfs(p.path, &st) == nil && st.Type == p.fs {
			return nil
		}
	}
	if err := unix.Mount("tracefs", sysTracing, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount tracefs on %s: %w", sysTracing, err)
	}
	return nil
}
