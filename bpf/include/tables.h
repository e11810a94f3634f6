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

/* ep_of_mac returns the local endpoint with this unicast MAC, or NULL. */
static __always_inline struct ep_info *ep_of_mac(const __u8 *mac)
{
	struct mac_key key = {};

	if (mac_is_multicast(mac))
		return NULL;
	mac_copy(key.mac, mac);
	return bpf_map_lookup_elem(&ep_by_mac, &key);
}

#endif /* MVLAN_TABLES_H */
