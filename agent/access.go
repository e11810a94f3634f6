package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// DefaultSocketGroup may use the API socket when the group exists (the
// package creates it): the socket is then 0660 root:GROUP, else 0600.
const DefaultSocketGroup = "mvlan"

// shareSocket gives the socket at path to group (0660) when the group
// exists, or to the gid group is made of; it stays 0600 otherwise, or
// when group is "". The agent is a static binary: it finds groups in
// /etc/group only, not those of LDAP or sssd (give their gid).
func shareSocket(path, group string) (string, error) {
	if group == "" {
		return "", nil
	}
	gid, err := strconv.Atoi(group)
	if err != nil || gid < 0 {
		g, err := user.LookupGroup(group)
		if errors.As(err, new(user.UnknownGroupError)) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("look up group %s for %s: %w", group, path, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return "", fmt.Errorf("group %s has gid %q: %w", group, g.Gid, err)
		}
	}
	if err := os.Chown(path, 0, gid); err != nil {
		return "", fmt.Errorf("give %s to group %s: %w", path, group, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		return "", fmt.Errorf("chmod %s: %w", path, err)
	}
	return group, nil
}

// peer is the process at the other end of an API connection.
type peer struct {
	uid, gid uint32
	pid      int32
	err      error
}

type peerKey struct{}

// withPeer stores the connection's peer credentials (SO_PEERCRED) in the
// context of its requests (http.Server.ConnContext).
func withPeer(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	var p peer
	raw, err := uc.SyscallConn()
	if err != nil {
		p.err = err
		return context.WithValue(ctx, peerKey{}, p)
	}
	cerr := raw.Control(func(fd uintptr) {
		var cred *unix.Ucred
		if cred, p.err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); p.err == nil {
			p.uid, p.gid, p.pid = cred.Uid, cred.Gid, cred.Pid
		}
	})
	p.err = errors.Join(p.err, cerr)
	return context.WithValue(ctx, peerKey{}, p)
}

// logMutations logs every request that changes something (any method but
// GET and HEAD) with the peer's uid, gid and pid: who asked for it.
func (a *Agent) logMutations(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			p, ok := r.Context().Value(peerKey{}).(peer)
			switch {
			case !ok || p.err != nil:
				a.log.Warn("api request from an unknown peer", "method", r.Method, "path", r.URL.RequestURI(), "err", p.err)
			default:
				a.log.Info("api request", "method", r.Method, "path", r.URL.RequestURI(),
					"peer_uid", p.uid, "peer_gid", p.gid, "peer_pid", p.pid)
			}
		}
		next.ServeHTTP(w, r)
	})
}
