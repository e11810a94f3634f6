/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * dhcp.h: the DHCP guard (dhcp_guard) on what an endpoint sends over UDP.
 * A container may not answer as a server (a reply from a server port, or
 * to a client port), nor ask in another's name: a server keys a lease on
 * the client's identity (the IPv4 client identifier, else the hardware
 * address; the DHCPv6 DUID), so a request, release or decline naming a
 * neighbour's takes, gives back or spoils the neighbour's lease, and one
 * naming made-up clients empties the pool. A client message must carry the
 * endpoint's MAC and its identity: the one the agent's client uses on a
 * DHCP network (dhcp_ids), else one made of its MAC. A network that allows
 * a DHCP server (or relay) lifts both. Options are walked with a bound,
 * and a message whose options do not end within it, spill into its file
 * and sname fields (overload) or go on in a fragment is unparsable.
 */
#ifndef MVLAN_DHCP_H
#define MVLAN_DHCP_H

#include "endpoint.h"

#define DHCP4_SERVER_PORT 67
#define DHCP6_SERVER_PORT 547
#define DHCP4_CLIENT_PORT 68
#define DHCP6_CLIENT_PORT 546

#define UDP_HLEN 8

/* BOOTP (RFC 2131): offsets in the message, the options after the magic
 * cookie. */
#define BOOTREQUEST 1
#define BOOTP_GIADDR 24
#define BOOTP_CHADDR 28
#define BOOTP_COOKIE 236
#define BOOTP_OPTIONS 240
#define DHCP_MAGIC 0x63825363
#define DHCP4_OPT_PAD 0
#define DHCP4_OPT_OVERLOAD 52
#define DHCP4_OPT_MSG_TYPE 53
#define DHCPDECLINE 4
#define DHCP4_OPT_CLIENT_ID 61
#define DHCP4_OPT_RELAY_INFO 82
#define DHCP4_OPT_END 255
#define HWTYPE_ETHERNET 1

/* DHCPv6 (RFC 8415): a 4-byte header, then options of a 2-byte code and
 * a 2-byte length. */
#define DHCP6_INFO_REQUEST 11
#define DHCP6_RELAY_FORW 12 /* and above: relay messages */
#define DHCP6_OPT_CLIENTID 1
#define DHCP6_OPT_IA_NA 3
#define DHCP6_OPT_IA_TA 4
#define DHCP6_OPT_IA_PD 25
#define DHCP6_IAID 0x6d766c36 /* "mvl6": the agent's one IA_NA (dhcp.IAID) */
#define DUID_LL 3

/* dhcp_client_reason's how: a DHCPv6 message; the row's identities are
 * in dhcp_ids (EP_DHCP_IDS); the agent's client checks an address for it
 * (EP_PROBING). */
#define DHCP_V6 0x1
#define DHCP_IDS_KNOWN 0x2
#define DHCP_PROBING 0x4

/* The bound on options walked per message (the agent's client sends 6). */
#define MAX_DHCP_OPTS 24

/* id_eq: the len bytes at off are exactly want[0..want_len) (want is
 * zero after want_len: the loader writes it so). Four word compares, no
 * branch per byte. */
static __always_inline int id_eq(struct __sk_buff *skb, __u32 off, __u32 len,
				 const __u8 *want, __u32 want_len)
{
	__u64 buf[DHCP_ID_MAX / 8] = {};
	const __u64 *w = (const __u64 *)want;
	__u32 n;

	if (len != want_len || len == 0 || len > DHCP_ID_MAX)
		return 0;
	/* The size bounded in a register of its own: before Linux 6.11 the
	 * verifier does not carry the check above over to the copy clang
	 * passes (a size of 0-255, refused). */
	n = len - 1;
	asm volatile("" : "+r"(n));
	n &= DHCP_ID_MAX - 1;
	if (bpf_skb_load_bytes(skb, off, buf, n + 1) < 0)
		return 0;
	return ((buf[0] ^ w[0]) | (buf[1] ^ w[1]) | (buf[2] ^ w[2]) | (buf[3] ^ w[3])) == 0;
}

/* mac_at: the 6 bytes at off are mac (as mac48 reads it). */
static __always_inline int mac_at(struct __sk_buff *skb, __u32 off, __u64 mac)
{
	__u8 b[8] = {};

	return bpf_skb_load_bytes(skb, off, b, ETH_ALEN) == 0 && mac48(b) == mac;
}

/* client_id_ok: an IPv4 client identifier of len bytes at off is the
 * endpoint's: ids' when it has one, else hardware type 1 and its MAC. */
static __always_inline int client_id_ok(struct __sk_buff *skb, __u32 off, __u32 len,
					__u64 mac, const struct dhcp_ids *ids)
{
	__u8 type;

	if (ids && ids->len4)
		return id_eq(skb, off, len, ids->id4, ids->len4);
	return len == 1 + ETH_ALEN && bpf_skb_load_bytes(skb, off, &type, 1) == 0 &&
	       type == HWTYPE_ETHERNET && mac_at(skb, off + 1, mac);
}

/* duid_ok: a DUID of len bytes at off is the endpoint's: ids' when it has
 * one, else the DUID-LL of its MAC (one identity per MAC: a DUID-LLT's
 * time would make 2^32 of them). */
static __always_inline int duid_ok(struct __sk_buff *skb, __u32 off, __u32 len,
				   __u64 mac, const struct dhcp_ids *ids)
{
	__be16 th[2]; /* DUID type, hardware type */

	if (ids && ids->len6)
		return id_eq(skb, off, len, ids->id6, ids->len6);
	if (bpf_skb_load_bytes(skb, off, th, sizeof(th)) < 0 || th[1] != bpf_htons(HWTYPE_ETHERNET))
		return 0;
	return th[0] == bpf_htons(DUID_LL) && len == 4 + ETH_ALEN && mac_at(skb, off + 4, mac);
}

/* check_bootp: a DHCPv4 client message at m, ending at end: Ethernet
 * hardware address, the endpoint's; one client identifier, its own (with
 * DHCP_IDS_KNOWN in how; servers join repeated ones into one, RFC 3396);
 * a DHCPDECLINE only from the agent's client checking an address it was
 * given (DHCP_PROBING: the first too, as a container may run before its
 * endpoint has an address). ISC dhcpd abandons the lease of the address
 * a decline names, whoever sends it; any type option saying decline
 * counts (servers differ on which of several counts). */
static __always_inline int check_bootp(struct __sk_buff *skb, __u32 m, __u32 end, __u64 mac,
				       const struct dhcp_ids *ids, __u32 how)
{
	__u8 opt[4], type;
	__u32 off = m + BOOTP_OPTIONS, ids_seen = 0;
	int ids_known = (how & DHCP_IDS_KNOWN) != 0;
	int may_decline = (how & DHCP_PROBING) != 0;

	if (bpf_skb_load_bytes(skb, m, opt, sizeof(opt)) < 0)
		return NOT_PARSED;
	if (opt[0] != BOOTREQUEST || opt[1] != HWTYPE_ETHERNET || opt[2] != ETH_ALEN ||
	    !mac_at(skb, m + BOOTP_CHADDR, mac))
		return REASON_DHCP_GUARD;
	/* A relay's (giaddr): the server would answer for another subnet. */
	if (bpf_skb_load_bytes(skb, m + BOOTP_GIADDR, opt, sizeof(opt)) < 0 || *(__u32 *)opt)
		return REASON_DHCP_GUARD;
	if (bpf_skb_load_bytes(skb, m + BOOTP_COOKIE, opt, sizeof(opt)) < 0 ||
	    *(__be32 *)opt != bpf_htonl(DHCP_MAGIC))
		return 0; /* BOOTP without options: its hardware address is all */
	for (int i = 0; i < MAX_DHCP_OPTS; i++) {
		if (off >= end || bpf_skb_load_bytes(skb, off, opt, 1) < 0 || opt[0] == DHCP4_OPT_END)
			return 0;
		if (opt[0] == DHCP4_OPT_PAD) {
			off++;
			continue;
		}
		if (opt[0] == DHCP4_OPT_OVERLOAD || bpf_skb_load_bytes(skb, off + 1, opt + 1, 1) < 0)
			return REASON_UNPARSABLE;
		if (opt[0] == DHCP4_OPT_RELAY_INFO)
			return REASON_DHCP_GUARD; /* a relay's: servers trust its circuit for reservations */
		if (opt[0] == DHCP4_OPT_CLIENT_ID && ids_known &&
		    (ids_seen++ || !client_id_ok(skb, off + 2, opt[1], mac, ids)))
			return REASON_DHCP_GUARD;
		if (opt[0] == DHCP4_OPT_MSG_TYPE && !may_decline) {
			if (opt[1] == 0 || bpf_skb_load_bytes(skb, off + 2, &type, 1) < 0)
				return REASON_UNPARSABLE;
			if (type == DHCPDECLINE)
				return REASON_DHCP_GUARD;
		}
		off += 2 + opt[1];
	}
	return off < end ? REASON_UNPARSABLE : 0;
}

/* ia_ok: an option of code at off is no IA but the agent's IA_NA. */
static __always_inline int ia_ok(struct __sk_buff *skb, __u32 off, __be16 code)
{
	__be32 id;

	if (code == bpf_htons(DHCP6_OPT_IA_TA) || code == bpf_htons(DHCP6_OPT_IA_PD))
		return 0;
	if (code != bpf_htons(DHCP6_OPT_IA_NA))
		return 1;
	return bpf_skb_load_bytes(skb, off + 4, &id, sizeof(id)) == 0 && id == bpf_htonl(DHCP6_IAID);
}

/* check_dhcp6: a DHCPv6 client message at m, ending at end: not a relay's,
 * every client DUID the endpoint's (with ids_known). On a DHCP network
 * (ids has a DUID) only the agent's one IA_NA (DHCP6_IAID): a server
 * binds an address per IAID, and many under one DUID would empty its
 * pool. An Information-request leases nothing. */
static __always_inline int check_dhcp6(struct __sk_buff *skb, __u32 m, __u32 end, __u64 mac,
				       const struct dhcp_ids *ids, int ids_known)
{
	__be16 opt[2];
	__u32 off = m + 4;
	__u8 type;

	if (bpf_skb_load_bytes(skb, m, &type, 1) < 0)
		return NOT_PARSED;
	if (type >= DHCP6_RELAY_FORW)
		return REASON_DHCP_GUARD;
	if (type == DHCP6_INFO_REQUEST)
		return 0;
	for (int i = 0; i < MAX_DHCP_OPTS; i++) {
		if (off >= end)
			return 0;
		if (bpf_skb_load_bytes(skb, off, opt, sizeof(opt)) < 0)
			return REASON_UNPARSABLE;
		if (opt[0] == bpf_htons(DHCP6_OPT_CLIENTID) && ids_known &&
		    !duid_ok(skb, off + 4, bpf_ntohs(opt[1]), mac, ids))
			return REASON_DHCP_GUARD;
		if (ids_known && ids && ids->len6 && !ia_ok(skb, off, opt[0]))
			return REASON_DHCP_GUARD;
		off += 4 + bpf_ntohs(opt[1]);
	}
	return off < end ? REASON_UNPARSABLE : 0;
}

/* dhcp_client_reason: the verdict on a DHCP client message at m (after
 * its UDP header), ending at end, from the endpoint with MAC mac (how:
 * DHCP_*): 0, a drop reason or NOT_PARSED. A function of its own
 * (global: the verifier checks it once, not on every path of its caller),
 * called only for datagrams to a server port. A row an older agent wrote
 * (no EP_DHCP_IDS) has its identities nowhere yet: they are not checked
 * until the row is written again. */
__attribute__((noinline)) int dhcp_client_reason(struct __sk_buff *skb, __u32 m, __u32 end,
						 __u64 mac, __u32 how)
{
	struct mac_key key = {};
	struct dhcp_ids *ids;

	__builtin_memcpy(key.mac, &mac, ETH_ALEN);
	ids = bpf_map_lookup_elem(&dhcp_ids, &key);
	if (how & DHCP_V6)
		return check_dhcp6(skb, m, end, mac, ids, (how & DHCP_IDS_KNOWN) != 0);
	return check_bootp(skb, m, end, mac, ids, how);
}

/* check_dhcp: a UDP datagram at off, in an IP payload ending at ip_end
 * (frag: the first of a fragmented one) may not be a server's (from a
 * server port, or to the client port: clients look at the destination
 * port only) and a client's (to the server port) must be in the
 * endpoint's own name, unless its network allows a DHCP server. v6 picks
 * the ports and the message format. What the check cannot see whole is
 * unparsable: a datagram the kernel will cut into several (UDP GSO: the
 * second would go unchecked), or whose UDP length is not within the IP
 * payload (0, which Linux reads as "to the end" on IPv6). */
static __always_inline int check_dhcp(struct __sk_buff *skb, __u32 off, __u32 ip_end,
				      int frag, const struct ep_info *ep, int v6)
{
	__u16 server = v6 ? DHCP6_SERVER_PORT : DHCP4_SERVER_PORT;
	__u16 client = v6 ? DHCP6_CLIENT_PORT : DHCP4_CLIENT_PORT;
	__be16 sport, dport, ulen;
	__u32 end;

	if (load_be16(skb, off, &sport) < 0 || load_be16(skb, off + 2, &dport) < 0)
		return NOT_PARSED;
	if (allowed(ep, EP_ALLOW_DHCP_SERVER))
		return 0;
	if (sport == bpf_htons(server) || dport == bpf_htons(client))
		return REASON_DHCP_GUARD;
	if (dport != bpf_htons(server))
		return 0;
	if (frag || skb->gso_size)
		return REASON_UNPARSABLE; /* the rest, a client id say, where no check sees it */
	if (bpf_skb_load_bytes(skb, off + 4, &ulen, sizeof(ulen)) < 0)
		return NOT_PARSED;
	end = off + bpf_ntohs(ulen);
	if (bpf_ntohs(ulen) < UDP_HLEN || end > ip_end || end > skb->len)
		return REASON_UNPARSABLE;
	return dhcp_client_reason(skb, off + UDP_HLEN, end, ep_mac48(ep),
				  (v6 ? DHCP_V6 : 0) | ((ep->flags & EP_DHCP_IDS) ? DHCP_IDS_KNOWN : 0) |
				  ((ep->flags & EP_PROBING) ? DHCP_PROBING : 0));
}

#endif /* MVLAN_DHCP_H */
