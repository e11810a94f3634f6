package api

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// socketAccess says who may use the agent's socket at path, from its
// mode, owner and group: the group's members when the group may write
// to it (the agent's --socket-group), else its owner alone.
func socketAccess(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Sprintf("cannot look at it: %v; run as root", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "run as root"
	}
	mode, owner, group := fi.Mode().Perm(), userName(st.Uid), groupName(st.Gid)
	if mode&0o020 != 0 {
		return fmt.Sprintf("mode %04o, owner %s, group %s: members of group %s may use it (add yourself, then log in again), or run as %s",
			mode, owner, group, group, owner)
	}
	return fmt.Sprintf("mode %04o, owner %s: only %s may use it; run as %s, or start the agent with --socket-group GROUP to let GROUP's members",
		mode, owner, owner, owner)
}

// userName is the name of user uid, else the number.
func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

// groupName is the name of group gid, else the number.
func groupName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}
