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
// hostNetns ("": the caller's namespace), and Macvlan for each macvlan and
// macvtap. An ifindex of 0 asks for the macvlans and macvtaps alone.
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
			ls = append(ls, withMacvlan(infoOf(l), m))
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
	return withMacvlan(infoOf(l), msgs[0]), nil
}

// macvlanModeNames are the kernel's macvlan modes (MACVLAN_MODE_*).
var macvlanModeNames = map[uint32]string{
	nl.MACVLAN_MODE_PRIVATE:  "private",
	nl.MACVLAN_MODE_VEPA:     "vepa",
	nl.MACVLAN_MODE_BRIDGE:   "bridge",
	nl.MACVLAN_MODE_PASSTHRU: "passthru",
	nl.MACVLAN_MODE_SOURCE:   "source",
}

// withMacvlan sets in.Macvlan, for a macvlan or macvtap, from m, the
// link's RTM_NEWLINK message (its IFLA_INFO_DATA: netlink.Macvlan has
// no flags); nil if m has none.
func withMacvlan(in Info, m []byte) Info {
	if !in.IsMacvlan() || len(m) < unix.SizeofIfInfomsg {
		return in
	}
	attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
	if err != nil {
		return in
	}
	for _, a := range attrs {
		if a.Attr.Type != unix.IFLA_LINKINFO {
			continue
		}
		info, err := nl.ParseRouteAttr(a.Value)
		if err != nil {
			return in
		}
		for _, i := range info {
			if i.Attr.Type != nl.IFLA_INFO_DATA {
				continue
			}
			data, err := nl.ParseRouteAttr(i.Value)
			if err != nil {
				return in
			}
			c := &MacvlanConf{Mode: "mode 0"} // no mode given: none mvlan makes
			for _, d := range data {
				switch {
				case d.Attr.Type == nl.IFLA_MACVLAN_MODE && len(d.Value) >= 4:
					v := nl.NativeEndian().Uint32(d.Value)
					if c.Mode = macvlanModeNames[v]; c.Mode == "" {
						c.Mode = fmt.Sprintf("mode %d", v)
					}
				case d.Attr.Type == nl.IFLA_MACVLAN_FLAGS && len(d.Value) >= 2:
					c.Flags = nl.NativeEndian().Uint16(d.Value)
				case d.Attr.Type == nl.IFLA_MACVLAN_MACADDR_COUNT && len(d.Value) >= 4:
					c.Sources = int(nl.NativeEndian().Uint32(d.Value))
				}
			}
			in.Macvlan = c
		}
	}
	return in
}

// SetMacvlanMode sets link ifindex (a macvlan or macvtap: kind) in the
// namespace at netnsPath to mode, with no flags; leaving source mode
// empties its source list (the kernel's macvlan_changelink). Passthru
// can be neither set nor left.
func SetMacvlanMode(netnsPath string, ifindex int, kind, mode string) error {
	num, ok := uint32(0), false
	for v, name := range macvlanModeNames {
		if name == mode {
			num, ok = v, true
		}
	}
	if !ok || (kind != "macvlan" && kind != "macvtap") {
		return fmt.Errorf("set link %d in %s to %s mode %q: not a macvlan mode", ifindex, netnsPath, kind, mode)
	}
	ns, err := openNetns(netnsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open netlink in %s: %w", netnsPath, err)
	}
	defer s.Close()
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated(kind))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_MACVLAN_MODE, nl.Uint32Attr(num))
	data.AddRtAttr(nl.IFLA_MACVLAN_FLAGS, nl.Uint16Attr(0))
	req.AddData(info)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("set link %d in %s to %s mode %s: %w", ifindex, netnsPath, kind, mode, err)
	}
	return nil
}
