/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * maps.h: every map, BTF-style, pinned by name under the loader's bpffs
 * directory so that tables and counters survive an agent restart. Each
 * program object carries all definitions; the loader creates the maps once
 * and hands the same ones to every object.
 */
#ifndef MVLAN_MAPS_H
#define MVLAN_MAPS_H

#include "mvlan.h"

#define PINNED __uint(pinning, LIBBPF_PIN_BY_NAME)

/* Tables, maintained by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct ep_key);
	__type(value, struct ep_info);
	PINNED;
} ep_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct mac_key);
	__type(value, struct mac_info);
	PINNED;
} ep_by_mac SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, struct ip_key);
	__type(value, struct ip_info);
	PINNED;
} ep_by_ip SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct parent_info);
	PINNED;
} parents SEC(".maps");

/* Per-CPU counters, summed by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct vlan_key);
	__type(value, struct traffic);
	PINNED;
} vlan_stats SEC(".maps");

/* Indexed by network id: the busiest counter is an array look-up, which
 * the verifier inlines. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_NETWORKS);
	__type(key, __u32);
	__type(value, struct traffic);
	PINNED;
} net_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct flood_key);
	__type(value, struct pb);
	PINNED;
} flood_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct netvlan_key);
	__type(value, struct pb);
	PINNED;
} hairpin_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct netvlan_key);
	__type(value, struct pb);
	PINNED;
} eastwest_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct drop_key);
	__type(value, struct pb);
	PINNED;
} drop_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HOOK_MAX);
	__type(key, __u32);
	__type(value, struct pb);
	PINNED;
} malformed SEC(".maps");

#endif /* MVLAN_MAPS_H */
