package loader

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf/btf"
)

// How the endpoint programs learn whose frame they see. Where the kernel
// has the kfunc bpf_cast_to_kern_ctx (Linux >= 6.2, with BTF), they read
// the cookie of their device's namespace themselves (the *Dev objects,
// bpf/include/endpoint.h) and the two shared programs are attached to
// every endpoint as they are: no program is loaded for an endpoint or a
// namespace, and a frame takes no tail call. Elsewhere (the lab's 6.1),
// each namespace gets two stubs (stub.go) that hand the cookie over in
// skb->cb and tail-call the shared programs through ep_progs.
//
// The shared programs are in ep_progs in both cases: stubs of an agent
// of the other kind, still attached after a restart, keep working (the
// device's programs ignore skb->cb) until the start re-attaches them.

// EndpointPath is how the endpoint programs find their endpoint.
type EndpointPath int

const (
	// PathAuto is PathDirect where the kernel allows it, else PathStub.
	PathAuto EndpointPath = iota
	// PathDirect attaches the shared programs, which read their device's
	// namespace cookie.
	PathDirect
	// PathStub attaches a stub per namespace that tail-calls them.
	PathStub
)

// ParseEndpointPath reads --endpoint-programs: auto, direct or stub.
func ParseEndpointPath(s string) (EndpointPath, error) {
	switch s {
	case "auto":
		return PathAuto, nil
	case "direct":
		return PathDirect, nil
	case "stub":
		return PathStub, nil
	}
	return 0, fmt.Errorf("endpoint programs %q: want auto, direct or stub", s)
}

func (p EndpointPath) String() string {
	switch p {
	case PathDirect:
		return "direct"
	case PathStub:
		return "stub"
	}
	return "auto"
}

// ErrNoDirectPath is wrapped by Load's error when PathDirect is asked for
// and the kernel lacks what it needs.
var ErrNoDirectPath = errors.New("the kernel has no kfunc bpf_cast_to_kern_ctx (needs Linux 6.2 with BTF)")

// resolvePath turns want into PathDirect or PathStub for this kernel.
func resolvePath(want EndpointPath) (EndpointPath, error) {
	if want == PathStub {
		return PathStub, nil
	}
	if HaveDirectPath() {
		return PathDirect, nil
	}
	if want == PathDirect {
		return 0, fmt.Errorf("endpoint programs direct: %w; use stub or auto", ErrNoDirectPath)
	}
	return PathStub, nil
}

// HaveDirectPath reports whether the kernel's own BTF has the kfunc the
// direct programs call (btf.LoadKernelSpec would also take a vmlinux
// from /boot, which kfunc calls cannot use).
func HaveDirectPath() bool {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return false
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	var fn *btf.Func
	return spec.TypeByName("bpf_cast_to_kern_ctx", &fn) == nil
}

// Path is how this Datapath's endpoint programs find their endpoint:
// PathDirect or PathStub.
func (d *Datapath) Path() EndpointPath {
	if d.direct {
		return PathDirect
	}
	return PathStub
}

// DirectErr is why Load, asked for PathAuto, fell back to PathStub on a
// kernel that has the kfunc: the kernel refused the direct programs. nil
// otherwise.
func (d *Datapath) DirectErr() error { return d.directErr }

// sharedPrograms is the epPrograms of a namespace under PathDirect: the
// shared programs themselves, which it does not own.
func (d *Datapath) sharedPrograms() *epPrograms {
	return &epPrograms{ingress: d.epIngress, egress: d.epEgress, shared: true, users: map[int]Mode{}, ids: d.sharedIDs}
}
