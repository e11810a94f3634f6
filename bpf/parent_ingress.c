// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * parent_ingress: TC ingress of a network's parent link (and of the trunk
 * below a sub-interface). Counts per-VLAN rx packets and bytes, flood,
 * hairpin and east-west frames, and marks frames from the wire for local
 * endpoints (WIRE_MARK); drops only a container's frame sent past its
 * own programs with a MAC not of its namespace. A frame between two
 * endpoints, which ep_egress checked, is only counted (include/eastwest.h).
 * See include/parent.h.
 */
#include "include/eastwest.h"
#include "include/parent.h"

/* ew_count counts, on its parent, a frame whose verdict ep_egress left;
 * 0 if this link is not the parent of the verdict's network or the frame
 * is not from its sender: another container's socket sent it (then the
 * frame takes the full path, which drops it). */
static __always_inline int ew_count(struct __sk_buff *skb, __u32 tag)
{
	__u32 network_id = tag & EW_NETWORK_MASK;
	struct net_counters *c;
	struct parent_info p;
	struct ep_info *sender;

	if (!parent_of(skb->ifindex, &p) || p.network_id != network_id)
		return 0;
	sender = ew_sender(skb, tag, network_id);
	if (!sender || foreign_mac(sender, sock_elsewhere(skb)))
		return 0;
	c = net_counters(network_id);
	if (c) {
		pb_add(&c->parent.rx, skb->len);
		if (tag & EW_COUNTS)
			pb_add(&c->eastwest, skb->len);
	}
	return 1;
}

SEC("tc")
int parent_ingress(struct __sk_buff *skb)
{
	__u32 tag;

	if (ew_take(skb, &tag) && ew_count(skb, tag))
		return VERDICT_NEXT;
	return handle_parent(skb, DIR_RX, HOOK_PARENT_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
