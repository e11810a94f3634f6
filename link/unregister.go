package link

import (
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Deleting a link is one system call in two parts. Under RTNL the kernel
// takes the link down, out of its parent's demultiplexing and out of
// every list: from then on it is gone to the network and to any lookup.
// After RTNL it waits for an RCU barrier and for the link's last
// references before freeing it, tens of ms on a busy host (~20 ms for an
// endpoint's macvlan here). deleteUnregistered returns after the first
// part and leaves the second to a goroutine that Host.Close waits for.

// unregisterPoll bounds the wait between two looks for the link.
const unregisterPoll = time.Millisecond

// deleteUnregistered deletes link l of the namespace ns (nl is a handle
// in it) and returns once the kernel has unregistered it, or once the
// deletion ended, whichever is first.
func (h *Host) deleteUnregistered(ns netns.NsHandle, nl *netlink.Handle, l netlink.Link) error {
	del, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	done := make(chan error, 1)
	h.deleting.Add(1)
	go func() {
		defer h.deleting.Done()
		defer del.Close()
		done <- del.LinkDel(l)
	}()
	idx := l.Attrs().Index
	for wait := 50 * time.Microsecond; ; wait = min(2*wait, unregisterPoll) {
		select {
		case err := <-done:
			if err != nil && !isNotFound(err) {
				return fmt.Errorf("delete link %s: %w", l.Attrs().Name, err)
			}
			return nil
		case <-time.After(wait):
		}
		// A link of another name under the index is not this one:
		// the index was given again once this one was unregistered.
		if o, err := nl.LinkByIndex(idx); isNotFound(err) || err == nil && o.Attrs().Name != l.Attrs().Name {
			return nil
		}
	}
}
