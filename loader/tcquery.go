package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The start-up check of many endpoints (AdoptEndpoint) asks for each hook's
// filters on a bare rtnetlink socket: one request and its answer, with
// nothing of go-tc's decoding nor of the Go poller's waits (a dump is
// answered during the request, so the read does not block).

// Attributes of a cls_bpf filter (linux/pkt_cls.h).
const (
	tcaBPFName = 7
	tcaBPFID   = 11
)

// sizeofTcMsg is the size of struct tcmsg: family, 3 bytes of padding,
// ifindex, handle, parent, info.
const sizeofTcMsg = 20

// dumpBufs are the read buffers of filterProgOn: one per call would be
// most of what a start allocates (a GC cycle every few hundred endpoints).
var dumpBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// rtnetlinkSocket opens an rtnetlink socket in the calling thread's netns.
func rtnetlinkSocket() (int, error) {
	return unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
}

// filterProgOn is ourFilterProg on a bare rtnetlink socket: the ID of the
// program our filter runs on the hook of ifindex, and whether our filter
// is there. seq tells this request's answer from others'.
func filterProgOn(fd, ifindex int, hook Hook, seq uint32) (id ebpf.ProgramID, ours bool, err error) {
	err = tcDump(fd, unix.RTM_GETTFILTER, ifindex, tcParent(hook), seq, func(data []byte) {
		if fid, isOurs, found := ourFilterIn(data); found {
			id, ours = fid, isOurs
		}
	})
	if err != nil {
		return 0, false, fmt.Errorf("list tc filters: %w", err)
	}
	return id, ours, nil
}

// tcDump sends a dump request typ (RTM_GETQDISC, RTM_GETTCLASS,
// RTM_GETTFILTER) for link ifindex (and, for filters, parent) on the bare
// rtnetlink socket fd and gives fn the body (tcmsg and attributes) of
// each object of the answer. seq tells this request's answer from others'.
func tcDump(fd int, typ uint16, ifindex int, parent, seq uint32, fn func(data []byte)) error {
	var b nlBuilder
	b.begin(typ, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq, ifindex, 0, parent, 0)
	b.end()
	if err := unix.Sendto(fd, b.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	return readAnswer(fd, seq, func(h syscall.NlMsghdr, data []byte) {
		if h.Type == typ-2 { // the RTM_NEW* of the RTM_GET* asked
			fn(data)
		}
	})
}

// readAnswer reads the answer to request seq on fd, up to its NLMSG_DONE
// or its NLMSG_ERROR (an acknowledgement when its errno is 0), and gives
// fn each other message. A dump that failed part way says so in its
// NLMSG_DONE (the errno after the header): that is the error returned,
// after fn has had what came before it.
func readAnswer(fd int, seq uint32, fn func(h syscall.NlMsghdr, data []byte)) error {
	bp := dumpBufs.Get().(*[]byte)
	defer dumpBufs.Put(bp)
	buf := *bp
	ne := binary.NativeEndian
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			switch {
			case m.Header.Seq != seq:
			case m.Header.Type == unix.NLMSG_DONE:
				if len(m.Data) >= 4 {
					if errno := -int32(ne.Uint32(m.Data)); errno > 0 {
						return unix.Errno(errno)
					}
				}
				return nil
			case m.Header.Type == unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return errors.New("short netlink error")
				}
				if errno := -int32(ne.Uint32(m.Data)); errno != 0 {
					return unix.Errno(errno)
				}
				return nil // an acknowledgement
			default:
				fn(m.Header, m.Data)
			}
		}
	}
}

// ourFilterIn reads one filter of a dump: found if it is at our priority
// and handle, ours if it is also a cls_bpf filter with our name prefix
// (another at our place is not ours: the full attach path reports it).
func ourFilterIn(data []byte) (id ebpf.ProgramID, ours, found bool) {
	f, ok := tcObjOf(data)
	if !ok || !f.inPlace() {
		return 0, false, false
	}
	return f.bpfID, f.ours(), true
}

// attrs yields the netlink attributes in b by type (nested flag cleared).
func attrs(b []byte) func(yield func(uint16, []byte) bool) {
	return func(yield func(uint16, []byte) bool) {
		ne := binary.NativeEndian
		for len(b) >= unix.SizeofRtAttr {
			l := int(ne.Uint16(b[0:]))
			if l < unix.SizeofRtAttr || l > len(b) {
				return
			}
			if !yield(ne.Uint16(b[2:])&^unix.NLA_F_NESTED, b[unix.SizeofRtAttr:l]) {
				return
			}
			b = b[min((l+3)&^3, len(b)):]
		}
	}
}
