/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tables.h: look-ups in the agent-maintained endpoint tables.
 */
#ifndef MVLAN_TABLES_H
#define MVLAN_TABLES_H

#include "maps.h"
#include "parse.h"

/* ep_of_ip returns the local endpoint owning the address, or NULL. */
static __always_inline struct ip_info *ep_of_ip(__u8 family, const __u8 *addr)
{
	struct ip_key key = { .family = family };

	if (family == FAMILY_V4) {
		__builtin_memcpy(key.addr, addr, 4);
	} else {
		__builtin_memcpy(key.addr, addr, 16);
	}
	return bpf_map_lookup_elem(&ep_by_ip, &key);
}

/* idx_hash picks a key's bucket: the top bits of a multiplicative hash
 * (loader/index.go computes the same). */
static __always_inline __u32 idx_hash(__u64 key, int bits)
{
	return (key * 0x9E3779B97F4A7C15ULL) >> (64 - bits);
}

/* idx_find returns the slot of key in bucket b, 0 if it is not there. */
static __always_inline __u32 idx_find(const struct idx_bucket *b, __u64 key)
{
#pragma unroll
	for (int i = 0; i < IDX_WAYS; i++) {
		__u64 e = b->e[i];

		if ((e & IDX_KEY_MASK) == key && (e >> 48))
			return e >> 48;
	}
	return 0;
}

static __always_inline __u64 ep_mac48(const struct ep_info *ep)
{
	return mac48(ep->mac);
}

/* ep_of_mac returns the local endpoint with this unicast MAC (mac48), or
 * NULL: the record its index entry points at, if that record has the MAC;
 * the backing hash only for a bucket that spilled (or an entry that points
 * at another record, which a reader may see while the agent moves it). */
static __always_inline struct ep_info *ep_of_mac(__u64 mac)
{
	struct mac_key key = {};
	struct idx_bucket *b;
	struct ep_info *ep;
	__u32 i, slot;

	if (mac_is_multicast(mac))
		return NULL;
	i = idx_hash(mac, MAC_INDEX_BITS);
	b = bpf_map_lookup_elem(&mac_index, &i);
	if (!b)
		return NULL;
	slot = idx_find(b, mac);
	if (slot) {
		ep = bpf_map_lookup_elem(&endpoints, &slot);
		if (ep && ep_mac48(ep) == mac)
			return ep;
	} else if (!b->spill) {
		return NULL;
	}
	__builtin_memcpy(key.mac, &mac, ETH_ALEN);
	return bpf_map_lookup_elem(&ep_by_mac, &key);
}

/* parent_of fills *p with the parents entry of a link; 0 if it has none. */
static __always_inline int parent_of(__u32 ifindex, struct parent_info *p)
{
	__u32 i = idx_hash(ifindex, PARENT_INDEX_BITS);
	struct idx_bucket *b = bpf_map_lookup_elem(&parent_index, &i);
	struct parent_info *h;

	if (!b)
		return 0;
#pragma unroll
	for (int w = 0; w < IDX_WAYS; w++) {
		__u64 e = b->e[w];

		if ((__u32)e == ifindex && (e >> 48)) {
			p->network_id = e >> 48;
			p->vid = (e >> 32) & VLAN_VID_MASK;
			return 1;
		}
	}
	if (!b->spill)
		return 0;
	h = bpf_map_lookup_elem(&parents, &ifindex);
	if (!h)
		return 0;
	*p = *h;
	return 1;
}

#endif /* MVLAN_TABLES_H */
