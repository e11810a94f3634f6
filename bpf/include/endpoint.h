/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * endpoint.h: how an endpoint program finds the endpoint it runs for.
 *
 * ifindexes are per network namespace, so the endpoint table is keyed by
 * {netns cookie, ifindex}. bpf_get_netns_cookie() is not callable from
 * SCHED_CLS programs before Linux 6.15 (the lab runs 6.1), so the loader
 * loads the endpoint programs once per network namespace with the cookie
 * of that namespace written into cfg_netns_cookie (a .rodata constant);
 * the ifindex comes from the skb.
 */
#ifndef MVLAN_ENDPOINT_H
#define MVLAN_ENDPOINT_H

#include "counters.h"
#include "tables.h"

volatile const __u64 cfg_netns_cookie = 0;

static __always_inline struct ep_info *lookup_self(struct __sk_buff *skb)
{
	struct ep_key key = {
		.netns_cookie = cfg_netns_cookie,
		.ifindex = skb->ifindex,
	};

	return bpf_map_lookup_elem(&ep_table, &key);
}

static __always_inline int eq4(__be32 a, const __u8 *b)
{
	__be32 w;

	__builtin_memcpy(&w, b, 4);
	return a == w;
}

/* owns reports whether the address is one of the endpoint's own. */
static __always_inline int owns(const struct ep_info *ep, __u8 family,
				const __u8 *addr)
{
	if (family == FAMILY_V4) {
#pragma unroll
		for (int i = 0; i < EP_MAX_V4; i++)
			if (i < ep->n4 && eq4(ep->ip4[i], addr))
				return 1;
		return 0;
	}
#pragma unroll
	for (int i = 0; i < EP_MAX_V6; i++)
		if (i < ep->n6 && eq4(ep->ip6[i][3], addr + 12) &&
		    eq4(ep->ip6[i][0], addr) && eq4(ep->ip6[i][1], addr + 4) &&
		    eq4(ep->ip6[i][2], addr + 8))
			return 1;
	return 0;
}

/* other_network reports whether mac belongs to a local endpoint of a network
 * other than network_id. */
static __always_inline int other_network(const __u8 *mac, __u32 network_id)
{
	struct ep_info *m = ep_of_mac(mac);

	return m && m->network_id != network_id;
}

#endif /* MVLAN_ENDPOINT_H */
