package doctor

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	mvlink "github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/nsthread"
)

// Impacts of missing link drivers.
const (
	impactMacvlan = "no macvlan: mvlan cannot create endpoints at all (the kernel needs CONFIG_MACVLAN)"
	impactVLAN    = "no 8021q: NAME.VID parents cannot be created; use a pre-created link"
	impactVeth    = "no veth: mvlan itself does not need it, but the privileged tests and the demo build their hosts from veth pairs"
	impactNoLocal = "networks without a parent cannot be created (they need a dummy link or a port-less bridge)"
)

// linkChecks tries each link kind mvlan creates: macvlan, 802.1q, dummy,
// bridge (the fallback for dummy) and veth.
func linkChecks(ctx context.Context) ([]Check, error) {
	f, err := mvlink.ProbeFeatures()
	if err != nil {
		return nil, fmt.Errorf("doctor: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("doctor: %w", err)
	}
	veth, err := nsthread.Fresh(ctx, 0, probeVeth)
	if err != nil {
		return nil, fmt.Errorf("doctor: %w", err)
	}
	dummy, bridge := localImpacts(f.Dummy, f.Bridge)
	return []Check{
		probed(CheckMacvlan, "macvlan", f.Macvlan, f.Errs["macvlan"], impactMacvlan),
		probed(CheckVLAN, "vlan", f.VLAN, f.Errs["vlan"], impactVLAN),
		probed(CheckDummy, "dummy", f.Dummy, f.Errs["dummy"], dummy),
		probed(CheckBridge, "bridge", f.Bridge, f.Errs["bridge"], bridge),
		veth,
	}, nil
}

// localImpacts says what a missing dummy or bridge driver means: the two
// are alternatives for networks without a parent.
func localImpacts(dummy, bridge bool) (dummyImpact, bridgeImpact string) {
	switch {
	case !dummy && !bridge:
		return "no dummy and no bridge: " + impactNoLocal,
			"no bridge and no dummy: " + impactNoLocal
	case !dummy:
		return "no dummy: networks without a parent use a port-less bridge instead", ""
	case !bridge:
		return "", "no bridge: nothing lost while dummy is present (bridge is only the fallback for networks without a parent)"
	}
	return "", ""
}

// probed turns one result of link.ProbeFeatures into a check.
func probed(name, kind string, ok bool, why, impact string) Check {
	if ok {
		return Check{Name: name, OK: true, Detail: "created a " + kind + " link in a throwaway netns"}
	}
	if why == "" {
		why = "not supported"
	}
	return Check{Name: name, Detail: "creating a " + kind + " link: " + why, Impact: impact}
}

// probeVeth creates a veth pair; it runs in a throwaway netns.
func probeVeth() (Check, error) {
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return Check{}, fmt.Errorf("netlink: %w", err)
	}
	defer nl.Close()
	a := netlink.NewLinkAttrs()
	a.Name = "doctor0"
	err = nl.LinkAdd(&netlink.Veth{LinkAttrs: a, PeerName: "doctor1"})
	if err != nil {
		err = fmt.Errorf("creating a veth pair: %w", err)
	}
	return result(CheckVeth, err, "created a veth pair in a throwaway netns", impactVeth), nil
}
