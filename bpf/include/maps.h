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

/* Every hash is preallocated: an insert fails only when the map is full
 * (an on-demand map also fails when its allocator's cache runs dry). */

/* Tables, maintained by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, struct ep_key);
	__type(value, struct ep_info);
	PINNED;
} ep_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, struct mac_key);
	__type(value, struct ep_info);
	PINNED;
} ep_by_mac SEC(".maps");

/* Only the endpoints of DHCP networks have an entry (mvlan.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, struct mac_key);
	__type(value, struct dhcp_ids);
	PINNED;
} dhcp_ids SEC(".maps");

/* The namespaces that hold endpoints, by cookie (the value unused): a
 * frame sent by a socket of one is a container's (parent.h). One more
 * than the endpoints: an endpoint the endpoints array refuses is counted
 * for a moment. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDPOINTS + 1);
	__type(key, __u64);
	__type(value, __u8);
	PINNED;
} ep_netns SEC(".maps");

/* The records, by slot; the hashes above are the slow path (a MAC whose
 * bucket spilled, a frame whose MAC is not its link's own). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EP_SLOTS);
	__type(key, __u32);
	__type(value, struct ep_info);
	PINNED;
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << MAC_INDEX_BITS);
	__type(key, __u32);
	__type(value, struct idx_bucket);
	PINNED;
} mac_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDPOINTS * (EP_MAX_V4 + EP_MAX_V6));
	__type(key, struct ip_key);
	__type(value, struct ip_info);
	PINNED;
} ep_by_ip SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << IP4_INDEX_BITS);
	__type(key, __u32);
	__type(value, struct idx_bucket);
	PINNED;
} ip4_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << IP6_INDEX_BITS);
	__type(key, __u32);
	__type(value, struct idx_bucket);
	PINNED;
} ip6_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << PARENT_INDEX_BITS);
	__type(key, __u32);
	__type(value, struct idx_bucket);
	PINNED;
} parent_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PARENTS);
	__type(key, __u32);
	__type(value, struct parent_info);
	PINNED;
} parents SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_NETWORKS);
	__type(key, __u32);
	__type(value, struct ra_source);
	PINNED;
} ra_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_NETWORKS);
	__type(key, __u32);
	__type(value, struct gateways);
	PINNED;
} gateways SEC(".maps");

/* The shared endpoint programs, by enum ep_slot: each netns's stub
 * (loader/stub.go) tail-calls into them. Pinned: the kernel empties a program
 * array when no process or pin holds it. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, EP_SLOT_MAX);
	__type(key, __u32);
	__type(value, __u32);
	PINNED;
} ep_progs SEC(".maps");

/* Per-CPU counters, summed by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_VLAN_COUNTERS);
	__type(key, struct vlan_key);
	__type(value, struct traffic);
	PINNED;
} vlan_stats SEC(".maps");

/* Indexed by network id: one array look-up, which the verifier inlines,
 * finds every counter of a network. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_NETWORKS);
	__type(key, __u32);
	__type(value, struct net_counters);
	PINNED;
} net_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_NETWORKS * REASON_MAX);
	__type(key, struct drop_key);
	__type(value, struct pb);
	PINNED;
} drop_stats SEC(".maps");

/* Inserts that failed because the map was full, by enum map_id: a count
 * lost there is visible, never silent. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAP_ID_MAX);
	__type(key, __u32);
	__type(value, __u64);
	PINNED;
} map_full SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HOOK_MAX);
	__type(key, __u32);
	__type(value, struct pb);
	PINNED;
} malformed SEC(".maps");

#endif /* MVLAN_MAPS_H */
