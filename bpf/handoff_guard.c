// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * handoff_guard: TCX ingress of a Docker endpoint's link from its Join
 * (loader GuardHandoff, in the agent's netns, the link down) until
 * ep_ingress runs on it in its container (FinishHandoff). dockerd moves
 * the link into the container, configures it and brings it up in between,
 * where it has the kernel's defaults (accept_ra=1, autoconf=1): an RA
 * from the wire at that moment would give the container a default route
 * and an address (and fail dockerd's own default route: "file exists").
 * A TCX link moves with its device; a clsact qdisc does not survive the
 * move.
 *
 * It drops the router messages (RAs, redirects) ep_ingress would drop:
 * from a MAC of no local endpoint, all but the network's RA source's
 * (ra_ignore, ra_source); from a local endpoint, unless the network lets
 * it send them (ra_guard); and, as ep_ingress does, IPv6 whose headers its
 * bounded parse cannot read to the ICMPv6 type, and frames with more VLAN
 * tags than it walks (unparsable). Everything else passes untouched, the wire
 * mark too (when ep_ingress runs first, it has read and cleared it). The
 * network is a constant of each load.
 */
#include "include/spoof.h"

volatile const __u32 guard_network_id = 0;

SEC("tc")
int handoff_guard(struct __sk_buff *skb)
{
	struct frame f = {};
	struct ep_info *sender;
	struct ipv6_hdr *ip;
	__u32 off;
	__u8 type;
	int reason;

	parse_frame(skb, &f);
	/* More tags than the bounded walk reads: the receive path strips
	 * priority tags one after another, and an RA may be behind them. */
	if (f.eth_ok && is_vlan_proto(bpf_htons(f.proto))) {
		reason = REASON_UNPARSABLE;
		goto drop;
	}
	if (!f.eth_ok || f.malformed || f.proto != ETH_P_IPV6)
		return VERDICT_NEXT;
	ip = f.data + f.l3off;
	if ((void *)(ip + 1) > f.end)
		return VERDICT_NEXT;
	off = f.l3off + sizeof(*ip);
	/* Unparsable (more extension headers than the walk reads, fragmented
	 * ND): the kernel reads any number of headers, so it may be an RA. */
	reason = icmp6_after_ext(skb, ip->nexthdr, &off, &type);
	if (reason == REASON_UNPARSABLE)
		goto drop;
	if (reason || (type != ND_ROUTER_ADVERT && type != ND_REDIRECT))
		return VERDICT_NEXT;
	sender = ep_of_mac(f.src);
	if (sender)
		reason = allowed(sender, EP_ALLOW_ROUTER) ? 0 : REASON_RA_GUARD;
	else
		reason = router_reason(ra_source_match(&f, ip, guard_network_id));
	if (!reason)
		return VERDICT_NEXT;
drop:
	count_drop(guard_network_id, reason, f.len);
	return VERDICT_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
