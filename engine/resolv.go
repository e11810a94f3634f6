package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/dhcp"
	"github.com/mvlan/mvlan/internal/nsfile"
)

// A DHCP lease's DNS servers and domain go into the resolv.conf of the
// namespace mvlan made for the endpoint: /etc/netns/NAME/resolv.conf,
// which `ip netns exec NAME` bind-mounts over /etc/resolv.conf. The file
// starts with a line naming the endpoint, so that only that endpoint's
// removal deletes it (a new container of the same name may have written
// its own meanwhile). Namespaces mvlan did not make (connect) are the
// operator's: their resolv.conf is left alone.

// netnsEtc is where ip-netns looks for a namespace's /etc files.
var netnsEtc = "/etc/netns"

// resolvMaxNS is how many nameservers the resolver reads (MAXNS).
const resolvMaxNS = 3

func resolvPath(name string) string { return filepath.Join(netnsEtc, name, "resolv.conf") }

func resolvHeader(id string) string { return "# mvlan endpoint " + id }

// resolvConf is the resolv.conf of endpoint id's lease l; "" when l has
// no DNS server and no domain.
func resolvConf(id string, l dhcp.Lease) string {
	if len(l.DNS) == 0 && l.Domain == "" && len(l.Search) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: from the DHCP lease of %s (server %s); rewritten on renewal, removed with the container\n",
		resolvHeader(id), l.Addr.Addr(), l.Server)
	for _, a := range l.DNS[:min(len(l.DNS), resolvMaxNS)] {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	search := l.Search
	if len(search) == 0 && l.Domain != "" {
		search = []string{l.Domain}
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return b.String()
}

// resolvError is a resolv.conf that could not be written.
type resolvError struct{ err error }

func (e *resolvError) Error() string { return e.err.Error() }
func (e *resolvError) Unwrap() error { return e.err }

// writeResolv writes e's resolv.conf for lease l when it changes from old's
// (nil: none yet), only in a namespace mvlan made. Its error is a
// *resolvError.
func writeResolv(e endpoint, old *dhcp.Lease, l dhcp.Lease) error {
	if err := writeResolvFile(e, old, l); err != nil {
		return &resolvError{err}
	}
	return nil
}

func writeResolvFile(e endpoint, old *dhcp.Lease, l dhcp.Lease) error {
	if !e.OwnsNetns {
		return nil
	}
	want := resolvConf(e.ID, l)
	if old != nil && want == resolvConf(e.ID, *old) {
		return nil
	}
	if want == "" {
		return removeResolv(e)
	}
	p := resolvPath(e.Name)
	if err := rewriteInPlace(p, want); !errors.Is(err, errNotInPlace) {
		if err != nil {
			return fmt.Errorf("resolv.conf of %s: %w", e.Name, err)
		}
		return nil
	}
	if err := nsfile.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("resolv.conf of %s: %w", e.Name, err)
	}
	tmp := p + ".mvlan-tmp"
	// 0644 whatever the umask: the container's processes read it as
	// /etc/resolv.conf, root or not.
	err := os.WriteFile(tmp, []byte(want), 0o644)
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("resolv.conf of %s: %w", e.Name, err), os.Remove(tmp))
	}
	if err := os.Rename(tmp, p); err != nil {
		return errors.Join(fmt.Errorf("resolv.conf of %s: %w", e.Name, err), os.Remove(tmp))
	}
	return nil
}

// errNotInPlace: there is no regular file to rewrite in place (none, or a
// symlink, which is replaced, never written through).
var errNotInPlace = errors.New("no regular file to rewrite")

// rewriteInPlace writes data over the regular file at p in its inode:
// `ip netns exec` bind-mounts that inode on /etc/resolv.conf, so a
// process started before the change sees it only so (a rename would
// leave it the old file). The new text goes over the old, padded with
// empty lines to the old length, and then the file is cut to its own:
// a reader never finds it empty, nor the old text's tail after the new.
func rewriteInPlace(p, data string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ELOOP) {
		return errNotInPlace
	}
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		return errors.Join(errNotInPlace, f.Close())
	}
	if pad := int(fi.Size()) - len(data); err == nil && pad > 0 {
		_, err = f.WriteAt([]byte(data+strings.Repeat("\n", pad)), 0)
	} else if err == nil {
		_, err = f.WriteAt([]byte(data), 0)
	}
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if err == nil && fi.Mode().Perm() != 0o644 {
		err = f.Chmod(0o644) // one an older agent wrote under its unit's umask (0600)
	}
	return errors.Join(err, f.Close())
}

// removeResolv deletes e's resolv.conf if e wrote it, and the namespace's
// /etc/netns directory if that leaves it empty.
func removeResolv(e endpoint) error {
	if !e.OwnsNetns {
		return nil
	}
	p := resolvPath(e.Name)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolv.conf of %s: %w", e.Name, err)
	}
	first, _ := bufio.NewReader(f).ReadString('\n')
	f.Close()
	if !strings.HasPrefix(first, resolvHeader(e.ID)+":") {
		return nil // another endpoint's (a new container of that name) or the operator's
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("resolv.conf of %s: %w", e.Name, err)
	}
	_ = os.Remove(filepath.Dir(p)) // only if empty
	return nil
}
