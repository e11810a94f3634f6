package loader

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrPinDirLocked means another agent holds the pin directory.
var ErrPinDirLocked = errors.New("bpffs directory is in use by another agent")

// LockPinDir makes pinDir on a bpffs (as Load does) and takes an exclusive
// lock on it, held until the returned file is closed. Two agents on one
// pin directory would share one endpoint table, and each would prune the
// other's endpoints from it: take the lock before Load and keep it while
// the Datapath is in use.
func LockPinDir(pinDir string) (*os.File, error) {
	if err := ensureBPFFS(pinDir); err != nil {
		return nil, err
	}
	f, err := os.Open(pinDir) // O_CLOEXEC: commands the agent runs do not inherit it
	if err != nil {
		return nil, fmt.Errorf("open pin directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", pinDir, ErrPinDirLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", pinDir, err)
	}
	return f, nil
}
