// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tcx_watch: counts the bpf() calls that attach a program to a TCX hook or
 * detach one (BPF_PROG_ATTACH, BPF_LINK_CREATE, BPF_PROG_DETACH with a TCX
 * attach type), anywhere on the host, by any process but the agent. Such
 * an attach sends no notification, and a program loaded long before it is
 * attached makes no sign either: a container's pass-through program put
 * ahead of ep_egress that way would otherwise be found only by the tamper
 * check's rolling pass. The agent reads the count at each check (loader
 * ForeignAttaches); when it moved, every endpoint's TCX hooks are
 * screened.
 *
 * On the tracepoints of bpf() (syscalls/sys_enter_bpf and sys_exit_bpf),
 * which run on that system call only. A call is noted as it starts and
 * counts as it returns, if it succeeded: the check after that sees the
 * attach done, and a call the kernel refused (no right to, a bad program
 * or link) changes no hook and makes no work: a process calling bpf() in
 * a loop only to fail cannot have every check screen every endpoint. The
 * attach type is read from the caller's memory as the call starts: a call
 * whose type cannot be read counts if it succeeds; one whose memory
 * another thread rewrites after the read, and a 32-bit process's (the
 * kernel traces native calls only), are left to the rolling pass. A call
 * made while more than in_flight holds are under way counts as it starts.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Attach types of TCX (linux/bpf.h of Linux 6.6+). */
#define ATTACH_TCX_INGRESS 46
#define ATTACH_TCX_EGRESS 47

/* Where the attach type is in union bpf_attr, for BPF_PROG_ATTACH and
 * BPF_PROG_DETACH (after target_fd and attach_bpf_fd) and for
 * BPF_LINK_CREATE (after prog_fd and target_fd). */
#define ATTR_ATTACH_TYPE 8

/* The agent's pid namespace (the device and inode of /proc/self/ns/pid)
 * and its pid there: its own calls are not counted. */
volatile const __u64 agent_pidns_dev = 0;
volatile const __u64 agent_pidns_ino = 0;
volatile const __u32 agent_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tcx_attaches SEC(".maps");

/* The threads (pid_tgid) in a noted call, until it returns. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} in_flight SEC(".maps");

/* The records of syscalls/sys_enter_bpf and sys_exit_bpf (their format
 * files): the arguments as the registers held them. */
struct sys_enter_bpf {
	__u64 common; /* type, flags, preempt count, pid */
	__s32 syscall_nr;
	__u32 pad;
	__u64 cmd;
	__u64 uattr;
	__u64 size;
};

struct sys_exit_bpf {
	__u64 common;
	__s32 syscall_nr;
	__u32 pad;
	__s64 ret;
};

static __always_inline void count(void)
{
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&tcx_attaches, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* agent: the calling task is the agent (in its pid namespace, with its
 * pid; a task of another pid namespace is not). */
static __always_inline int agent(void)
{
	struct bpf_pidns_info ns = {};

	return bpf_get_ns_current_pid_tgid(agent_pidns_dev, agent_pidns_ino, &ns, sizeof(ns)) == 0 &&
	       ns.tgid == agent_tgid;
}

/* tcx_call: a call of cmd with attributes at uattr of size bytes may
 * attach to or detach from a TCX hook. The kernel takes cmd and size as
 * 32-bit values (the upper halves of the registers are not its). */
static __always_inline int tcx_call(__u32 cmd, __u64 uattr, __u32 size)
{
	__u32 type = 0;

	if (cmd != BPF_PROG_ATTACH && cmd != BPF_LINK_CREATE && cmd != BPF_PROG_DETACH)
		return 0;
	if (size < ATTR_ATTACH_TYPE + sizeof(type))
		return 0; /* the kernel reads no attach type: zero, no TCX */
	if (bpf_probe_read_user(&type, sizeof(type), (void *)(uattr + ATTR_ATTACH_TYPE)) < 0)
		return 1; /* cannot tell: count */
	return type == ATTACH_TCX_INGRESS || type == ATTACH_TCX_EGRESS;
}

SEC("tracepoint/syscalls/sys_enter_bpf")
int tcx_watch_enter(struct sys_enter_bpf *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u8 one = 1;

	if (!tcx_call((__u32)ctx->cmd, ctx->uattr, (__u32)ctx->size) || agent())
		return 0;
	/* in_flight full (calls parked in bpf(), say on a page that does not
	 * answer): counted now, as it starts, rather than not at all. */
	if (bpf_map_update_elem(&in_flight, &id, &one, BPF_ANY) < 0)
		count();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bpf")
int tcx_watch_exit(struct sys_exit_bpf *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (bpf_map_delete_elem(&in_flight, &id) == 0 && ctx->ret >= 0)
		count();
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
