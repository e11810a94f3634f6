package link

import (
	"context"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkEvent is a link added, changed or removed in a Host's namespace.
type LinkEvent struct {
	Name    string
	Index   int
	MAC     net.HardwareAddr
	Alias   string // IFLA_IFALIAS
	Deleted bool
	Up      bool
	// MacvlanOn is the lower link of a macvlan or macvtap on a link of
	// this namespace; 0 for any other link.
	MacvlanOn int
	// Subscribed marks the first event, which says only that events
	// come from now on: what changed before is for a listing to find.
	Subscribed bool
}

// WatchLinks sends the link events of h's namespace to fn, the first
// once subscribed (Subscribed), until ctx is done or the subscription
// fails (the error is returned).
func (h *Host) WatchLinks(ctx context.Context, fn func(LinkEvent)) error {
	ch := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	defer close(done)
	errc := make(chan error, 1)
	ns := h.ns
	opts := netlink.LinkSubscribeOptions{
		Namespace: &ns,
		ErrorCallback: func(err error) {
			select {
			case errc <- err:
			default:
			}
		},
	}
	if err := netlink.LinkSubscribeWithOptions(ch, done, opts); err != nil {
		return fmt.Errorf("subscribe to link events: %w", err)
	}
	fn(LinkEvent{Subscribed: true})
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return fmt.Errorf("link events: %w", err)
		case u, ok := <-ch:
			if !ok {
				return fmt.Errorf("link events: subscription closed")
			}
			in, on := infoOf(u.Link), 0
			if in.IsMacvlan() && !in.LowerElsewhere {
				on = in.ParentIndex
			}
			fn(LinkEvent{Name: in.Name, Index: in.Index, MAC: in.MAC, Alias: in.Alias, Deleted: u.Header.Type == unix.RTM_DELLINK, Up: in.Up, MacvlanOn: on})
		}
	}
}
