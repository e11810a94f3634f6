/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * guard.h: first-hop guards on what an endpoint sends above IP: router
 * messages (ra_guard), the link-layer options and targets of neighbour
 * discovery (nd_spoof) and DHCP (dhcp_guard, dhcp.h); and where
 * router messages from the wire must come from (ra_source, ra_ignore). Headers are
 * walked with a bound; a frame that does not end within it is unparsable
 * and dropped, never passed unchecked.
 *
 * Each check returns 0 (pass), a drop reason, or NOT_PARSED when a header
 * it needs is cut short (the frame then passes and counts as malformed:
 * the receiving stack drops it too).
 */
#ifndef MVLAN_GUARD_H
#define MVLAN_GUARD_H

#include "dhcp.h"

#define NO_UPPER (-2) /* a later fragment: no upper-layer header here */

#define IPPROTO_HOPOPTS 0
#define IPPROTO_IGMP 2
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_ICMPV6 58
#define IPPROTO_DSTOPTS 60

#define ND_ROUTER_SOLICIT 133
#define ND_ROUTER_ADVERT 134
#define ND_NEIGHBOR_SOLICIT 135
#define ND_NEIGHBOR_ADVERT 136
#define ND_REDIRECT 137
#define ND_OPT_SOURCE_LLADDR 1
#define ND_OPT_TARGET_LLADDR 2

/* Bounds of the parse: more extension headers or ND options than this
 * make a frame unparsable. */
#define MAX_EXT_HDRS 6
#define MAX_ND_OPTS 12

static __always_inline int is_ext_hdr(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT ||
	       nexthdr == IPPROTO_AH;
}

/* skip_ext_hdrs walks the extension headers; it returns the upper-layer
 * protocol and sets *off to its offset, NO_UPPER for a later fragment,
 * NOT_PARSED for a truncated header, or -REASON_UNPARSABLE when there are
 * more than MAX_EXT_HDRS. *frag tells whether a fragment header was among
 * them. */
static __always_inline int skip_ext_hdrs(struct __sk_buff *skb, __u8 nexthdr,
					 __u32 *off, int *frag)
{
	__u8 ext[4];

	*frag = 0;
#pragma unroll
	for (int i = 0; i < MAX_EXT_HDRS; i++) {
		if (!is_ext_hdr(nexthdr))
			return nexthdr;
		if (bpf_skb_load_bytes(skb, *off, ext, sizeof(ext)) < 0)
			return NOT_PARSED;
		if (nexthdr == IPPROTO_FRAGMENT) {
			/* The offset is in ext[2..3] (without the low 3 bits). */
			if ((ext[2] << 5 | ext[3] >> 3) != 0)
				return NO_UPPER;
			*frag = 1;
			*off += 8;
		} else if (nexthdr == IPPROTO_AH) {
			*off += (ext[1] + 2) * 4;
		} else {
			*off += (ext[1] + 1) * 8;
		}
		nexthdr = ext[0];
	}
	return is_ext_hdr(nexthdr) ? -REASON_UNPARSABLE : nexthdr;
}

/* icmp6_type reads the ICMPv6 type at off. Neighbour discovery is never
 * fragmented (RFC 6980): in a first fragment, an ND type, or a type that
 * is not there to read, is unparsable; the rest of the message is in
 * fragments no check sees. */
static __always_inline int icmp6_type(struct __sk_buff *skb, __u32 off, int frag,
				      __u8 *type)
{
	if (load_u8(skb, off, type) < 0)
		return frag ? REASON_UNPARSABLE : NOT_PARSED;
	if (frag && *type >= ND_ROUTER_SOLICIT && *type <= ND_REDIRECT)
		return REASON_UNPARSABLE;
	return 0;
}

#define NOT_ICMP6 (-3) /* icmp6_after_ext: the upper layer is not ICMPv6 */

/* icmp6_after_ext reads the ICMPv6 type (after any extension headers) of
 * the IPv6 packet whose first next-header is nexthdr, its header at *off;
 * 0 when it is in *type, else NOT_ICMP6, NOT_PARSED or a drop reason. */
static __always_inline int icmp6_after_ext(struct __sk_buff *skb, __u8 nexthdr,
					   __u32 *off, __u8 *type)
{
	int frag, proto = skip_ext_hdrs(skb, nexthdr, off, &frag);

	if (proto == -REASON_UNPARSABLE)
		return REASON_UNPARSABLE;
	if (proto == NOT_PARSED)
		return NOT_PARSED;
	if (proto != IPPROTO_ICMPV6)
		return NOT_ICMP6;
	return icmp6_type(skb, *off, frag, type);
}

/* check_nd_opts: every source or target link-layer address option in
 * [off, end) must be exactly the endpoint's MAC. */
static __always_inline int check_nd_opts(struct __sk_buff *skb, __u32 off,
					 __u32 end, const struct ep_info *ep)
{
	__u8 opt[8];

#pragma unroll
	for (int i = 0; i < MAX_ND_OPTS; i++) {
		if (off >= end)
			return 0;
		if (bpf_skb_load_bytes(skb, off, opt, 2) < 0)
			return NOT_PARSED;
		if (opt[1] == 0)
			return REASON_UNPARSABLE; /* the kernel refuses it too */
		if (opt[0] == ND_OPT_SOURCE_LLADDR || opt[0] == ND_OPT_TARGET_LLADDR) {
			if (opt[1] != 1)
				return REASON_ND_SPOOF;
			if (bpf_skb_load_bytes(skb, off, opt, sizeof(opt)) < 0)
				return NOT_PARSED;
			if (!mac_eq(opt + 2, ep->mac))
				return REASON_ND_SPOOF;
		}
		off += opt[1] * 8;
	}
	return off < end ? REASON_UNPARSABLE : 0;
}

/* check_icmp6: router messages need EP_ALLOW_ROUTER; an advertised target
 * must be the endpoint's own, and so must a solicited one from the
 * unspecified source (unspec: duplicate address detection, which a
 * neighbour answering for another's address would make that one give its
 * address up); link-layer options must carry its MAC. */
static __always_inline int check_icmp6(struct __sk_buff *skb, __u32 off,
				       __u32 end, int frag, int unspec,
				       const struct ep_info *ep)
{
	__u32 target[4]; /* aligned for eq4 */
	__u8 type;
	__u32 opts;
	int reason = icmp6_type(skb, off, frag, &type);

	if (reason)
		return reason;
	switch (type) {
	case ND_ROUTER_SOLICIT:
		opts = off + 8;
		break;
	case ND_ROUTER_ADVERT:
		if (!allowed(ep, EP_ALLOW_ROUTER))
			return REASON_RA_GUARD;
		opts = off + 16;
		break;
	case ND_NEIGHBOR_SOLICIT:
		if (unspec) {
			if (bpf_skb_load_bytes(skb, off + 8, target, sizeof(target)) < 0)
				return NOT_PARSED;
			if (!owns(ep, FAMILY_V6, (__u8 *)target))
				return REASON_ND_SPOOF;
		}
		opts = off + 24;
		break;
	case ND_NEIGHBOR_ADVERT:
		if (bpf_skb_load_bytes(skb, off + 8, target, sizeof(target)) < 0)
			return NOT_PARSED;
		if (!owns(ep, FAMILY_V6, (__u8 *)target))
			return REASON_ND_SPOOF;
		opts = off + 24;
		break;
	case ND_REDIRECT:
		return allowed(ep, EP_ALLOW_ROUTER) ? 0 : REASON_RA_GUARD;
	default:
		return 0;
	}
	if (opts > end)
		return NOT_PARSED;
	return check_nd_opts(skb, opts, end, ep);
}

/* check_upper6: the guards on what follows an IPv6 header at l3off. The
 * unspecified source is for ICMPv6 only (duplicate address detection,
 * MLD reports). */
static __always_inline int check_upper6(struct __sk_buff *skb, __u32 l3off,
					const struct ipv6_hdr *ip, int unspec,
					const struct ep_info *ep)
{
	__u32 off = l3off + sizeof(*ip);
	__u32 plen = bpf_ntohs(ip->payload_len);
	__u32 end = skb->len;
	int proto, frag;

	if (plen && off + plen < end)
		end = off + plen; /* without the Ethernet padding */
	proto = skip_ext_hdrs(skb, ip->nexthdr, &off, &frag);
	switch (proto) {
	case IPPROTO_ICMPV6:
		return check_icmp6(skb, off, end, frag, unspec, ep);
	case NOT_PARSED:
		return NOT_PARSED;
	case -REASON_UNPARSABLE:
		return REASON_UNPARSABLE;
	}
	if (unspec)
		return REASON_IP_SPOOF;
	if (proto == IPPROTO_UDP)
		return check_dhcp(skb, off, end, frag, ep, 1);
	return 0;
}

/* check_upper4: the DHCP guard on a first (or only) fragment. */
static __always_inline int check_upper4(struct __sk_buff *skb, __u32 l3off,
					const struct ipv4_hdr *ip,
					const struct ep_info *ep)
{
	if (ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(IP_OFFSET)))
		return 0;
	return check_dhcp(skb, l3off + (ip->ver_ihl & 0x0f) * 4, l3off + bpf_ntohs(ip->tot_len),
			  (ip->frag_off & bpf_htons(IP_MF)) != 0, ep, 0);
}

/* ra_source_match: 1 if the frame comes from network_id's RA source (its
 * link-local address and MAC, as set), 0 if not, -1 if it has none
 * (ipv6_ra=ignore). */
static __always_inline int ra_source_match(const struct frame *f,
					   const struct ipv6_hdr *ip, __u32 network_id)
{
	struct ra_source *rs = bpf_map_lookup_elem(&ra_sources, &network_id);
	int match = 1;

	if (!rs || !rs->flags)
		return -1;
	if (rs->flags & RA_SRC_MAC)
		match = mac48(rs->mac) == f->src;
	if (rs->flags & RA_SRC_LL)
		match = match && eq16(rs->ll, ip->saddr);
	return match;
}

/* router_reason: the reason to drop a router message (RA, redirect) whose
 * source ra_source_match found to be from_source: none without an RA
 * source (ra_ignore), another (ra_source). */
static __always_inline int router_reason(int from_source)
{
	if (from_source < 0)
		return REASON_RA_IGNORE;
	return from_source ? 0 : REASON_RA_SOURCE;
}

#endif /* MVLAN_GUARD_H */
