/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * parse.h: bounds-checked parsing of Ethernet, up to two VLAN tags and the
 * L3 header (IPv4, IPv6, ARP). Every packet access is preceded by a check
 * against data_end; a frame shorter than a header it announces is marked
 * malformed and never dropped for it.
 */
#ifndef MVLAN_PARSE_H
#define MVLAN_PARSE_H

#include "mvlan.h"

/* The headers the programs read in place: Ethernet, MAX_VLAN_TAGS tags and
 * an IPv6 header (the longest L3 header read in place; ARP's is shorter).
 * Only a frame whose linear area is shorter is pulled: pulling more would
 * copy a TCP segment's payload out of its pages, for every segment. */
#define HEADERS_LEN (14 + 4 * MAX_VLAN_TAGS + 40)

/* Past the headers, reads are tried in place below this offset (a power of
 * two: the mask bounds the offset for the verifier), else copied out. */
#define DIRECT_LEN 128

struct eth_hdr {
	__u8 dst[ETH_ALEN];
	__u8 src[ETH_ALEN];
	__be16 proto;
} __attribute__((packed));

struct vlan_tag {
	__be16 tci;
	__be16 proto;
} __attribute__((packed));

struct ipv4_hdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u8 saddr[4];
	__u8 daddr[4];
} __attribute__((packed));

#define IP_MF 0x2000     /* ipv4_hdr.frag_off: more fragments */
#define IP_OFFSET 0x1fff /* ipv4_hdr.frag_off: the fragment's offset */

struct ipv6_hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
} __attribute__((packed));

struct arp_hdr {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
} __attribute__((packed));

/* The Ethernet/IPv4 body that follows struct arp_hdr. */
struct arp_eth_ipv4 {
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
} __attribute__((packed));

struct frame {
	__u64 src;      /* the source MAC, as mac48 reads it */
	__u64 dst;      /* the destination MAC */
	void *data;
	void *end;
	__u64 len;      /* skb->len: the bytes every counter adds */
	__u32 l3off;    /* offset of the L3 header */
	__u16 proto;    /* ethertype after the tags, host order */
	__u16 vid;      /* VLAN from skb metadata, else the outer tag */
	__u8 tagged;    /* a tag was in the metadata or the frame, cut short or not */
	__u8 eth_ok;    /* Ethernet header and tags complete */
	__u8 malformed; /* some announced header is truncated */
	__u8 eth_hdr;   /* the Ethernet header is complete: src and dst are valid */
	__u8 frame_tag; /* the outer tag is in the frame, not in the skb metadata */
	__u8 pad[3];
};

/* prio_only: the frame's one tag is a priority tag (VID 0), with no other
 * tag behind it. */
static __always_inline int prio_only(const struct frame *f)
{
	return f->vid == 0 && f->l3off == (f->frame_tag ? ETH_HLEN + 4 : ETH_HLEN);
}

/* mac48: a MAC as a number, its first byte lowest (two loads; unaligned
 * packet access is allowed where the kernel has efficient unaligned
 * access, which every architecture mvlan runs on has). A MAC is compared,
 * hashed and tested for multicast (bit 0) in this form. */
static __always_inline __u64 mac48(const void *m)
{
	return (__u64)*(const __u32 *)m | (__u64)*(const __u16 *)(m + 4) << 32;
}

#define MAC48_BROADCAST 0xffffffffffffULL

/* arp_body is f's Ethernet/IPv4 ARP body when f is a whole ARP frame,
 * else NULL. */
static __always_inline struct arp_eth_ipv4 *arp_body(const struct frame *f)
{
	struct arp_eth_ipv4 *body = f->data + f->l3off + sizeof(struct arp_hdr);

	if (f->malformed || f->proto != ETH_P_ARP || (void *)(body + 1) > f->end)
		return NULL;
	return body;
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] &&
	       a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

static __always_inline int mac_is_multicast(__u64 m)
{
	return m & 1;
}

/* ip4_group: a multicast (224.0.0.0/4) or the limited broadcast address. */
static __always_inline int ip4_group(const __u8 *a)
{
	return (a[0] & 0xf0) == 0xe0 ||
	       (a[0] == 0xff && a[1] == 0xff && a[2] == 0xff && a[3] == 0xff);
}

/* Make the headers linear when the skb is not (never on the fast path). */
static __always_inline void pull_headers(struct __sk_buff *skb)
{
	__u32 want = skb->len < HEADERS_LEN ? skb->len : HEADERS_LEN;

	if ((void *)(long)skb->data + want > (void *)(long)skb->data_end)
		bpf_skb_pull_data(skb, want);
}

static __always_inline int is_vlan_proto(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) ||
	       proto == bpf_htons(ETH_P_8021AD);
}

/* parse_tags walks up to MAX_VLAN_TAGS tags; the first one found gives the
 * VID unless the skb metadata already did. A tag cut short still makes the
 * frame tagged: the wire pads it, and a switch reads the padding as its
 * TCI. */
static __always_inline int parse_tags(struct frame *f, __be16 *proto)
{
#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		struct vlan_tag *tag = f->data + f->l3off;

		if (!is_vlan_proto(*proto))
			break;
		if (!f->tagged) {
			f->tagged = 1;
			f->frame_tag = 1;
			if ((void *)(tag + 1) > f->end)
				return -1;
			f->vid = bpf_ntohs(tag->tci) & VLAN_VID_MASK;
		}
		if ((void *)(tag + 1) > f->end)
			return -1;
		*proto = *(const __be16 *)((void *)tag + 2);
		f->l3off += sizeof(*tag);
	}
	return 0;
}

static __always_inline int l3_truncated(struct frame *f)
{
	void *l3 = f->data + f->l3off;

	if (f->proto == ETH_P_IP) {
		struct ipv4_hdr *ip = l3;

		if ((void *)(ip + 1) > f->end)
			return 1;
		return (ip->ver_ihl & 0x0f) < 5 ||
		       f->l3off + (ip->ver_ihl & 0x0f) * 4 > f->len;
	}
	if (f->proto == ETH_P_IPV6)
		return l3 + sizeof(struct ipv6_hdr) > f->end;
	if (f->proto == ETH_P_ARP) {
		struct arp_hdr *arp = l3;

		if ((void *)(arp + 1) > f->end)
			return 1;
		if (arp->hlen == ETH_ALEN && arp->plen == 4)
			return (void *)(arp + 1) + sizeof(struct arp_eth_ipv4) > f->end;
	}
	return 0;
}

/* NOT_PARSED: a header a check needs is cut short (the frame then passes
 * and counts as malformed: the receiving stack drops it too). */
#define NOT_PARSED (-1)

/* load_be16 reads 2 bytes at off: straight from the linear data when they
 * are there (the common case: no helper call), else with a copy. */
static __always_inline int load_be16(struct __sk_buff *skb, __u32 off, __be16 *v)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (off < DIRECT_LEN) {
		__be16 *p = data + (off & (DIRECT_LEN - 1));

		if ((void *)(p + 1) <= end) {
			*v = *p;
			return 0;
		}
	}
	return bpf_skb_load_bytes(skb, off, v, sizeof(*v));
}

/* load_u8 is load_be16 for one byte (an ICMPv6 type: every ICMPv6
 * frame reads it). */
static __always_inline int load_u8(struct __sk_buff *skb, __u32 off, __u8 *v)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (off < DIRECT_LEN) {
		__u8 *p = data + (off & (DIRECT_LEN - 1));

		if ((void *)(p + 1) <= end) {
			*v = *p;
			return 0;
		}
	}
	return bpf_skb_load_bytes(skb, off, v, 1);
}

/* parse_frame fills f. f->eth_hdr tells whether the addresses are valid,
 * f->eth_ok whether the tags are complete too; f->malformed whether
 * anything announced is cut short. */
static __always_inline void parse_frame(struct __sk_buff *skb, struct frame *f)
{
	struct eth_hdr *eth;
	__be16 proto;

	pull_headers(skb);
	f->data = (void *)(long)skb->data;
	f->end = (void *)(long)skb->data_end;
	f->len = skb->len;
	if (skb->vlan_present) {
		f->tagged = 1;
		f->vid = skb->vlan_tci & VLAN_VID_MASK;
	}
	eth = f->data;
	if ((void *)(eth + 1) > f->end) {
		f->malformed = 1;
		return;
	}
	f->eth_hdr = 1;
	f->dst = mac48(eth->dst);
	f->src = mac48(eth->src);
	proto = *(const __be16 *)((void *)eth + 12); /* one load: eth is packed */
	f->l3off = sizeof(*eth);
	if (parse_tags(f, &proto) < 0) {
		f->malformed = 1;
		return;
	}
	f->proto = bpf_ntohs(proto);
	f->eth_ok = 1;
	f->malformed = l3_truncated(f);
}

#endif /* MVLAN_PARSE_H */
