package loader

import "fmt"

// Modes are the attach modes of the two kinds of links: the parents (and
// trunks) of networks, attached once per network, and the endpoints'
// macvlan slaves, attached on every `run` and detached on every `rm`.
type Modes struct {
	Parent, Endpoint Mode
	// Live is for an endpoint link that already carries traffic when its
	// programs are attached (a Docker endpoint, brought up by dockerd):
	// adding a clsact qdisc to a link that is up deactivates it for a
	// moment and loses frames in flight (TestDocker lost a first ARP), a
	// TCX attach does not. Zero: Endpoint.
	Live Mode
}

// ResolveModes turns --attach-mode into a mode per kind of link. tcx and tc
// force that mode everywhere (tcx fails where the kernel lacks it). auto
// picks by cost: parents get TCX where the kernel has it (links owned by
// the agent, nothing shared with other tc users), endpoints get clsact +
// cls_bpf, because each TCX attach and each detach of an attached TCX link
// waits for an RCU grace period with RTNL held (synchronize_rcu: 25 ms for
// both hooks here against 1.5 ms for clsact, and as much again on detach),
// which would be most of an attach; a packet pays a few percent more
// through clsact (bench/results.json, datapath).
func ResolveModes(want string) (Modes, error) {
	m, err := ResolveMode(want)
	if err != nil {
		return Modes{}, err
	}
	switch want {
	case "auto":
		return Modes{Parent: m, Endpoint: ModeTC, Live: m}, nil
	case "tcx", "tc":
		return Modes{Parent: m, Endpoint: m, Live: m}, nil
	}
	return Modes{}, fmt.Errorf("attach mode %q: want auto, tcx or tc", want)
}
