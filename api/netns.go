package api

import (
	"net/url"
	"strconv"

	"github.com/mvlan/mvlan/internal/nsfile"
)

// netnsQuery is query q ("?..." or "" if empty) with setNetnsInode.
func netnsQuery(path string, q url.Values) string {
	setNetnsInode(q, path)
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// setNetnsInode sets q's netns_inode to the inode of the namespace at
// path where the request is made, if known.
func setNetnsInode(q url.Values, path string) {
	if ino := NetnsInode(path); ino != 0 {
		q.Set("netns_inode", strconv.FormatUint(ino, 10))
	}
}

// NetnsInode is the inode of the namespace at path as the caller sees it,
// for EndpointCreate.NetnsInode; 0 when it cannot tell (no such path, not
// a namespace there, not allowed to look, or the path did not answer),
// and the agent then goes by the path alone.
//
// The agent looks a path up through its own mounts and /proc: a caller
// in another mount namespace may see another namespace (or none) at
// /run/netns/NAME, one in another PID namespace another process at
// /proc/PID. With the inode the agent refuses such a path instead of
// attaching (or detaching) the wrong container.
func NetnsInode(path string) uint64 {
	if path == "" {
		return 0
	}
	ino, err := nsfile.Inode(path)
	if err != nil {
		return 0
	}
	return ino
}
