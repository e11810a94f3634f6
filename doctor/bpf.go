package doctor

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	ebpflink "github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Impacts of missing BPF features.
const (
	impactTCX       = "no TCX (kernel < 6.6): programs attach through clsact + cls_bpf (--attach-mode tc)"
	impactClsact    = "no clsact + cls_bpf: --attach-mode tc cannot work; auto uses TCX"
	impactNoAttach  = "no TCX and no clsact + cls_bpf: the datapath cannot attach (the kernel needs CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF, or 6.6+ for TCX)"
	impactNoProgram = "BPF programs cannot be loaded: the datapath cannot run"
	impactBTF       = "no kernel BTF (CONFIG_DEBUG_INFO_BTF): the loader cannot apply CO-RE relocations, so programs that need them fail to load"
	// loIndex is the loopback's ifindex in a new network namespace.
	loIndex = 1
	// tcxNext is TCX_NEXT (and TC_ACT_UNSPEC): pass to the next program.
	tcxNext = -1
)

// datapathChecks loads a trivial TC program and attaches it with TCX and
// with clsact + cls_bpf to the loopback of a throwaway netns.
func datapathChecks(ctx context.Context) ([]Check, error) {
	checks, err := inThrowawayNetns(ctx, probeDatapath)
	if err != nil {
		return nil, fmt.Errorf("doctor: %w", err)
	}
	return checks, nil
}

// probeDatapath runs in a throwaway netns.
func probeDatapath() ([]Check, error) {
	prog, err := trivialProgram()
	if err != nil {
		d := "loading a SchedCLS program: " + err.Error()
		return []Check{
			{Name: CheckTCX, Detail: d, Impact: impactNoProgram},
			{Name: CheckClsact, Detail: d, Impact: impactNoProgram},
		}, nil
	}
	defer prog.Close()
	tcxErr := attachTCX(prog)
	clsErr := attachClsact(prog)
	tcxImpact, clsImpact := impactTCX, impactClsact
	if tcxErr != nil && clsErr != nil {
		tcxImpact, clsImpact = impactNoAttach, impactNoAttach
	}
	return []Check{
		result(CheckTCX, tcxErr, "attached a SchedCLS program with TCX (ingress) in a throwaway netns", tcxImpact),
		result(CheckClsact, clsErr, "attached a direct-action cls_bpf filter under clsact in a throwaway netns", clsImpact),
	}, nil
}

// trivialProgram is a SchedCLS program that returns TCX_NEXT
// (TC_ACT_UNSPEC): it lets every packet through.
func trivialProgram() (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "mvlan_doctor",
		Type: ebpf.SchedCLS,
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, tcxNext),
			asm.Return(),
		},
		License: "GPL",
	})
}

func attachTCX(prog *ebpf.Program) error {
	l, err := ebpflink.AttachTCX(ebpflink.TCXOptions{
		Interface: loIndex,
		Program:   prog,
		Attach:    ebpf.AttachTCXIngress,
	})
	if err != nil {
		return fmt.Errorf("attaching with TCX: %w", err)
	}
	return l.Close()
}

func attachClsact(prog *ebpf.Program) error {
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer nl.Close()
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: loIndex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	if err := nl.QdiscAdd(qdisc); err != nil {
		return fmt.Errorf("adding a clsact qdisc: %w", err)
	}
	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: loIndex,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    netlink.MakeHandle(0, 1),
			Protocol:  unix.ETH_P_ALL,
			Priority:  1,
		},
		Fd:           prog.FD(),
		Name:         "mvlan_doctor",
		DirectAction: true,
	}
	if err := nl.FilterAdd(filter); err != nil {
		return fmt.Errorf("adding a direct-action cls_bpf filter: %w", err)
	}
	return nil
}

// checkBTF loads the kernel's BTF as the BPF loader does.
func checkBTF() Check {
	_, err := btf.LoadKernelSpec()
	if err != nil {
		err = fmt.Errorf("loading /sys/kernel/btf/vmlinux: %w", err)
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return Check{Name: CheckBTF, Detail: err.Error() + " (" + needsRoot + ")", Skipped: true}
		}
	}
	return result(CheckBTF, err, "/sys/kernel/btf/vmlinux loaded", impactBTF)
}
