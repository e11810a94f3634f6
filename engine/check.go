package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/link"
)

// Check compares state, kernel and IPAM and returns every disagreement
// ("drift"); none means every endpoint in state has its link, every held
// address belongs to a live endpoint, and no link of ours is left over.
func (a *Engine) Check(ctx context.Context) ([]string, error) {
	eps, err := a.store.Endpoints()
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var drift []string
	for _, e := range eps {
		drift = append(drift, a.checkEndpoint(e)...)
	}
	for _, n := range a.nets {
		drift = append(drift, checkHeld(n, eps)...)
	}
	links, err := a.host.Links()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	drift = append(drift, a.checkHostLinks(links)...)
	slices.Sort(drift)
	return drift, ctx.Err()
}

func (a *Engine) checkEndpoint(e api.Endpoint) []string {
	if a.nets[e.NetworkID] == nil {
		return []string{fmt.Sprintf("endpoint %s: its network %s is not in state", e.Name, e.NetworkID[:12])}
	}
	if e.State != api.EndpointReady {
		return []string{fmt.Sprintf("endpoint %s is %s (an operation was cut short)", e.Name, e.State)}
	}
	if !netnsAlive(e) {
		return []string{fmt.Sprintf("endpoint %s: namespace %s is gone", e.Name, e.Netns)}
	}
	links, err := link.EndpointLinks(e.Netns)
	if err != nil {
		return []string{fmt.Sprintf("endpoint %s: list links of %s: %v", e.Name, e.Netns, err)}
	}
	alias := a.alias("ep", e.ID)
	for _, l := range links {
		if l.Alias != alias {
			continue
		}
		if l.MAC.String() != e.MAC || l.Name != e.IfName {
			return []string{fmt.Sprintf("endpoint %s: link is %s %s, state says %s %s", e.Name, l.Name, l.MAC, e.IfName, e.MAC)}
		}
		return nil
	}
	return []string{fmt.Sprintf("endpoint %s: no link in %s", e.Name, e.Netns)}
}

// checkHeld: the addresses IPAM holds are exactly the endpoints' addresses.
func checkHeld(n *network, eps []api.Endpoint) []string {
	want := map[string]string{}
	for _, e := range eps {
		if e.NetworkID == n.ID {
			for _, p := range e.Addrs {
				want[p.Addr().String()] = e.Name
			}
		}
	}
	var drift []string
	for _, h := range n.space.Held() {
		owner, ok := want[h.Addr.String()]
		if !ok {
			drift = append(drift, fmt.Sprintf("network %s: address %s is held by %q but no endpoint has it", n.Name, h.Addr, h.Owner))
		} else if owner != h.Owner {
			drift = append(drift, fmt.Sprintf("network %s: address %s is held by %q, endpoint %s has it", n.Name, h.Addr, h.Owner, owner))
		}
		delete(want, h.Addr.String())
	}
	for addr, owner := range want {
		drift = append(drift, fmt.Sprintf("network %s: endpoint %s has %s but IPAM does not hold it", n.Name, owner, addr))
	}
	return drift
}

func (a *Engine) checkHostLinks(links []link.Info) []string {
	present := map[string]link.Info{}
	prefix := a.aliasPrefix()
	var drift []string
	for _, l := range links {
		present[l.Name] = l
		if strings.HasPrefix(l.Name, link.TempPrefixFor(a.store.AgentID())) {
			drift = append(drift, fmt.Sprintf("half-made link %s in the host namespace", l.Name))
		}
		if rest, ok := strings.CutPrefix(l.Alias, prefix); ok && !strings.HasPrefix(rest, "net/") {
			drift = append(drift, fmt.Sprintf("link %s (%s) belongs in a container namespace", l.Name, l.Alias))
		}
	}
	for _, n := range a.nets {
		if _, ok := present[n.Parent]; !ok {
			drift = append(drift, fmt.Sprintf("network %s: parent %s is missing", n.Name, n.Parent))
		}
	}
	return drift
}
