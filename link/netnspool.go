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
// 1 ms of a 6 ms attach here); the next is made in the background. The
// pool starts filling at its first Create. Spares go with the process:
// nothing of them is mounted, so a crash leaves nothing behind. Close it.
type NetnsPool struct {
	size   int
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	spare   []*os.File
	started bool
}

// NewNetnsPool returns a pool of up to size spare namespaces.
func NewNetnsPool(size int) *NetnsPool {
	ctx, cancel := context.WithCancel(context.Background())
	return &NetnsPool{size: size, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
}

// Create is CreateNetns, with a spare namespace when there is one.
func (p *NetnsPool) Create(name, mark string) (string, error) {
	f := p.take()
	if f == nil {
		return CreateNetns(name, mark)
	}
	defer f.Close()
	return createNetns(name, func(path string) error { return mountSpare(f, path, mark) })
}

// take returns a spare (nil if none) and has the pool make another.
func (p *NetnsPool) take() *os.File {
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
		return nil
	}
	f := p.spare[len(p.spare)-1]
	p.spare = p.spare[:len(p.spare)-1]
	return f
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
			f, err := newSpare()
			if err != nil {
				break // Create makes its own; tried again at the next
			}
			p.mu.Lock()
			p.spare = append(p.spare, f) // Close, which waits for fill, closes it
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
	for _, f := range p.spare {
		errs = append(errs, f.Close())
	}
	p.spare = nil
	return errors.Join(errs...)
}

// newSpare makes a namespace with lo up on a fresh thread and returns a
// file that holds it.
func newSpare() (*os.File, error) {
	return nsthread.Fresh(context.Background(), 0, func() (*os.File, error) {
		if err := setupLoopback(""); err != nil {
			return nil, err
		}
		return os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
	})
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
