/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * eastwest.h: ep_egress hands its verdict on an east-west frame to
 * parent_ingress. In bridge mode macvlan gives a frame for another slave
 * of the parent to the parent's receive path first (for its taps), so
 * parent_ingress sees every unicast frame between two endpoints, after
 * ep_egress has checked it and looked up both ends. ep_egress leaves its
 * verdict in skb->cb[2..4]: EW_MAGIC, then the sender's slot, its network
 * and EW_COUNTS when the frame counts as east-west. The hand-off keeps cb
 * (dev_forward_skb scrubs the mark, not cb), and parent_ingress only
 * counts the frame on the parent, as its own parse would have, and takes
 * the verdict away (cb[2]). A frame without one (from the wire; in private
 * or VEPA mode, where it goes to the wire, whose parent_egress takes it
 * away) takes the full path, as does one whose cb something changed on
 * the way (a qdisc on the slave): the verdict is an optimisation, never
 * needed.
 *
 * A container that is root in its namespace can write cb from a program
 * of its own, and so can whoever holds the other end of a veth parent.
 * parent_ingress takes a verdict only for the network of its own link and
 * a frame with the source MAC of the sender it names, an endpoint of that
 * network, and not sent by a socket of another container's namespace
 * (the direct build: a program a container ran after its ep_egress may
 * have written both on a frame the full path drops, foreign_mac), and
 * uses it for nothing but counting: a forged one
 * counts the frame on that network's parent (as east-west), and costs it
 * the wire mark, so that each receiver holds it to that endpoint's rules
 * or drops it (ep_ingress.c).
 *
 * cb[0..2] are the stub's on the stub path (the namespace's cookie and the
 * tail call's slot, loader/stub.go), written before ep_egress runs.
 */
#ifndef MVLAN_EASTWEST_H
#define MVLAN_EASTWEST_H

#include "spoof.h"

#define EW_MAGIC_LO 0x616c766d   /* "mvla" */
#define EW_MAGIC_HI 0x77655f6e   /* "n_ew" */
#define EW_NETWORK_MASK 0xfff    /* MAX_NETWORKS ids */
#define EW_SLOT_SHIFT 12
#define EW_SLOT_MASK 0x7ffff     /* EP_SLOTS slots */
#define EW_COUNTS 0x80000000     /* the frame counts as east-west */

_Static_assert(MAX_NETWORKS - 1 <= EW_NETWORK_MASK, "network ids fit the verdict");
_Static_assert(EP_SLOTS - 1 <= EW_SLOT_MASK, "slots fit the verdict");

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

/* ew_leave records ep_egress's verdict on a frame ep sent that passed:
 * an untagged, well-formed unicast frame for peer, a local endpoint of
 * ep's network, counts on the parent; it counts as east-west unless it is
 * an IP packet from the unspecified address (parent.h:
 * count_network_level). Any other frame gets none: cb[2] is not the magic. */
static __always_inline void ew_leave(struct __sk_buff *skb, const struct frame *f,
				     const struct ep_info *ep, const struct ep_info *peer)
{
	__u32 lo = 0, tag = 0;

	if (peer && !f->tagged && !f->malformed) {
		lo = EW_MAGIC_LO;
		tag = (ep->slot & EW_SLOT_MASK) << EW_SLOT_SHIFT | (ep->network_id & EW_NETWORK_MASK) |
		      (ip_unspecified_src(f) ? 0 : EW_COUNTS);
	}
	skb->cb[2] = lo;
	skb->cb[3] = EW_MAGIC_HI;
	skb->cb[4] = tag;
}

/* ew_clear takes any verdict away (parent_egress: the frame leaves). */
static __always_inline void ew_clear(struct __sk_buff *skb)
{
	if (skb->cb[2] == EW_MAGIC_LO)
		skb->cb[2] = 0;
}

/* ew_take returns whether the frame has a verdict, in *tag, and takes it
 * away. */
static __always_inline int ew_take(struct __sk_buff *skb, __u32 *tag)
{
	if (skb->cb[2] != EW_MAGIC_LO || skb->cb[3] != EW_MAGIC_HI)
		return 0;
	*tag = skb->cb[4];
	skb->cb[2] = 0;
	return 1;
}

/* ew_sender: the endpoint a verdict names, if it is of network network_id
 * and has the frame's source MAC; else NULL. */
static __always_inline struct ep_info *ew_sender(struct __sk_buff *skb, __u32 tag,
						 __u32 network_id)
{
	struct eth_hdr *eth = (void *)(long)skb->data;
	__u32 slot = tag >> EW_SLOT_SHIFT & EW_SLOT_MASK;
	struct ep_info *ep;

	if ((void *)(eth + 1) > (void *)(long)skb->data_end)
		return NULL;
	ep = bpf_map_lookup_elem(&endpoints, &slot);
	if (!ep || ep->network_id != network_id || ep_mac48(ep) != mac48(eth->src))
		return NULL;
	return ep;
}

#endif /* MVLAN_EASTWEST_H */
