// Package link manages the kernel objects of mvlan networks: parent links,
// 802.1q sub-interfaces, host-only links, macvlan endpoints and named network
// namespaces.
//
// All netlink traffic goes through per-namespace handles (see OpenHost and
// AttachEndpoint); there is no package-level netlink handle. Work that cannot
// be addressed to a namespace through netlink (sysctls under /proc/sys/net,
// AF_PACKET sockets) runs on a locked OS thread that enters the namespace for
// the duration of the call (see Do).
//
// Crash safety: every link this package creates is born DOWN and receives
// the caller's alias (IFLA_IFALIAS) right after creation, before it is
// brought up (the kernel ignores IFLA_IFALIAS in RTM_NEWLINK, so it takes a
// second message). Host links and passthru endpoints are born under a
// temporary name (TempPrefix followed by 8 hex digits) and renamed; other
// endpoints under their final name with their MAC, which the caller records
// before (a rename waits for an RCU grace period under RTNL). A process
// killed at any point therefore leaves at most a link whose name starts with
// TempPrefix, an endpoint link without alias that the caller's record names
// (Host.DeleteHalfMade), or a link that carries the caller's alias; all are
// recognisable by a reconcile pass.
package link

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
)

// TempPrefix starts the name of every link while it is being created.
const TempPrefix = "mvtmp"

var (
	// ErrNotFound is wrapped by errors about a link or namespace that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is wrapped by errors about a link or namespace that already exists.
	ErrExists = errors.New("already exists")
	// ErrNotSupported is wrapped when the kernel lacks a driver or feature.
	ErrNotSupported = errors.New("not supported by this kernel")
	// ErrNotNetns is wrapped by CheckNetns's error about a path that is
	// there but is not (or no longer) a network namespace: a file left
	// where one was mounted, another kind of namespace.
	ErrNotNetns = errors.New("not a network namespace")
)

// kernelError carries a message written for the operator while still
// matching both a sentinel and the underlying kernel error with errors.Is.
type kernelError struct {
	msg      string
	sentinel error
	cause    error
}

func (e *kernelError) Error() string   { return e.msg }
func (e *kernelError) Unwrap() []error { return []error{e.sentinel, e.cause} }

// TempPrefixFor is the temporary-name prefix of a Host tagged with tag
// (see Host.SetTag): "mvt" and the first 6 bytes of the tag, so that each
// agent recognises its own half-made links and no one else's.
func TempPrefixFor(tag string) string {
	if tag == "" {
		return TempPrefix
	}
	return "mvt" + (tag + "______")[:6]
}

// tempName returns the temporary name of a link being created: the
// prefix for tag and random hex digits, 15 bytes at most.
func tempName(tag string) string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return (TempPrefixFor(tag) + hex.EncodeToString(b[:]))[:min(15, len(TempPrefixFor(tag))+8)]
}
