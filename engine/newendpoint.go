package engine

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/netconf"
)

// newEndpoint and its checks: a request made into an endpoint, its name,
// namespace, MAC and addresses, before anything is made.

// newEndpoint validates the request into an endpoint without addresses.
func (a *Engine) newEndpoint(n *network, req api.EndpointCreate) (endpoint, error) {
	e := endpoint{ID: store.NewID(), Name: freeName(n, req), NetworkID: n.ID, Netns: req.Netns, IfName: req.IfName,
		State: Creating, Created: time.Now().UTC(), CNI: req.CNI}
	if e.IfName != "" {
		if err := link.CheckIfName(e.IfName); err != nil {
			return e, invalid(fmt.Errorf("--ifname: %w", err))
		}
	}
	if e.Name != "" {
		if err := checkName(e.Name); err != nil {
			return e, err
		}
	}
	if e.Netns != "" {
		if err := a.checkForeignNetns(&e, req.NetnsInode); err != nil {
			return e, err
		}
	} else {
		e.OwnsNetns = true
		if e.Name == "" {
			e.Name = "mvlan-" + e.ID[:8]
		}
		e.Netns = link.NetnsPath(e.Name)
		if _, err := a.ns.Check(e.Netns); !errors.Is(err, fs.ErrNotExist) { // a namespace, or any file
			return e, conflict(fmt.Errorf("container name %s is already in use (%s exists); choose another --name", e.Name, e.Netns))
		}
	}
	if e.IfName == "" {
		e.IfName = "eth0"
	}
	if req.MAC == "" && n.Mode != "passthru" {
		n.mu.Lock()
		e.MAC = pickStableMAC(a.identity(n), e.Name, func(mac net.HardwareAddr) bool { return n.macTaken(mac, n.parentMAC) })
		n.mu.Unlock()
		return e, nil
	}
	mac, err := a.endpointMAC(n, req.MAC)
	if err != nil {
		return e, err
	}
	e.MAC = mac
	return e, nil
}

// checkName is the one check of an endpoint's name, however it gets one
// (run --name, connect --name, Docker's sandbox key or container name):
// a name is shown in ps, names /run/netns/NAME and is looked up by rm, so
// it is a plain word: no path, no newline, no space.
func checkName(name string) error {
	if err := netconf.CheckName("container", name); err != nil {
		return invalid(err)
	}
	return nil
}

// nameFromNetns names an endpoint after the namespace it was given.
func nameFromNetns(path string) string {
	if base := filepath.Base(path); strings.HasPrefix(path, link.NetnsDir+"/") && checkName(base) == nil {
		return base
	}
	f := strings.Split(strings.Trim(path, "/"), "/")
	if len(f) == 4 && f[0] == "proc" && f[2] == "ns" && checkName("pid-"+f[1]) == nil {
		return "pid-" + f[1]
	}
	return "ns-" + store.NewID()[:8]
}

// endpointMAC is the MAC of a new endpoint: the one asked for, else in
// passthru mode the parent's (passthru hands it to its one slave; keeping
// it means the parent's address does not change under the operator), else
// a random one. (An endpoint with a name gets a stable one instead: see
// stableMAC; Docker's endpoints are named only when they join.) A random one is not checked against the network's: 46
// random bits make a clash as good as impossible, and the kernel refuses a
// MAC already in use on the parent when the link comes up, so an attach
// could fail, never clash. A requested one is checked when the endpoint
// is admitted.
func (a *Engine) endpointMAC(n *network, want string) (net.HardwareAddr, error) {
	if want == "" && n.Mode == "passthru" {
		if l, err := a.host.Link(n.Parent); err == nil {
			want = l.MAC.String()
		}
	}
	if want == "" {
		mac := make(net.HardwareAddr, 6)
		for isZero(mac[1:]) {
			_, _ = rand.Read(mac)
			mac[0] = mac[0]&0xfc | 0x02 // locally administered, unicast
		}
		return mac, nil
	}
	mac, err := net.ParseMAC(want)
	if err != nil || len(mac) != 6 || mac[0]&1 != 0 || isZero(mac) {
		return nil, invalid(fmt.Errorf("MAC %q (--mac; Docker's --mac-address) is not a unicast Ethernet address; use e.g. 02:42:ac:10:56:0a", want))
	}
	return mac, nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// reserve takes the endpoint's addresses from the network's space.
// Caller holds n.mu.
func (a *Engine) reserve(n *network, e *endpoint, req api.EndpointCreate) (err error) {
	defer func() {
		if err != nil {
			releaseAll(n.space, e.Addrs)
			e.Addrs = nil
		}
	}()
	_, local := n.space.(*ipam.Space) // a cluster network's may be other hosts' too
	e.unseen = local
	for _, fam := range []struct {
		v6   bool
		want string
		flag string
	}{{false, req.IP, "--ip"}, {true, req.IP6, "--ip6"}} {
		p, err := reserveOne(n, e.Name, fam.v6, fam.want, fam.flag)
		if err != nil {
			return err
		}
		if p.IsValid() {
			e.Addrs = append(e.Addrs, p)
			e.unseen = e.unseen && fam.want == "" && n.used.Above(p.Addr())
		}
	}
	if len(e.Addrs) == 0 {
		return invalid(fmt.Errorf("network %s has no subnet to take an address from", n.name()))
	}
	return nil
}

// dockerIPAMOption marks a stored network whose addresses Docker's own
// IPAM driver hands out (api.NetworkCreate.DockerIPAM); -o cannot set it.
const dockerIPAMOption = "docker_ipam"

func reserveOne(n *network, owner string, v6 bool, want, flag string) (netip.Prefix, error) {
	if want == "" {
		if !n.space.HasFamily(v6) || (v6 && !n.IPv6) {
			return netip.Prefix{}, nil
		}
		if n.Options[dockerIPAMOption] == "true" {
			return netip.Prefix{}, invalid(fmt.Errorf("network %s's addresses are handed out by Docker's IPAM driver (it was made by docker network create without --ipam-driver mvlan), which would give one mvlan picked to its next container: give %s with one Docker does not hand out (outside the network's --ip-range), or make the network with --ipam-driver mvlan",
				n.name(), flag))
		}
		p, err := n.space.Allocate(v6, owner)
		if err != nil {
			return p, conflict(err)
		}
		return p, nil
	}
	addr, err := netip.ParseAddr(want)
	switch {
	case err != nil:
		return netip.Prefix{}, invalid(fmt.Errorf("%s %q is not an IP address", flag, want))
	case addr.Zone() != "":
		return netip.Prefix{}, invalid(fmt.Errorf("%s %q: an endpoint's address has no zone; leave %%%s out", flag, want, addr.Zone()))
	case addr.Unmap().Is6() != v6:
		return netip.Prefix{}, invalid(wrongFamily(flag, want, v6))
	}
	if !n.space.HasFamily(v6) || (v6 && !n.IPv6) {
		why := map[bool]string{false: "no IPv4 subnet", true: "no IPv6 subnet (it was made without --ipv6 and an IPv6 --subnet)"}[v6]
		return netip.Prefix{}, invalid(fmt.Errorf("%s %s: network %s has %s; leave %s out, or use a network that has one", flag, want, n.name(), why, flag))
	}
	p, err := n.space.Request(addr.Unmap(), owner)
	if errors.Is(err, ipam.ErrTaken) {
		return p, conflict(ipam.HintTaken(err))
	}
	if err != nil {
		return p, invalid(err)
	}
	return p, nil
}

// wrongFamily is the error for want, given with flag, an address of the
// other family: it says which flag takes it.
func wrongFamily(flag, want string, v6 bool) error {
	if v6 {
		return fmt.Errorf("%s %q is not an IPv6 address; an IPv4 address goes with --ip", flag, want)
	}
	return fmt.Errorf("%s %q is not an IPv4 address; an IPv6 address goes with --ip6", flag, want)
}

func releaseAll(space addrSpace, addrs []netip.Prefix) {
	for _, p := range addrs {
		space.Release(p.Addr())
	}
}

// checkForeignNetns validates a namespace given by path (connect): it must
// be a network namespace and not the agent's own. (Admit checks it is not
// on the network yet.) It names the endpoint and picks the first free
// ethN when no --ifname. seen is the request's NetnsInode.
func (a *Engine) checkForeignNetns(e *endpoint, seen uint64) error {
	ino, err := a.foreignNetnsInode(e.Netns, seen)
	if err != nil {
		return err
	}
	e.NetnsInode = ino
	if e.Name == "" {
		e.Name = nameFromNetns(e.Netns)
	}
	if e.IfName == "" {
		e.IfName, err = a.freeIfName(e.Netns)
	}
	return err
}

// foreignNetnsInode is the inode of the namespace at path, which must be
// a network namespace and not the agent's own, and, unless seen is 0, the
// one the requester sees at path (api.NetnsInode).
func (a *Engine) foreignNetnsInode(path string, seen uint64) (uint64, error) {
	ino, err := a.ns.Check(path)
	if err != nil {
		return 0, invalid(err)
	}
	if err := otherNetns(path, ino, seen); err != nil {
		return 0, err
	}
	if ino == a.hostIno {
		return 0, invalid(fmt.Errorf("%s is the agent's own (host) namespace; give a container's namespace", path))
	}
	return ino, nil
}

// otherNetns refuses path when its namespace where the agent runs, ino,
// is another than the one the requester sees there, seen (0 where
// either is not known: a path that is gone).
func otherNetns(path string, ino, seen uint64) error {
	if seen == 0 || ino == 0 || ino == seen {
		return nil
	}
	if strings.HasPrefix(path, "/proc/self/") || strings.HasPrefix(path, "/proc/thread-self/") {
		return invalid(fmt.Errorf("%s names the agent's own process where the agent looks; give the container's /proc/PID/ns/net or /run/netns/NAME", path))
	}
	return invalid(fmt.Errorf("%s is net:[%d] where the agent runs but net:[%d] where the request was made "+
		"(another mount or PID namespace): give a path both see, such as a bind mount under /run/netns", path, ino, seen))
}

// freeIfName returns the first ethN that the namespace does not have.
func (a *Engine) freeIfName(path string) (string, error) {
	links, err := a.ns.Links(path)
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, l := range links {
		taken[l.Name] = true
	}
	for i := 0; ; i++ {
		if name := fmt.Sprintf("eth%d", i); !taken[name] {
			return name, nil
		}
	}
}
