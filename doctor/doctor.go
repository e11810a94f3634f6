// Package doctor checks the kernel features mvlan needs and says what a
// missing one means.
//
// Every check is proven by trying: link kinds are created, and mvlan's own
// BPF programs are loaded and attached through the loader (the verifier
// must accept the real programs), all inside throwaway network namespaces
// (nsthread.Fresh). The BPF probe pins on a bpffs mounted in a mount
// namespace of the probing thread's own, which goes with it. Nothing is
// created in the host's own network namespace or mounted in its mount
// namespace.
package doctor

import (
	"context"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// DefaultBPFFS is the directory the agent pins its BPF objects under.
const DefaultBPFFS = "/sys/fs/bpf/mvlan"

// Names of the checks, in the order Run reports them.
const (
	CheckMacvlan = "macvlan"
	CheckVLAN    = "8021q"
	CheckDummy   = "dummy"
	CheckBridge  = "bridge"
	CheckVeth    = "veth"
	CheckTCX     = "tcx"
	CheckClsact  = "clsact"
	// CheckDirect: the endpoint programs can read their device's
	// namespace, so they are attached to every endpoint as they are (else
	// through a stub per namespace).
	CheckDirect = "ep-direct"
	CheckBTF    = "btf"
	CheckBPFFS  = "bpffs"
)

// needsRoot is the Detail of a check that was not run for lack of privilege.
const needsRoot = "needs root"

// Check is the result of one feature check.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// Impact says what the missing feature means for mvlan; empty when OK.
	Impact string `json:"impact,omitempty"`
	// Skipped is set when the check was not run (Detail says why); OK is
	// then false but the feature may well be present.
	Skipped bool `json:"skipped,omitempty"`
}

// Report is what the kernel has, check by check.
type Report struct {
	Kernel string  `json:"kernel"`
	Checks []Check `json:"checks"`
}

// OK reports whether the check called name ran and found its feature.
func (r Report) OK(name string) bool {
	for _, c := range r.Checks {
		if c.Name == name {
			return c.OK
		}
	}
	return false
}

// Check returns the check called name and whether there is one.
func (r Report) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Run checks the running kernel. bpffs is the agent's --bpffs directory
// ("" means DefaultBPFFS). Checks that need root are reported as skipped
// when the caller is not root. An error means doctor itself failed, not
// that a feature is missing.
func Run(ctx context.Context, bpffs string) (Report, error) {
	return run(ctx, bpffs, os.Geteuid() == 0)
}

func run(ctx context.Context, bpffs string, root bool) (Report, error) {
	if bpffs == "" {
		bpffs = DefaultBPFFS
	}
	kernel, err := kernelRelease()
	if err != nil {
		return Report{}, err
	}
	r := Report{Kernel: kernel}
	if root {
		checks, err := privilegedChecks(ctx)
		if err != nil {
			return Report{}, err
		}
		r.Checks = append(r.Checks, checks...)
	} else {
		r.Checks = append(r.Checks, skipped(privilegedNames...)...)
	}
	if err := ctx.Err(); err != nil {
		return Report{}, fmt.Errorf("doctor: %w", err)
	}
	r.Checks = append(r.Checks, checkBTF(), checkBPFFS(bpffs))
	return r, nil
}

// The checks that create links (in a namespace of their own) or load
// BPF programs.
var (
	linkNames       = []string{CheckMacvlan, CheckVLAN, CheckDummy, CheckBridge, CheckVeth}
	datapathNames   = []string{CheckTCX, CheckClsact, CheckDirect}
	privilegedNames = append(slices.Clone(linkNames), datapathNames...)
)

// privilegedChecks runs both groups; a group that cannot set itself up
// (no namespace of its own without CAP_SYS_ADMIN, no bpffs to mount in
// an unprivileged container) is reported as not run, with the reason,
// and the rest of the report goes on.
func privilegedChecks(ctx context.Context) ([]Check, error) {
	var out []Check
	for _, g := range []struct {
		names []string
		run   func(context.Context) ([]Check, error)
	}{{linkNames, linkChecks}, {datapathNames, datapathChecks}} {
		checks, err := g.run(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("doctor: %w", ctx.Err())
		}
		if err != nil {
			checks = notRun(err, g.names...)
		}
		out = append(out, checks...)
	}
	return out, nil
}

// notRun are the checks a probe could not run, for why.
func notRun(why error, names ...string) []Check {
	out := make([]Check, 0, len(names))
	for _, n := range names {
		out = append(out, Check{Name: n, Detail: "not probed: " + why.Error(), Skipped: true})
	}
	return out
}

func skipped(names ...string) []Check {
	out := make([]Check, 0, len(names))
	for _, n := range names {
		out = append(out, Check{Name: n, Detail: needsRoot, Skipped: true})
	}
	return out
}

func kernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// result is a check's outcome before it is named.
func result(name string, err error, okDetail, impact string) Check {
	if err != nil {
		return Check{Name: name, Detail: err.Error(), Impact: impact}
	}
	return Check{Name: name, OK: true, Detail: okDetail}
}
