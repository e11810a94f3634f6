package engine

import "testing"

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
