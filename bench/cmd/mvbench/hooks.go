package main

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// The empty-hook datapaths are plain macvlan with a TC program that only
// returns TC_ACT_OK on every hook mvlan uses: the parent's and each
// slave's ingress and egress. They are the floor under mvlan_tc and
// mvlan_tcx: what the hooks cost with nothing in them, on this machine.

// setupEmptyHooks is setupMacvlan's datapath with the empty program
// attached in mode "tc" (clsact + cls_bpf, direct action) or "tcx".
func setupEmptyHooks(e *env, mode, tag, prefix string) (*dpPair, error) {
	p, parent, err := macvlanPair(e, "empty_"+mode, tag, prefix)
	if err != nil {
		return nil, err
	}
	prog, err := emptyProgram(e)
	if err != nil {
		return nil, err
	}
	for ns, dev := range map[string]string{parent: "eth0", p.client: "eth0", p.server: "eth0"} {
		if err := nstest.In(ns, func() error { return attachEmpty(e, prog, mode, dev) }); err != nil {
			return nil, fmt.Errorf("%s: attach on %s in %s: %w", p.key, dev, ns, err)
		}
	}
	p.note = fmt.Sprintf("an empty program on 6 hooks with %s", mode)
	return p, nil
}

// attachEmpty attaches prog on dev's ingress and egress in the calling
// thread's namespace. TCX links are closed at clean-up; a clsact qdisc
// goes with its namespace.
func attachEmpty(e *env, prog *ebpf.Program, mode, dev string) error {
	iface, err := net.InterfaceByName(dev)
	if err != nil {
		return err
	}
	if mode == "tcx" {
		for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			l, err := link.AttachTCX(link.TCXOptions{Interface: iface.Index, Program: prog, Attach: at})
			if err != nil {
				return err
			}
			e.onCleanup("detach an empty TCX program", l.Close)
		}
		return nil
	}
	qdisc := &netlink.GenericQdisc{QdiscType: "clsact", QdiscAttrs: netlink.QdiscAttrs{LinkIndex: iface.Index,
		Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
	errs := []error{netlink.QdiscAdd(qdisc)}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		errs = append(errs, netlink.FilterAdd(&netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: iface.Index,
			Parent: parent, Handle: 1, Priority: 1, Protocol: unix.ETH_P_ALL}, Fd: prog.FD(), Name: "empty", DirectAction: true}))
	}
	return errors.Join(errs...)
}

// emptyProgram loads the program that only returns TC_ACT_OK.
func emptyProgram(e *env) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		return nil, fmt.Errorf("load the empty program: %w", err)
	}
	e.onCleanup("close the empty program", prog.Close)
	return prog, nil
}
