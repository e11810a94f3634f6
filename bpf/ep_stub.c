// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ep_stub: what is attached to an endpoint's hooks, one pair per network
 * namespace: it hands the namespace's cookie (a load-time constant) to the
 * shared endpoint program of its hook in skb->cb[0..1] and tail-calls it.
 * Ten instructions to verify per namespace instead of the full programs.
 * Should the tail call fail (the program array lost its programs), the
 * frame is dropped: the endpoint is never left unchecked.
 */
#include "include/maps.h"

volatile const __u64 cfg_netns_cookie = 0;
volatile const __u32 cfg_slot = EP_SLOT_INGRESS;

SEC("tc")
int ep_stub(struct __sk_buff *skb)
{
	skb->cb[0] = (__u32)cfg_netns_cookie;
	skb->cb[1] = (__u32)(cfg_netns_cookie >> 32);
	bpf_tail_call(skb, &ep_progs, cfg_slot);
	return VERDICT_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
