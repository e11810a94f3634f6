/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * mvlan.h: constants and the layout of every map key and value shared by
 * mvlan's TC programs. The Go side (loader/types.go) mirrors these structs
 * byte for byte; change both together.
 */
#ifndef MVLAN_H
#define MVLAN_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Verdicts: TC_ACT_UNSPEC is TCX_NEXT under TCX and "next filter" under
 * cls_bpf, so other programs on the hook keep working. ep_egress passes
 * with TC_ACT_OK (TCX_PASS) on a container's link, the hook's last word: a
 * program a container put after it (in TCX, or a filter under clsact,
 * which runs after TCX) never runs, so nothing rewrites a frame after the check (a neighbour's
 * MAC on a frame its kernel sends without a socket, which no later check
 * could tell from the neighbour's own). */
#define VERDICT_NEXT TC_ACT_UNSPEC
#define VERDICT_PASS TC_ACT_OK
#define VERDICT_DROP TC_ACT_SHOT

#define ETH_ALEN 6
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define ETH_P_QINQ1 0x9100
#define ETH_P_QINQ2 0x9200
#define VLAN_VID_MASK 0x0fff
#define MAX_VLAN_TAGS 2

/* Hooks, the index of the malformed counter array. */
enum hook {
	HOOK_EP_EGRESS = 0,
	HOOK_EP_INGRESS = 1,
	HOOK_PARENT_INGRESS = 2,
	HOOK_PARENT_EGRESS = 3,
	HOOK_MAX = 4,
};

/* Slots of the shared endpoint programs in ep_progs. */
enum ep_slot {
	EP_SLOT_INGRESS = 0,
	EP_SLOT_EGRESS = 1,
	EP_SLOT_MAX = 2,
};

/* Drop reasons (drop_stats key). */
enum drop_reason {
	REASON_MAC_SPOOF = 1,
	REASON_IP_SPOOF = 2,
	REASON_ARP_SPOOF = 3,
	REASON_ND_SPOOF = 4,
	REASON_CROSS_NETWORK = 5,
	REASON_RA_GUARD = 6,     /* a router message (RA, redirect) from an endpoint */
	REASON_DHCP_GUARD = 7,   /* a DHCP server reply, or a client's in another's name (dhcp.h) */
	REASON_UNPARSABLE = 8,   /* headers beyond the bounded parse */
	REASON_UNKNOWN_SOURCE = 9, /* not from the wire, not from a local endpoint */
	REASON_NO_ENDPOINT = 10, /* on a link whose endpoint is not in the table */
	REASON_RA_SOURCE = 11,   /* an RA from another source than the network's */
	REASON_VLAN_TAG = 12,    /* a VLAN-tagged frame from an endpoint */
	REASON_RA_IGNORE = 13,   /* an RA or redirect from the wire, the network has no RA source */
	REASON_HOST_ROUTE = 14,  /* an endpoint's unicast through the host shim, not to it */
	REASON_FOREIGN_DST = 15, /* a unicast for another MAC than the receiving endpoint's */
	REASON_MAX = 16,
};

/* skb->mark bit parent_ingress sets on frames from the wire for local
 * endpoints (and flood); ep_ingress reads and clears it. Frames between
 * two endpoints that ep_egress passed do not have it (parent_ingress only
 * counts them: eastwest.h), nor do a local link's broadcasts, which
 * macvlan hands to each slave directly; a mark set before crossing into
 * another netns is cleared (skb_scrub_packet). */
#define WIRE_MARK 0x00800000

/* Limits the maps are sized for (the loader refuses more):
 * network ids index the per-CPU array net_stats, 0 < id < MAX_NETWORKS;
 * a parent per network; endpoints host-wide, each with up to EP_MAX_V4 +
 * EP_MAX_V6 addresses; per-VLAN counters for every VLAN of a full trunk
 * twice (the trunk and its sub-interfaces) and then some. */
#define MAX_NETWORKS 4096
#define MAX_PARENTS MAX_NETWORKS
#define MAX_ENDPOINTS 8192
#define MAX_VLAN_COUNTERS 16384

/* Maps the programs insert into, the index of the map_full counters. */
enum map_id {
	MAP_VLAN_STATS = 0,
	MAP_DROP_STATS = 1,
	MAP_ID_MAX = 2,
};

enum direction { DIR_RX = 0, DIR_TX = 1 };
enum flood_kind { FLOOD_BROADCAST = 0, FLOOD_MULTICAST = 1 };
enum ip_family { FAMILY_V4 = 4, FAMILY_V6 = 6 };

/* ep_table: which endpoint a program runs for. */
struct ep_key {
	__u64 netns_cookie; /* SO_NETNS_COOKIE of the endpoint's netns */
	__u32 ifindex;      /* the slave's ifindex inside that netns */
	__u32 pad;
};

/* The endpoint's own addresses are inline, so the anti-spoofing checks of
 * the hot path need no further look-up. */
#define EP_MAX_V4 2
#define EP_MAX_V6 4

/* ep_info.flags: what the endpoint's network allows it to send. */
#define EP_ALLOW_ROUTER 0x1      /* router advertisements and redirects */
#define EP_ALLOW_DHCP_SERVER 0x2 /* UDP from port 67 (v4) and 547 (v6), others' client messages */
/* ep_info.flags: a Docker endpoint's row still under its link's keys in
 * the host's namespace, while the runtime moves the link into a container
 * that has none of its own keys yet: any container's socket may send its
 * MAC until the row is moved (FinishHandoff). */
#define EP_MOVING 0x100
/* ep_info.flags: the network's host shim, a link in the host's namespace:
 * a local endpoint's unicast IP frame to it must be for one of its own
 * addresses, else the host would route it (host_route), unless the
 * network allows a router (EP_ALLOW_ROUTER). */
#define EP_HOST_SHIM 0x200
/* ep_info.flags: the agent's DHCP client is checking an IPv4 address for
 * the endpoint (its first lease, or a renewal moved it): its ARP probes
 * may ask for any address, not only its own, and it may send a
 * DHCPDECLINE (dhcp.h), until the check ends. */
#define EP_PROBING 0x400
/* ep_info.flags: the endpoint's DHCP identities are in dhcp_ids, if it
 * has any (every row the agent writes; a row an older agent wrote has
 * none of its identities there until it is written again). */
#define EP_DHCP_IDS 0x800

/* Everything a frame needs of an endpoint, in one record: the value of
 * ep_table and ep_by_mac, and of the endpoints array at its slot. */
struct ep_info {
	__u8 mac[ETH_ALEN];
	__u8 n4; /* ip4[0..n4) are valid */
	__u8 n6; /* ip6[0..n6) are valid (the link-local included) */
	__u32 network_id;
	__u32 flags; /* EP_ALLOW_*, EP_MOVING, EP_HOST_SHIM, EP_PROBING, EP_DHCP_IDS */
	__be32 ip4[EP_MAX_V4];
	__be32 ip6[EP_MAX_V6][4];
	__u32 ifindex; /* its ep_table key: the slave's ifindex in its netns */
	__u32 slot;    /* its index in the endpoints array */
	__u64 netns_cookie; /* and its netns */
};

/* The endpoints array holds a record per slot; slot 0 is no endpoint. The
 * agent writes a changed endpoint into a fresh slot and then points the
 * tables at it, so a program never reads a record being rewritten; the
 * spare slot makes that possible with the table full. */
#define EP_SLOTS (MAX_ENDPOINTS + 2)

/* An index: a key (a MAC, or an IPv4 address, in the low 48 bits) to a
 * slot, in a bucket of an array picked by a hash of the key; one array
 * look-up for the common frame. A bucket holds IDX_WAYS entries, each
 * key | slot << 48 (slot 0: empty); the keys that did not fit are in the
 * backing hash (ep_by_mac, ep_by_ip) and counted in spill, so a miss in a
 * bucket that never spilled needs no further look-up. An entry only points
 * at a record: a reader checks the record's own key. */
#define IDX_WAYS 4
#define IDX_KEY_MASK 0xffffffffffffULL
#define MAC_INDEX_BITS 13 /* 8192 buckets for MAX_ENDPOINTS MACs */
#define IP4_INDEX_BITS 14 /* for MAX_ENDPOINTS * EP_MAX_V4 addresses */
#define IP6_INDEX_BITS 15 /* for MAX_ENDPOINTS * EP_MAX_V6, keyed by a fold */
/* parent_index: ifindex | vid << 32 | network_id << 48, the parents entry
 * itself; backed by parents. */
#define PARENT_INDEX_BITS 12 /* for MAX_PARENTS links */

struct idx_bucket {
	__u64 e[IDX_WAYS];
	__u32 spill;
	__u32 pad;
};

/* ep_by_mac: MAC of a local endpoint -> the endpoint (struct ep_info), so
 * that a receiver can check a frame against its sender's table entry. */
struct mac_key {
	__u8 mac[ETH_ALEN];
	__u16 pad;
};

/* ep_by_ip: address of a local endpoint -> its MAC and network. Addresses
 * are unique host-wide (the agent refuses overlapping subnets). IPv4 uses
 * addr[0..3], the rest is zero. */
struct ip_key {
	__u8 family; /* FAMILY_V4 or FAMILY_V6 */
	__u8 pad[3];
	__u8 addr[16];
};

struct ip_info {
	__u8 mac[ETH_ALEN];
	__u16 pad;
	__u32 network_id;
};

/* parents: key is the parent's ifindex in the agent's netns. */
struct parent_info {
	__u32 network_id;
	__u16 vid; /* the network's VLAN: label of untagged frames on this link */
	__u16 pad;
};

/* ra_sources, by network id: where router advertisements for the
 * network's endpoints must come from (-o ipv6_ra_source); flags 0 (the
 * default: -o ipv6_ra=ignore) is no source, and no RA or redirect from the
 * wire reaches them. */
#define RA_SRC_LL 0x1  /* the IPv6 source must be ll */
#define RA_SRC_MAC 0x2 /* the Ethernet source must be mac */

struct ra_source {
	__be32 ll[4];
	__u8 mac[ETH_ALEN];
	__u8 flags;
	__u8 pad;
};

/* gateways: a network's gateway addresses, which no link on its parent
 * but the host's own may claim toward the wire (parent.h: claim_reason):
 * the parent, then the macvlans and macvtaps the host made on it (a VM's,
 * keepalived's VRRP link), by MAC (mac48); n4 / n6 / nmacs of each are
 * set. */
#define GW_MAX_V4 4
#define GW_MAX_V6 2
#define GW_MAX_MACS 16

struct gateways {
	__be32 gw4[GW_MAX_V4];
	__be32 gw6[GW_MAX_V6][4];
	__u64 macs[GW_MAX_MACS];
	__u8 n4;
	__u8 n6;
	__u8 nmacs;
	__u8 pad[5];
};

/* dhcp_ids, by MAC: the DHCP client identities of an endpoint whose
 * address the agent's client leases (a DHCP network), which its DHCP
 * client messages must carry (dhcp.h): the IPv4 client identifier
 * (option 61) and the DHCPv6 DUID (option 1). len 0: none, and then only
 * one made of the endpoint's MAC (hardware type 1) is its own. */
#define DHCP_ID_MAX 32

struct dhcp_ids {
	__u8 len4;
	__u8 len6;
	__u8 pad[6];
	__u8 id4[DHCP_ID_MAX];
	__u8 id6[DHCP_ID_MAX];
};

/* Counter values. */
struct pb {
	__u64 packets;
	__u64 bytes;
};

struct traffic {
	struct pb rx;
	struct pb tx;
};

/* net_stats: everything counted per network, one array slot each. */
struct net_counters {
	struct pb rx;       /* received by its endpoints */
	struct pb tx;       /* sent by its endpoints */
	struct pb hairpin;  /* on its parent: routed back to it */
	struct pb eastwest; /* on its parent: between two of its endpoints */
	struct pb flood[2][2]; /* on its parent: [flood_kind][direction] */
	struct traffic parent; /* untagged frames on its parent (its VLAN) */
};

struct vlan_key {
	__u32 ifindex;
	__u16 vid;
	__u16 pad;
};

struct drop_key {
	__u32 network_id;
	__u32 reason;
};

#endif /* MVLAN_H */
