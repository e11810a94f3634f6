package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
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
	req := make([]byte, unix.NLMSG_HDRLEN+sizeofTcMsg)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.RTM_GETTFILTER)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	tcm := req[unix.NLMSG_HDRLEN:] // family AF_UNSPEC, handle 0, info 0
	ne.PutUint32(tcm[4:], uint32(int32(ifindex)))
	ne.PutUint32(tcm[12:], tcParent(hook))
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, false, fmt.Errorf("list tc filters: %w", err)
	}
	bp := dumpBufs.Get().(*[]byte)
	defer dumpBufs.Put(bp)
	buf := *bp
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return 0, false, fmt.Errorf("list tc filters: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return 0, false, fmt.Errorf("list tc filters: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return id, ours, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return 0, false, errors.New("list tc filters: short error")
				}
				if errno := -int32(ne.Uint32(m.Data)); errno != 0 {
					return 0, false, fmt.Errorf("list tc filters: %w", unix.Errno(errno))
				}
			case unix.RTM_NEWTFILTER:
				if fid, isOurs, found := ourFilterIn(m.Data); found {
					id, ours = fid, isOurs
				}
			}
		}
	}
}

// ourFilterIn reads one filter of a dump: found if it is at our priority
// and handle, ours if it is also a cls_bpf filter with our name prefix
// (another at our place is not ours: the full attach path reports it).
func ourFilterIn(data []byte) (id ebpf.ProgramID, ours, found bool) {
	if len(data) < sizeofTcMsg {
		return 0, false, false
	}
	ne := binary.NativeEndian
	handle, info := ne.Uint32(data[8:]), ne.Uint32(data[16:])
	if info>>16 != FilterPriority || handle != FilterHandle {
		return 0, false, false
	}
	var kind, name string
	for typ, val := range attrs(data[sizeofTcMsg:]) {
		switch typ {
		case unix.TCA_KIND:
			kind = strings.TrimRight(string(val), "\x00")
		case unix.TCA_OPTIONS:
			for typ, val := range attrs(val) {
				switch {
				case typ == tcaBPFName:
					name = strings.TrimRight(string(val), "\x00")
				case typ == tcaBPFID && len(val) >= 4:
					id = ebpf.ProgramID(ne.Uint32(val))
				}
			}
		}
	}
	return id, kind == "bpf" && strings.HasPrefix(name, FilterNamePrefix), true
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
