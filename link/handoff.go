package link

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HandoffSpec describes a macvlan slave that someone else moves into a
// container's namespace and configures there: Docker, after the remote
// driver's Join names it.
type HandoffSpec struct {
	Parent string           // parent link name in the host namespace
	Mode   string           // bridge (default), private, vepa or passthru
	MAC    net.HardwareAddr // required, unicast; in passthru mode also becomes the parent's
	Alias  string           // IFLA_IFALIAS, e.g. mvlan/<agent>/ep/<id>; kept when the link moves
}

// CreateHandoff creates a macvlan slave of s.Parent in h's namespace, DOWN,
// under a temporary name (TempPrefixFor the Host's tag), with s.MAC and
// s.Alias, and returns that name. The slave stays in h's namespace for the
// caller's client to move, rename, address and bring up; until it moves, a
// crash leaves a link that a reconcile recognises by its temporary name. On
// failure nothing is left.
func (h *Host) CreateHandoff(ctx context.Context, s HandoffSpec) (name string, err error) {
	if s.Mode == "" {
		s.Mode = "bridge"
	}
	if err := CheckMode(s.Mode); err != nil {
		return "", err
	}
	if len(s.MAC) != 6 || s.MAC[0]&1 != 0 {
		return "", fmt.Errorf("MAC %q is not a unicast Ethernet address; use e.g. 02:42:ac:10:56:0a", s.MAC)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	parent, err := linkByName(h.nl, s.Parent)
	if err != nil {
		return "", fmt.Errorf("parent %w", err)
	}
	var tmp string
	for range 3 { // a clash of random temporary names is retried
		tmp = tempName(h.tag)
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.Alias, attrs.HardwareAddr = tmp, s.Alias, s.MAC
		attrs.ParentIndex = parent.Attrs().Index
		err = h.nl.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: macvlanModes[s.Mode]})
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("add macvlan on %s: %w", s.Parent, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, deleteByName(h.nl, tmp))
		}
	}()
	l, err := h.nl.LinkByName(tmp)
	if err != nil {
		return "", fmt.Errorf("find new macvlan %s: %w", tmp, err)
	}
	if !bytes.Equal(l.Attrs().HardwareAddr, s.MAC) {
		// passthru slaves inherit the parent's MAC at creation (see addSlave).
		if err := h.nl.LinkSetHardwareAddr(l, s.MAC); err != nil {
			return "", fmt.Errorf("set MAC %s: %w", s.MAC, err)
		}
	}
	if s.Alias != "" && l.Attrs().Alias != s.Alias {
		if err := h.nl.LinkSetAlias(l, s.Alias); err != nil {
			return "", fmt.Errorf("set alias: %w", err)
		}
	}
	return tmp, nil
}

// DeleteByAlias deletes every link of h's namespace whose alias is alias
// (a slave handed back by the client that moved it). None is not an error.
func (h *Host) DeleteByAlias(alias string) error {
	if alias == "" {
		return errors.New("delete by alias: empty alias")
	}
	links, err := h.Links()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		if l.Alias == alias {
			errs = append(errs, h.Delete(l.Name))
		}
	}
	return errors.Join(errs...)
}
