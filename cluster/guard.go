package cluster

// Guards of leases and claims. A network's definition (networks/NAME)
// can be removed by its last host and made again under the same name
// with another ID: a host that still has the old network must not go on
// handing out addresses of it, since the new one has a pool of its own on
// the same segment. Every lease and claim transaction therefore compares
// the definition's create revision (that of the ID the pool is of) and
// this host's membership (members/NAME/HOST = ID). A definition that is
// gone, or another network's, marks the network gone on this host for
// good (ErrNetworkGone); a membership that is gone (the host was seen
// dead and forgotten) is put back, the definition unchanged.

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Network names a cluster network on this host: its ID (the keys of its
// blocks and claims) and its name (the keys of its definition and
// members).
type Network struct {
	ID, Name string
}

// ErrNetworkGone is wrapped by the errors of a cluster network whose
// definition etcd no longer has, or has for another network of its name
// (removed by its last host, then created again): this host hands out
// none of its addresses any more.
var ErrNetworkGone = errors.New("cluster network no longer defined in etcd")

// errNotMember: this host's membership of the network is gone from etcd.
var errNotMember = errors.New("not a member of the network in etcd")

// GoneError is the error of network Network, whose name etcd at URL
// defines with ID Found ("": not at all). It is ErrNetworkGone.
type GoneError struct {
	Network    Network
	Found, URL string
}

func (e *GoneError) Error() string {
	what := "is no longer defined in etcd at " + e.URL
	if e.Found != "" {
		what = fmt.Sprintf("was removed from etcd at %s and created again (now ID %s)", e.URL, short(e.Found))
	}
	return fmt.Sprintf("cluster network %s (ID %s) %s: this host hands out no more of its addresses; remove its containers and the network here (mvlan network rm %s), then create it again to join the network etcd has",
		e.Network.Name, short(e.Network.ID), what, e.Network.Name)
}

// Is makes a GoneError ErrNetworkGone.
func (e *GoneError) Is(target error) bool { return target == ErrNetworkGone }

func short(id string) string { return id[:min(len(id), 12)] }

// markGone records network nw as gone (GoneError) and returns the error;
// the first time, a warning says so.
func (c *Client) markGone(nw Network, found string) error {
	c.goneMu.Lock()
	defer c.goneMu.Unlock()
	if err := c.gone[nw.ID]; err != nil {
		return err
	}
	err := &GoneError{Network: nw, Found: found, URL: c.url}
	c.gone[nw.ID] = err
	c.log.Warn("cluster: "+err.Error(), "network", nw.Name)
	return err
}

// Gone returns the error of network id once etcd was found not to define
// it any more (ErrNetworkGone); nil before.
func (c *Client) Gone(id string) error {
	c.goneMu.Lock()
	defer c.goneMu.Unlock()
	return c.gone[id]
}

// checkDefinition checks that kvs, what etcd has under nw's name, is
// nw's definition; if not, nw is marked gone.
func (c *Client) checkDefinition(nw Network, kvs []*mvccpb.KeyValue) error {
	if len(kvs) == 0 {
		return c.markGone(nw, "")
	}
	d, err := c.decode(kvs[0])
	if err != nil {
		return err
	}
	if d.ID != nw.ID {
		return c.markGone(nw, d.ID)
	}
	return nil
}

// CheckNetwork looks up nw's definition in etcd: ErrNetworkGone (and nw
// marked gone) when it is not nw's any more.
func (c *Client) CheckNetwork(ctx context.Context, nw Network) error {
	if err := c.Gone(nw.ID); err != nil {
		return err
	}
	r, err := c.get(ctx, "look up network "+nw.Name, networkKey(nw.Name))
	if err != nil {
		return err
	}
	return c.checkDefinition(nw, r.Kvs)
}

// guard returns the comparisons of the pool's leases and claims (the
// definition is the one of its ID, this host a member), looking the
// definition up the first time.
func (p *Pool) guard(ctx context.Context) ([]clientv3.Cmp, error) {
	if err := p.c.Gone(p.net); err != nil {
		return nil, err
	}
	p.mu.Lock()
	rev := p.defRev
	p.mu.Unlock()
	if rev == 0 {
		r, err := p.c.get(ctx, "look up network "+p.name, networkKey(p.name))
		if err != nil {
			return nil, err
		}
		if err := p.c.checkDefinition(p.network(), r.Kvs); err != nil {
			return nil, err
		}
		rev = r.Kvs[0].CreateRevision
		p.mu.Lock()
		p.defRev = rev
		p.mu.Unlock()
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(networkKey(p.name)), "=", rev),
		clientv3.Compare(clientv3.Value(memberKey(p.name, p.c.host)), "=", p.net)}, nil
}

// guardGets read what guard compares, for guardFailed.
func (p *Pool) guardGets() []clientv3.Op {
	return []clientv3.Op{clientv3.OpGet(networkKey(p.name)), clientv3.OpGet(memberKey(p.name, p.c.host))}
}

func (p *Pool) network() Network { return Network{ID: p.net, Name: p.name} }

// guardFailed says why a transaction with guard's comparisons failed,
// from the responses of guardGets: ErrNetworkGone, errNotMember, or nil
// when the guard held (another comparison failed).
func (p *Pool) guardFailed(def, member []*mvccpb.KeyValue) error {
	p.mu.Lock()
	rev := p.defRev
	p.mu.Unlock()
	if len(def) == 0 || def[0].CreateRevision != rev {
		if err := p.c.checkDefinition(p.network(), def); err != nil {
			return err
		}
		p.mu.Lock()
		p.defRev = def[0].CreateRevision // defined again with this ID
		p.mu.Unlock()
		return errNotMember // join it, try again
	}
	if len(member) == 0 || string(member[0].Value) != p.net {
		return errNotMember
	}
	return nil
}

// guardRetry handles a failed lease or claim transaction from the
// responses of its guardGets (the last two of resps): the network gone
// fails it; a lost membership is put back and it is tried again (true);
// false and nil: the guard held, another comparison failed.
func (p *Pool) guardRetry(ctx context.Context, resps []*etcdserverpb.ResponseOp) (bool, error) {
	n := len(resps)
	err := p.guardFailed(resps[n-2].GetResponseRange().Kvs, resps[n-1].GetResponseRange().Kvs)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, errNotMember):
		return true, p.rejoin(ctx)
	}
	return false, err
}

// rejoin makes this host a member of the pool's network again, unless its
// definition changed: a host seen dead and forgotten (ForgetDead) that
// leases or claims again is alive.
func (p *Pool) rejoin(ctx context.Context) error {
	p.mu.Lock()
	rev := p.defRev
	p.mu.Unlock()
	r, err := p.c.txn(ctx, "join network "+p.name+" again",
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(networkKey(p.name)), "=", rev)},
		[]clientv3.Op{clientv3.OpPut(memberKey(p.name, p.c.host), p.net)}, []clientv3.Op{clientv3.OpGet(networkKey(p.name))})
	if err != nil {
		return err
	}
	if !r.Succeeded {
		if err := p.c.checkDefinition(p.network(), r.Responses[0].GetResponseRange().Kvs); err != nil {
			return err
		}
		return fmt.Errorf("join network %s again: its definition changed meanwhile; try again", p.name)
	}
	p.c.log.Info("cluster: this host was no longer a member of the network in etcd (seen dead and forgotten); it joined again", "network", p.name)
	return nil
}
