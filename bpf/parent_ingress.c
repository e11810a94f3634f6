// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * parent_ingress: TC ingress of a network's parent link (and of the trunk
 * below a sub-interface). Counts per-VLAN rx packets and bytes, flood,
 * hairpin and east-west frames, and marks frames from the wire for local
 * endpoints (WIRE_MARK); never drops. See include/parent.h.
 */
#include "include/parent.h"

SEC("tc")
int parent_ingress(struct __sk_buff *skb)
{
	return handle_parent(skb, DIR_RX, HOOK_PARENT_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
