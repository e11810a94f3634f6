package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/loader"
	"github.com/mvlan/mvlan/nsthread"
)

// Impacts of missing BPF features.
const (
	impactTCX       = "no TCX (kernel < 6.6): programs attach through clsact + cls_bpf (--attach-mode tc)"
	impactClsact    = "no clsact + cls_bpf: --attach-mode tc and auto (which attaches the endpoints' programs through clsact) cannot attach endpoints; run the agent with --attach-mode tcx"
	impactNoAttach  = "no TCX and no clsact + cls_bpf: the datapath cannot attach (the kernel needs CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF, or 6.6+ for TCX)"
	impactNoProgram = "mvlan's BPF programs cannot be loaded (the kernel or its verifier refuses them): the datapath cannot run"
	impactDirect    = "each network namespace gets two stub programs that hand the endpoint programs its cookie: one tail call more per frame, two small programs loaded per namespace"
	impactBTF       = "no kernel BTF (CONFIG_DEBUG_INFO_BTF): the loader cannot apply CO-RE relocations, so programs that need them fail to load"
	// loIndex is the loopback's ifindex in a new network namespace.
	loIndex = 1
)

// datapathChecks loads mvlan's own programs through the loader, as the
// agent does, and attaches them with TCX and with clsact + cls_bpf to the
// loopback of a throwaway network namespace, with a bpffs for the pins in
// a throwaway mount namespace (both the probing thread's own): a passing
// check proves that the verifier accepts the real programs and that the
// loader attaches them. Nothing is left behind.
func datapathChecks(ctx context.Context) ([]Check, error) {
	checks, err := nsthread.Fresh(ctx, unix.CLONE_NEWNS, probeDatapath)
	if err != nil {
		return nil, fmt.Errorf("doctor: %w", err)
	}
	return checks, nil
}

// probeDatapath runs on a thread with its own network and mount namespaces.
func probeDatapath() ([]Check, error) {
	pins, unmount, err := privateBPFFS()
	if err != nil {
		return nil, err
	}
	defer unmount()
	d, err := loader.Load(context.Background(), pins, loader.PathAuto)
	if err != nil {
		detail := "loading mvlan's programs: " + err.Error()
		return []Check{
			{Name: CheckTCX, Detail: detail, Impact: impactNoProgram},
			{Name: CheckClsact, Detail: detail, Impact: impactNoProgram},
			{Name: CheckDirect, Detail: detail, Impact: impactNoProgram},
		}, nil
	}
	defer d.Close()
	tcxErr := attachAll(d, loader.ModeTCX)
	clsErr := attachAll(d, loader.ModeTC)
	tcxImpact, clsImpact := impactTCX, impactClsact
	var ve *ebpf.VerifierError
	switch {
	case errors.As(tcxErr, &ve) || errors.As(clsErr, &ve):
		tcxImpact, clsImpact = impactNoProgram, impactNoProgram // the endpoint programs load at their first attach
	case tcxErr != nil && clsErr != nil:
		tcxImpact, clsImpact = impactNoAttach, impactNoAttach
	}
	return []Check{
		result(CheckTCX, tcxErr, "loaded mvlan's programs (the verifier accepted them) and attached them with TCX in a throwaway netns", tcxImpact),
		result(CheckClsact, clsErr, "loaded mvlan's programs (the verifier accepted them) and attached them as direct-action cls_bpf filters under clsact in a throwaway netns", clsImpact),
		directCheck(d, tcxErr, clsErr),
	}, nil
}

// directCheck says which path the endpoint programs take (loader's
// EndpointPath), given what attaching them in each mode gave.
func directCheck(d *loader.Datapath, tcxErr, clsErr error) Check {
	if d.Path() != loader.PathDirect {
		detail := "endpoint programs: stub path: no kfunc bpf_cast_to_kern_ctx (Linux < 6.2, or no BTF)"
		if err := d.DirectErr(); err != nil {
			detail = "endpoint programs: stub path: the kernel has the kfunc but refused the direct programs: " + err.Error()
		}
		return Check{Name: CheckDirect, Detail: detail, Impact: impactDirect}
	}
	if tcxErr != nil && clsErr != nil {
		return Check{Name: CheckDirect, Detail: "endpoint programs: direct path; " + errors.Join(tcxErr, clsErr).Error(), Impact: impactNoProgram}
	}
	return Check{Name: CheckDirect, OK: true, Detail: "endpoint programs: direct path: they read their device's namespace (bpf_cast_to_kern_ctx) and are attached to every endpoint as they are"}
}

// attachAll attaches the parent programs, then the endpoint programs (the
// shared ones; on the stub path, this netns's stubs, loaded on first use)
// to the loopback in mode, detaching each pair again.
func attachAll(d *loader.Datapath, mode loader.Mode) error {
	ctx := context.Background()
	if err := d.AttachParent(ctx, "", loIndex, mode); err != nil {
		return fmt.Errorf("attaching the parent programs (%s): %w", mode, err)
	}
	if err := d.DetachParent(ctx, "", loIndex); err != nil {
		return fmt.Errorf("detaching the parent programs (%s): %w", mode, err)
	}
	if err := d.AttachEndpoint(ctx, "", loIndex, mode); err != nil {
		return fmt.Errorf("attaching the endpoint programs (%s): %w", mode, err)
	}
	if err := d.DetachEndpoint(ctx, "", loIndex); err != nil {
		return fmt.Errorf("detaching the endpoint programs (%s): %w", mode, err)
	}
	return nil
}

// privateBPFFS mounts a bpffs on a new temporary directory, in the calling
// thread's own mount namespace (whose mounts it first makes private, so
// none propagates back). unmount removes the mount and the directory.
func privateBPFFS() (dir string, unmount func(), err error) {
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return "", nil, fmt.Errorf("doctor: make the probe's mounts private: %w", err)
	}
	if dir, err = os.MkdirTemp("", "mvlan-doctor-"); err != nil {
		return "", nil, fmt.Errorf("doctor: %w", err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		os.Remove(dir)
		return "", nil, fmt.Errorf("doctor: mount a bpffs for the probe: %w", err)
	}
	return dir, func() {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		_ = os.Remove(dir)
	}, nil
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
