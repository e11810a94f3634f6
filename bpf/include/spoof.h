/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * spoof.h: the rules a frame must follow to count as sent by endpoint ep:
 * the IPv4/IPv6 source and the ARP sender are its own (ip_spoof,
 * arp_spoof), and the first-hop guards of guard.h, in headers that are
 * complete (else unparsable). sender_reason applies them; the caller has
 * checked the source MAC, the tags and the network.
 */
#ifndef MVLAN_SPOOF_H
#define MVLAN_SPOOF_H

#include "guard.h"

static __always_inline int is_zero4(const __u8 *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

static __always_inline int is_zero16(const __u8 *a)
{
	return is_zero4(a) && is_zero4(a + 4) && is_zero4(a + 8) &&
	       is_zero4(a + 12);
}

/* unspec4_ok: the unspecified source is a DHCP client's before its
 * address, to the server port (never fragmented), and an IGMP report's
 * (RFC 3376 4.2.13); nothing else's. */
static __always_inline int unspec4_ok(struct __sk_buff *skb, __u32 l3off,
				      const struct ipv4_hdr *ip)
{
	__be16 dport;

	if (ip->protocol == IPPROTO_IGMP)
		return 1;
	if (ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(IP_OFFSET)))
		return 0;
	return load_be16(skb, l3off + (ip->ver_ihl & 0x0f) * 4 + 2, &dport) == 0 &&
	       dport == bpf_htons(DHCP4_SERVER_PORT);
}

static __always_inline int check_ipv4(struct __sk_buff *skb, struct frame *f,
				      const struct ep_info *ep)
{
	struct ipv4_hdr *ip = f->data + f->l3off;

	if ((void *)(ip + 1) > f->end)
		return NOT_PARSED;
	if (is_zero4(ip->saddr) ? !unspec4_ok(skb, f->l3off, ip) : !owns(ep, FAMILY_V4, ip->saddr))
		return REASON_IP_SPOOF;
	return check_upper4(skb, f->l3off, ip, ep);
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
	if (!is_zero4(body->spa))
		return owns(ep, FAMILY_V4, body->spa) ? 0 : REASON_ARP_SPOOF;
	/* A probe (RFC 5227: sender 0.0.0.0) is for the sender's own address:
	 * one for a neighbour's is a conflict to a host probing that address
	 * (its DHCP client declines the lease). Before it has an IPv4 address,
	 * or while the agent checks a new one for it (EP_PROBING), any. */
	if (ep->n4 && !(ep->flags & EP_PROBING) && !owns(ep, FAMILY_V4, body->tpa))
		return REASON_ARP_SPOOF;
	return 0;
}

static __always_inline int check_ipv6(struct __sk_buff *skb, struct frame *f,
				      const struct ep_info *ep)
{
	struct ipv6_hdr *ip = f->data + f->l3off;
	int unspec;

	if ((void *)(ip + 1) > f->end)
		return NOT_PARSED;
	/* The unspecified source is used by DAD and MLD before an address. */
	unspec = is_zero16(ip->saddr);
	if (!unspec && !owns(ep, FAMILY_V6, ip->saddr))
		return REASON_IP_SPOOF;
	return check_upper6(skb, f->l3off, ip, unspec, ep);
}

/* sender_reason: 0 if the frame's addresses and first-hop messages are
 * ep's to send, else the drop reason. A header cut short (f->malformed,
 * set here too) is unparsable: no stack sends one, and the wire pads it
 * with zeros that a receiver reads (an ARP body cut after its sender's
 * address). */
static __always_inline int sender_reason(struct __sk_buff *skb, struct frame *f,
					 const struct ep_info *ep)
{
	int reason = 0;

	if (f->malformed)
		return REASON_UNPARSABLE;
	switch (f->proto) {
	case ETH_P_QINQ1:
	case ETH_P_QINQ2:
		return REASON_VLAN_TAG; /* the tags of switches older than 802.1ad */
	case ETH_P_IP:
		reason = check_ipv4(skb, f, ep);
		break;
	case ETH_P_IPV6:
		reason = check_ipv6(skb, f, ep);
		break;
	case ETH_P_ARP:
		reason = check_arp(f, ep);
		break;
	}
	if (reason != NOT_PARSED)
		return reason;
	f->malformed = 1;
	return REASON_UNPARSABLE;
}

#endif /* MVLAN_SPOOF_H */
