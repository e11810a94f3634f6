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
// by an open file and mounted nowhere. Create takes one when it can, so
// that an attach does not wait for the kernel to make a namespace (about
// 1 ms of a 6 ms attach here); the next is made in the background. Each
// spare's cookie is read when it is made and handed out with it, so that
// the attach need not enter the namespace for it; what prepare makes for
// a spare (the datapath's stubs) goes with it. The pool starts filling
// at its first Create. Spares go with the process: nothing of them is
// mounted, so a crash leaves nothing behind. Close it.
type NetnsPool struct {
	size    int
	prepare func(ns *os.File, cookie uint64) (release func())
	wake    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	spare   []spare
	started bool
}

// spare is a namespace made ahead: the file that holds it, its cookie,
// and what lets go of what prepare made for it (nil: nothing).
type spare struct {
	f       *os.File
	cookie  uint64
	release func()
}

// MadeNetns is a namespace Create made: where it is mounted, and its
// cookie (SO_NETNS_COOKIE) when it was read as it was made (0: not read).
// Call Release once the namespace is in use or given up.
type MadeNetns struct {
	Path    string
	Cookie  uint64
	release func()
}

// Release lets go of what the pool prepared for the namespace that its
// user did not take.
func (m MadeNetns) Release() {
	if m.release != nil {
		m.release()
	}
}

// NewNetnsPool returns a pool of up to size spare namespaces. prepare, if
// not nil, is called in the background with each spare (a file of it,
// open during the call) and its cookie when it is made; the function it
// returns is called when the spare is closed unused, or by the Release of
// the namespace Create made of it.
func NewNetnsPool(size int, prepare func(ns *os.File, cookie uint64) (release func())) *NetnsPool {
	ctx, cancel := context.WithCancel(context.Background())
	return &NetnsPool{size: size, prepare: prepare, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
}

// Create is CreateNetns, with a spare namespace when there is one.
func (p *NetnsPool) Create(name, mark string) (MadeNetns, error) {
	s, ok := p.take()
	if !ok {
		path, err := CreateNetns(name, mark)
		return MadeNetns{Path: path}, err
	}
	defer s.f.Close()
	made := MadeNetns{Cookie: s.cookie, release: s.release}
	path, err := createNetns(name, func(path string) error { return mountSpare(s.f, path, mark) })
	if err != nil {
		made.Release()
		return MadeNetns{}, err
	}
	made.Path = path
	return made, nil
}

// take returns a spare (false if none) and has the pool make another.
func (p *NetnsPool) take() (spare, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started && p.ctx.Err() == nil {
		p.started = true
		p.wg.Add(1)
		go p.fill()
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
	if len(p.spare) == 0 {
		return spare{}, false
	}
	s := p.spare[len(p.spare)-1]
	p.spare = p.spare[:len(p.spare)-1]
	return s, true
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
			s, err := newSpare()
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

func (p *NetnsPool) short() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.spare) < p.size && p.ctx.Err() == nil
}

// Close stops the filling and lets the spares go.
func (p *NetnsPool) Close() error {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, s := range p.spare {
		errs = append(errs, s.f.Close())
		if s.release != nil {
			s.release()
		}
	}
	p.spare = nil
	return errors.Join(errs...)
}

// newSpare makes a namespace with lo up on a fresh thread and returns a
// file that holds it, with its cookie.
func newSpare() (spare, error) {
	return nsthread.Fresh(context.Background(), 0, func() (spare, error) {
		if err := setupLoopback(""); err != nil {
			return spare{}, err
		}
		cookie, err := cookieHere()
		if err != nil {
			return spare{}, err
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		return spare{f: f, cookie: cookie}, err
	})
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

// mountSpare marks the spare's lo with mark (before it appears at path,
// as CreateNetns does) and binds it on path.
func mountSpare(f *os.File, path, mark string) error {
	if mark != "" {
		nl, err := netlink.NewHandleAt(netns.NsHandle(f.Fd()), unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink in a spare namespace: %w", err)
		}
		defer nl.Close()
		if err := loopback(nl, mark, false); err != nil {
			return err
		}
	}
	src := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", path, err)
	}
	return nil
}
