// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ep_ingress: TC ingress of an endpoint's macvlan slave, in the container's
 * netns: the receiver's check, which the sender cannot switch off. A frame
 * whose source MAC is a local endpoint's must be of the same network
 * (cross_network), untagged (vlan_tag) and follow that sender's rules
 * (spoof.h: its addresses, its first-hop guards, complete headers),
 * whatever happened to the sender's own programs. A priority tag left in
 * the metadata (a switch reflecting a frame) is no tag: it is cleared.
 *
 * On the network's host shim (EP_HOST_SHIM), a local endpoint's unicast
 * IPv4/IPv6 frame must be for one of the shim's own addresses (its
 * link-local included): the host, forwarding, would otherwise route it
 * with the container's own source, to anything it reaches, or deliver it
 * to a service bound to another of its addresses (host_route). A network
 * with -o allow_router=true has chosen the host as its containers'
 * router. Broadcast and multicast (ARP, ND, DHCP, mDNS) and the wire's
 * frames to the shim are not checked; other endpoints never look.
 *
 * A frame from any other MAC must have come from the wire (parent_ingress
 * marked it); one that did not came from a link mvlan does not know on the
 * same parent, such as a macvlan a container made on its eth0, and is
 * dropped (unknown_source). (Such a link's unicast to a neighbour crosses
 * the parent's receive path, as macvlan forwards it there for its taps,
 * and is marked like the wire's; its broadcasts are not.) A mark on a
 * frame redirected to this hook is not the wire's: a container can set
 * it (SO_MARK) on a frame it redirects from a link of its own (tc
 * mirred), say a DHCP server's reply to the agent's client (the direct
 * build tells; the stub build cannot). Nor may any
 * other MAC bind a local endpoint's address, in ARP (arp_spoof) or in a
 * neighbour advertisement or redirect naming it or a solicitation from it,
 * after any extension headers (nd_spoof): a local endpoint's binding comes
 * from its own MAC only. A router advertisement or redirect from any such
 * MAC must come from the network's RA source (ra_source); a network
 * without one (ipv6_ra=ignore) takes none from the wire (ra_ignore), so
 * that an endpoint whose link accepts RAs all the same (a Docker
 * container's: Docker configures it) does not either. (A local
 * endpoint's are ra_guard's.)
 *
 * A unicast frame for another MAC than the endpoint's own is dropped,
 * whatever its source (foreign_dst): macvlan hands a link only frames for
 * its MAC, but a container with CAP_NET_ADMIN can switch its link to
 * macvlan source mode and list a neighbour's or the gateway's MAC, and
 * the kernel then gives it a copy of each of that MAC's frames, with the
 * wire's mark or passing that sender's rules, until the tamper check sets
 * the mode back (mode_changed); a passthru link, its parent promiscuous,
 * gets every unicast on the wire. Its packet taps, which run
 * before TC, still see such a copy; its stack and its sockets of one
 * protocol do not. Broadcast and multicast are every link's.
 *
 * A link whose endpoint is not in the table drops everything
 * (no_endpoint): the agent attaches the programs after the entry and
 * deletes the entry after the link. Counts rx per network.
 */
#include "include/spoof.h"

/* wire_nd_opts: the link-layer address options in [off, end) of
 * neighbour discovery from the wire may not carry a local endpoint's MAC:
 * the receiver would bind the message's address (its source, its target:
 * the gateway's, say) to that endpoint (nd_spoof), as an ARP sender may not
 * (wire_reason). More options than the bounded walk reads: unparsable. */
static __always_inline int wire_nd_opts(struct __sk_buff *skb, __u32 off, __u32 end)
{
	__u8 opt[2];
	__u64 mac; /* aligned for mac48 */

#pragma unroll
	for (int i = 0; i < MAX_ND_OPTS; i++) {
		if (off >= end)
			return 0;
		if (bpf_skb_load_bytes(skb, off, opt, sizeof(opt)) < 0)
			return NOT_PARSED;
		if (opt[1] == 0)
			return REASON_UNPARSABLE; /* the kernel refuses it too */
		if ((opt[0] == ND_OPT_SOURCE_LLADDR || opt[0] == ND_OPT_TARGET_LLADDR) && opt[1] == 1) {
			mac = 0;
			if (bpf_skb_load_bytes(skb, off + 2, &mac, ETH_ALEN) < 0)
				return NOT_PARSED;
			if (ep_of_mac(mac48(&mac)))
				return REASON_ND_SPOOF;
		}
		off += opt[1] * 8;
	}
	return off < end ? REASON_UNPARSABLE : 0;
}

/* nd_reason: neighbour discovery from a MAC of no local endpoint, after
 * any extension headers, as the receiver's stack reads it. It may not
 * bind a local endpoint's IPv6 address to another MAC: an advertisement
 * or redirect naming it as its target, or a solicitation from it (the
 * receiver takes the source link-layer option for the source): nd_spoof.
 * A router advertisement or redirect (only the first-hop router may
 * redirect, RFC 4861 8.1) must come from the network's RA source
 * (ra_source); a network without one takes none (ra_ignore), whatever the
 * receiving link's accept_ra says (a Docker container's is the kernel's
 * default, on). The RA source may redirect to a local endpoint: its
 * router sends a container to a neighbour on another of the network's
 * subnets that way. Only RAs and redirects look the source up. Nor may
 * a solicitation or advertisement carry a local endpoint's MAC in its
 * link-layer options (wire_nd_opts). */
static __always_inline int nd_reason(struct __sk_buff *skb, struct frame *f,
				     struct ipv6_hdr *ip, __u32 network_id)
{
	__u32 off = f->l3off + sizeof(*ip);
	/* The message ends where the IPv6 payload does, not at the frame's
	 * end (Ethernet padding, a trailer). */
	__u32 end = off + bpf_ntohs(ip->payload_len);
	__u32 target[4]; /* aligned for eq4 */
	__u32 opts = 24; /* where an NS's or NA's options start */
	__u8 type;
	int reason = icmp6_after_ext(skb, ip->nexthdr, &off, &type);

	if (reason)
		return reason == NOT_ICMP6 ? 0 : reason;
	switch (type) {
	case ND_ROUTER_SOLICIT:
		opts = 8;
		/* fall through */
	case ND_NEIGHBOR_SOLICIT:
		if (ep_of_ip(FAMILY_V6, ip->saddr))
			return REASON_ND_SPOOF;
		break;
	case ND_ROUTER_ADVERT:
		return router_reason(ra_source_match(f, ip, network_id));
	case ND_REDIRECT:
		reason = router_reason(ra_source_match(f, ip, network_id));
		if (reason != REASON_RA_IGNORE && reason != REASON_RA_SOURCE)
			return 0; /* the RA source's: it may name a local endpoint */
		/* fall through: a redirect's target is where an NA's is */
	case ND_NEIGHBOR_ADVERT:
		if (bpf_skb_load_bytes(skb, off + 8, target, sizeof(target)) < 0)
			return NOT_PARSED;
		if (ep_of_ip(FAMILY_V6, (__u8 *)target))
			return REASON_ND_SPOOF;
		if (type == ND_REDIRECT)
			return reason;
		break;
	default:
		return 0;
	}
	return wire_nd_opts(skb, off + opts, end);
}

/* wire_reason: an ARP sender or neighbour discovery (nd_reason) that
 * binds a local endpoint's address, or an ARP sender that is a local
 * endpoint's MAC (another's address bound to it: the gateway's, say); a
 * router message not from the network's RA source. The caller knows the
 * frame's source MAC is no endpoint's. */
static __always_inline int wire_reason(struct __sk_buff *skb, struct frame *f,
				       __u32 network_id)
{
	struct arp_eth_ipv4 *body = arp_body(f);
	void *l3 = f->data + f->l3off;

	if (f->malformed)
		return 0;
	if (body)
		return ep_of_ip(FAMILY_V4, body->spa) || ep_of_mac(mac48(body->sha)) ?
			       REASON_ARP_SPOOF : 0;
	if (f->proto == ETH_P_IPV6) {
		struct ipv6_hdr *ip = l3;

		if ((void *)(ip + 1) > f->end)
			return 0;
		return nd_reason(skb, f, ip, network_id);
	}
	return 0;
}

/* bcast_of: d is the broadcast address of a subnet (of at most /30) that
 * holds s: the bits where they differ, and all below, are set in d. The
 * row has no prefix lengths; a subnet's broadcast is what a container
 * sends (NetBIOS, Wake-on-LAN), which the host, whose shim addresses are
 * /32, neither takes nor forwards (not PACKET_HOST): not counted. */
static __always_inline int bcast_of(const __u8 *d, __be32 s)
{
	__be32 dv;
	__u32 diff, host;

	__builtin_memcpy(&dv, d, sizeof(dv));
	diff = bpf_ntohl(dv) ^ bpf_ntohl(s);
	host = diff | diff >> 1;
	host |= host >> 2;
	host |= host >> 4;
	host |= host >> 8;
	host |= host >> 16;
	return host >= 3 && (bpf_ntohl(dv) & host) == host;
}

/* shim_bcast: d is a subnet broadcast of one of the shim ep's addresses. */
static __always_inline int shim_bcast(const struct ep_info *ep, const __u8 *d)
{
	int b = 0;

#pragma unroll
	for (int i = 0; i < EP_MAX_V4; i++)
		if (i < ep->n4 && bcast_of(d, ep->ip4[i]))
			b = 1;
	return b;
}

/* host_route_reason: a frame that passed sender_reason, from a local
 * endpoint to the host shim ep: an IP packet must be for one of the
 * shim's own addresses (its row has them, the EUI-64 link-local
 * included), unless its network allows a router. In a broadcast or
 * multicast frame a multicast or broadcast IP destination passes too
 * (the shim's subnets' broadcasts included), but not another unicast
 * one: the host takes unicast IP in a broadcast frame on any of its
 * addresses. */
static __always_inline int host_route_reason(const struct frame *f,
					     const struct ep_info *ep)
{
	void *l3 = f->data + f->l3off;
	int group = mac_is_multicast(f->dst);

	if (allowed(ep, EP_ALLOW_ROUTER))
		return 0;
	if (f->proto == ETH_P_IP) {
		struct ipv4_hdr *ip = l3;

		if ((void *)(ip + 1) > f->end)
			return 0; /* sender_reason read it */
		if (group && (ip4_group(ip->daddr) || shim_bcast(ep, ip->daddr)))
			return 0;
		return owns(ep, FAMILY_V4, ip->daddr) ? 0 : REASON_HOST_ROUTE;
	}
	if (f->proto == ETH_P_IPV6) {
		struct ipv6_hdr *ip = l3;

		if ((void *)(ip + 1) > f->end)
			return 0;
		if (group && ip->daddr[0] == 0xff)
			return 0;
		return owns(ep, FAMILY_V6, ip->daddr) ? 0 : REASON_HOST_ROUTE;
	}
	return 0;
}

static __always_inline int ingress_reason(struct __sk_buff *skb, struct frame *f,
					  const struct ep_info *ep, int from_wire)
{
	struct ep_info *sender;

	if (!f->eth_hdr)
		return 0;
	if (!mac_is_multicast(f->dst) && f->dst != ep_mac48(ep))
		return REASON_FOREIGN_DST;
	sender = ep_of_mac(f->src);
	if (!sender && !from_wire)
		return REASON_UNKNOWN_SOURCE; /* a multicast source too: no sender has one */
	if (sender && sender->network_id != ep->network_id)
		return REASON_CROSS_NETWORK;
	if (sender && f->tagged)
		return REASON_VLAN_TAG; /* a tag cut short too */
	if (!f->eth_ok)
		return 0;
	if (sender) {
		int reason = sender_reason(skb, f, sender);

		if (reason || !(ep->flags & EP_HOST_SHIM))
			return reason;
		return host_route_reason(f, ep);
	}
	return wire_reason(skb, f, ep->network_id);
}

SEC("tc")
int ep_ingress(struct __sk_buff *skb)
{
	__u32 mark = skb->mark;
	struct frame f = {};
	struct ep_info *ep;
	int reason;

	/* No branch on the mark here: the verifier would walk the rest of
	 * the program once per value. */
	skb->mark = mark & ~WIRE_MARK;
	/* A priority tag (a reflecting switch's) left in the metadata is
	 * cleared here as the receive path clears it after TC. */
	if (skb->vlan_present && !(skb->vlan_tci & VLAN_VID_MASK))
		bpf_skb_vlan_pop(skb);
	parse_frame(skb, &f);
	ep = lookup_self(skb, f.dst);
	if (!ep) {
		count_drop(0, REASON_NO_ENDPOINT, f.len);
		return VERDICT_DROP;
	}
	/* The wire's mark, unless the frame was redirected here (a mark a
	 * container set): mask, no branch. */
	reason = ingress_reason(skb, &f, ep, mark & WIRE_MARK & (redirected(skb) - 1));
	if (reason == NOT_PARSED)
		f.malformed = 1;
	if (f.malformed)
		count_malformed(HOOK_EP_INGRESS, f.len);
	if (reason > 0) {
		count_drop(ep->network_id, reason, f.len);
		return VERDICT_DROP;
	}
	count_network(ep->network_id, DIR_RX, f.len);
	return VERDICT_NEXT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
