package link

import (
	"cmp"
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// rtextFilterSkipStats is RTEXT_FILTER_SKIP_STATS (Linux 4.20): no
// statistics in the dump, half of each link's message.
const rtextFilterSkipStats = 1 << 3

// MacvlansAt lists, in the namespace at netnsPath, its macvlan and
// macvtap links and the link at ifindex (if any, whatever its kind): what
// the tamper check needs of an endpoint's namespace. The kernel leaves the
// other links out of its answer (a dump filtered by kind), so a
// container with thousands of links costs a look about what one with two
// does. It filters only by a kind it knows: while the macvtap module is
// not loaded (no macvtap can exist), the macvtap dump answers with every
// link, and that answer serves for the macvlans too. One netlink socket in
// the namespace serves the requests. LowerOnHost is set for the host at
// hostNetns ("": the caller's namespace). An ifindex of 0 asks for the
// macvlans and macvtaps alone.
func MacvlansAt(netnsPath string, ifindex int, hostNetns string) ([]Info, error) {
	return macvlansAt(netnsPath, ifindex, hostNetns, []string{"macvtap", "macvlan"})
}

// macvlansAt is MacvlansAt dumping kinds in turn, until one answers with
// every link.
func macvlansAt(netnsPath string, ifindex int, hostNetns string, kinds []string) ([]Info, error) {
	ns, err := openNetns(netnsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink in %s: %w", netnsPath, err)
	}
	defer s.Close()
	sockets := map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
	var out []Info
	seen := map[int]bool{ifindex: true}
	for _, kind := range kinds {
		ls, err := dumpKind(sockets, kind)
		if err != nil {
			return nil, fmt.Errorf("links of %s: %w", netnsPath, err)
		}
		every := false // not filtered: the kernel does not know the kind
		for _, l := range ls {
			every = every || l.Kind != kind
			if l.IsMacvlan() && !seen[l.Index] {
				seen[l.Index] = true
				out = append(out, l)
			}
		}
		if every {
			break
		}
	}
	if ifindex > 0 {
		l, err := linkAt(sockets, ifindex)
		switch {
		case err == nil:
			out = append(out, l)
		case !isNotFound(err):
			return nil, fmt.Errorf("link %d of %s: %w", ifindex, netnsPath, err)
		}
	}
	// Asked after the links: the kernel gave the host's namespace an ID
	// there when it reported a link whose lower link is on the host.
	host, err := hostNSID(sockets, hostNetns)
	if err != nil {
		return nil, fmt.Errorf("ID of the host's namespace in %s: %w", netnsPath, err)
	}
	for i := range out {
		out[i].LowerOnHost = out[i].LowerElsewhere && host >= 0 && out[i].lowerNSID == host
	}
	return out, nil
}

// hostNSID is the ID that the namespace of sockets gives the one at
// hostNetns ("": the calling thread's), -1 when it gave none (RTM_GETNSID
// by file).
func hostNSID(sockets map[int]*nl.SocketHandle, hostNetns string) (int, error) {
	f, err := os.Open(cmp.Or(hostNetns, "/proc/thread-self/ns/net"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	req := nl.NewNetlinkRequest(unix.RTM_GETNSID, unix.NLM_F_REQUEST)
	req.Sockets = sockets
	req.AddData(nl.NewRtGenMsg())
	req.AddData(nl.NewRtAttr(unix.NETNSA_FD, nl.Uint32Attr(uint32(f.Fd()))))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNSID)
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if id, ok, err := nsidIn(m); err != nil || ok {
			return id, err
		}
	}
	return 0, fmt.Errorf("no NETNSA_NSID in the answer")
}

// request is an RTM_GETLINK request on sockets, without statistics.
func request(sockets map[int]*nl.SocketHandle, flags int, index int32) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, flags)
	req.Sockets = sockets
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = index
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(rtextFilterSkipStats)))
	return req
}

// dumpKind dumps the links of kind, again when the dump was interrupted
// by a change (at most 5 times).
func dumpKind(sockets map[int]*nl.SocketHandle, kind string) (ls []Info, err error) {
	for range 5 {
		req := request(sockets, unix.NLM_F_DUMP, 0)
		info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
		info.AddRtAttr(nl.IFLA_INFO_KIND, nl.ZeroTerminated(kind))
		req.AddData(info)
		var msgs [][]byte
		msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s links: %w", kind, err)
		}
		ls = ls[:0]
		for _, m := range msgs {
			l, err := netlink.LinkDeserialize(nil, m)
			if err != nil {
				return nil, fmt.Errorf("list %s links: %w", kind, err)
			}
			ls = append(ls, infoOf(l))
		}
		return ls, nil
	}
	return nil, fmt.Errorf("list %s links: %w", kind, err)
}

// linkAt reads link ifindex.
func linkAt(sockets map[int]*nl.SocketHandle, ifindex int) (Info, error) {
	msgs, err := request(sockets, unix.NLM_F_ACK, int32(ifindex)).Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return Info{}, err
	}
	if len(msgs) != 1 {
		return Info{}, fmt.Errorf("%d answers", len(msgs))
	}
	l, err := netlink.LinkDeserialize(nil, msgs[0])
	if err != nil {
		return Info{}, err
	}
	return infoOf(l), nil
}
