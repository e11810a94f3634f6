package engine

import (
	"strings"
	"testing"
)

// TestDisconnectMatch: disconnect picks the endpoint at the path asked
// for over a dead one whose recorded inode the kernel has given again.
func TestDisconnectMatch(t *testing.T) {
	const path, other = "/run/netns/c1", "/run/netns/old"
	for _, tt := range []struct {
		name string
		e    endpoint
		ino  uint64
		want int
	}{
		{"path and inode", endpoint{Netns: path, NetnsInode: 7}, 7, 3},
		{"path, inode recorded before the namespace was made again", endpoint{Netns: path, NetnsInode: 5}, 7, 2},
		{"dead endpoint with the inode given again", endpoint{Netns: other, NetnsInode: 7}, 7, 1},
		{"path gone", endpoint{Netns: path, NetnsInode: 7}, 0, 2},
		{"inode 0 matches nothing", endpoint{Netns: other, NetnsInode: 0}, 0, 0},
		{"neither", endpoint{Netns: other, NetnsInode: 5}, 7, 0},
	} {
		if got := disconnectMatch(tt.e, path, tt.ino); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestOtherNetns: a path is refused only when both sides know its
// namespace and they differ; /proc/self is named as the agent's.
func TestOtherNetns(t *testing.T) {
	for _, tt := range []struct {
		path      string
		ino, seen uint64
		want      string // "" for no error
	}{
		{"/run/netns/c1", 7, 7, ""},
		{"/run/netns/c1", 7, 0, ""}, // the requester could not tell
		{"/run/netns/c1", 0, 9, ""}, // gone where the agent looks
		{"/run/netns/c1", 7, 9, "/run/netns/c1 is net:[7] where the agent runs but net:[9] where the request was made"},
		{"/proc/1234/ns/net", 7, 9, "another mount or PID namespace"},
		{"/proc/self/ns/net", 7, 9, "the agent's own process"},
		{"/proc/thread-self/ns/net", 7, 9, "the agent's own process"},
	} {
		err := otherNetns(tt.path, tt.ino, tt.seen)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("otherNetns(%s, %d, %d) = %v; want nil", tt.path, tt.ino, tt.seen, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || KindOf(err) != KindInvalid):
			t.Errorf("otherNetns(%s, %d, %d) = %v; want invalid, naming %q", tt.path, tt.ino, tt.seen, err, tt.want)
		}
	}
}
