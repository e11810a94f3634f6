package loader

import (
	"errors"
	"fmt"

	tc "github.com/florianl/go-tc"
	"golang.org/x/sys/unix"
)

// Late filters: ep_egress's pass ends the hook it runs on (clsact or TCX),
// but a frame then goes through the link's own qdisc, whose filters (a
// container's HTB root and a cls_bpf filter under it, say) run after the
// check and may rewrite the frame: a neighbour's MAC and addresses on a
// frame the container's kernel sends without a socket, which no later
// check can tell from the neighbour's own. A container that is root in its
// namespace can put them there; nothing of mvlan's needs them. The qdiscs
// and classes stay (shaping is the container's business): their filters
// go.

// lateFilterParents lists, from a thread in the link's namespace (rtnl's),
// the qdiscs and classes of link ifindex's egress that hold filters.
func lateFilterParents(rtnl *tc.Tc, ifindex int) ([]uint32, error) {
	qdiscs, err := rtnl.Qdisc().Get() // every link's: the kernel filters by link only in the reply
	if err != nil {
		return nil, fmt.Errorf("list qdiscs: %w", err)
	}
	var parents []uint32
	for _, q := range qdiscs {
		if int(q.Ifindex) != ifindex || q.Handle == 0 {
			continue // another link's; noqueue (handle 0: no filters)
		}
		switch q.Kind {
		case "clsact", "ingress": // clsact's egress filters after ours never run (VERDICT_PASS)
		default:
			parents = append(parents, q.Handle)
		}
	}
	if len(parents) == 0 {
		return nil, nil // the common case: one dump
	}
	classes, err := rtnl.Class().Get(&tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(ifindex)})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("list tc classes: %w", err)
	}
	for _, c := range classes {
		parents = append(parents, c.Handle)
	}
	var with []uint32
	for _, p := range parents {
		filters, err := rtnl.Filter().Get(&tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(ifindex), Parent: p})
		switch {
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOENT):
			continue // a qdisc or class that takes no filters
		case err != nil:
			return nil, fmt.Errorf("list tc filters of %#x: %w", p, err)
		case len(filters) > 0:
			with = append(with, p)
		}
	}
	return with, nil
}

// deleteLateFilters deletes the filters of the egress qdiscs and classes
// of t's link (lateFilterParents), one priority's chain at a time.
func deleteLateFilters(t target) error {
	return withTC(t, func(rtnl *tc.Tc) error {
		parents, err := lateFilterParents(rtnl, t.ifindex)
		if err != nil {
			return err
		}
		var errs []error
		for _, p := range parents {
			filters, err := rtnl.Filter().Get(&tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(t.ifindex), Parent: p})
			if err != nil {
				errs = append(errs, fmt.Errorf("list tc filters of %#x: %w", p, err))
				continue
			}
			done := map[uint32]bool{}
			for _, f := range filters {
				if done[f.Info] { // a priority and protocol: deleted with its handle 0
					continue
				}
				done[f.Info] = true
				obj := tc.Object{Msg: tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(t.ifindex), Parent: p, Info: f.Info},
					Attribute: tc.Attribute{Kind: f.Kind}}
				if err := rtnl.Filter().Delete(&obj); err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("delete the %s filters of %#x: %w", f.Kind, p, err))
				}
			}
		}
		return errors.Join(errs...)
	})
}
