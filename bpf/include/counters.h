/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * counters.h: increments of the per-CPU counter maps. A missing key is
 * created zeroed (BPF_NOEXIST, so a racing CPU's entry is kept) and then
 * incremented; per-CPU values need no atomics. A full map loses the count,
 * never the packet.
 */
#ifndef MVLAN_COUNTERS_H
#define MVLAN_COUNTERS_H

#include "maps.h"

static __always_inline void *lookup_or_init(void *map, const void *key,
					    const void *zero)
{
	void *v = bpf_map_lookup_elem(map, key);

	if (v)
		return v;
	bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

static __always_inline void pb_add(struct pb *p, __u64 bytes)
{
	p->packets++;
	p->bytes += bytes;
}

static __always_inline void count_pb(void *map, const void *key, __u64 bytes)
{
	struct pb zero = {};
	struct pb *v = lookup_or_init(map, key, &zero);

	if (v)
		pb_add(v, bytes);
}

static __always_inline void count_traffic(void *map, const void *key,
					  enum direction dir, __u64 bytes)
{
	struct traffic zero = {};
	struct traffic *v = lookup_or_init(map, key, &zero);

	if (!v)
		return;
	if (dir == DIR_TX)
		pb_add(&v->tx, bytes);
	else
		pb_add(&v->rx, bytes);
}

static __always_inline void count_malformed(enum hook hook, __u64 bytes)
{
	__u32 key = hook;
	struct pb *v = bpf_map_lookup_elem(&malformed, &key);

	if (v)
		pb_add(v, bytes);
}

static __always_inline void count_drop(__u32 network_id, enum drop_reason reason,
				       __u64 bytes)
{
	struct drop_key key = { .network_id = network_id, .reason = reason };

	count_pb(&drop_stats, &key, bytes);
}

static __always_inline void count_vlan(__u32 ifindex, __u16 vid,
				       enum direction dir, __u64 bytes)
{
	struct vlan_key key = { .ifindex = ifindex, .vid = vid };

	count_traffic(&vlan_stats, &key, dir, bytes);
}

static __always_inline void count_network(__u32 network_id, enum direction dir,
					  __u64 bytes)
{
	struct traffic *v = bpf_map_lookup_elem(&net_stats, &network_id);

	if (!v)
		return; /* network_id >= MAX_NETWORKS */
	if (dir == DIR_TX)
		pb_add(&v->tx, bytes);
	else
		pb_add(&v->rx, bytes);
}

#endif /* MVLAN_COUNTERS_H */
