package engine

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/link"
)

// Check compares state, kernel and IPAM and returns every disagreement
// ("drift"); none means every endpoint in state has its link, every held
// address belongs to a live endpoint, and no link of ours is left over.
// It reads the store, the source of truth, and also reports where the
// in-memory index disagrees with it.
func (a *Engine) Check(ctx context.Context) ([]string, error) {
	fs, err := a.CheckFindings(ctx)
	if err != nil {
		return nil, err
	}
	return api.NewCheck(fs).Drift, nil
}

// CheckFindings is Check with each finding's kind, sorted by its text.
func (a *Engine) CheckFindings(ctx context.Context) ([]api.DriftFinding, error) {
	found, err := a.settledDrift(ctx)
	if err != nil {
		return nil, err
	}
	var fs []api.DriftFinding
	for _, k := range DriftKinds {
		for _, d := range found[k] {
			fs = append(fs, api.DriftFinding{Kind: string(k), Detail: d})
		}
	}
	slices.SortFunc(fs, func(x, y api.DriftFinding) int { return strings.Compare(x.Detail, y.Detail) })
	return fs, ctx.Err()
}

// driftSettle is how long settledDrift waits before it looks again at
// what it found.
var driftSettle = time.Second

// settledDrift is drift, found twice driftSettle apart: an operation
// under way (an attach admitted after the store was read and before the
// index was, its record still "creating", a removal between its record
// and its addresses) shows once, and is not drift. Not drift either: an
// attach answered before its "ready" record was stored, a removal
// finishing in the background (both waited for before each look).
func (a *Engine) settledDrift(ctx context.Context) (map[DriftKind][]string, error) {
	found, err := a.lookForDrift(ctx)
	if err != nil || !anyDrift(found) {
		return found, err
	}
	select {
	case <-time.After(driftSettle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	again, err := a.lookForDrift(ctx)
	if err != nil {
		return nil, err
	}
	for k, fs := range found {
		found[k] = slices.DeleteFunc(fs, func(f string) bool { return !slices.Contains(again[k], f) })
	}
	return found, nil
}

// lookForDrift is one look of settledDrift.
func (a *Engine) lookForDrift(ctx context.Context) (map[DriftKind][]string, error) {
	a.removals.wait(ctx)
	if err := a.store.Flush(); err != nil {
		return nil, err
	}
	return a.drift(ctx)
}

func anyDrift(found map[DriftKind][]string) bool {
	for _, fs := range found {
		if len(fs) > 0 {
			return true
		}
	}
	return false
}

// drift is Check's findings by kind.
func (a *Engine) drift(ctx context.Context) (map[DriftKind][]string, error) {
	stored, err := a.store.Endpoints()
	if err != nil {
		return nil, err
	}
	eps := make([]endpoint, 0, len(stored))
	for _, ae := range stored {
		e, err := endpointFromAPI(ae)
		if err != nil {
			return nil, err
		}
		eps = append(eps, e)
	}
	nets := a.networkList()
	found := map[DriftKind][]string{}
	for _, e := range eps {
		found[DriftEndpoint] = append(found[DriftEndpoint], a.checkEndpoint(e)...)
	}
	for _, n := range nets {
		found[DriftIPAM] = append(found[DriftIPAM], checkHeld(n, eps)...)
		found[DriftIndex] = append(found[DriftIndex], checkIndex(n, eps)...)
	}
	links, err := a.host.Links()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	found[DriftLink] = a.checkHostLinks(nets, links)
	found[DriftQuarantine] = a.quarantineDrift()
	found[DriftCluster] = clusterDrift(nets)
	for name, what := range a.tamper.findings() {
		found[DriftTamper] = append(found[DriftTamper], fmt.Sprintf("endpoint %s was tampered with: %s", name, what))
	}
	return found, ctx.Err()
}

func (a *Engine) checkEndpoint(e endpoint) []string {
	if a.networkByID(e.NetworkID) == nil {
		return []string{fmt.Sprintf("endpoint %s: its network %s is not in state", e.Name, e.NetworkID[:12])}
	}
	if e.State != Ready {
		return []string{fmt.Sprintf("endpoint %s is %s (an operation was cut short)", e.Name, e.State)}
	}
	if !a.netnsSame(e) {
		return []string{fmt.Sprintf("endpoint %s: namespace %s is gone", e.Name, e.Netns)}
	}
	l, ok, err := a.ownLink(e)
	if err != nil {
		return []string{fmt.Sprintf("endpoint %s: list links of %s: %v", e.Name, e.Netns, err)}
	}
	if !ok {
		return []string{fmt.Sprintf("endpoint %s: no link in %s", e.Name, e.Netns)}
	}
	if !bytes.Equal(l.MAC, e.MAC) || l.Name != e.IfName {
		return []string{fmt.Sprintf("endpoint %s: link is %s %s, state says %s %s", e.Name, l.Name, l.MAC, e.IfName, e.MAC)}
	}
	return nil
}

// checkHeld: the addresses IPAM holds are exactly the endpoints' addresses.
func checkHeld(n *network, eps []endpoint) []string {
	if n.DHCP {
		n.mu.Lock()
		defer n.mu.Unlock()
		return checkLeases(n, n.endpoints()) // the index has the renewals' errors
	}
	want := map[string]string{}
	for _, e := range eps {
		if e.NetworkID == n.ID {
			for _, p := range e.Addrs {
				want[p.Addr().String()] = e.Name
			}
		}
	}
	var drift []string
	n.mu.Lock()
	held := n.space.Held()
	if n.shim != nil {
		for _, addr := range n.shim.addrs {
			want[addr.String()] = shimOwner
		}
	}
	for _, addr := range n.shimGone {
		want[addr.String()] = shimOwner
	}
	for addr, owner := range n.quarantined {
		want[addr.String()] = owner
	}
	n.mu.Unlock()
	for _, h := range held {
		owner, ok := want[h.Addr.String()]
		if !ok {
			drift = append(drift, fmt.Sprintf("network %s: address %s is held by %q but no endpoint has it", n.name(), h.Addr, h.Owner))
		} else if owner != h.Owner {
			drift = append(drift, fmt.Sprintf("network %s: address %s is held by %q, endpoint %s has it", n.name(), h.Addr, h.Owner, owner))
		}
		delete(want, h.Addr.String())
	}
	for addr, owner := range want {
		drift = append(drift, fmt.Sprintf("network %s: endpoint %s has %s but IPAM does not hold it", n.name(), owner, addr))
	}
	return drift
}

func (a *Engine) checkHostLinks(nets []*network, links []link.Info) []string {
	present := map[string]link.Info{}
	prefix := a.aliasPrefix()
	var drift []string
	for _, l := range links {
		present[l.Name] = l
		if strings.HasPrefix(l.Name, link.TempPrefixFor(a.store.AgentID())) {
			drift = append(drift, fmt.Sprintf("half-made link %s in the host namespace", l.Name))
		}
		if rest, ok := strings.CutPrefix(l.Alias, prefix); ok && !strings.HasPrefix(rest, "net/") && !strings.HasPrefix(rest, "shim/") {
			drift = append(drift, fmt.Sprintf("link %s (%s) belongs in a container namespace", l.Name, l.Alias))
		}
	}
	for _, n := range nets {
		if _, ok := present[n.Parent]; !ok {
			drift = append(drift, fmt.Sprintf("network %s: parent %s is missing", n.name(), n.Parent))
		} else if h := n.linkHealth(); h.status != StatusOK && h.status != StatusParentMissing {
			drift = append(drift, fmt.Sprintf("network %s cannot take endpoints: %s", n.name(), h))
		}
		drift = append(drift, a.checkShim(n, present)...)
	}
	return drift
}

// checkIndex: the index has exactly the stored endpoints of n, in their
// stored state. Endpoints being created or removed right now may show.
func checkIndex(n *network, eps []endpoint) []string {
	n.mu.Lock()
	indexed := n.endpoints()
	n.mu.Unlock()
	want := map[string]endpoint{}
	for _, e := range eps {
		if e.NetworkID == n.ID {
			want[e.ID] = e
		}
	}
	var drift []string
	for _, e := range indexed {
		s, ok := want[e.ID]
		switch {
		case !ok:
			drift = append(drift, fmt.Sprintf("network %s: endpoint %s is served but not stored", n.name(), e.Name))
		case s.State != e.State || s.Name != e.Name:
			drift = append(drift, fmt.Sprintf("network %s: endpoint %s is served as %s %s, stored as %s %s", n.name(), e.ID[:12], e.Name, e.State, s.Name, s.State))
		}
		delete(want, e.ID)
	}
	for _, e := range want {
		drift = append(drift, fmt.Sprintf("network %s: endpoint %s is stored but not served", n.name(), e.Name))
	}
	return drift
}
