package link

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// What is done to an endpoint link after its attach, in its namespace:
// detach, silence, the clean-up of one a crash left half made, listing
// and the repair of its MAC.

// DeleteHalfMade deletes, in the namespace at netnsPath, what a crash
// left of an endpoint attach that never set its alias: links whose names
// carry this Host's temporary prefix, and a macvlan named ifName ("" means
// eth0) with the endpoint's mac, in bornGroup, down and without alias. A
// missing namespace is not an error.
func (h *Host) DeleteHalfMade(netnsPath, ifName string, mac net.HardwareAddr) error {
	return h.deleteHalfMade(netnsPath, ifName, mac, true)
}

// DeleteBorn is DeleteHalfMade with only this endpoint's links under the
// temporary prefix (born with mac, unmarked, down): for a namespace where
// other endpoints' links may be being made meanwhile (a start making lost
// links again, in parallel).
func (h *Host) DeleteBorn(netnsPath, ifName string, mac net.HardwareAddr) error {
	return h.deleteHalfMade(netnsPath, ifName, mac, false)
}

func (h *Host) deleteHalfMade(netnsPath, ifName string, mac net.HardwareAddr, temps bool) error {
	if ifName == "" {
		ifName = "eth0"
	}
	prefix := TempPrefixFor(h.tag)
	return inNetns(netnsPath, func(nl *netlink.Handle) error {
		links, err := linkList(nl)
		if err != nil {
			return err
		}
		var errs []error
		for _, l := range links {
			a := l.Attrs()
			halfMade := l.Type() == "macvlan" && a.Alias == "" && a.Group == bornGroup &&
				a.Flags&net.FlagUp == 0 && len(mac) > 0 && bytes.Equal(a.HardwareAddr, mac)
			temp := strings.HasPrefix(a.Name, prefix)
			if halfMade && (a.Name == ifName || temp) || temps && temp {
				errs = append(errs, deleteByName(nl, a.Name))
			}
		}
		return errors.Join(errs...)
	}, true)
}

// DetachEndpoint deletes the endpoint link ifName ("" means eth0) in the
// namespace at netnsPath; its addresses and routes go with it. It returns
// once the link is unregistered: the kernel frees it in the background
// (deleteUnregistered). A missing link or namespace is not an error.
func (h *Host) DetachEndpoint(ctx context.Context, netnsPath, ifName string) error {
	if ifName == "" {
		ifName = "eth0"
	}
	return h.detach(ctx, netnsPath, "endpoint "+ifName, func(nl *netlink.Handle) (netlink.Link, error) { return nl.LinkByName(ifName) })
}

// DetachLink deletes the link with index ifindex in the namespace at
// netnsPath, whatever it is named now: a container can rename its links,
// and between a look-up and a deletion by name swap another of its own
// in (the endpoint's link would stay, unknown to mvlan). It returns once
// the link is unregistered. A missing link or namespace is not an error.
func (h *Host) DetachLink(ctx context.Context, netnsPath string, ifindex int) error {
	return h.detach(ctx, netnsPath, fmt.Sprintf("link %d", ifindex), func(nl *netlink.Handle) (netlink.Link, error) { return nl.LinkByIndex(ifindex) })
}

// detach deletes the link find finds in the namespace at netnsPath (what
// names it in errors) and waits until it is unregistered; a missing link
// or namespace is not an error.
func (h *Host) detach(ctx context.Context, netnsPath, what string, find func(*netlink.Handle) (netlink.Link, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return inNetnsAt(netnsPath, func(ns netns.NsHandle, nl *netlink.Handle) error {
		l, err := find(nl)
		if err == nil {
			err = h.deleteUnregistered(ns, nl, l)
		}
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("detach %s in %s: %w", what, netnsPath, err)
		}
		return nil
	}, true)
}

// SilenceEndpoint takes every address off the endpoint link ifName in the
// namespace at netnsPath: nothing reaches it at its addresses any more, and
// its routes go with them. Setting the link down would do too, but a
// macvlan going down waits for an RCU grace period (macvlan_stop), and
// deleting it for an RCU barrier; removing addresses waits for neither, so
// a removal can answer before the link is deleted.
//
// The link is the macvlan with index ifindex (when not 0), else the one
// whose alias is alias; there being none is an error that wraps
// ErrNotFound.
func (h *Host) SilenceEndpoint(ctx context.Context, netnsPath string, ifindex int, alias string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return inNetns(netnsPath, func(nl *netlink.Handle) error {
		l, err := endpointLink(nl, ifindex, alias)
		if err != nil {
			return fmt.Errorf("silence endpoint in %s: %w", netnsPath, err)
		}
		ifName := l.Attrs().Name
		addrs, err := addrList(nl, l, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("silence endpoint %s in %s: %w", ifName, netnsPath, err)
		}
		for _, a := range addrs {
			if err := nl.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("silence endpoint %s in %s: remove %s: %w", ifName, netnsPath, a.IPNet, err)
			}
		}
		return nil
	}, false)
}

// endpointLink is the macvlan with index ifindex (when not 0) in nl's
// namespace, else the link whose alias is alias.
func endpointLink(nl *netlink.Handle, ifindex int, alias string) (netlink.Link, error) {
	if ifindex != 0 {
		l, err := nl.LinkByIndex(ifindex)
		if err == nil && l.Type() == "macvlan" {
			return l, nil
		}
		if err != nil && !isNotFound(err) {
			return nil, err
		}
	}
	links, err := linkList(nl)
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if alias != "" && l.Attrs().Alias == alias {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no link with index %d or alias %q: %w", ifindex, alias, ErrNotFound)
}

// EndpointLinks lists the links of the namespace at netnsPath, for finding
// endpoints by alias.
func EndpointLinks(netnsPath string) ([]Info, error) {
	var out []Info
	err := inNetns(netnsPath, func(nl *netlink.Handle) (err error) {
		out, err = listLinks(nl)
		return err
	}, false)
	return out, err
}

// SetEndpointMAC sets the MAC of link ifindex in the namespace at
// netnsPath (the tamper check restores a MAC the container changed).
func SetEndpointMAC(netnsPath string, ifindex int, mac net.HardwareAddr) error {
	return inNetns(netnsPath, func(nl *netlink.Handle) error {
		l, err := nl.LinkByIndex(ifindex)
		if err != nil {
			return fmt.Errorf("link %d in %s: %w", ifindex, netnsPath, err)
		}
		if err := nl.LinkSetHardwareAddr(l, mac); err != nil {
			return fmt.Errorf("set MAC %s on %s in %s: %w", mac, l.Attrs().Name, netnsPath, err)
		}
		return nil
	}, false)
}

// inNetns runs fn with a netlink handle in the namespace at path. With
// missingOK, a namespace that does not exist makes it return nil.
func inNetns(path string, fn func(*netlink.Handle) error, missingOK bool) error {
	return inNetnsAt(path, func(_ netns.NsHandle, nl *netlink.Handle) error { return fn(nl) }, missingOK)
}

// inNetnsAt is inNetns that also hands fn the namespace's handle, open
// during the call.
func inNetnsAt(path string, fn func(netns.NsHandle, *netlink.Handle) error, missingOK bool) error {
	ns, err := openNetns(path)
	if missingOK && errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer ns.Close()
	nl, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open netlink in %s: %w", path, err)
	}
	defer nl.Close()
	return fn(ns, nl)
}
