/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * eastwest.h: ep_egress hands its verdict on an east-west frame to
 * parent_ingress. In bridge mode macvlan gives a frame for another slave
 * of the parent to the parent's receive path first (for its taps), so
 * parent_ingress sees every unicast frame between two endpoints, after
 * ep_egress has checked it and looked up both ends. ep_egress leaves what
 * parent_ingress would find in skb->cb[2..4] (EW_MAGIC, then the network's
 * id with EW_COUNTS when the frame counts as east-west), which the hand-off
 * keeps (dev_forward_skb scrubs the mark, not cb), and parent_ingress only
 * counts the frame on the parent, as its own parse would have, and clears
 * the verdict. Frames without a verdict (from the wire; in private or VEPA
 * mode, where they go to the wire, whose parent_egress clears it) take the
 * full path.
 *
 * A container that is root in its namespace can write cb from a program
 * of its own. parent_ingress takes a verdict only for the network of its
 * own link, and uses it for nothing but counting: a forged one counts the
 * forger's frame on its own network's parent, and costs the frame the wire
 * mark, so that each receiver holds it to the rules of the local endpoint
 * whose MAC it carries, or drops it (ep_ingress.c).
 *
 * cb[0..1] are the stub's (the namespace's cookie, bpf/include/endpoint.h).
 */
#ifndef MVLAN_EASTWEST_H
#define MVLAN_EASTWEST_H

#include "spoof.h"

#define EW_MAGIC_LO 0x616c766d /* "mvla" */
#define EW_MAGIC_HI 0x77655f6e /* "n_ew" */
#define EW_COUNTS 0x80000000   /* the frame counts as east-west */

/* ip_unspecified_src: f is an IPv4 or IPv6 packet from the unspecified
 * address (a DHCP client's, DAD's); the caller checked the header. */
static __always_inline int ip_unspecified_src(const struct frame *f)
{
	void *l3 = f->data + f->l3off;

	if (f->proto == ETH_P_IP) {
		struct ipv4_hdr *ip = l3;

		return (void *)(ip + 1) <= f->end && is_zero4(ip->saddr);
	}
	if (f->proto == ETH_P_IPV6) {
		struct ipv6_hdr *ip = l3;

		return (void *)(ip + 1) <= f->end && is_zero16(ip->saddr);
	}
	return 0;
}

/* ew_leave records ep_egress's verdict on a frame that passed: an
 * untagged, well-formed unicast frame for peer, a local endpoint of ep's
 * network, counts on the parent; it counts as east-west unless it is an
 * IP packet from the unspecified address (parent.h: count_network_level).
 * Anything else clears cb[2..4], where another program may have left
 * something. */
static __always_inline void ew_leave(struct __sk_buff *skb, const struct frame *f,
				     const struct ep_info *peer, __u32 network_id)
{
	__u32 lo = 0, tag = 0;

	if (peer && f->eth_ok && !f->tagged && !f->malformed) {
		lo = EW_MAGIC_LO;
		tag = network_id | (ip_unspecified_src(f) ? 0 : EW_COUNTS);
	}
	skb->cb[2] = lo;
	skb->cb[3] = EW_MAGIC_HI;
	skb->cb[4] = tag;
}

/* ew_clear drops any verdict (parent_egress: the frame leaves). */
static __always_inline void ew_clear(struct __sk_buff *skb)
{
	skb->cb[2] = 0;
}

/* ew_take returns the verdict ep_egress left (EW_MAGIC found), and
 * clears it; *tag is the network id and EW_COUNTS. */
static __always_inline int ew_take(struct __sk_buff *skb, __u32 *tag)
{
	if (skb->cb[2] != EW_MAGIC_LO || skb->cb[3] != EW_MAGIC_HI)
		return 0;
	*tag = skb->cb[4];
	ew_clear(skb);
	return 1;
}

#endif /* MVLAN_EASTWEST_H */
