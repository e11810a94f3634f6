/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * parent.h: what parent_ingress and parent_egress share. Both run on a
 * network's parent link and on the trunk below a sub-interface, in the
 * agent's netns.
 *
 * Per-VLAN counters are keyed by (ifindex, vid): on a sub-interface (a
 * parents entry with a VID) every frame counts under its VID; elsewhere a
 * tagged frame under its tag from the skb metadata or the frame, an
 * untagged one under 0 (count_vid). An untagged frame
 * on a network's parent counts in the network's net_stats slot (one array
 * look-up for all its counters); the loader reports it as (parent, VLAN).
 *
 * Network-level counters (flood, hairpin, east-west) are counted only for
 * untagged frames on a link with a parents entry (and priority-tagged ones
 * from the wire, VID 0), so a frame seen on both a sub-interface and its
 * trunk counts once. On that link too, ingress marks frames from the wire
 * for local endpoints (WIRE_MARK), and egress drops a frame with a local
 * endpoint's source MAC that breaks that endpoint's rules, or that the
 * endpoint tagged (counted under the endpoint's network, not per VLAN).
 * Both drop a container's frame sent past its own programs with a MAC not
 * of its namespace (the direct build: sock_elsewhere).
 */
#ifndef MVLAN_PARENT_H
#define MVLAN_PARENT_H

#include "spoof.h"

/* same_network: mac is a local endpoint's of network_id. */
static __always_inline int same_network(__u64 mac, __u32 network_id)
{
	struct ep_info *m = ep_of_mac(mac);

	return m && m->network_id == network_id;
}

/* src_owner fills *o with the local endpoint owning the source IP of an
 * IPv4 or IPv6 frame; 0 if none does. *is_ip tells whether the frame had
 * a source IP. */
static __always_inline int src_owner(const struct frame *f, struct owner *o, int *is_ip)
{
	void *l3 = f->data + f->l3off;

	*is_ip = 0;
	if (f->malformed)
		return 0;
	if (f->proto == ETH_P_IP) {
		struct ipv4_hdr *ip = l3;

		if ((void *)(ip + 1) > f->end)
			return 0;
		*is_ip = 1;
		return ip_owner(FAMILY_V4, ip->saddr, o);
	}
	if (f->proto == ETH_P_IPV6) {
		struct ipv6_hdr *ip = l3;

		if ((void *)(ip + 1) > f->end)
			return 0;
		*is_ip = 1;
		return ip_owner(FAMILY_V6, ip->saddr, o);
	}
	return 0;
}

/* count_network_level: flood in both directions; on ingress, hairpin (the
 * source IP is a local endpoint's, the source MAC is not) or east-west (a
 * unicast frame between two local endpoints of the parent's network; for IP
 * frames the source IP must be the sender's). dst is the local endpoint
 * the frame is for (ingress; NULL if none), looked up once by the caller. */
static __always_inline void count_network_level(const struct frame *f,
						const struct parent_info *p,
						struct net_counters *c,
						const struct ep_info *dst,
						enum direction dir)
{
	struct owner owner;
	int is_ip, owned, ew;

	if (mac_is_multicast(f->dst))
		pb_add(&c->flood[f->dst == MAC48_BROADCAST ? FLOOD_BROADCAST : FLOOD_MULTICAST][dir],
		       f->len);
	if (dir != DIR_RX)
		return;
	owned = src_owner(f, &owner, &is_ip);
	if (owned && owner.mac != f->src) {
		pb_add(&c->hairpin, f->len);
		return;
	}
	if (owned)
		ew = owner.network_id == p->network_id;
	else
		ew = !is_ip && same_network(f->src, p->network_id);
	if (ew && dst && dst->network_id == p->network_id)
		pb_add(&c->eastwest, f->len);
}

/* container_sock: the frame was sent by a socket of a namespace with
 * endpoints other than the parent's own, a container's: sock is
 * sock_elsewhere's cookie. */
static __always_inline int container_sock(__u64 sock)
{
	__u8 *in;

	if (!sock)
		return 0;
	in = bpf_map_lookup_elem(&ep_netns, &sock);
	return in ? *in : 0; /* the value, 1: no test of a pointer clang may fold */
}

/* foreign_mac: a container's socket (sock, sock_elsewhere's cookie of a
 * namespace with endpoints) sent a frame whose source MAC is no endpoint
 * of its namespace (sender: the endpoint of that MAC, if any). A moving
 * row (EP_MOVING, a Docker endpoint whose link the runtime is moving into
 * the container) counts as anyone's; the host's own rows (a host shim)
 * are no container's. */
static __always_inline int foreign_mac(const struct ep_info *sender, __u64 sock)
{
	if (!sock)
		return 0;
	if (sender && (sender->netns_cookie == sock || (sender->flags & EP_MOVING)))
		return 0;
	return container_sock(sock);
}

/* host_link: mac is one of the links g names as the host's own. */
static __always_inline int host_link(const struct gateways *g, __u64 mac)
{
#pragma unroll
	for (int i = 0; i < GW_MAX_MACS; i++)
		if (i < g->nmacs && g->macs[i] == mac)
			return 1;
	return 0;
}

/* from_host: the frame (its Ethernet source src, its ARP sender hardware
 * address sha, if any) is from links g names as the host's own. */
static __always_inline int from_host(const struct gateways *g, __u64 src, const __u8 *sha)
{
	return host_link(g, src) && (!sha || host_link(g, mac48(sha)));
}

/* not_host: the frame is not from the host's links of network net's
 * gateway pin (from_host); 0 where nothing is pinned (none known). */
static __always_inline int not_host(__u32 net, __u64 src, const __u8 *sha)
{
	struct gateways *g = bpf_map_lookup_elem(&gateways, &net);

	return g && g->nmacs && !from_host(g, src, sha);
}

/* claimed: addr is a container's of network net (a local endpoint's;
 * another network's is another segment's, and DHCP networks may share
 * subnets), or the host shim's and the frame is not from a host's link
 * (not_host: the host's parent may answer for the shim's address);
 * as_source: as a frame's IP source, which the host may send for a
 * container on a network that allows a router (forwarding for it). */
static __always_inline int claimed(__u8 family, const __u8 *addr, __u32 net, int as_source,
				   __u64 src, const __u8 *sha)
{
	struct ep_info *ep;
	struct owner o;

	if (!ip_owner(family, addr, &o) || o.network_id != net)
		return 0;
	ep = ep_of_mac(o.mac);
	if (!ep)
		return 1;
	if (ep->flags & EP_HOST_SHIM)
		return not_host(net, src, sha);
	return !as_source || !allowed(ep, EP_ALLOW_ROUTER);
}

/* pinned_gateway: addr is one of g's gateways. */
static __always_inline int pinned_gateway(const struct gateways *g, __u8 family, const __u8 *addr)
{
	int gw = 0;

	if (family == FAMILY_V4) {
#pragma unroll
		for (int i = 0; i < GW_MAX_V4; i++)
			if (i < g->n4 && eq4(g->gw4[i], addr))
				gw = 1;
		return gw;
	}
#pragma unroll
	for (int i = 0; i < GW_MAX_V6; i++)
		if (i < g->n6 && eq16(g->gw6[i], addr))
			gw = 1;
	return gw;
}

/* gateway_claimed: addr is one of network net's gateways and the frame
 * (its Ethernet source src, its ARP sender hardware address sha, if any)
 * is not from a link of the host's own (host_link): no other link on the
 * parent may send as a gateway or bind one to its MAC on the wire. A
 * network whose router may be a container (allow_router) pins none. */
static __always_inline int gateway_claimed(__u8 family, const __u8 *addr, __u32 net,
					   __u64 src, const __u8 *sha)
{
	struct gateways *g = bpf_map_lookup_elem(&gateways, &net);

	return g && pinned_gateway(g, family, addr) && !from_host(g, src, sha);
}

/* host_nd_opts: every link-layer address option in [off, end) of
 * neighbour discovery is a MAC of a host's link of g, as an ARP sender
 * for a gateway must be; 0 if one is not, or the options cannot be read
 * to their end. */
static __always_inline int host_nd_opts(struct __sk_buff *skb, __u32 off, __u32 end,
					const struct gateways *g)
{
	__u8 opt[2];
	__u64 mac; /* aligned for mac48 */

#pragma unroll
	for (int i = 0; i < MAX_ND_OPTS; i++) {
		if (off >= end)
			return 1;
		if (bpf_skb_load_bytes(skb, off, opt, sizeof(opt)) < 0 || opt[1] == 0)
			return 0;
		if (opt[0] == ND_OPT_SOURCE_LLADDR || opt[0] == ND_OPT_TARGET_LLADDR) {
			mac = 0;
			if (opt[1] != 1 || bpf_skb_load_bytes(skb, off + 2, &mac, ETH_ALEN) < 0 ||
			    !host_link(g, mac48(&mac)))
				return 0;
		}
		off += opt[1] * 8;
	}
	return off >= end;
}

/* nd_claim: the drop reason of an IPv6 packet that is neighbour
 * discovery claiming an address toward the wire (0 if it claims none): an
 * advertisement whose target is a container's address or, from another
 * link than the host's, one of the network's gateways; or an advertisement
 * for a gateway, or a solicitation from one, from a host's link
 * (gateway_claimed let it through) whose link-layer options name another
 * MAC: the wire would bind the gateway to it. On a network with an IPv6
 * gateway pinned, a packet from another link than the host's whose headers
 * the bounded parse cannot read (more extension headers than it walks, a
 * first fragment of neighbour discovery) is unparsable: it may be an
 * advertisement for the gateway that no check could see. */
static __always_inline int nd_claim(struct __sk_buff *skb, const struct frame *f,
				    const struct ipv6_hdr *ip, __u32 net)
{
	__u32 off = f->l3off + sizeof(*ip);
	__u32 end = off + bpf_ntohs(ip->payload_len);
	struct gateways *g;
	__u64 target[2]; /* aligned for any load of it */
	__u8 type;
	int r = icmp6_after_ext(skb, ip->nexthdr, &off, &type);

	if (r == REASON_UNPARSABLE) {
		g = bpf_map_lookup_elem(&gateways, &net);
		return g && g->n6 && !host_link(g, f->src) ? REASON_UNPARSABLE : 0;
	}
	if (r)
		return 0; /* not ICMPv6 (most of the host's traffic): no look-up */
	if (type == ND_NEIGHBOR_ADVERT) {
		if (bpf_skb_load_bytes(skb, off + 8, target, sizeof(target)) < 0)
			return 0;
		if (claimed(FAMILY_V6, (__u8 *)target, net, 0, f->src, NULL) ||
		    gateway_claimed(FAMILY_V6, (__u8 *)target, net, f->src, NULL))
			return REASON_ND_SPOOF;
	} else if (type != ND_NEIGHBOR_SOLICIT) {
		return 0;
	}
	g = bpf_map_lookup_elem(&gateways, &net);
	if (!g || !pinned_gateway(g, FAMILY_V6, type == ND_NEIGHBOR_ADVERT ? (__u8 *)target : ip->saddr))
		return 0;
	return host_nd_opts(skb, off + 24, end, g) ? 0 : REASON_ND_SPOOF;
}

/* claim_reason: a frame leaving through the parent of network net whose
 * source MAC is no endpoint's (the host's, or a link a container nested on
 * the parent, which no program of the container's sees, sending without a
 * socket: its kernel's ARP, forwarded packets) must not claim a container
 * of net's address as its IP source, ARP sender or NA target, nor, unless
 * it is from a link of the host's own, one of net's gateways as any of them: the wire
 * would bind the address to that link's MAC (an IPv6 solicitation from an
 * address binds it as an advertisement does). */
static __always_inline int claim_reason(struct __sk_buff *skb, const struct frame *f, __u32 net)
{
	struct arp_eth_ipv4 *body = arp_body(f);
	void *l3 = f->data + f->l3off;

	if (f->malformed)
		return 0;
	if (body) {
		if (claimed(FAMILY_V4, body->spa, net, 0, f->src, body->sha) ||
		    gateway_claimed(FAMILY_V4, body->spa, net, f->src, body->sha))
			return REASON_ARP_SPOOF;
		return 0;
	}
	if (f->proto == ETH_P_IP) {
		struct ipv4_hdr *ip = l3;

		if ((void *)(ip + 1) > f->end)
			return 0;
		if (claimed(FAMILY_V4, ip->saddr, net, 1, f->src, NULL) ||
		    gateway_claimed(FAMILY_V4, ip->saddr, net, f->src, NULL))
			return REASON_IP_SPOOF;
		return 0;
	}
	if (f->proto == ETH_P_IPV6) {
		struct ipv6_hdr *ip = l3;

		if ((void *)(ip + 1) > f->end)
			return 0;
		if (claimed(FAMILY_V6, ip->saddr, net, 1, f->src, NULL) ||
		    gateway_claimed(FAMILY_V6, ip->saddr, net, f->src, NULL))
			return REASON_IP_SPOOF; /* a solicitation from it binds it too */
		return nd_claim(skb, f, ip, net);
	}
	return 0;
}

/* egress_reason: a frame leaving through the parent with a local
 * endpoint's source MAC must be of an endpoint of the parent's network
 * (another network's leave through their own parents: a container on two
 * networks sending one's MAC out of the other's link is mac_spoof) and
 * follow that endpoint's rules (spoof.h), whatever happened to its own
 * programs; one with another source MAC must not claim a container's
 * address (claim_reason). A container's frame that they never saw (sent with
 * PACKET_QDISC_BYPASS or AF_XDP, which skip TC) must carry the MAC of an
 * endpoint of its namespace; only the direct build can tell such a frame
 * (sock_elsewhere). */
static __always_inline int egress_reason(struct __sk_buff *skb, struct frame *f,
					 __u32 parent_net, __u32 *network_id)
{
	struct ep_info *sender = ep_of_mac(f->src);

	*network_id = parent_net;
	if (foreign_mac(sender, sock_elsewhere(skb)))
		return REASON_MAC_SPOOF;
	if (!sender)
		return claim_reason(skb, f, parent_net);
	if (sender->network_id != parent_net)
		return REASON_MAC_SPOOF;
	return sender_reason(skb, f, sender);
}

/* rx_reason: a container's frame past its programs to a neighbour
 * (bridge mode sends a unicast through this path) must carry the MAC of
 * an endpoint of its namespace, else mac_spoof; *wire tells whether the
 * frame may be marked as from the wire (not a container's). Its
 * broadcasts reach the neighbours straight, without a socket, and are
 * theirs to check. */
static __always_inline int rx_reason(struct __sk_buff *skb, struct frame *f,
				     __u32 parent_net, __u32 *network_id, int *wire)
{
	__u64 sock = sock_elsewhere(skb);

	*wire = !container_sock(sock);
	if (*wire || !foreign_mac(ep_of_mac(f->src), sock))
		return 0;
	*network_id = parent_net;
	return REASON_MAC_SPOOF;
}

/* own_vlan handles an untagged frame on a network's parent: ingress marks
 * a frame for a local endpoint (or flood) as from the wire, for
 * ep_ingress; egress checks an endpoint's frame. Counted in the network's slot: its parent's VLAN
 * traffic and the network-level counters. */
static __always_inline int own_vlan(struct __sk_buff *skb, struct frame *f,
				    const struct parent_info *p,
				    enum direction dir, __u32 *drop_net)
{
	struct net_counters *c = net_counters(p->network_id);
	struct ep_info *dst = NULL;
	int reason = 0;

	if (dir == DIR_TX) {
		reason = egress_reason(skb, f, p->network_id, drop_net);
		if (reason > 0)
			return reason;
	} else {
		int wire;

		reason = rx_reason(skb, f, p->network_id, drop_net, &wire);
		if (reason > 0)
			return reason;
		dst = ep_of_mac(f->dst); /* NULL for multicast */
		if (wire && (dst || mac_is_multicast(f->dst)))
			skb->mark |= WIRE_MARK; /* for ep_ingress: from the wire */
	}
	if (!c)
		return reason;
	if (dir == DIR_TX)
		pb_add(&c->parent.tx, f->len);
	else
		pb_add(&c->parent.rx, f->len);
	count_network_level(f, p, c, dst, dir);
	return reason;
}

/* legacy_tag: behind the tags parse_tags read, the frame carries the
 * ethertype of a tag of switches older than 802.1ad (0x9100, 0x9200),
 * which the kernel does not take for a tag and such a switch does: a tag
 * written in the frame all the same. */
static __always_inline int legacy_tag(const struct frame *f)
{
	return f->eth_ok && (f->proto == ETH_P_QINQ1 || f->proto == ETH_P_QINQ2);
}

/* tagged_reason: a tagged frame leaving a network's parent that a
 * container tagged, if its own programs are gone: one with the source MAC
 * of one of the network's endpoints (whose frames are untagged here), or
 * one with a tag in the frame: its outer tag, or a legacy one (legacy_tag;
 * whatever its source MAC: a raw socket past the endpoint's programs, a
 * nested link). The kernel's VLAN devices (made with reorder_hdr on, the
 * default) hand their tag to the trunk in the skb's metadata; a tag a
 * container writes passes a macvlan, which has no VLAN offload and puts
 * it in the frame. */
static __always_inline int tagged_reason(const struct frame *f,
					 const struct parent_info *p, __u32 *network_id)
{
	*network_id = p->network_id;
	return f->frame_tag || legacy_tag(f) || same_network(f->src, p->network_id) ?
		       REASON_VLAN_TAG : 0;
}

/* own_frame: the frame is the network's own on its parent: untagged, or
 * priority-tagged (VID 0, no tag behind) from the wire, which the receive
 * path delivers untagged. Leaving, a frame with a legacy tag is not
 * (tagged_reason's). */
static __always_inline int own_frame(const struct frame *f, enum direction dir)
{
	if (dir == DIR_TX && legacy_tag(f))
		return 0;
	return f->eth_ok && (!f->tagged || (dir == DIR_RX && prio_only(f)));
}

/* count_vid is the VLAN a frame counts under on a link (p: its parents
 * entry, if any): a sub-interface's frames are its VLAN's whatever tag
 * they carry inside (a double-tagged frame from the wire would otherwise
 * make a counter of every inner VID); elsewhere a tagged frame's own VID,
 * an untagged one's the link's, or 0. */
static __always_inline __u16 count_vid(const struct frame *f, const struct parent_info *p)
{
	if (p && p->vid)
		return p->vid;
	return f->tagged ? f->vid : 0;
}

static __always_inline int handle_parent(struct __sk_buff *skb,
					 enum direction dir, enum hook hook)
{
	struct frame f = {};
	__u32 ifindex = skb->ifindex, drop_net = 0;
	struct parent_info p;
	int has_parent, own, reason = 0;

	parse_frame(skb, &f);
	has_parent = parent_of(ifindex, &p);
	own = has_parent && own_frame(&f, dir);
	if (own)
		reason = own_vlan(skb, &f, &p, dir, &drop_net);
	else if (has_parent && dir == DIR_TX && f.eth_hdr && (f.tagged || legacy_tag(&f)))
		reason = tagged_reason(&f, &p, &drop_net);
	if (!own && !reason)
		count_vlan(ifindex, count_vid(&f, has_parent ? &p : NULL), dir, f.len);
	if (reason == NOT_PARSED)
		f.malformed = 1;
	if (f.malformed)
		count_malformed(hook, f.len);
	if (reason > 0) {
		count_drop(drop_net, reason, f.len);
		return VERDICT_DROP;
	}
	return VERDICT_NEXT;
}

#endif /* MVLAN_PARENT_H */
