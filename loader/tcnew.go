package loader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// A link the agent has just made has nothing on its hooks, so its tc
// attach does not look first: createTCHooks writes the clsact qdisc and
// both filters in one send on one rtnetlink socket in the link's
// namespace, each created exclusively (NLM_F_CREATE|NLM_F_EXCL), and
// reads the three answers. Where something is there after all (someone's
// clsact, a filter at our priority and handle) the kernel answers EEXIST
// for it, and the attach goes the probing way (attachTCHooks): it keeps
// what is ours, fails on a foreign filter at our place, and a qdisc that
// was there before us is never recorded as ours.

// Attributes of a cls_bpf filter (linux/pkt_cls.h) that createTCHooks sets.
const (
	tcaBPFFD    = 6
	tcaBPFFlags = 8
)

// createTCHooks attaches hooks to the fresh link t, falling back to
// attachTCHooks when the link has something on it already. rtnl is an
// rtnetlink socket in t's namespace (PrepareNetns), or nil: one is opened.
func (d *Datapath) createTCHooks(ctx context.Context, t target, rtnl *os.File, hooks ...tcHook) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rtnl == nil {
		var fd int
		err := nsthread.DoPath(t.netns, func() (err error) {
			fd, err = rtnetlinkSocket()
			return err
		})
		if err != nil {
			return fmt.Errorf("rtnetlink: %w", err)
		}
		rtnl = os.NewFile(uintptr(fd), "rtnetlink")
		defer rtnl.Close()
	}
	answers, err := createExclusive(int(rtnl.Fd()), t.ifindex, hooks)
	if err != nil {
		return err
	}
	if answers[0] == nil { // the qdisc is ours: recorded before anything else can fail
		if err := d.markQdisc(ifaceKey{t.cookie, t.ifindex}); err != nil {
			return err
		}
	}
	if errors.Join(answers...) == nil {
		return nil
	}
	return d.attachTCHooks(ctx, t, hooks...)
}

// createExclusive sends the clsact qdisc and a filter per hook, created
// exclusively, and returns the kernel's answer to each (nil: created).
// The error is the socket's.
func createExclusive(fd, ifindex int, hooks []tcHook) ([]error, error) {
	flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_EXCL)
	var b nlBuilder
	b.begin(unix.RTM_NEWQDISC, flags, 1, ifindex, clsactHandle, tcParentClsact, 0)
	b.attr(unix.TCA_KIND, []byte("clsact\x00"))
	b.end()
	for i, h := range hooks {
		b.begin(unix.RTM_NEWTFILTER, flags, uint32(i+2), ifindex, FilterHandle, tcParent(h.hook), FilterPriority<<16|ethPAllNet)
		b.attr(unix.TCA_KIND, []byte("bpf\x00"))
		opts := b.nest(unix.TCA_OPTIONS)
		b.attr(tcaBPFFD, u32(uint32(h.prog.FD())))
		b.attr(tcaBPFName, []byte(FilterNamePrefix+h.name+"\x00"))
		b.attr(tcaBPFFlags, u32(bpfFlagDirect))
		b.endNest(opts)
		b.end()
	}
	if err := unix.Sendto(fd, b.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("create clsact and filters: %w", err)
	}
	return readAcks(fd, 1+len(hooks))
}

// tcParentClsact is TC_H_CLSACT, the parent of a clsact qdisc.
const tcParentClsact = 0xFFFFFFF1

// readAcks reads the answers to requests with sequence numbers 1..n.
func readAcks(fd, n int) ([]error, error) {
	answers, got := make([]error, n), 0
	bp := dumpBufs.Get().(*[]byte)
	defer dumpBufs.Put(bp)
	buf := *bp
	for got < n {
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("create clsact and filters: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:m])
		if err != nil {
			return nil, fmt.Errorf("create clsact and filters: %w", err)
		}
		for _, msg := range msgs {
			seq := int(msg.Header.Seq)
			if msg.Header.Type != unix.NLMSG_ERROR || seq < 1 || seq > n || len(msg.Data) < 4 {
				continue
			}
			if errno := -int32(binary.NativeEndian.Uint32(msg.Data)); errno != 0 {
				answers[seq-1] = unix.Errno(errno)
			}
			got++
		}
	}
	return answers, nil
}

// nlBuilder builds rtnetlink tc requests (a tcmsg and attributes) one
// after another in one buffer.
type nlBuilder struct {
	buf   []byte
	start int // of the message being built
}

func (b *nlBuilder) begin(typ, flags uint16, seq uint32, ifindex int, handle, parent, info uint32) {
	b.start = len(b.buf)
	h := make([]byte, unix.NLMSG_HDRLEN+sizeofTcMsg)
	ne := binary.NativeEndian
	ne.PutUint16(h[4:], typ)
	ne.PutUint16(h[6:], flags)
	ne.PutUint32(h[8:], seq)
	tcm := h[unix.NLMSG_HDRLEN:] // family AF_UNSPEC
	ne.PutUint32(tcm[4:], uint32(int32(ifindex)))
	ne.PutUint32(tcm[8:], handle)
	ne.PutUint32(tcm[12:], parent)
	ne.PutUint32(tcm[16:], info)
	b.buf = append(b.buf, h...)
}

// end writes the message's length.
func (b *nlBuilder) end() {
	binary.NativeEndian.PutUint32(b.buf[b.start:], uint32(len(b.buf)-b.start))
}

func (b *nlBuilder) attr(typ uint16, val []byte) {
	l := unix.SizeofRtAttr + len(val)
	a := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(a[0:], uint16(l))
	binary.NativeEndian.PutUint16(a[2:], typ)
	copy(a[unix.SizeofRtAttr:], val)
	b.buf = append(b.buf, a...)
}

// nest opens a nested attribute; endNest closes it.
func (b *nlBuilder) nest(typ uint16) int {
	at := len(b.buf)
	b.attr(typ, nil) // without NLA_F_NESTED, as tc(8) sends it
	return at
}

func (b *nlBuilder) endNest(at int) {
	binary.NativeEndian.PutUint16(b.buf[at:], uint16(len(b.buf)-at))
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
