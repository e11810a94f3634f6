package link

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// Features says which link drivers the running kernel has.
type Features struct {
	Macvlan bool
	VLAN    bool // 802.1q (8021q)
	Dummy   bool
	Bridge  bool
	Errs    map[string]string // why a probe failed, by feature: "macvlan", "vlan", "dummy", "bridge"
}

// ProbeFeatures finds out which drivers the kernel has by creating one link
// of each kind in a throw-away network namespace (nsthread.Fresh); the
// host's namespace is never touched. (The kernel may load a driver module
// on demand while probing.)
func ProbeFeatures() (Features, error) {
	f, err := nsthread.Fresh(context.Background(), 0, probeHere)
	if err != nil {
		return Features{}, fmt.Errorf("probe features: %w", err)
	}
	return f, nil
}

func probeHere() (Features, error) {
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return Features{}, fmt.Errorf("probe features: netlink: %w", err)
	}
	defer nl.Close()
	f := Features{Errs: map[string]string{}}
	try := func(key string, l netlink.Link) bool {
		if err := nl.LinkAdd(l); err != nil {
			f.Errs[key] = err.Error()
			return false
		}
		return true
	}
	f.Bridge = try("bridge", &netlink.Bridge{LinkAttrs: probeAttrs("probebr", 0)})
	f.Dummy = try("dummy", &netlink.Dummy{LinkAttrs: probeAttrs("probedm", 0)})
	lower := 0
	if try("veth", &netlink.Veth{LinkAttrs: probeAttrs("probe0", 0), PeerName: "probe1"}) {
		lower = probeIndex(nl, "probe0")
	} else if f.Bridge {
		lower = probeIndex(nl, "probebr")
	}
	delete(f.Errs, "veth")
	if lower == 0 {
		f.Errs["macvlan"] = "no Ethernet link (veth or bridge) to probe on"
		f.Errs["vlan"] = f.Errs["macvlan"]
		return f, nil
	}
	f.Macvlan = try("macvlan", &netlink.Macvlan{LinkAttrs: probeAttrs("probemv", lower), Mode: netlink.MACVLAN_MODE_BRIDGE})
	f.VLAN = try("vlan", &netlink.Vlan{LinkAttrs: probeAttrs("probevl", lower), VlanId: 50})
	return f, nil
}

func probeAttrs(name string, parent int) netlink.LinkAttrs {
	a := netlink.NewLinkAttrs()
	a.Name, a.ParentIndex = name, parent
	return a
}

func probeIndex(nl *netlink.Handle, name string) int {
	l, err := nl.LinkByName(name)
	if err != nil {
		return 0
	}
	return l.Attrs().Index
}
