// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * parent_egress: TC egress of a network's parent link (and of the trunk
 * below a sub-interface). Counts per-VLAN tx packets and bytes and flood
 * frames; on the network's parent, drops a frame with a local endpoint's
 * source MAC that breaks that endpoint's rules (its own programs may be
 * gone). See include/parent.h.
 */
#include "include/eastwest.h"
#include "include/parent.h"

SEC("tc")
int parent_egress(struct __sk_buff *skb)
{
	ew_clear(skb); /* no verdict leaves for the wire */
	return handle_parent(skb, DIR_TX, HOOK_PARENT_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
