package cluster

import (
	"errors"
	"log/slog"
)

// reachLog is what the liveness loop last said of etcd, so that an etcd
// that stops answering is logged once (a warning) and once again when it
// answers (info), not at every beat; another failure is warned of when
// it is new.
type reachLog struct {
	last string // "": answering; errUnreachableKey: not; else the failure
}

const errUnreachableKey = "unreachable"

// note logs what a beat's err (nil: it went through) changes.
func (r *reachLog) note(log *slog.Logger, url string, err error) {
	key := ""
	switch {
	case errors.Is(err, ErrUnreachable):
		key = errUnreachableKey
	case err != nil:
		key = err.Error()
	}
	if key == r.last {
		return
	}
	switch {
	case key == errUnreachableKey:
		log.Warn("cluster: etcd stopped answering: running endpoints are untouched; new ones get addresses of the blocks this host holds until its fence, anything else fails", "cluster", url, "err", err)
	case key != "":
		log.Warn("cluster: liveness in etcd failed", "cluster", url, "err", err)
	case r.last == errUnreachableKey:
		log.Info("cluster: etcd answers again", "cluster", url)
	default:
		log.Info("cluster: liveness in etcd works again", "cluster", url)
	}
	r.last = key
}
