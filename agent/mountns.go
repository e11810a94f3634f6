package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// ErrPrivateMounts is returned by New when the agent runs in a mount
// namespace that is not PID 1's.
var ErrPrivateMounts = errors.New("the agent runs in a mount namespace of its own")

// CheckMountNamespace refuses a mount namespace other than PID 1's: the
// /run/netns/NAME mounts the agent makes for containers, and its bpffs,
// would be seen by nobody else (`ip netns exec NAME` fails with "Invalid
// argument"; the pins go with the namespace). The namespaces are compared
// by the ID of the mount at "/" (/proc/PID/mountinfo is readable where
// /proc/1/ns/mnt is not, e.g. from another mount namespace), unless both
// ns/mnt links can be read and are the same (the common case, and cheap:
// mountinfo has a line for each container's /run/netns mount); where even
// mountinfo cannot be read, nothing can be told and the agent runs.
func CheckMountNamespace() error {
	// This thread's namespace: the main thread may have been left in
	// another by a probe (doctor's throwaway mount namespaces).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if sameNamespace("/proc/thread-self/ns/mnt", "/proc/1/ns/mnt") {
		return nil // PID 1's: the mountinfo files (a line per /run/netns mount) need not be read
	}
	self, err := rootMountID("/proc/thread-self/mountinfo")
	if err != nil {
		return nil
	}
	pid1, err := rootMountID("/proc/1/mountinfo")
	if err != nil || self == pid1 {
		return nil
	}
	return fmt.Errorf("%w (not PID 1's): the network namespaces it makes under /run/netns would be invisible to the host; "+
		"start it in the host's mount namespace: enter only the network namespace (nsenter --net=PATH mvlan agent, not ip netns exec), "+
		"and no PrivateMounts, PrivateTmp, ProtectSystem or ProtectHome in its systemd unit", ErrPrivateMounts)
}

// sameNamespace reports whether the namespace links a and b can be read
// and name the same namespace.
func sameNamespace(a, b string) bool {
	la, errA := os.Readlink(a)
	lb, errB := os.Readlink(b)
	return errA == nil && errB == nil && la == lb
}

// rootMountID is the mount ID (first field) of the mount at "/" in a
// mountinfo file (proc(5)).
func rootMountID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	id := ""
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && fields[4] == "/" {
			id = fields[0] // the last one: mounts over / stack
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if id == "" {
		return "", fmt.Errorf("%s has no mount at /", path)
	}
	return id, nil
}
