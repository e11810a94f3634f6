// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ep_egress: TC egress of an endpoint's macvlan slave, in the container's
 * netns. Anti-spoofing: the source MAC, the IPv4/IPv6 source, the ARP sender
 * and ND targets and link-layer options must be the endpoint's own
 * (mac_spoof, ip_spoof, arp_spoof, nd_spoof), and the frame untagged
 * (vlan_tag: a tag would take it into another VLAN); first-hop guards: no router
 * advertisements or redirects (ra_guard), no DHCP server replies and
 * no DHCP client messages in another's name (dhcp_guard) unless the
 * network allows them, and no frame whose headers
 * the bounded parse cannot finish or that are cut short (unparsable); a
 * frame for a local endpoint of another network is dropped
 * (cross_network), and every frame
 * of a link whose endpoint is not in the table (no_endpoint). Counts tx
 * per network, and leaves its verdict on a frame for a local endpoint to
 * parent_ingress (include/eastwest.h). What it passes no later program on
 * a container's hook sees (VERDICT_PASS); on the host shim the host's own
 * programs after it run.
 */
#include "include/eastwest.h"

/* egress_reason: 0 if ep may send the frame, else the drop reason; *peer
 * is the local endpoint it is for, if any. */
static __always_inline int egress_reason(struct __sk_buff *skb, struct frame *f,
					 const struct ep_info *ep, struct ep_info **peer)
{
	if (!f->eth_hdr)
		return REASON_UNPARSABLE; /* the wire would pad it: no one's MAC */
	if (f->src != ep_mac48(ep))
		return REASON_MAC_SPOOF;
	if (f->tagged)
		return REASON_VLAN_TAG; /* into another VLAN of the wire, cut short or not */
	*peer = ep_of_mac(f->dst);
	if (*peer && (*peer)->network_id != ep->network_id)
		return REASON_CROSS_NETWORK;
	return sender_reason(skb, f, ep);
}

SEC("tc")
int ep_egress(struct __sk_buff *skb)
{
	struct ep_info *ep, *peer = NULL;
	struct frame f = {};
	int reason;

	parse_frame(skb, &f);
	ep = lookup_self(skb, f.src);
	if (!ep) {
		/* Never live without its entry (see ep_ingress.c). */
		count_drop(0, REASON_NO_ENDPOINT, f.len);
		return VERDICT_DROP;
	}
	reason = egress_reason(skb, &f, ep, &peer);
	if (f.malformed)
		count_malformed(HOOK_EP_EGRESS, f.len);
	if (reason > 0) {
		count_drop(ep->network_id, reason, f.len);
		return VERDICT_DROP;
	}
	count_network(ep->network_id, DIR_TX, f.len);
	ew_leave(skb, &f, ep, peer);
	/* The last word on a container's link (mvlan.h); the host shim's is
	 * the host's, whose own programs after ours run. */
	return (ep->flags & EP_HOST_SHIM) ? VERDICT_NEXT : VERDICT_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
