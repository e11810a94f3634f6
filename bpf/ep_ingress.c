// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ep_ingress: TC ingress of an endpoint's macvlan slave, in the container's
 * netns. Counts rx per network and drops (reason cross_network) frames whose
 * source MAC is a local endpoint's of another network: only routed traffic,
 * which carries the router's MAC, may cross networks.
 */
#include "include/endpoint.h"

SEC("tc")
int ep_ingress(struct __sk_buff *skb)
{
	struct frame f = {};
	struct ep_info *ep;

	parse_frame(skb, &f);
	if (f.malformed)
		count_malformed(HOOK_EP_INGRESS, f.len);
	ep = lookup_self(skb);
	if (!ep)
		return VERDICT_NEXT;
	if (f.eth_ok && other_network(f.src, ep->network_id)) {
		count_drop(ep->network_id, REASON_CROSS_NETWORK, f.len);
		return VERDICT_DROP;
	}
	count_network(ep->network_id, DIR_RX, f.len);
	return VERDICT_NEXT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
