package enginetest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/link"
)

// namespaces is the Kernel as engine.Namespaces.
type namespaces Kernel

func (s *namespaces) Check(path string) (uint64, error) {
	k := (*Kernel)(s)
	k.pass(k.checks, path)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return n.ino, nil
	}
	return 0, &os.PathError{Op: "open", Path: path, Err: os.ErrNotExist}
}

func (s *namespaces) Links(path string) ([]link.Info, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return slices.Clone(n.links), nil
	}
	return nil, notFound("netns " + path)
}

// Macvlans is Links: every link is at least what the tamper check needs.
func (s *namespaces) Macvlans(path string, _ int) ([]link.Info, error) { return s.Links(path) }

func (s *namespaces) SetMAC(path string, ifindex int, mac net.HardwareAddr) error {
	return s.changeLink(path, ifindex, "", func(l *link.Info) { l.MAC = slices.Clone(mac) })
}

// SetMacvlanMode sets link ifindex's macvlan mode, its flags cleared and
// its source list emptied, as the kernel's changelink does.
func (s *namespaces) SetMacvlanMode(path string, ifindex int, kind, mode string) error {
	return s.changeLink(path, ifindex, kind, func(l *link.Info) { l.Macvlan = &link.MacvlanConf{Mode: mode} })
}

// changeLink applies change to link ifindex (of kind, unless "") of the
// namespace at path.
func (s *namespaces) changeLink(path string, ifindex int, kind string, change func(*link.Info)) error {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nets[path]
	if n == nil {
		return notFound("netns " + path)
	}
	for i := range n.links {
		if n.links[i].Index == ifindex && (kind == "" || n.links[i].Kind == kind) {
			change(&n.links[i])
			return nil
		}
	}
	return notFound(fmt.Sprintf("link %d in %s", ifindex, path))
}

func (s *namespaces) SetRAConf(string, string, bool) error { return nil }

func (s *namespaces) Addrs(path string, ifindex int) ([]netip.Prefix, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return slices.Clone(n.addrs[ifindex]), nil
	}
	return nil, notFound("netns " + path)
}

func (s *namespaces) DefaultRoute(path string, gw netip.Addr, _ int) (has, via bool, err error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		has = slices.Contains(n.gateways, gw)
		return has, has, nil
	}
	return false, false, notFound("netns " + path)
}

func (s *namespaces) DefaultRouteVia(path string, gw netip.Addr, ifindex int) (bool, error) {
	_, via, err := s.DefaultRoute(path, gw, ifindex)
	return via, err
}

func (s *namespaces) Mark(path string) (string, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return n.mark, nil
	}
	return "", notFound("netns " + path)
}

// Spare makes a namespace at a path of its own, as a file would reach it;
// a Gate at /run/netns/NAME holds the attach into it.
func (s *namespaces) Spare(name string) (engine.SpareNetns, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	path := fmt.Sprintf("/proc/self/fd/spare-%d", k.index())
	k.spareFor[path] = link.NetnsPath(name)
	return &spare{k: k, path: path, ns: k.addNetns(path, "")}, nil
}

// spare is an in-memory namespace with no name yet.
type spare struct {
	k    *Kernel
	path string
	ns   *netns
}

func (s *spare) Path() string   { return s.path }
func (s *spare) Cookie() uint64 { return s.ns.cookie }
func (s *spare) Inode() uint64  { return s.ns.ino }
func (s *spare) IPv6Off() bool  { return false }

// Mark marks the namespace.
func (s *spare) Mark(mark string) error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	s.ns.mark = mark
	return nil
}

// Mount binds the namespace at /run/netns/NAME; it stays at Path too
// until Close, as a namespace is at /proc/self/fd/N while its file is
// open.
func (s *spare) Mount(name string) (string, error) {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	path := link.NetnsPath(name)
	if s.k.nets[path] != nil {
		return "", fmt.Errorf("netns %s: %w", name, link.ErrExists)
	}
	s.k.nets[path] = s.ns
	return path, nil
}

// Close lets the file go: the namespace is no longer at Path, and gone
// unless Mount named it.
func (s *spare) Close() error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	if s.k.nets[s.path] == s.ns {
		delete(s.k.nets, s.path)
	}
	return nil
}

func (s *namespaces) Delete(name string) error {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stuck[name] > 0 {
		k.stuck[name]--
		return fmt.Errorf("delete netns %s: unmount: %w", name, unix.EBUSY)
	}
	delete(k.nets, link.NetnsPath(name))
	return nil
}

func (s *namespaces) Cookie(path string) (uint64, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return n.cookie, nil
	}
	return 0, notFound("netns " + path)
}
