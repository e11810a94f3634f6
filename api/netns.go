package api

import "syscall"

// NetnsInode is the inode of the namespace at path as the caller sees it,
// for EndpointCreate.NetnsInode; 0 when it cannot be told (no such path,
// not readable), and the agent then goes by the path alone.
//
// A path such as /proc/PID/ns/net names a namespace in the caller's PID
// namespace and /run/netns/NAME one in its mount namespace: a caller in
// other ones than the agent's (a runtime in a container, Multus) may name
// another container's namespace where the agent looks. With the inode
// the agent refuses that instead of attaching the wrong container.
func NetnsInode(path string) uint64 {
	var st syscall.Stat_t
	if path == "" || syscall.Stat(path, &st) != nil {
		return 0
	}
	return st.Ino
}
