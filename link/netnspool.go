package link

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// NetnsPool keeps a few network namespaces made ahead, lo up, each held
// by an open file and mounted nowhere. Take hands one out when it can, so
// that an attach does not wait for the kernel to make a namespace (about
// 1 ms of a 6 ms attach here); the next is made in the background. Each
// spare's cookie is read when it is made and handed out with it, so that
// the attach need not enter the namespace for it; what prepare makes for
// a spare (the datapath's socket and stubs) goes with it. The pool starts filling
// at its first Take. A spare taken counts towards the pool's size until
// its Close (its user's kernel work is done), so that the next is not
// made while that work runs and shares the CPUs with it; many taken at
// once still leave the pool making one. Spares go with the process:
// nothing of them is mounted, so a crash leaves nothing behind. Close it.
type NetnsPool struct {
	size    int
	prepare func(ns *os.File, cookie uint64) (release func())
	wake    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	spare   []*Spare
	open    int // taken, not closed yet: they count towards size
	started bool
	ids     *Host // gives each spare its namespace ID (GiveIDs)
}

// Spare is a network namespace made for one user and named nowhere yet:
// held by an open file, reached at Path, gone with its Close (or with the
// process) unless Mount bound it at /run/netns/NAME first. Its cookie
// (SO_NETNS_COOKIE) was read as it was made; what the pool prepared for
// it (prepare) is let go by Close unless its user took it.
type Spare struct {
	f       *os.File
	cookie  uint64
	inode   uint64
	v6off   bool     // links made in it are born with IPv6 disabled
	point   *os.File // its mount point made ahead, nameless (O_TMPFILE); nil if none
	release func()
	pool    *NetnsPool // refilled at Close
}

// Path reaches the namespace while it has no name: /proc/self/fd/N.
func (s *Spare) Path() string { return fmt.Sprintf("/proc/self/fd/%d", s.f.Fd()) }

// Cookie is the namespace's cookie.
func (s *Spare) Cookie() uint64 { return s.cookie }

// IPv6Off says links made in the namespace are born with IPv6 disabled
// (its net.ipv6.conf.default.disable_ipv6 is 1, or the kernel has no
// IPv6; see EndpointSpec.IPv6Off).
func (s *Spare) IPv6Off() bool { return s.v6off }

// Inode is the namespace's inode (what CheckNetns returns for it).
func (s *Spare) Inode() uint64 { return s.inode }

// Mark marks the namespace as its user's: lo's alias, which NetnsMark
// reads. Nothing sees it while the namespace has no name.
func (s *Spare) Mark(mark string) error {
	nl, err := netlink.NewHandleAt(netns.NsHandle(s.f.Fd()), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in a spare namespace: %w", err)
	}
	defer nl.Close()
	return loopback(nl, mark, false)
}

// Mount binds the namespace at /run/netns/NAME, which must not exist
// (ErrExists), as CreateNetns does. Mark it first: once it has a name, a
// restart may look for its mark.
func (s *Spare) Mount(name string) (string, error) {
	return createNetns(name, s.mountPoint, func(path string) error { return bindNetns(s.Path(), path) })
}

// mountPoint gives the mount point made ahead the name path (linkat fails
// if it exists): no inode to allocate now, which is most of the cost of
// naming a namespace where /run is not a tmpfs (~0.35 ms on an ext4 /run
// measured here, growing with the inodes deleted lately; the bind ~0.03
// ms). Without one it creates the file.
func (s *Spare) mountPoint(path string) error {
	if s.point == nil {
		return newMountPoint(path)
	}
	// Through /proc/self/fd: AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH
	// before Linux 6.10, which the service unit does not grant.
	src := fmt.Sprintf("/proc/self/fd/%d", s.point.Fd())
	err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.EEXIST) {
		return err
	}
	if err != nil { // e.g. EXDEV: /run/netns was mounted again since
		return newMountPoint(path)
	}
	// Linked: the name holds it now. A failed bind removes the name, and
	// a linked-then-unlinked file cannot be linked again anyway.
	perr := s.point.Close()
	s.point = nil
	return perr
}

// newMountPointAhead makes a nameless empty file in /run/netns
// (O_TMPFILE) for a spare's mount point: it vanishes with its file unless
// linked to a name, so a crash leaves nothing. nil where the file system
// cannot (the spare then creates its mount point when named).
func newMountPointAhead() *os.File {
	if prepareNetnsDir() != nil {
		return nil
	}
	fd, err := unix.Open(NetnsDir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), "netns-mount-point")
}

// Close lets the file go, what the pool prepared for the namespace unless
// its user took it, and the mount point made ahead unless Mount named it.
func (s *Spare) Close() error {
	if s.release != nil {
		s.release()
	}
	if s.pool != nil {
		s.pool.closed()
	}
	s.release, s.pool = nil, nil
	var perr error
	if s.point != nil {
		perr = s.point.Close()
		s.point = nil
	}
	return errors.Join(perr, s.f.Close())
}

// NewNetnsPool returns a pool of up to size spare namespaces. prepare, if
// not nil, is called in the background with each spare (a file of it,
// open during the call) and its cookie when it is made; the function it
// returns is called by the spare's Close.
func NewNetnsPool(size int, prepare func(ns *os.File, cookie uint64) (release func())) *NetnsPool {
	ctx, cancel := context.WithCancel(context.Background())
	return &NetnsPool{size: size, prepare: prepare, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
}

// GiveIDs has h give each spare made from now on its namespace ID (see
// NetnsID), first thing, before lo comes up: none of its notifications
// then has the kernel walk every ID there is, and the attach that takes
// it finds it first (link/nsid.go).
func (p *NetnsPool) GiveIDs(h *Host) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids = h
}

// Take returns a namespace made ahead, or one made now if none is ready;
// the pool makes another once it is closed.
func (p *NetnsPool) Take() (*Spare, error) {
	if s, ok := p.take(); ok {
		return s, nil
	}
	s, err := newSpare(p.idGiver())
	if err != nil {
		p.closed()
		return nil, fmt.Errorf("create netns: %w", err)
	}
	s.pool = p
	return s, nil
}

// take returns a spare (false if none: the pool starts filling), which
// counts as open until its Close.
func (p *NetnsPool) take() (*Spare, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started && p.ctx.Err() == nil {
		p.started = true
		p.wg.Add(1)
		go p.fill()
	}
	p.open++
	if len(p.spare) == 0 {
		p.refill()
		return nil, false
	}
	s := p.spare[len(p.spare)-1]
	p.spare = p.spare[:len(p.spare)-1]
	s.pool = p
	return s, true
}

// closed counts a spare taken as closed and has the pool make another.
func (p *NetnsPool) closed() {
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
	p.refill()
}

// refill has the pool make spares up to its size, in the background.
func (p *NetnsPool) refill() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// fill makes spares up to size each time it is woken, until Close.
func (p *NetnsPool) fill() {
	defer p.wg.Done()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
		}
		for p.short() {
			s, err := newSpare(p.idGiver())
			if err != nil {
				break // Create makes its own; tried again at the next
			}
			if p.prepare != nil {
				s.release = p.prepare(s.f, s.cookie)
			}
			p.mu.Lock()
			p.spare = append(p.spare, s) // Close, which waits for fill, closes it
			p.mu.Unlock()
		}
	}
}

// idGiver is the Host that gives spares their IDs, nil if none does.
func (p *NetnsPool) idGiver() *Host {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ids
}

func (p *NetnsPool) short() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.spare) < max(1, p.size-p.open) && p.ctx.Err() == nil
}

// Close stops the filling and lets the spares go.
func (p *NetnsPool) Close() error {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, s := range p.spare {
		errs = append(errs, s.Close())
	}
	p.spare = nil
	return errors.Join(errs...)
}

// newSpare makes a namespace with lo up on a fresh thread and returns a
// file that holds it, with its cookie and inode.
func newSpare(ids *Host) (*Spare, error) {
	return nsthread.Fresh(context.Background(), 0, func() (*Spare, error) {
		if ids != nil {
			// Best effort: without one, the tamper check gives it later.
			_, _ = ids.GiveNetnsID(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		}
		if err := setupLoopback(""); err != nil {
			return nil, err
		}
		v6off := bornWithoutIPv6()
		cookie, err := cookieHere()
		if err != nil {
			return nil, err
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			return nil, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return nil, fmt.Errorf("stat the new netns: %w", err)
		}
		return &Spare{f: f, cookie: cookie, inode: st.Ino, v6off: v6off, point: newMountPointAhead()}, nil
	})
}

// bornWithoutIPv6 has links made later in the calling thread's namespace
// born with IPv6 disabled (default.disable_ipv6; lo, up already, keeps
// ::1) and reports whether they are: an endpoint without IPv6 then needs
// no sysctl write on its attach, and its link no IPv6 setup while it
// comes up. A kernel without IPv6 has nothing to disable. Through
// writeIPv6Conf's own procfs: a lookup under the host's /proc/sys/net
// grows with the host's namespaces.
func bornWithoutIPv6() bool {
	return writeIPv6Conf("default", "disable_ipv6", "1\n") == nil
}

// cookieHere is the cookie of the calling thread's network namespace
// (what loader.NetnsCookie reads for a namespace by path).
func cookieHere() (uint64, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("netns cookie: socket: %w", err)
	}
	defer unix.Close(fd)
	v, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("netns cookie: %w", err)
	}
	return v, nil
}
