/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * endpoint.h: how an endpoint program finds the endpoint it runs for.
 *
 * ifindexes are per network namespace, so the endpoint table is keyed by
 * {netns cookie, ifindex}. The programs are loaded once per agent and
 * shared by every endpoint. Built with EP_COOKIE_FROM_DEV (Linux >= 6.2,
 * with BTF), a program reads the cookie of its device's namespace itself,
 * through the kfunc bpf_cast_to_kern_ctx, and is attached to every
 * endpoint as it is. Without it, a tiny stub per network namespace
 * (loader/stub.go, the cookie a constant of it) puts the cookie in
 * skb->cb[0..1] and tail-calls the program. bpf_get_netns_cookie(skb),
 * callable from tc since Linux 6.15, can do neither: it gives the
 * namespace of skb->sk, and of init_net for a frame without a socket (all
 * received frames).
 */
#ifndef MVLAN_ENDPOINT_H
#define MVLAN_ENDPOINT_H

#include <bpf/bpf_core_read.h>

#include "counters.h"
#include "tables.h"

#ifdef EP_COOKIE_FROM_DEV
/* The kernel's structs, as far as the cookie; CO-RE finds the fields. */
struct net {
	__u64 net_cookie;
} __attribute__((preserve_access_index));
typedef struct {
	struct net *net;
} possible_net_t;
struct net_device {
	possible_net_t nd_net;
} __attribute__((preserve_access_index));
struct sock_common {
	possible_net_t skc_net;
} __attribute__((preserve_access_index));
struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));
struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	__u8 redirected:1;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *) __ksym;

/* self_cookie is the cookie of the namespace of the program's device; 0
 * (no endpoint has it) should the kernel give no device. */
static __always_inline __u64 self_cookie(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
	struct net_device *dev = skb->dev;
	struct net *net;

	if (!dev)
		return 0;
	net = dev->nd_net.net;
	return net ? net->net_cookie : 0;
}

/* sock_elsewhere is the cookie of the namespace of the socket that sent
 * the frame if that is not the device's namespace, else 0 (no socket: a
 * received or forwarded frame). A socket of any kind starts with its
 * sock_common, which holds its namespace. */
static __always_inline __u64 sock_elsewhere(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
	struct sock *sk = skb->sk;
	struct net *net;
	__u64 cookie;

	if (!sk)
		return 0;
	net = sk->__sk_common.skc_net.net;
	if (!net)
		return 0;
	cookie = net->net_cookie;
	return cookie != self_cookie(ctx) ? cookie : 0;
}
/* redirected is 1 when a tc action or a program redirected the frame to
 * this hook (a container's mirred from a link of its own to its
 * endpoint's ingress, with a mark it set: SO_MARK needs only
 * CAP_NET_ADMIN in its namespace), else 0. A frame macvlan hands up from
 * the parent never is: the receive path clears the bit after the
 * parent's ingress hook. */
static __always_inline __u32 redirected(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);

	if (!bpf_core_field_exists(skb->redirected))
		return 0;
	return BPF_CORE_READ_BITFIELD(skb, redirected);
}
#else
/* self_cookie is the cookie the namespace's stub put in cb[0..1]. */
static __always_inline __u64 self_cookie(struct __sk_buff *skb)
{
	return (__u64)skb->cb[1] << 32 | skb->cb[0];
}

/* sock_elsewhere: without the kernel's structs no socket can be told. */
static __always_inline __u64 sock_elsewhere(struct __sk_buff *skb)
{
	return 0;
}

/* redirected: without the kernel's structs a redirect cannot be told. */
static __always_inline __u32 redirected(struct __sk_buff *skb)
{
	return 0;
}
#endif

/* lookup_self returns the endpoint the program runs for. Its frames carry
 * its MAC (the source on egress, the destination on ingress), so the MAC
 * index finds it, checked to be this link's record; other frames (a
 * broadcast, a spoofed source) take the link's key to ep_table. */
static __always_inline struct ep_info *lookup_self(struct __sk_buff *skb, __u64 mac)
{
	struct ep_key key = {
		.netns_cookie = self_cookie(skb),
		.ifindex = skb->ifindex,
	};
	struct ep_info *ep = ep_of_mac(mac);

	if (ep && ep->netns_cookie == key.netns_cookie && ep->ifindex == key.ifindex)
		return ep;
	return bpf_map_lookup_elem(&ep_table, &key);
}

/* eq4 compares 4 address bytes at b with one load: b is in the packet
 * (unaligned access allowed) or a 4-byte aligned stack buffer. */
static __always_inline int eq4(__be32 a, const __u8 *b)
{
	return a == *(const __be32 *)b;
}

/* eq16 compares the IPv6 address a (four words, as the tables hold it)
 * with the 16 bytes at b, the last word first (the one most likely to
 * differ). */
static __always_inline int eq16(const __be32 *a, const __u8 *b)
{
	return eq4(a[3], b + 12) && eq4(a[0], b) && eq4(a[1], b + 4) && eq4(a[2], b + 8);
}

/* owns reports whether the address is one of the endpoint's own. */
static __always_inline int owns(const struct ep_info *ep, __u8 family,
				const __u8 *addr)
{
	if (family == FAMILY_V4) {
#pragma unroll
		for (int i = 0; i < EP_MAX_V4; i++)
			if (i < ep->n4 && eq4(ep->ip4[i], addr))
				return 1;
		return 0;
	}
#pragma unroll
	for (int i = 0; i < EP_MAX_V6; i++)
		if (i < ep->n6 && eq16(ep->ip6[i], addr))
			return 1;
	return 0;
}

/* allowed: the endpoint's network lets it send what flag (EP_ALLOW_*)
 * names. */
static __always_inline int allowed(const struct ep_info *ep, __u32 flag)
{
	return ep->flags & flag;
}

/* owner: the MAC and network of the local endpoint an address is of. */
struct owner {
	__u64 mac;
	__u32 network_id;
};

/* ip6_fold: the index key of an IPv6 address, 48 bits folded from its
 * 128 (loader/addrindex.go: ip6Fold); the record decides. */
static __always_inline __u64 ip6_fold(const __u8 *a)
{
	__u64 x = *(const __u64 *)a ^ *(const __u64 *)(a + 8);

	return (x ^ (x >> 48)) & IDX_KEY_MASK;
}

/* ip_owner fills *o with the local endpoint that has the address; 0 if
 * none has it. The address's index entry points at a record, which must
 * have the address; a record without it (another address with the same
 * IPv6 fold) or a spilled bucket sends the look-up to ep_by_ip. */
static __always_inline int ip_owner(__u8 family, const __u8 *addr, struct owner *o)
{
	struct idx_bucket *b;
	struct ip_info *h;
	struct ep_info *ep;
	__u64 key;
	__u32 i, slot;

	if (family == FAMILY_V4) {
		key = *(const __u32 *)addr;
		i = idx_hash(key, IP4_INDEX_BITS);
		b = bpf_map_lookup_elem(&ip4_index, &i);
	} else {
		key = ip6_fold(addr);
		i = idx_hash(key, IP6_INDEX_BITS);
		b = bpf_map_lookup_elem(&ip6_index, &i);
	}
	if (!b)
		return 0;
	slot = idx_find(b, key);
	if (slot) {
		ep = bpf_map_lookup_elem(&endpoints, &slot);
		if (ep && owns(ep, family, addr)) {
			o->mac = ep_mac48(ep);
			o->network_id = ep->network_id;
			return 1;
		}
	} else if (!b->spill) {
		return 0;
	}
	h = ep_of_ip(family, addr);
	if (!h)
		return 0;
	o->mac = mac48(h->mac);
	o->network_id = h->network_id;
	return 1;
}

#endif /* MVLAN_ENDPOINT_H */
