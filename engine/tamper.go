package engine

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
)

// DefaultTamperCheck is how often the engine looks at endpoints' hooks
// and links for what a container with CAP_NET_ADMIN may have done (at
// those that may have changed, guard.go): a detected tamper is repaired
// (or reported) within this time.
const DefaultTamperCheck = 500 * time.Millisecond

// TamperNestedLink: a link the container made on its endpoint's parent
// (ip link add link eth0 type macvlan); the engine deletes it.
const TamperNestedLink = "nested_link"

// TamperMACChanged: the container changed its endpoint link's MAC (to take
// another's frames, e.g. the gateway's: macvlan bridge mode delivers by
// MAC); the engine sets the stored one back.
const TamperMACChanged = "mac_changed"

// TamperModeChanged: the container changed its endpoint link's macvlan
// mode, or set flags on it: source mode, with a neighbour's or the
// gateway's MAC listed, hands the link a copy of every frame from that
// MAC, and with the nodst flag keeps them from their destination. The
// engine sets the network's mode back with no flags (which empties the
// source list).
const TamperModeChanged = "mode_changed"

// readyEndpoints copies the ready endpoints of n that have programs: not
// those still keyed in the host namespace (hostKeyed), whose index in
// their sandbox is unknown. By that one, the check would take a link the
// container has there for the endpoint's (and set its MAC), and the
// endpoint's own link for a nested one (and delete it).
func (a *Engine) readyEndpoints(n *network) []endpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []endpoint
	for _, en := range n.eps {
		if en.ep.State == Ready && en.ep.Ifindex != 0 && !a.hostKeyed(en.ep) {
			out = append(out, en.ep)
		}
	}
	return out
}

// inspectEndpoint finds, counts, repairs and logs what was done to e. A
// repair that holds clears the tamper at once: done again, it is new. One
// that does not is tried again when due (retryState); while one is due
// soon the guard looks at e at each check (looked false: it marks e's
// namespace), which costs a listing, not a repair.
func (a *Engine) inspectEndpoint(ctx context.Context, e endpoint) (looked bool) {
	// Under the endpoint's lock, and only if it is still the endpoint
	// the check read (same link, same namespace): a copy gone stale (the
	// link re-made, a disconnect and a connect meanwhile) would take the
	// endpoint's own link for a nested one and delete it. Busy (an rm, an
	// attach under way): looked at next time.
	n, en := a.endpointByID(e.ID)
	if en == nil {
		return true
	}
	if !en.busy.TryLock() {
		return false
	}
	defer en.busy.Unlock()
	if cur, ok := n.current(en); !ok || cur.State != Ready || cur.Ifindex != e.Ifindex || cur.NetnsInode != e.NetnsInode {
		return true
	}
	// Gone, or made again with its inode (a stranger's links): the sweep
	// releases it. One without a cookie (an older agent's record) has no
	// more than its inode to go by, which endpointLinks checks.
	if e.NetnsCookie != 0 && !a.netnsSame(e) {
		return true
	}
	return a.inspectLocked(ctx, e)
}

// inspectLocked is inspectEndpoint with e's lock held: settled is false
// while a repair has failed or not held.
func (a *Engine) inspectLocked(ctx context.Context, e endpoint) (settled bool) {
	findings, err := a.dp.InspectEndpoint(ctx, e.Netns, e.Ifindex)
	if err != nil {
		a.log.Warn("tamper check", "endpoint", e.Name, "err", err)
	}
	parent, ok := a.stillReady(e)
	if !ok {
		return true
	}
	ls := a.endpointLinks(e, parent)
	if ls.own == nil && ls.stranger == nil && !ls.unknown && a.parentChanged(e) {
		// Its link went with its parent while the hooks were looked at
		// (a gone device's tc dump is empty, which reads as detached):
		// no tamper, and nothing of e's to repair; the parent refresh
		// makes the link again. Gone with the parent there, it is one
		// (the container moved or deleted it).
		findings = nil
	}
	own := ls.own
	if own != nil && (len(e.MAC) == 0 || bytes.Equal(own.MAC, e.MAC)) {
		own = nil // only a changed MAC is a finding
	}
	mode := a.linkMode(e)
	moded := ls.own
	if moded != nil && !modeChanged(*moded, mode) {
		moded = nil
	}
	found := map[string]string{}
	for _, f := range findings {
		found[hookTamper(e, f)] = string(f.Tamper)
	}
	for _, l := range ls.nested {
		found[nestedTamper(l)] = TamperNestedLink
	}
	if own != nil {
		found[macTamper(*own)] = TamperMACChanged
	}
	if moded != nil {
		found[modeTamper(*moded)] = TamperModeChanged
	}
	if _, ok := a.stillReady(e); !ok {
		return true // its removal began: its programs and link are going
	}
	if ls.stranger != nil { // the hooks found are the stranger's: nothing of e's to repair there
		findings = nil
	}
	fresh, due, soon := a.tamper.seen(e.ID, e.Name, found, blindTo(err, ls))
	if len(fresh) == 0 && !due {
		return !soon
	}
	if ls.stranger != nil && len(fresh) > 0 {
		a.log.Warn("endpoint's link is gone: the container put a link of its own at its index", "endpoint", e.Name,
			"link", ls.stranger.Name, "kind", ls.stranger.Kind, "ifindex", e.Ifindex)
	}
	return a.repairTampers(ctx, e, findings, ls.nested, own, moded, mode)
}

// linkMode is the macvlan mode e's link was made with: its network's.
func (a *Engine) linkMode(e endpoint) string {
	if n := a.networkByID(e.NetworkID); n != nil {
		return cmp.Or(n.Mode, "bridge")
	}
	return ""
}

// modeChanged: l, an endpoint's link, is not as mvlan made it: in another
// macvlan mode than mode (its network's; "": unknown, none is a finding),
// with flags (mvlan sets none) or a source list. A link whose settings
// the listing did not give is not judged.
func modeChanged(l link.Info, mode string) bool {
	c := l.Macvlan
	return c != nil && mode != "" && (c.Mode != mode || c.Flags != 0 || c.Sources != 0)
}

// parentChanged reports whether e's network's parent is gone, or is
// another link than the one its endpoints' links were made on: those went
// with it.
func (a *Engine) parentChanged(e endpoint) bool {
	n := a.networkByID(e.NetworkID)
	if n == nil {
		return true
	}
	n.mu.Lock()
	ok, name, self := n.ok(), n.Parent, n.selfIndex
	n.mu.Unlock()
	if !ok {
		return true
	}
	l, err := a.host.Link(name)
	return err != nil || l.Index != self
}

// stillReady reports whether e, as the check read it, is still a ready
// endpoint of its network (a removal may have begun meanwhile: what it
// takes away is no tamper), and the network's parent ifindex.
func (a *Engine) stillReady(e endpoint) (parent int, ok bool) {
	n := a.networkByID(e.NetworkID)
	if n == nil {
		return 0, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	en := n.eps[e.ID]
	return n.parentIndex, en != nil && en.ep.State == Ready
}

// blindTo is what a check did not see: the hooks when their inspection
// failed (hookErr), the links when their listing did.
func blindTo(hookErr error, ls nsLinks) func(what string) bool {
	return func(what string) bool {
		if strings.HasPrefix(what, TamperNestedLink) || strings.HasPrefix(what, TamperMACChanged) || strings.HasPrefix(what, TamperModeChanged) {
			return ls.unknown
		}
		return hookErr != nil
	}
}

// What each tamper is called in the logs, doctor and tamperCounts.
func hookTamper(e endpoint, f loader.Finding) string {
	return fmt.Sprintf("%s on %s %s", f.Tamper, e.IfName, f.Hook)
}
func nestedTamper(l link.Info) string {
	return fmt.Sprintf("%s %s on the parent", TamperNestedLink, l.Name)
}
func macTamper(own link.Info) string {
	return fmt.Sprintf("%s on %s to %s", TamperMACChanged, own.Name, own.MAC)
}
func modeTamper(own link.Info) string {
	c := own.Macvlan
	return fmt.Sprintf("%s on %s to %s, flags %#x, %d source MACs", TamperModeChanged, own.Name, c.Mode, c.Flags, c.Sources)
}

// repairTampers repairs e's hooks (findings), deletes its nested links,
// sets its MAC back when own (its link) has another and its macvlan mode
// (mode, with no flags) when moded (its link) is not as mvlan made it,
// counting each repair that held, and logs each: at warn when it held or
// first failed (at most once in tamperWarnEvery per endpoint), at debug
// otherwise. held is false when a repair failed.
func (a *Engine) repairTampers(ctx context.Context, e endpoint, findings []loader.Finding, nested []link.Info, own, moded *link.Info, mode string) (held bool) {
	held = true
	done := func(what, reason string, err error, msg string, args ...any) {
		level := slog.LevelDebug
		switch {
		case err == nil:
			a.tamper.fixed(e.ID, what, reason)
			level = warnIf(a.tamper.warnDue(e.ID))
		case errors.Is(err, errRedone):
			// No backoff: the container would have its link without
			// programs for up to retryMax after each repair.
			a.tamper.redone(e.ID, what)
			held, level = false, warnIf(a.tamper.warnDue(e.ID))
		case !a.tamper.failed(e.ID, what):
			held = false // a retry that failed again
		default:
			held, level = false, warnIf(a.tamper.warnDue(e.ID))
		}
		a.log.Log(ctx, level, msg, append([]any{"endpoint", e.Name}, append(args, "err", err)...)...)
	}
	if len(findings) > 0 {
		errs := a.repairHooks(ctx, e, findings)
		for i, f := range findings {
			done(hookTamper(e, f), string(f.Tamper), errs[i], "endpoint tampered with", "hook", f.Hook, "tamper", f.Tamper, "repaired", errs[i] == nil)
		}
	}
	for _, l := range nested {
		err := a.host.DetachLink(ctx, e.Netns, l.Index)
		done(nestedTamper(l), TamperNestedLink, err, "endpoint's namespace has a link of its own on the parent", "link", l.Name, "deleted", err == nil)
	}
	if own != nil {
		err := a.ns.SetMAC(e.Netns, e.Ifindex, e.MAC)
		done(macTamper(*own), TamperMACChanged, err, "endpoint's MAC changed", "mac", own.MAC.String(), "want", e.MAC.String(), "restored", err == nil)
	}
	if moded != nil {
		c := moded.Macvlan
		err := a.ns.SetMacvlanMode(e.Netns, e.Ifindex, moded.Kind, mode)
		done(modeTamper(*moded), TamperModeChanged, err, "endpoint's macvlan mode changed", "mode", c.Mode, "flags", c.Flags,
			"source_macs", c.Sources, "want", mode, "restored", err == nil)
	}
	return held
}

// warnIf is slog's warning level if warn, else debug.
func warnIf(warn bool) slog.Level {
	if warn {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// nsLinks is what one listing of an endpoint's namespace shows of it.
type nsLinks struct {
	own *link.Info // its link, at its ifindex; nil if gone
	// stranger is a link of another kind at its ifindex: the container
	// deleted the endpoint's and put one of its own there.
	stranger *link.Info
	nested   []link.Info // the container's macvlans and macvtaps on the parent
	unknown  bool        // the listing failed
}

// endpointLinks lists e's namespace once: e's own link is the macvlan
// on a lower link on the host (the parent) at e's ifindex; nested
// are every other macvlan or macvtap on the network's parent (or on the
// own link's, if that differs), whatever its alias (the container can set
// any alias, mvlan's included) and whatever link holds e's index now.
func (a *Engine) endpointLinks(e endpoint, parent int) nsLinks {
	var out nsLinks
	links, err := a.ns.Macvlans(e.Netns, e.Ifindex)
	if err != nil {
		if !errors.Is(err, link.ErrNotFound) { // its namespace gone: the sweep's
			a.log.Warn("tamper check: the links of the endpoint's namespace are unknown; looked at again in the rolling pass", "endpoint", e.Name, "err", err)
		}
		out.unknown = true
		return out
	}
	onParent := func(l link.Info) bool { return l.IsMacvlan() && l.LowerOnHost }
	for i := range links {
		switch {
		case links[i].Index != e.Ifindex:
		case onParent(links[i]):
			out.own = &links[i]
		default:
			out.stranger = &links[i]
		}
	}
	ownParent := parent
	if out.own != nil {
		ownParent = out.own.ParentIndex
	}
	for _, l := range links {
		if l.Index != e.Ifindex && onParent(l) && l.ParentIndex != 0 && (l.ParentIndex == parent || l.ParentIndex == ownParent) {
			out.nested = append(out.nested, l)
		}
	}
	return out
}

// errRedone: a repair's look found the tamper again at once.
var errRedone = errors.New("done again at once: the container undoes the repair, which is made again at each check")

// repairHooks re-attaches e's programs where findings say, and looks
// again: the repair of a finding counts (reattach_total) only if that
// finding is gone then (its hook's program first, or no late filter),
// whatever the others'. A repair that failed fails every finding (which
// part failed is not known). It returns, for each finding, nil, why its
// repair failed, or errRedone.
func (a *Engine) repairHooks(ctx context.Context, e endpoint, findings []loader.Finding) []error {
	errs := make([]error, len(findings))
	err := a.dp.RepairEndpoint(ctx, e.Netns, e.Ifindex, findings)
	var still []loader.Finding
	if err == nil {
		still, err = a.dp.InspectEndpoint(ctx, e.Netns, e.Ifindex)
	}
	for i, f := range findings {
		switch {
		case err != nil:
			errs[i] = err
		case slices.ContainsFunc(still, func(s loader.Finding) bool { return sameTamper(s, f) }):
			errs[i] = errRedone
		}
	}
	return errs
}

// sameTamper: s, found after a repair, is what f was: on its hook, a
// program missing or not first, or late filters (a hook can have both).
func sameTamper(s, f loader.Finding) bool {
	return s.Hook == f.Hook && (s.Tamper == loader.TamperLateFilter) == (f.Tamper == loader.TamperLateFilter)
}
