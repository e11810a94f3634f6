/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * counters.h: increments of the per-CPU counter maps (per-CPU values need
 * no atomics). A missing hash key is created zeroed (BPF_NOEXIST, so a
 * racing CPU's entry is kept) and then incremented; an insert that fails
 * for any other reason (the map is full) is counted in map_full: the count
 * is lost, never the packet, and never silently.
 */
#ifndef MVLAN_COUNTERS_H
#define MVLAN_COUNTERS_H

#include "maps.h"

#define EEXIST 17

static __always_inline void count_map_full(enum map_id id)
{
	__u32 key = id;
	__u64 *v = bpf_map_lookup_elem(&map_full, &key);

	if (v)
		(*v)++;
}

static __always_inline void *lookup_or_init(void *map, enum map_id id,
					    const void *key, const void *zero)
{
	void *v = bpf_map_lookup_elem(map, key);
	long err;

	if (v)
		return v;
	err = bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		count_map_full(id);
		return NULL;
	}
	return bpf_map_lookup_elem(map, key);
}

static __always_inline void pb_add(struct pb *p, __u64 bytes)
{
	p->packets++;
	p->bytes += bytes;
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
	struct pb zero = {};
	struct pb *v = lookup_or_init(&drop_stats, MAP_DROP_STATS, &key, &zero);

	if (v)
		pb_add(v, bytes);
}

static __always_inline void count_vlan(__u32 ifindex, __u16 vid,
				       enum direction dir, __u64 bytes)
{
	struct vlan_key key = { .ifindex = ifindex, .vid = vid };
	struct traffic zero = {};
	struct traffic *v = lookup_or_init(&vlan_stats, MAP_VLAN_STATS, &key, &zero);

	if (!v)
		return;
	if (dir == DIR_TX)
		pb_add(&v->tx, bytes);
	else
		pb_add(&v->rx, bytes);
}

/* net_counters returns the counters of a network (NULL if its id is out of
 * range). */
static __always_inline struct net_counters *net_counters(__u32 network_id)
{
	return bpf_map_lookup_elem(&net_stats, &network_id);
}

static __always_inline void count_network(__u32 network_id, enum direction dir,
					  __u64 bytes)
{
	struct net_counters *v = net_counters(network_id);

	if (!v)
		return;
	if (dir == DIR_TX)
		pb_add(&v->tx, bytes);
	else
		pb_add(&v->rx, bytes);
}

#endif /* MVLAN_COUNTERS_H */
