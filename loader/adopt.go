package loader

import (
	"context"
	"errors"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// AdoptEndpoint is what a starting agent does instead of AttachEndpoint
// for an endpoint a previous agent attached: if the netns at netnsPath is
// still the one with this cookie and both hooks of its link ifindex run
// that netns's pinned stubs (under PathDirect the shared programs), all in
// one mode (our cls_bpf filters, or our
// pinned TCX links), it records the attachment as AttachEndpoint would and
// returns the mode, changing nothing in the kernel. Otherwise ok is false
// and AttachEndpoint does the work. The kernel is asked in one visit of the
// netns, without the Datapath's lock, so that endpoints are adopted in
// parallel.
func (d *Datapath) AdoptEndpoint(ctx context.Context, netnsPath string, cookie uint64, ifindex int) (mode Mode, ok bool) {
	if ctx.Err() != nil || cookie == 0 || ifindex <= 0 {
		return "", false
	}
	progs, want := d.stubsFor(cookie)
	if progs == nil {
		return "", false
	}
	t := target{netns: netnsPath, cookie: cookie, ifindex: ifindex}
	if mode, ok = d.runsStubs(t, want); !ok {
		return "", false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if progs.shared { // not kept until now (stubsFor): the namespace may be gone
		progs, _ = d.endpointPrograms(cookie) // never fails under PathDirect
	}
	if d.epProgs[cookie] != progs {
		return "", false // released meanwhile
	}
	progs.users[ifindex] = mode
	for hook, name := range map[Hook]string{Ingress: "ep_ingress", Egress: "ep_egress"} {
		d.attached.set(attachKey{cookie, ifindex, hook}, Attachment{
			Netns: netnsPath, NetnsCookie: cookie, Ifindex: ifindex, Hook: hook, Program: name, Mode: mode,
		})
	}
	return mode, true
}

// stubsFor returns the stubs of the netns with this cookie (taken from
// their pins on first use; under PathDirect the shared programs) and
// their IDs by hook; nil if it has none.
func (d *Datapath) stubsFor(cookie uint64) (*epPrograms, map[Hook]ebpf.ProgramID) {
	if d.direct {
		p := d.sharedPrograms()
		return p, map[Hook]ebpf.ProgramID{Ingress: p.ids[0], Egress: p.ids[1]}
	}
	d.mu.Lock()
	p := d.epProgs[cookie]
	d.mu.Unlock()
	if p == nil {
		in, inID := pinnedStub(d.stubPin(cookie, Ingress), "ep_ingress")
		eg, egID := pinnedStub(d.stubPin(cookie, Egress), "ep_egress")
		if in == nil || eg == nil {
			closeAll(in, eg)
			return nil, nil
		}
		fresh := &epPrograms{ingress: in, egress: eg, users: map[int]Mode{}, ids: [2]ebpf.ProgramID{inID, egID}}
		d.mu.Lock()
		if p = d.epProgs[cookie]; p == nil {
			p, d.epProgs[cookie] = fresh, fresh
		}
		d.mu.Unlock()
		if p != fresh {
			_ = fresh.close() // another worker took them first
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return p, map[Hook]ebpf.ProgramID{Ingress: p.id(Ingress), Egress: p.id(Egress)}
}

// runsStubs reports the mode in which both hooks of t run the programs
// want: our filters, or our pinned TCX links. Its thread is in the netns
// only to open a socket that tells the netns's cookie and an rtnetlink
// socket; the filters are asked for from wherever it runs next.
func (d *Datapath) runsStubs(t target, want map[Hook]ebpf.ProgramID) (Mode, bool) {
	rtnl := -1
	err := nsthread.DoPath(t.netns, func() error {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		unix.Close(fd)
		if err != nil || cookie != t.cookie {
			return errors.New("another netns")
		}
		rtnl, err = rtnetlinkSocket()
		return err
	})
	if err != nil {
		return "", false
	}
	tcOK := true
	for seq, hook := range []Hook{Ingress, Egress} {
		id, ours, err := filterProgOn(rtnl, t.ifindex, hook, uint32(seq+1))
		tcOK = tcOK && err == nil && ours && id == want[hook]
	}
	if unix.Close(rtnl) == nil && tcOK {
		return ModeTC, true
	}
	for _, hook := range []Hook{Ingress, Egress} {
		if !d.tcxRuns(t, hook, want[hook]) {
			return "", false
		}
	}
	return ModeTCX, true
}

// tcxRuns reports whether our pinned TCX link of the hook is alive on t's
// link and runs prog.
func (d *Datapath) tcxRuns(t target, hook Hook, prog ebpf.ProgramID) bool {
	l, err := link.LoadPinnedLink(d.linkPin(t, hook), nil)
	if err != nil {
		return false
	}
	defer l.Close()
	info, err := l.Info()
	return err == nil && info.Program == prog && tcxLinkAlive(l, t.ifindex)
}

// pinnedStub is pinnedStubs for one hook, cheaper (no /proc/self/fdinfo):
// the stub pinned at pin, if it is named name, and its ID.
func pinnedStub(pin, name string) (*ebpf.Program, ebpf.ProgramID) {
	fd, err := objGet(pin)
	if err != nil {
		return nil, 0
	}
	p, err := ebpf.NewProgramFromFD(fd)
	if err != nil {
		unix.Close(fd)
		return nil, 0
	}
	info, ok := progInfo(p)
	if !ok || unix.ByteSliceToString(info.Name[:]) != name {
		p.Close()
		return nil, 0
	}
	return p, ebpf.ProgramID(info.ID)
}

// objGet is BPF_OBJ_GET of a pin: ebpf.LoadPinnedProgram also reads the
// fd's link in /proc/self/fd to tell its type, which NewProgramFromFD
// learns from the kernel anyway.
func objGet(pin string) (int, error) {
	path, err := unix.BytePtrFromString(pin)
	if err != nil {
		return 0, err
	}
	attr := struct {
		pathname         uint64
		bpfFD, fileFlags uint32
	}{pathname: uint64(uintptr(unsafe.Pointer(path)))}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(path)
	if errno != 0 {
		return 0, errno
	}
	return int(fd), nil
}

func closeAll(progs ...*ebpf.Program) {
	for _, p := range progs {
		if p != nil {
			p.Close()
		}
	}
}

// progInfoHead is the head of struct bpf_prog_info, up to its name.
type progInfoHead struct {
	Type, ID                        uint32
	Tag                             [8]byte
	JitedProgLen, XlatedProgLen     uint32
	JitedProgInsns, XlatedProgInsns uint64
	LoadTime                        uint64
	CreatedByUID, NrMapIDs          uint32
	MapIDs                          uint64
	Name                            [16]byte
}

// progInfo asks BPF_OBJ_GET_INFO_BY_FD alone for p's ID and name
// (Program.Info reads /proc/self/fdinfo too).
func progInfo(p *ebpf.Program) (progInfoHead, bool) {
	var info progInfoHead
	attr := struct {
		fd, infoLen uint32
		info        uint64
	}{uint32(p.FD()), uint32(unsafe.Sizeof(info)), uint64(uintptr(unsafe.Pointer(&info)))}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET_INFO_BY_FD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	return info, errno == 0
}
