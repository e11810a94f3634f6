package link

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A spare's name is made in two steps: Reserve creates the mount point
// /run/netns/NAME, Mount binds the namespace on it. Creating the file is
// most of the cost of naming a namespace where /run is not a tmpfs (about
// 0.35 ms on this ext4; the bind about 0.03 ms), so the engine reserves
// while the endpoint's record is being committed and binds once it is on
// disk. Until the bind the name is an empty file, as iproute2's is
// between its own two steps: nothing can enter it. A crash in between
// leaves that file; its owner tag (an extended attribute, which the bind
// hides) lets the agent's next start find and remove exactly its own
// (RemoveReserved) before it serves anything.

// reservedAttr holds the owner of a reserved mount point: a trusted.*
// attribute, which only root may set and tmpfs and ext4 both keep.
const reservedAttr = "trusted.mvlan.reserved"

// Reserve creates the mount point of the namespace's name /run/netns/NAME
// (ErrExists when taken), tagged as owner's, for a later Mount(name).
// Close removes it unless Mount bound the namespace there.
func (s *Spare) Reserve(name, owner string) (string, error) {
	if err := CheckNetnsName(name); err != nil {
		return "", err
	}
	if err := prepareNetnsDir(); err != nil {
		return "", fmt.Errorf("reserve netns %s: %w", name, err)
	}
	path := NetnsPath(name)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EEXIST) {
		return "", fmt.Errorf("reserve netns %s: %s %w", name, path, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("reserve netns %s: %w", name, err)
	}
	defer unix.Close(fd)
	s.reserved = path
	// Without the tag (a file system without trusted.* attributes) a
	// crash leaves a file that `ip netns del` removes, as iproute2's own.
	if err := unix.Fsetxattr(fd, reservedAttr, []byte(owner), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
		return "", errors.Join(fmt.Errorf("reserve netns %s: tag: %w", name, err), s.unreserve())
	}
	return path, nil
}

// unreserve removes the mount point Reserve made, if Mount did not bind
// the namespace there.
func (s *Spare) unreserve() error {
	if s.reserved == "" {
		return nil
	}
	path := s.reserved
	s.reserved = ""
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove reserved %s: %w", path, err)
	}
	return nil
}

// RemoveReserved removes the mount points under /run/netns that owner
// reserved and never bound a namespace on (a crash between a Spare's
// Reserve and Mount). A bound one shows the namespace's attributes, not
// the tag, and stays.
func RemoveReserved(owner string) error {
	entries, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove reserved mount points: %w", err)
	}
	var errs []error
	buf := make([]byte, len(owner)+1)
	for _, e := range entries {
		path := filepath.Join(NetnsDir, e.Name())
		n, err := unix.Lgetxattr(path, reservedAttr, buf)
		if err != nil || string(buf[:n]) != owner {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove reserved %s: %w", path, err))
		}
	}
	return errors.Join(errs...)
}
