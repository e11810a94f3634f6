package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nsfile"
)

// timeout bounds one command; runtimes have their own, usually longer.
const timeout = 2 * time.Minute

// call runs fn with the parsed configuration and a client for its agent,
// and turns what fails into a CNI error.
func call(args *skel.CmdArgs, fn func(context.Context, *Conf, *api.Client) error) error {
	return callWith(parseConf, args, fn)
}

// callWith is call with the configuration parsed by parse.
func callWith(parse func([]byte) (*Conf, error), args *skel.CmdArgs, fn func(context.Context, *Conf, *api.Client) error) error {
	c, err := parse(args.StdinData)
	if err != nil {
		return err
	}
	cl := api.NewClient(c.SocketPath())
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return toCNI(fn(ctx, c, cl), cl.Socket())
}

// attachment is the identity the runtime gives this call.
func attachment(c *Conf, args *skel.CmdArgs) *api.CNIAttachment {
	return &api.CNIAttachment{Network: c.Name, ContainerID: args.ContainerID, IfName: args.IfName}
}

// cmdAdd attaches the runtime's namespace to the network (as `mvlan
// connect`): one request to the agent for a named network; an inline one
// is looked up (and created or checked) first.
func cmdAdd(args *skel.CmdArgs) error {
	return call(args, func(ctx context.Context, c *Conf, cl *api.Client) error {
		w, err := c.want(args.ContainerID, args.Args)
		if err != nil {
			return err
		}
		ref := c.Network
		if c.Inline() {
			if err := c.holds(w); err != nil {
				return err // before the network is made: a refused ADD leaves none
			}
			n, err := ensureNetwork(ctx, cl, c)
			if err != nil {
				return err
			}
			ref = n.ID
		}
		// A repeated ADD (same identity, same namespace) is answered with
		// the endpoint it made; one from another namespace (the DEL of the
		// old one never came) replaces that endpoint.
		a, err := cl.CNIAdd(ctx, ref, api.EndpointCreate{Name: w.Name, AltNames: altNames(args, w.Name),
			Netns: args.Netns, IfName: args.IfName, IP: w.IP, IP6: w.IP6, MAC: w.MAC, CNI: attachment(c, args)})
		if api.IsKind(err, api.KindNotFound) && !c.Inline() {
			return noNetwork(c)
		}
		if err != nil {
			return err
		}
		res := result(a.Network, a.Endpoint)
		if !c.DNS.IsEmpty() {
			res.DNS = c.DNS // the configuration's (the well-known key) over a lease's
		}
		r, err := withPrev(c.PrevResult, res)
		if err != nil {
			return err
		}
		return types.PrintResult(r, c.CNIVersion)
	})
}

// cmdDel releases the attachment (one request); one that is gone already
// (or whose network is) is not an error, nor is a concurrent DEL or the
// agent's sweep being first. The runtime deletes the namespace next. A
// DEL from another namespace than the attachment's (CNI_NETNS) releases
// nothing: an ADD from a new namespace replaced the one it was for. Of
// the configuration only name, network and socket are read, and not
// validated: the DEL that follows an ADD refused for a bad configuration
// (even one that does not decode) finds nothing and succeeds, so that the
// runtime can tear the sandbox down.
//
// An agent that cannot be reached (down, uninstalled) fails a DEL with 11
// while the namespace path is there; once it is gone (a reboot, a runtime
// that deletes it first) the runtime is done with the attachment, and the
// agent releases what is left of it (its row, its address, its link if a
// process still holds the namespace) when it starts: the DEL succeeds, so
// that the runtime is not stuck tearing the sandbox down.
func cmdDel(args *skel.CmdArgs) error {
	return callWith(parseDelConf, args, func(ctx context.Context, c *Conf, cl *api.Client) error {
		err := cl.CNIRelease(ctx, c.Network, *attachment(c, args), args.Netns)
		if api.IsKind(err, api.KindNotFound) || errors.Is(err, api.ErrUnreachable) && netnsGone(args.Netns) {
			return nil
		}
		return err
	})
}

// netnsGone reports whether path names no namespace any more: none
// given, not there, or a file left where one was mounted (a path that
// does not answer in time is not gone).
func netnsGone(path string) bool {
	if path == "" {
		return true
	}
	_, err := nsfile.Inode(path)
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, nsfile.ErrNotNamespace)
}

// cmdCheck reports drift: the endpoint must exist and match prevResult,
// and the agent must find its link, addresses and programs in place. An
// attachment the agent does not have is 3 (container unknown), also one
// released between the two requests (a DEL or GC finishing, the agent's
// sweep of namespaces that are gone), which the check by ID finds gone,
// and one of the identity in another namespace (an ADD from a new
// sandbox replaced the one of CNI_NETNS).
func cmdCheck(args *skel.CmdArgs) error {
	return call(args, func(ctx context.Context, c *Conf, cl *api.Client) error {
		e, err := find(ctx, cl, c, args)
		if errors.Is(err, errNoAttachment) {
			return unknownAttachment("mvlan has no attachment of container %s (%s) on network %s in %s; ADD it again", args.ContainerID, args.IfName, c.Network, args.Netns)
		}
		if err != nil {
			return err
		}
		if err := compare(c.PrevResult, e); err != nil {
			return err
		}
		routed, err := routedIn(c.PrevResult)
		if err != nil {
			return err
		}
		ch, err := cl.CheckEndpoint(ctx, e.ID, routed)
		if api.IsKind(err, api.KindNotFound) {
			return unknownAttachment("mvlan released the attachment of container %s (%s) on network %s (endpoint %s) while CHECK looked at it (a DEL, a GC, or the agent found its namespace gone); ADD it again",
				args.ContainerID, args.IfName, c.Network, e.Name)
		}
		if err != nil {
			return err
		}
		if len(ch.Drift) > 0 {
			return drift("%s", strings.Join(ch.Drift, "; "))
		}
		return nil
	})
}

// cmdGC releases every attachment of this CNI network that is not in the
// runtime's list of valid ones. Without a list (under neither key) it
// releases nothing: an absent list is not an empty one.
func cmdGC(args *skel.CmdArgs) error {
	return call(args, func(ctx context.Context, c *Conf, cl *api.Client) error {
		list, ok, err := validAttachments(args.StdinData)
		if err != nil {
			return err
		}
		if !ok {
			return nil // which are valid is unknown: none goes
		}
		valid := map[types.GCAttachment]bool{}
		for _, v := range list {
			valid[v] = true
		}
		eps, err := cl.Endpoints(ctx)
		if err != nil {
			return err
		}
		var errs []error
		for _, e := range eps {
			at := e.CNI
			if at == nil || at.Network != c.Name || valid[types.GCAttachment{ContainerID: at.ContainerID, IfName: at.IfName}] {
				continue
			}
			if err := cl.RemoveEndpoint(ctx, e.ID, true); err != nil && !api.IsKind(err, api.KindNotFound) {
				errs = append(errs, fmt.Errorf("release %s (container %s): %w", e.Name, at.ContainerID, err))
			}
		}
		return errors.Join(errs...)
	})
}

// cmdStatus answers whether ADD can work now: the agent answers and the
// network exists (or is defined inline), can take endpoints and has an
// address left for one.
func cmdStatus(args *skel.CmdArgs) error {
	return call(args, func(ctx context.Context, c *Conf, cl *api.Client) error {
		n, err := networkNamed(ctx, cl, c.Network)
		switch {
		case errors.Is(err, api.ErrUnreachable) && errors.Is(err, fs.ErrPermission):
			return types.NewError(errUnavailable, err.Error()+": "+socketHelp, "")
		case errors.Is(err, api.ErrUnreachable) || errors.Is(err, api.ErrNoAnswer):
			return types.NewError(errUnavailable, fmt.Sprintf("the mvlan agent at %s does not answer: start it (mvlan agent) or fix \"socket\"", cl.Socket()), err.Error())
		case api.IsKind(err, api.KindNotFound) && c.Inline():
			return nil // ADD creates it
		case api.IsKind(err, api.KindNotFound):
			return types.NewError(errUnavailable, fmt.Sprintf("mvlan has no network %q: create it (mvlan network create) or define it inline", c.Network), "")
		case err != nil:
			return err
		case n.Status != "" && n.Status != "ok":
			return types.NewError(errLimitedConnectivity, fmt.Sprintf("mvlan network %s cannot take endpoints: %s", n.Name, n.Status), "")
		case n.Full:
			return types.NewError(errUnavailable, fmt.Sprintf("mvlan network %s has no free address for a new attachment: release some, or give it a wider --ip-range or another --subnet", n.Name), "")
		case c.Inline() && c.differs(n) != "":
			return mismatch(n, c.differs(n)) // ADD would refuse it
		}
		return nil
	})
}

var errNoAttachment = errors.New("no such attachment")

// unknownAttachment is CHECK's error for an attachment the agent does not
// have: 3, container unknown, which tells the runtime that there is
// nothing to DEL.
func unknownAttachment(format string, args ...any) error {
	return types.NewError(types.ErrUnknownContainer, fmt.Sprintf(format, args...), "")
}

// find returns the endpoint the runtime made with this identity on the
// configuration's network (one request, an index look-up in the agent).
func find(ctx context.Context, cl *api.Client, c *Conf, args *skel.CmdArgs) (api.Endpoint, error) {
	e, err := cl.CNIEndpoint(ctx, c.Network, *attachment(c, args), args.Netns)
	if api.IsKind(err, api.KindNotFound) {
		return api.Endpoint{}, errNoAttachment // none, or the network is gone and with it its endpoints
	}
	return e, err
}

// altNames are the names tried after name when an endpoint of the network
// has it: name-<container id's first 8> (two pods of one name in
// different Kubernetes namespaces), then name-<first 8>-<ifname> (short
// container ids that share their first 8 characters); when all are taken
// the agent names it after the namespace. (A namespace joins a network
// once: a second interface of one pod on the same network is refused.)
func altNames(args *skel.CmdArgs, name string) []string {
	if name == "" {
		return nil
	}
	return []string{fmt.Sprintf("%s-%.8s", name, args.ContainerID), fmt.Sprintf("%s-%.8s-%s", name, args.ContainerID, args.IfName)}
}
