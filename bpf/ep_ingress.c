// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ep_ingress: TC ingress of an endpoint's macvlan slave, in the container's
 * netns: the receiver's check, which the sender cannot switch off. A frame
 * whose source MAC is a local endpoint's must be of the same network
 * (cross_network) and follow that sender's rules (spoof.h: its addresses,
 * its first-hop guards), whatever happened to the sender's own programs.
 * A frame from any other MAC must have come from the wire (parent_ingress
 * marked it); one that did not came from a link mvlan does not know on the
 * same parent, such as a macvlan a container made on its eth0, and is
 * dropped (unknown_source). Nor may any other MAC claim a local endpoint's
 * address in ARP (arp_spoof) or a neighbour advertisement (nd_spoof): a
 * local endpoint's binding comes from its own MAC only. Counts rx per
 * network.
 */
#include "include/spoof.h"

/* claims_local: an ARP sender or a neighbour advertisement's target that
 * is a local endpoint's address (the caller knows the MAC is not one). */
static __always_inline int claims_local(struct __sk_buff *skb, struct frame *f)
{
	void *l3 = f->data + f->l3off;
	__u8 target[16];

	if (f->malformed)
		return 0;
	if (f->proto == ETH_P_ARP) {
		struct arp_eth_ipv4 *body = l3 + sizeof(struct arp_hdr);

		if ((void *)(body + 1) > f->end)
			return 0;
		return ep_of_ip(FAMILY_V4, body->spa) ? REASON_ARP_SPOOF : 0;
	}
	if (f->proto == ETH_P_IPV6) {
		struct ipv6_hdr *ip = l3;
		__u32 off = f->l3off + sizeof(*ip);
		__u8 type;

		if ((void *)(ip + 1) > f->end || ip->nexthdr != IPPROTO_ICMPV6)
			return 0;
		if (load_u8(skb, off, &type) < 0 || type != ND_NEIGHBOR_ADVERT)
			return 0;
		if (bpf_skb_load_bytes(skb, off + 8, target, sizeof(target)) < 0)
			return NOT_PARSED;
		return ep_of_ip(FAMILY_V6, target) ? REASON_ND_SPOOF : 0;
	}
	return 0;
}

static __always_inline int ingress_reason(struct __sk_buff *skb, struct frame *f,
					  const struct ep_info *ep)
{
	struct ep_info *sender;

	if (!f->eth_ok)
		return 0;
	sender = ep_of_mac(f->src);
	if (!sender)
		return claims_local(skb, f);
	if (sender->network_id != ep->network_id)
		return REASON_CROSS_NETWORK;
	return sender_reason(skb, f, sender);
}

SEC("tc")
int ep_ingress(struct __sk_buff *skb)
{
	struct frame f = {};
	struct ep_info *ep;
	int reason;

	parse_frame(skb, &f);
	ep = lookup_self(skb, f.dst);
	reason = ep ? ingress_reason(skb, &f, ep) : 0;
	if (reason == NOT_PARSED)
		f.malformed = 1;
	if (f.malformed)
		count_malformed(HOOK_EP_INGRESS, f.len);
	if (!ep)
		return VERDICT_NEXT;
	if (reason > 0) {
		count_drop(ep->network_id, reason, f.len);
		return VERDICT_DROP;
	}
	count_network(ep->network_id, DIR_RX, f.len);
	return VERDICT_NEXT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
