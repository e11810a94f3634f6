package link

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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
// of each kind in a throw-away network namespace. The namespace is made on a
// locked thread that is never unlocked, so the thread and the namespace are
// discarded together; the host's namespace is never touched. (The kernel
// may load a driver module on demand while probing.)
func ProbeFeatures() (Features, error) {
	type result struct {
		f   Features
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its netns
		f, err := probeHere()
		ch <- result{f, err}
	}()
	r := <-ch
	return r.f, r.err
}

func probeHere() (Features, error) {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return Features{}, fmt.Errorf("probe features: new netns: %w", err)
	}
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
