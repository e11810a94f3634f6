package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Client talks to an agent over its unix socket (see wire.go for why it
// speaks HTTP itself). It holds no connection between requests.
type Client struct {
	socket string
}

// NewClient returns a client for the agent listening on socket.
func NewClient(socket string) *Client { return &Client{socket: socket} }

// Close releases the client's resources (none today; kept so that callers
// need not change if the client ever keeps a connection).
func (c *Client) Close() error { return nil }

// Do sends method path with body (JSON-encoded unless nil) and decodes the
// answer into out (unless nil). A non-2xx answer is returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	if err := checkPath(path); err != nil {
		return err
	}
	var data []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		data = b
	}
	resp, err := roundTrip(ctx, c.socket, method, path, data)
	if errors.As(err, new(errDial)) && errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("no permission to use the mvlan agent's socket %s (%s): %w", c.socket, socketAccess(c.socket), unreachable{err})
	}
	if errors.As(err, new(errDial)) {
		return fmt.Errorf("cannot reach the mvlan agent at %s (is `mvlan agent` running? set --socket or MVLAN_SOCKET): %w", c.socket, unreachable{err})
	}
	if to := (timedOut{}); errors.As(err, &to) {
		return fmt.Errorf("%s %s: no answer from the mvlan agent at %s within %v, though it is running (the connection stayed open); this client stopped waiting, which cancels the request: the agent undoes what it can still stop (an attach not finished) and finishes the rest; see mvlan ps and mvlan network ls for the outcome: %w",
			method, path, c.socket, to.after.Round(time.Millisecond), noAnswer{err})
	}
	if err != nil {
		return fmt.Errorf("%s %s: no answer from the mvlan agent at %s (it stopped or the connection broke): the request may or may not have been carried out; the agent finishes or undoes it when it runs again (see mvlan ps): %w",
			method, path, c.socket, noAnswer{err})
	}
	if resp.code/100 != 2 {
		e := &Error{}
		if json.Unmarshal(resp.body, e) != nil || e.Message == "" {
			e = &Error{Message: fmt.Sprintf("agent answered %s", resp.status), Kind: KindInternal}
		}
		return e
	}
	if out == nil || len(resp.body) == 0 {
		return nil
	}
	return json.Unmarshal(resp.body, out)
}

// checkPath refuses a request path with an empty, "." or ".." segment:
// a name or ID left empty (an unset shell variable), which no route of
// the agent's matches.
func checkPath(path string) error {
	p, _, _ := strings.Cut(path, "?")
	for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if u, err := url.PathUnescape(seg); err == nil && (u == "" || u == "." || u == "..") {
			return &Error{Message: fmt.Sprintf("%q is not a name or ID (in %s); give a network's or container's name or ID", u, p), Kind: KindInvalid}
		}
	}
	return nil
}

// ErrUnreachable is matched (errors.Is) by every error of a request that
// did not reach the agent: nothing changed, trying again later may work.
var ErrUnreachable = errors.New("agent unreachable")

type unreachable struct{ err error }

func (u unreachable) Error() string        { return u.err.Error() }
func (u unreachable) Unwrap() error        { return u.err }
func (u unreachable) Is(target error) bool { return target == ErrUnreachable }

// ErrNoAnswer is matched by the error of a request the agent took but did
// not answer: it may or may not have been carried out. If the agent
// stopped or the connection broke, the agent finishes or undoes it when
// it starts again; if it did not finish in time, the running agent sees
// the client gone, undoes what it can still stop and finishes the rest.
var ErrNoAnswer = errors.New("no answer from the agent")

type noAnswer struct{ err error }

func (n noAnswer) Error() string        { return n.err.Error() }
func (n noAnswer) Unwrap() error        { return n.err }
func (n noAnswer) Is(target error) bool { return target == ErrNoAnswer }

// Socket is the path of the agent's socket this client dials.
func (c *Client) Socket() string { return c.socket }

// IsKind reports whether err is an agent error of the given kind.
func IsKind(err error, kind string) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == kind
}

// CreateNetwork creates a network.
func (c *Client) CreateNetwork(ctx context.Context, req NetworkCreate) (Network, error) {
	var n Network
	err := c.Do(ctx, "POST", "/v1/networks", req, &n)
	return n, err
}

// Networks lists the networks.
func (c *Client) Networks(ctx context.Context) ([]Network, error) {
	var ns []Network
	err := c.Do(ctx, "GET", "/v1/networks", nil, &ns)
	return ns, err
}

// Network returns one network by name, ID or unique ID prefix.
func (c *Client) Network(ctx context.Context, ref string) (Network, error) {
	var n Network
	err := c.Do(ctx, "GET", "/v1/networks/"+url.PathEscape(ref), nil, &n)
	return n, err
}

// NetworkBrief returns a network without its endpoints (EndpointCount
// says how many it has).
func (c *Client) NetworkBrief(ctx context.Context, ref string) (Network, error) {
	var n Network
	err := c.Do(ctx, "GET", "/v1/networks/"+url.PathEscape(ref)+"?endpoints=false", nil, &n)
	return n, err
}

// CNIEndpoint returns the endpoint of network ref that a CNI runtime
// attached with identity at from the namespace at netns ("": any)
// (KindNotFound: none, or one in another namespace).
func (c *Client) CNIEndpoint(ctx context.Context, ref string, at CNIAttachment, netns string) (Endpoint, error) {
	var e Endpoint
	q := cniQuery(at, netns)
	err := c.Do(ctx, "GET", "/v1/networks/"+url.PathEscape(ref)+"/cni?"+q.Encode(), nil, &e)
	return e, err
}

// CNIAdd attaches req.Netns to network ref for a CNI runtime (req.CNI
// is its identity) and answers the endpoint with its network, in one
// request. KindNotFound: there is no network ref.
func (c *Client) CNIAdd(ctx context.Context, ref string, req EndpointCreate) (CNIAdd, error) {
	var a CNIAdd
	err := c.Do(ctx, "POST", "/v1/networks/"+url.PathEscape(ref)+"/cni"+netnsQuery(req.Netns, url.Values{}), req, &a)
	return a, err
}

// CNIRelease is ReleaseEndpoint of the endpoint of network ref that a
// CNI runtime attached with identity at from the namespace at netns
// ("": any), in one request (KindNotFound: none, one in another
// namespace, or no network ref).
func (c *Client) CNIRelease(ctx context.Context, ref string, at CNIAttachment, netns string) error {
	q := cniQuery(at, netns)
	return c.Do(ctx, "DELETE", "/v1/networks/"+url.PathEscape(ref)+"/cni?"+q.Encode(), nil, nil)
}

// cniQuery is the query naming identity at, from the namespace at netns
// ("": any).
func cniQuery(at CNIAttachment, netns string) url.Values {
	q := url.Values{"name": {at.Network}, "container": {at.ContainerID}, "ifname": {at.IfName}}
	if netns != "" {
		q.Set("netns", netns)
		setNetnsInode(q, netns)
	}
	return q
}

// UpdateNetwork changes a network's options (host_shim).
func (c *Client) UpdateNetwork(ctx context.Context, ref string, req NetworkUpdate) (Network, error) {
	var n Network
	err := c.Do(ctx, "PATCH", "/v1/networks/"+url.PathEscape(ref), req, &n)
	return n, err
}

// RemoveNetwork removes a network by name, ID or unique ID prefix.
func (c *Client) RemoveNetwork(ctx context.Context, ref string) error {
	return c.Do(ctx, "DELETE", "/v1/networks/"+url.PathEscape(ref), nil, nil)
}

// CreateEndpoint attaches a namespace to a network.
func (c *Client) CreateEndpoint(ctx context.Context, req EndpointCreate) (Endpoint, error) {
	var e Endpoint
	err := c.Do(ctx, "POST", "/v1/endpoints"+netnsQuery(req.Netns, url.Values{}), req, &e)
	return e, err
}

// Endpoints lists the endpoints.
func (c *Client) Endpoints(ctx context.Context) ([]Endpoint, error) {
	var es []Endpoint
	err := c.Do(ctx, "GET", "/v1/endpoints", nil, &es)
	return es, err
}

// RemoveEndpoint detaches an endpoint (by name, ID or unique ID prefix)
// and removes the namespace mvlan made for it.
func (c *Client) RemoveEndpoint(ctx context.Context, ref string, force bool) error {
	path := "/v1/endpoints/" + url.PathEscape(ref)
	if force {
		path += "?force=true"
	}
	return c.Do(ctx, "DELETE", path, nil, nil)
}

// ReleaseEndpoint removes endpoint ref for a runtime that deletes its
// namespace next (CNI DEL): the agent answers once the endpoint is
// unreachable and finishes in the background, in any namespace.
func (c *Client) ReleaseEndpoint(ctx context.Context, ref string) error {
	return c.Do(ctx, "DELETE", "/v1/endpoints/"+url.PathEscape(ref)+"?force=true&wait=false", nil, nil)
}

// Disconnect detaches the endpoint of network in the namespace at netns.
func (c *Client) Disconnect(ctx context.Context, network, netns string) error {
	q := url.Values{"network": {network}, "netns": {netns}}
	return c.Do(ctx, "DELETE", "/v1/endpoints"+netnsQuery(netns, q), nil, nil)
}

// Check asks the agent to compare its state with the kernel and IPAM.
func (c *Client) Check(ctx context.Context) (Check, error) {
	var ch Check
	err := c.Do(ctx, "GET", "/v1/check", nil, &ch)
	return ch, err
}

// Version asks the agent what it is and what the kernel offers.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var v Version
	err := c.Do(ctx, "GET", "/v1/version", nil, &v)
	return v, err
}

// CheckEndpoint asks the agent whether one endpoint (by ID) is as it made
// it: state, link, MAC, addresses, default routes and datapath programs;
// routed, if not nil, are the gateways whose default routes to look for
// (a CNI runtime's final result's), else all of the endpoint's.
func (c *Client) CheckEndpoint(ctx context.Context, id string, routed []netip.Addr) (Check, error) {
	var ch Check
	path := "/v1/endpoints/" + url.PathEscape(id) + "/check"
	if routed != nil {
		path += "?" + RoutedQuery(routed).Encode()
	}
	err := c.Do(ctx, "GET", path, nil, &ch)
	return ch, err
}

// RoutedQuery is the query of CheckEndpoint's routed gateways.
func RoutedQuery(routed []netip.Addr) url.Values {
	s := make([]string, len(routed))
	for i, gw := range routed {
		s[i] = gw.String()
	}
	return url.Values{"routed": {strings.Join(s, ",")}}
}

// ParseRouted reads RoutedQuery: nil without the key, else the gateways
// (none for an empty value).
func ParseRouted(q url.Values) ([]netip.Addr, error) {
	if !q.Has("routed") {
		return nil, nil
	}
	routed := []netip.Addr{}
	for _, s := range strings.Split(q.Get("routed"), ",") {
		if s == "" {
			continue
		}
		gw, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("routed: %q is not an IP address; give the gateways as routed=ADDR,ADDR", s)
		}
		routed = append(routed, gw)
	}
	return routed, nil
}
