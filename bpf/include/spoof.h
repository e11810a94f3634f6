/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * spoof.h: the anti-spoofing rules of ep_egress. Each check returns 0 when
 * the frame is the endpoint's own, a drop reason when it is not, and
 * NOT_PARSED when a header it needs is cut short (the frame then passes and
 * counts as malformed).
 */
#ifndef MVLAN_SPOOF_H
#define MVLAN_SPOOF_H

#include "endpoint.h"

#define NOT_PARSED (-1)
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_DSTOPTS 60
#define IPPROTO_ICMPV6 58
#define ND_NEIGHBOR_ADVERT 136
#define ND_OPT_TARGET_LLADDR 2
#define MAX_EXT_HDRS 4
#define MAX_ND_OPTS 3

struct nd_advert {
	__u8 type;
	__u8 code;
	__u16 csum;
	__u32 flags;
	__u8 target[16];
};

static __always_inline int is_zero4(const __u8 *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

static __always_inline int is_zero16(const __u8 *a)
{
	return is_zero4(a) && is_zero4(a + 4) && is_zero4(a + 8) &&
	       is_zero4(a + 12);
}

static __always_inline int check_ipv4(struct frame *f, const struct ep_info *ep)
{
	struct ipv4_hdr *ip = f->data + f->l3off;

	if ((void *)(ip + 1) > f->end)
		return NOT_PARSED;
	if (is_zero4(ip->saddr) || owns(ep, FAMILY_V4, ip->saddr))
		return 0;
	return REASON_IP_SPOOF;
}

static __always_inline int check_arp(struct frame *f, const struct ep_info *ep)
{
	struct arp_hdr *arp = f->data + f->l3off;
	struct arp_eth_ipv4 *body = (void *)(arp + 1);

	if ((void *)(body + 1) > f->end)
		return 0; /* not Ethernet/IPv4 ARP (else it were malformed) */
	if (arp->hlen != ETH_ALEN || arp->plen != 4 ||
	    arp->ptype != bpf_htons(ETH_P_IP))
		return 0;
	if (!mac_eq(body->sha, ep->mac))
		return REASON_ARP_SPOOF;
	if (!is_zero4(body->spa) && !owns(ep, FAMILY_V4, body->spa))
		return REASON_ARP_SPOOF;
	return 0;
}

/* skip_ext_hdrs walks hop-by-hop, routing and destination options headers;
 * it returns the upper-layer protocol and sets *off to its offset. */
static __always_inline int skip_ext_hdrs(struct __sk_buff *skb, __u8 nexthdr,
					 __u32 *off)
{
	__u8 ext[2];

#pragma unroll
	for (int i = 0; i < MAX_EXT_HDRS; i++) {
		if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING &&
		    nexthdr != IPPROTO_DSTOPTS)
			break;
		if (bpf_skb_load_bytes(skb, *off, ext, sizeof(ext)) < 0)
			return NOT_PARSED;
		nexthdr = ext[0];
		*off += (ext[1] + 1) * 8;
	}
	return nexthdr;
}

/* check_nd_opts: a target link-layer address option must be the MAC. */
static __always_inline int check_nd_opts(struct __sk_buff *skb, __u32 off,
					 const struct ep_info *ep)
{
	__u8 opt[8];

#pragma unroll
	for (int i = 0; i < MAX_ND_OPTS; i++) {
		if (bpf_skb_load_bytes(skb, off, opt, sizeof(opt)) < 0)
			return 0; /* no more options */
		if (opt[1] == 0)
			return NOT_PARSED;
		if (opt[0] == ND_OPT_TARGET_LLADDR && opt[1] == 1 &&
		    !mac_eq(opt + 2, ep->mac))
			return REASON_ND_SPOOF;
		off += opt[1] * 8;
	}
	return 0;
}

/* check_nd: a neighbour advertisement must be for one of the endpoint's
 * addresses and announce its MAC. */
static __always_inline int check_nd(struct __sk_buff *skb, struct frame *f,
				    const struct ep_info *ep, __u8 nexthdr)
{
	__u32 off = f->l3off + sizeof(struct ipv6_hdr);
	struct nd_advert na;
	int proto = skip_ext_hdrs(skb, nexthdr, &off);

	if (proto != IPPROTO_ICMPV6)
		return proto == NOT_PARSED ? NOT_PARSED : 0;
	if (bpf_skb_load_bytes(skb, off, &na, 1) < 0)
		return NOT_PARSED;
	if (na.type != ND_NEIGHBOR_ADVERT)
		return 0;
	if (bpf_skb_load_bytes(skb, off, &na, sizeof(na)) < 0)
		return NOT_PARSED;
	if (!owns(ep, FAMILY_V6, na.target))
		return REASON_ND_SPOOF;
	return check_nd_opts(skb, off + sizeof(na), ep);
}

static __always_inline int check_ipv6(struct __sk_buff *skb, struct frame *f,
				      const struct ep_info *ep)
{
	struct ipv6_hdr *ip = f->data + f->l3off;

	if ((void *)(ip + 1) > f->end)
		return NOT_PARSED;
	/* The unspecified source is used by DAD and MLD before an address. */
	if (!is_zero16(ip->saddr) && !owns(ep, FAMILY_V6, ip->saddr))
		return REASON_IP_SPOOF;
	return check_nd(skb, f, ep, ip->nexthdr);
}

#endif /* MVLAN_SPOOF_H */
