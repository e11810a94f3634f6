package engine

import "fmt"

// Status is whether a network can take endpoints now, and if not, why.
type Status uint8

// Network statuses. Only StatusOK takes endpoints.
const (
	StatusOK             Status = iota
	StatusParentForeign         // the parent is a link mvlan did not make for this network
	StatusParentMissing         // the operator's parent link is gone
	StatusParentFailed          // mvlan's parent link is gone and cannot be made again
	StatusDatapathFailed        // the parent programs cannot be attached
	StatusClusterFailed         // a cluster network etcd no longer defines as it is
	StatusRemoving              // a network whose rm is under way (a cluster network's leaving etcd)
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusParentForeign:
		return "parent-foreign"
	case StatusParentMissing:
		return "parent-missing"
	case StatusParentFailed:
		return "parent-failed"
	case StatusDatapathFailed:
		return "datapath-failed"
	case StatusClusterFailed:
		return "cluster-failed"
	case StatusRemoving:
		return "removing"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// health is a network's status with what the operator needs to know.
type health struct {
	status Status
	parent string // the parent link it concerns
	err    error  // the cause, for the failures
}

func healthy() health { return health{status: StatusOK} }

// String is the status as `mvlan network ls` shows it.
func (h health) String() string {
	switch h.status {
	case StatusOK:
		return "ok"
	case StatusParentForeign:
		return fmt.Sprintf("parent %s exists but was not created by mvlan for this network; it will not be deleted", h.parent)
	case StatusParentMissing:
		return fmt.Sprintf("parent link %s is missing; create it again (mvlan did not create it, so it does not recreate it)", h.parent)
	case StatusParentFailed:
		return fmt.Sprintf("cannot recreate parent %s: %v", h.parent, h.err)
	case StatusRemoving:
		return "being removed"
	}
	return fmt.Sprintf("%v", h.err)
}

// linkHealth is the status of n's parent and datapath (not its cluster's,
// clusterDrift's, nor a removal under way).
func (n *network) linkHealth() health {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status
}

// failer is a network's space that can fail for good: a cluster
// network's (cluster.Space.Failed).
type failer interface{ Failed() error }

// health is the network's status: whether it is being removed, then its
// parent's and datapath's (status), then its cluster's. Caller
// holds n.mu.
func (n *network) health() health {
	if n.removing { // whatever its parent's: no attach while rm is under way
		return health{status: StatusRemoving}
	}
	if n.status.status != StatusOK {
		return n.status
	}
	if f, ok := n.space.(failer); ok {
		if err := f.Failed(); err != nil {
			return health{status: StatusClusterFailed, err: err}
		}
	}
	return n.status
}
