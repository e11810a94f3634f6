package loader

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Attaches to TCX hooks: a program loaded long before a container attaches
// it ahead of mvlan's is no new program (ForeignPrograms), and the attach
// sends no notification. tcx_watch (bpf/tcx_watch.c, on the tracepoints of
// the bpf() system call) counts the TCX attaches and detaches of other
// processes than the agent; ForeignAttaches reports the count moving, so
// that the next check screens every endpoint's TCX hooks.

// tcxWatch is tcx_watch loaded and attached, and the count as last read.
type tcxWatch struct {
	objs  tcxWatchObjects
	links []link.Link
	last  uint64
}

// WatchTCX starts counting TCX attaches by other processes (ForeignAttaches
// reports them from its next call on), until Close. A kernel without TCX
// has nothing to watch: nil. Calling it again does nothing.
func (d *Datapath) WatchTCX() (err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.watch != nil {
		return nil
	}
	if tcx, _ := tcxAvailable(); !tcx {
		return nil
	}
	w, err := startTCXWatch()
	if err != nil {
		return fmt.Errorf("watch TCX attaches: %w", err)
	}
	d.watch = w
	return nil
}

// startTCXWatch loads tcx_watch for this process and attaches it.
func startTCXWatch() (_ *tcxWatch, err error) {
	spec, err := loadTcxWatch()
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return nil, fmt.Errorf("own pid namespace: %w", err)
	}
	// The kernel's encoding of the device (MKDEV), not stat's.
	dev := uint64(unix.Major(st.Dev))<<20 | uint64(unix.Minor(st.Dev))
	for name, v := range map[string]any{"agent_pidns_dev": dev, "agent_pidns_ino": st.Ino, "agent_tgid": uint32(os.Getpid())} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	w := &tcxWatch{}
	if err := spec.LoadAndAssign(&w.objs, nil); err != nil {
		return nil, fmt.Errorf("load tcx_watch: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.Close())
		}
	}()
	// Best effort: the library also finds a tracefs mounted elsewhere.
	mountErr := ensureTracefs()
	// The exit first: a call under way as the entry's attach comes would
	// otherwise leave its thread noted for good.
	for _, tp := range []struct {
		name string
		prog *ebpf.Program
	}{{"sys_exit_bpf", w.objs.TcxWatchExit}, {"sys_enter_bpf", w.objs.TcxWatchEnter}} {
		name := tp.name
		l, err := link.Tracepoint("syscalls", name, tp.prog, nil)
		if err != nil {
			return nil, fmt.Errorf("attach tcx_watch to syscalls/%s: %w", name, errors.Join(err, mountErr))
		}
		w.links = append(w.links, l)
	}
	return w, nil
}

// ForeignAttaches reports whether, since the last call, another process
// attached a program to a TCX hook or detached one (once WatchTCX runs).
func (d *Datapath) ForeignAttaches() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.watch != nil && d.watch.moved()
}

// moved reports whether the count changed since the last call.
func (w *tcxWatch) moved() bool {
	n, err := w.count()
	if err != nil {
		return true // cannot tell: look
	}
	moved := n != w.last
	w.last = n
	return moved
}

// count is the number of calls counted: each that succeeded, as it
// returned.
func (w *tcxWatch) count() (uint64, error) {
	var n uint64
	err := w.objs.TcxAttaches.Lookup(uint32(0), &n)
	return n, err
}

// Close detaches and unloads the watch.
func (w *tcxWatch) Close() error {
	errs := make([]error, 0, len(w.links)+1)
	for _, l := range w.links {
		errs = append(errs, l.Close())
	}
	return errors.Join(append(errs, w.objs.Close())...)
}
