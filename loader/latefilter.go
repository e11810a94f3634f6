package loader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cilium/ebpf"
	tc "github.com/florianl/go-tc"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// Late filters: ep_egress's pass ends the hook it runs on (clsact or TCX),
// but a frame then goes through the link's own qdisc, whose filters (a
// container's HTB root and a cls_bpf or pedit filter under it, say) run
// after the check and may rewrite the frame: a neighbour's MAC and
// addresses on a frame the container's kernel sends without a socket,
// which no later check can tell from the neighbour's own. A container that
// is root in its namespace can put them there; nothing of mvlan's needs
// them. The qdiscs and classes stay (shaping is the container's
// business): their filters go, every chain of them; but for a root qdisc
// with more classes than a check lists (maxLateParents), which goes.
//
// The dumps are read on a bare rtnetlink socket, down to the tcmsg and the
// kind and chain attributes only: a kind no decoder knows (a qdisc, an
// action, statistics) cannot make the check fail, and with it the repair.

// maxLateParents bounds the qdiscs and classes a check lists filters of:
// a link with more (a container's HTB of thousands of classes) is
// reported as late_filter unchecked, as if it had one (fail closed).
const maxLateParents = 1024

// errTooManyParents: more qdiscs and classes than a check lists.
var errTooManyParents = errors.New("more qdiscs and classes on the link than the check lists")

// lateSeq numbers the requests of the tamper check's dumps (tcDump's seq).
var lateSeq atomic.Uint32

// tcObj is an object of a tc dump: its tcmsg, kind and (filters) chain;
// of a cls_bpf filter also its name and program (bpfName, bpfID).
type tcObj struct {
	ifindex              int
	handle, parent, info uint32
	kind                 string
	chain                uint32
	bpfName              string
	bpfID                ebpf.ProgramID
}

// tcObjOf reads one object of a dump.
func tcObjOf(data []byte) (tcObj, bool) {
	if len(data) < sizeofTcMsg {
		return tcObj{}, false
	}
	ne := binary.NativeEndian
	o := tcObj{ifindex: int(int32(ne.Uint32(data[4:]))), handle: ne.Uint32(data[8:]), parent: ne.Uint32(data[12:]), info: ne.Uint32(data[16:])}
	var opts []byte
	for typ, val := range attrs(data[sizeofTcMsg:]) {
		switch {
		case typ == unix.TCA_KIND:
			o.kind = strings.TrimRight(string(val), "\x00")
		case typ == unix.TCA_CHAIN && len(val) >= 4:
			o.chain = ne.Uint32(val)
		case typ == unix.TCA_OPTIONS:
			opts = val
		}
	}
	if o.kind != "bpf" {
		return o, true // other kinds' options number their attributes otherwise
	}
	for typ, val := range attrs(opts) {
		switch {
		case typ == tcaBPFName:
			o.bpfName = strings.TrimRight(string(val), "\x00")
		case typ == tcaBPFID && len(val) >= 4:
			o.bpfID = ebpf.ProgramID(ne.Uint32(val))
		}
	}
	return o, true
}

// prio is a filter's priority.
func (o tcObj) prio() uint32 { return o.info >> 16 }

// inPlace: a filter at our priority and handle.
func (o tcObj) inPlace() bool { return o.prio() == FilterPriority && o.handle == FilterHandle }

// ours: a cls_bpf filter with our name prefix (at any place).
func (o tcObj) ours() bool { return o.kind == "bpf" && strings.HasPrefix(o.bpfName, FilterNamePrefix) }

// runs: our filter in our place, running prog (any program when prog is 0).
func (o tcObj) runs(prog ebpf.ProgramID) bool {
	return o.inPlace() && o.ours() && (prog == 0 || o.bpfID == prog)
}

// dumpObjs dumps objects of kind typ of link ifindex (for filters, those
// of parent) on fd.
func dumpObjs(fd int, typ uint16, ifindex int, parent uint32) ([]tcObj, error) {
	var out []tcObj
	err := tcDump(fd, typ, ifindex, parent, lateSeq.Add(1), func(data []byte) {
		if o, ok := tcObjOf(data); ok && o.ifindex == ifindex {
			out = append(out, o)
		}
	})
	return out, err
}

// lateFilters lists, on fd (an rtnetlink socket in the link's namespace),
// the filters of the qdiscs and classes of link ifindex's egress: all but
// clsact's and ingress' (clsact's egress filters after ours never run:
// VERDICT_PASS). A kernel default qdisc (handle 0: noqueue, mq's queues)
// takes none.
func lateFilters(ctx context.Context, fd, ifindex int) ([]tcObj, error) {
	qdiscs, err := dumpObjs(fd, unix.RTM_GETQDISC, ifindex, 0)
	if err != nil {
		return nil, fmt.Errorf("list qdiscs: %w", err)
	}
	var parents []uint32
	for _, q := range qdiscs {
		if q.handle != 0 && q.kind != "clsact" && q.kind != "ingress" {
			parents = append(parents, q.handle)
		}
	}
	if len(parents) == 0 {
		return nil, nil // the common case: one dump
	}
	classes, err := dumpObjs(fd, unix.RTM_GETTCLASS, ifindex, 0)
	if err != nil {
		return nil, fmt.Errorf("list tc classes: %w", err)
	}
	for _, c := range classes {
		parents = append(parents, c.handle)
	}
	if len(parents) > maxLateParents {
		return nil, fmt.Errorf("%w: %d, at most %d", errTooManyParents, len(parents), maxLateParents)
	}
	var filters []tcObj
	for _, p := range parents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fs, err := dumpObjs(fd, unix.RTM_GETTFILTER, ifindex, p)
		switch {
		case errors.Is(err, unix.EMSGSIZE) && len(fs) > 0:
			// A filter too big for a dump message stopped it: its
			// priority's chain (handle 0) came first, which is what a
			// deletion needs.
		case err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOENT):
			return nil, fmt.Errorf("list tc filters of %#x: %w", p, err)
		}
		filters = append(filters, fs...) // none where the parent takes no filters
	}
	return filters, nil
}

// deleteLateFilters deletes the late filters of t's link (lateFilters),
// each priority and protocol of each chain at once.
func deleteLateFilters(ctx context.Context, t target) error {
	return nsthread.DoPath(t.netns, func() error {
		fd, err := rtnetlinkSocket()
		if err != nil {
			return fmt.Errorf("rtnetlink: %w", err)
		}
		defer unix.Close(fd)
		filters, err := lateFilters(ctx, fd, t.ifindex)
		if errors.Is(err, errTooManyParents) {
			// Too many to list their filters: the root qdisc goes,
			// its classes and filters with it (the repair would
			// otherwise fail for good).
			return deleteRootQdisc(fd, t.ifindex)
		}
		if err != nil {
			return err
		}
		var errs []error
		done := map[tcObj]bool{}
		for _, f := range filters {
			key := tcObj{parent: f.parent, info: f.info, chain: f.chain, kind: f.kind}
			if done[key] {
				continue
			}
			done[key] = true
			if err := deleteFilters(fd, t.ifindex, key); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete the %s filters of %#x (chain %d): %w", f.kind, f.parent, f.chain, err))
			}
		}
		return errors.Join(errs...)
	})
}

// deleteRootQdisc deletes, on fd, the root qdisc of link ifindex.
func deleteRootQdisc(fd, ifindex int) error {
	seq := lateSeq.Add(1)
	var b nlBuilder
	b.begin(unix.RTM_DELQDISC, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, ifindex, 0, tc.HandleRoot, 0)
	b.end()
	if err := unix.Sendto(fd, b.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	if err := readAnswer(fd, seq, func(syscall.NlMsghdr, []byte) {}); err != nil {
		return fmt.Errorf("delete the root qdisc (more qdiscs and classes than a check lists): %w", err)
	}
	return nil
}

// deleteFilters deletes, on fd, the filter of link ifindex at f's parent,
// priority and protocol (info) in its chain with f's handle (handle 0:
// all of them).
func deleteFilters(fd, ifindex int, f tcObj) error {
	seq := lateSeq.Add(1)
	var b nlBuilder
	b.begin(unix.RTM_DELTFILTER, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, ifindex, f.handle, f.parent, f.info)
	b.attr(unix.TCA_KIND, append([]byte(f.kind), 0))
	b.attr(unix.TCA_CHAIN, u32(f.chain))
	b.end()
	if err := unix.Sendto(fd, b.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	return readAnswer(fd, seq, func(syscall.NlMsghdr, []byte) {})
}
