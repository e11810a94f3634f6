package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
)

// CheckEndpoint is the drift check of one endpoint (by ID), for a
// runtime's CNI CHECK: besides what Check compares (state, link, MAC,
// name), the addresses on its link, its default routes and its datapath
// programs in the kernel. None means the endpoint is as the agent made it.
// routed, if not nil, are the gateways whose default routes the runtime
// still expects (its final result's): a later plugin of the chain may
// have removed the others (the CNI spec lets it).
func (a *Engine) CheckEndpoint(ctx context.Context, id string, routed []netip.Addr) ([]string, error) {
	n, en := a.endpointByID(id)
	if en == nil {
		return nil, notFound(fmt.Errorf("no endpoint with ID %s", id))
	}
	en.busy.Lock()
	defer en.busy.Unlock()
	e, ok := n.current(en)
	if !ok {
		return nil, notFound(fmt.Errorf("no endpoint with ID %s", id))
	}
	if drift := a.checkEndpoint(e); len(drift) > 0 {
		return drift, nil
	}
	drift := append(a.checkAddrs(e), a.checkRoutes(n, e, routed)...)
	missing, err := a.dp.Missing(e.Netns, e.Ifindex, a.modes.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", e.Name, err)
	}
	for _, h := range missing {
		drift = append(drift, fmt.Sprintf("endpoint %s: no %s program on %s (%s mode)", e.Name, h, e.IfName, a.modes.Endpoint))
	}
	return drift, ctx.Err()
}

// checkRoutes: the namespace has a default route of each family the
// endpoint has a gateway for (but those it kept another's for:
// Unrouted) with the kernel's metric, the endpoint's own or not: one its
// owner replaced, or that an agent before unrouted_gateways kept (such a
// record lists none), is no drift; none of that metric is, unless the
// endpoint's own is in another table: the CNI spec lets a later plugin of
// the chain move it (sbr does). With routed not nil, only the gateways
// in it are looked at.
func (a *Engine) checkRoutes(n *network, e endpoint, routed []netip.Addr) []string {
	var drift []string
	for _, gw := range a.endpointSpec(n, e).Gateways {
		if slices.Contains(e.Unrouted, gw) || routed != nil && !slices.Contains(routed, gw) {
			continue
		}
		has, _, err := a.ns.DefaultRoute(e.Netns, gw, e.Ifindex)
		if err == nil && !has {
			has, err = a.ns.DefaultRouteVia(e.Netns, gw, e.Ifindex)
		}
		switch {
		case err != nil:
			drift = append(drift, fmt.Sprintf("endpoint %s: %v", e.Name, err))
		case !has:
			drift = append(drift, fmt.Sprintf("endpoint %s: no default route via %s on %s (nor another of its metric)", e.Name, gw, e.IfName))
		}
	}
	return drift
}

// checkAddrs: the endpoint's link has exactly its addresses.
func (a *Engine) checkAddrs(e endpoint) []string {
	have, err := a.ns.Addrs(e.Netns, e.Ifindex)
	if err != nil {
		return []string{fmt.Sprintf("endpoint %s: %v", e.Name, err)}
	}
	var drift []string
	for _, p := range e.Addrs {
		if !slices.Contains(have, p) {
			drift = append(drift, fmt.Sprintf("endpoint %s: address %s is missing from %s", e.Name, p, e.IfName))
		}
	}
	for _, p := range have {
		if !slices.Contains(e.Addrs, p) {
			drift = append(drift, fmt.Sprintf("endpoint %s: %s has address %s, which mvlan did not give it", e.Name, e.IfName, p))
		}
	}
	return drift
}
