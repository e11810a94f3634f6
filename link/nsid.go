package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nsfile"
	"github.com/mvlan/mvlan/nsthread"
)

// Namespace IDs. A NetnsEvents hears a namespace only if the namespace
// has an ID in the listener's, and the kernel finds that ID for every
// notification, listener by listener, by walking the IDs in ascending
// order (__peernet2id), all of them when the namespace has none: with
// 1000 endpoints about 20 µs per notification, some ten per attach, most
// of them under the RTNL lock. So the IDs mvlan gives count down, each
// below every one it gave before (after a restart too): the newest
// namespace, the one an attach is busy in, comes first in the walk. The
// kernel picks its own IDs (for a veth whose peer is elsewhere) from 0
// up, below nsidFloor.
//
// The price: IDs freed above the lowest are not given again, so with
// namespaces of mixed lifetimes the live ones spread out, and the kernel
// walks a 64-slot node per ID where they are alone in theirs. A full
// walk of 1000 IDs took 27 µs packed and 125 µs one per 64 here. Full
// walks are the notifications of namespaces without an ID (a spare's
// first two, and namespaces mvlan does not manage) and one check per ID
// given; the attach's own, about ten, take none.
const (
	nsidTop   = 1 << 30 // the first ID given is nsidTop-1
	nsidFloor = 1 << 20 // the lowest; then the count starts at the top again
	nsidTries = 64      // IDs tried (others hold them) before giving up
)

// nsids is the next ID a Host gives; 0 until its first use reads the
// IDs there are.
type nsids struct {
	mu   sync.Mutex
	next int
}

// NetnsID returns the ID of the namespace at path in h's namespace,
// giving it one if it has none, so that its notifications reach a
// NetnsEvents. The ID holds no reference: it goes with the namespace.
func (h *Host) NetnsID(path string) (int, error) { return h.netnsID(path, true) }

// GiveNetnsID is NetnsID for a namespace just made, which has no ID yet:
// it asks for one at once. Looking first would walk every ID there is,
// and so does the kernel's own check before it gives one: one walk
// instead of two.
func (h *Host) GiveNetnsID(path string) (int, error) { return h.netnsID(path, false) }

func (h *Host) netnsID(path string, look bool) (int, error) {
	f, err := nsfile.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fd := int(f.Fd())
	if look {
		if id, err := h.nl.GetNetNsIdByFd(fd); err == nil && id >= 0 {
			return id, nil
		}
	}
	id, err := h.giveNetnsID(fd)
	if err != nil {
		return 0, fmt.Errorf("give %s an ID: %w", nsName(path), err)
	}
	return id, nil
}

// giveNetnsID gives the namespace open at fd the next ID down and returns
// it, or the ID someone else gave it meanwhile.
func (h *Host) giveNetnsID(fd int) (int, error) {
	h.nsids.mu.Lock()
	defer h.nsids.mu.Unlock()
	if h.nsids.next == 0 {
		low, err := h.lowestNetnsID()
		if err != nil {
			return 0, err
		}
		h.nsids.next = below(low)
	}
	for range nsidTries {
		id := h.nsids.next
		h.nsids.next = below(id)
		err := h.nl.SetNetNsIdByFd(fd, id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return 0, err
		}
		// EEXIST: the namespace has an ID now, or id is another's.
		if got, err := h.nl.GetNetNsIdByFd(fd); err == nil && got >= 0 {
			return got, nil
		}
	}
	return 0, fmt.Errorf("%d IDs in a row are taken", nsidTries)
}

// below is the ID given after id: the next one down, or the top again
// after the floor.
func below(id int) int {
	if id-1 < nsidFloor {
		return nsidTop - 1
	}
	return id - 1
}

// lowestNetnsID is the lowest ID in [nsidFloor, nsidTop) of h's
// namespace, nsidTop if there is none.
func (h *Host) lowestNetnsID() (int, error) {
	low := nsidTop
	err := nsthread.Do(h.ns, func() error {
		req := nl.NewNetlinkRequest(unix.RTM_GETNSID, unix.NLM_F_DUMP)
		gen := nl.NewRtGenMsg()
		req.AddData(gen)
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNSID)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			id, ok, err := nsidIn(m)
			if err != nil {
				return err
			}
			if ok && id >= nsidFloor && id < low {
				low = id
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list namespace IDs: %w", err)
	}
	return low, nil
}

// nsidIn reads the ID (NETNSA_NSID) of an RTM_NEWNSID message; ok is
// false when it has none.
func nsidIn(m []byte) (id int, ok bool, err error) {
	hdr := nl.NewRtGenMsg().Len()
	if len(m) < hdr {
		return 0, false, nil
	}
	attrs, err := nl.ParseRouteAttr(m[hdr:])
	if err != nil {
		return 0, false, err
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.NETNSA_NSID && len(a.Value) >= 4 {
			return int(int32(binary.NativeEndian.Uint32(a.Value))), true, nil
		}
	}
	return 0, false, nil
}
