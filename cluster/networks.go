package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/crashpoint"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Keys of networks, besides blocks and claims (cluster.go):
//
//	networks/NAME          value: its Definition (JSON)
//	members/NAME/HOST      value: the network's ID; the hosts that joined it

// Definition is a cluster network as etcd keeps it, under
// networks/NAME: its ID and the request that made it, without the
// parent (each host names its own).
type Definition struct {
	ID     string            `json:"id"`
	Create api.NetworkCreate `json:"create"`
}

func networksDir() string                { return prefix + "networks/" }
func networkKey(name string) string      { return networksDir() + name }
func membersRoot() string                { return prefix + "members/" }
func membersDir(name string) string      { return membersRoot() + name + "/" }
func memberKey(name, host string) string { return membersDir(name) + host }

// Define stores d unless a network of its name exists; it returns the
// definition in force and whether it is d (false: another host's).
func (c *Client) Define(ctx context.Context, d Definition) (Definition, bool, error) {
	if err := CheckID(d.ID); err != nil {
		return Definition{}, false, fmt.Errorf("define network %s: %w", d.Create.Name, err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return Definition{}, false, err
	}
	key := networkKey(d.Create.Name)
	r, err := c.txn(ctx, "define network "+d.Create.Name,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(key, string(b)), clientv3.OpPut(memberKey(d.Create.Name, c.host), d.ID)},
		[]clientv3.Op{clientv3.OpGet(key)})
	if err != nil {
		return Definition{}, false, err
	}
	if r.Succeeded {
		return d, true, nil
	}
	kvs := r.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return Definition{}, false, fmt.Errorf("define network %s: removed meanwhile; try again", d.Create.Name)
	}
	cur, err := c.decode(kvs[0])
	if err != nil {
		return Definition{}, false, err
	}
	return cur, false, nil
}

// decode is the definition kv holds; one whose ID is not mvlan's (64
// lowercase hex digits) is refused: IDs name directories and are cut.
func (c *Client) decode(kv *mvccpb.KeyValue) (Definition, error) {
	var d Definition
	if err := json.Unmarshal(kv.Value, &d); err != nil {
		return d, fmt.Errorf("network %s in etcd at %s: %w", kv.Key, c.url, err)
	}
	if err := CheckID(d.ID); err != nil {
		return d, fmt.Errorf("network %s in etcd at %s: %w; it was not made by mvlan: fix or delete that key", kv.Key, c.url, err)
	}
	return d, nil
}

// CheckID refuses a network ID that is not 64 lowercase hex digits, as
// every ID mvlan makes.
func CheckID(id string) error {
	if len(id) == 64 && strings.Trim(id, "0123456789abcdef") == "" {
		return nil
	}
	return fmt.Errorf("network ID %q: want 64 lowercase hex digits", id)
}

// Join makes this host a member of network name (ID id), which another
// host defined. It fails if the definition is gone, or is another
// network's (removed and created again): ErrNetworkGone, and the network
// is marked gone here (Gone).
func (c *Client) Join(ctx context.Context, name, id string) error {
	if err := CheckID(id); err != nil {
		return fmt.Errorf("join network %s: %w", name, err)
	}
	key, member := networkKey(name), memberKey(name, c.host)
	r0, err := c.txn(ctx, "join network "+name, nil, []clientv3.Op{clientv3.OpGet(key), clientv3.OpGet(member)}, nil)
	if err != nil {
		return err
	}
	def := r0.Responses[0].GetResponseRange()
	if err := c.checkDefinition(Network{ID: id, Name: name}, def.Kvs); err != nil {
		return err
	}
	if m := r0.Responses[1].GetResponseRange().Kvs; len(m) == 1 && string(m[0].Value) == id {
		return nil // a member already: no write (rejoins come every few seconds)
	}
	r, err := c.txn(ctx, "join network "+name,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", def.Kvs[0].CreateRevision)},
		[]clientv3.Op{clientv3.OpPut(member, id)}, nil)
	if err != nil {
		return err
	}
	if !r.Succeeded {
		return fmt.Errorf("join network %s: its definition changed in etcd at %s meanwhile; try again", name, c.url)
	}
	return nil
}

// Leave gives this host's blocks and claims of network name (ID id) back
// to the pool and ends its membership; the last host to leave removes the
// definition, with whatever blocks and claims are left. It reports
// whether the definition went. It is for a network with no pool open
// here (a stray membership, a create rolled back): cut short, the
// membership stays, so that the next try (leaveStrays) finds it. A
// network whose pool was open leaves with LeaveOpen.
func (c *Client) Leave(ctx context.Context, name, id string) (bool, error) {
	return c.leave(ctx, name, id, false)
}

// LeaveOpen is Leave for a network whose pool was open here until now
// (Space.Close): the membership goes first, so that a lease or claim of
// that pool that etcd applies late (its request timed out here, yet
// reached etcd) fails its guard, which compares the membership, instead
// of leaving a key that no one gives back. Cut short after that, the
// caller takes the network back (Join, keeping its blocks); if the last
// other member left meanwhile, the definition went with this host's
// blocks, and the network is gone (ErrNetworkGone).
func (c *Client) LeaveOpen(ctx context.Context, name, id string) (bool, error) {
	return c.leave(ctx, name, id, true)
}

func (c *Client) leave(ctx context.Context, name, id string, memberFirst bool) (bool, error) {
	key := networkKey(name)
	def, err := c.get(ctx, "leave network "+name, key)
	if err != nil {
		return false, err
	}
	steps := []func() error{
		func() error { return c.endMembership(ctx, name, id) },
		func() error { return errors.Join(c.deleteMine(ctx, blocksDir(id)), c.deleteMine(ctx, claimsDir(id))) },
	}
	if !memberFirst {
		steps[0], steps[1] = steps[1], steps[0]
	}
	for i, step := range steps {
		if i == 1 {
			crashpoint.Hit("cluster-leave:half")
		}
		if err := step(); err != nil {
			return false, err
		}
	}
	if len(def.Kvs) == 0 || !isDefinitionOf(def.Kvs[0].Value, id) {
		return false, nil
	}
	cmp := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(membersDir(name)), "=", 0).WithPrefix(),
		clientv3.Compare(clientv3.ModRevision(key), "=", def.Kvs[0].ModRevision)}
	r, err := c.txn(ctx, "remove network "+name, cmp, []clientv3.Op{clientv3.OpDelete(key),
		clientv3.OpDelete(blocksDir(id), clientv3.WithPrefix()), clientv3.OpDelete(claimsDir(id), clientv3.WithPrefix())}, nil)
	if err != nil {
		return false, err
	}
	return r.Succeeded, nil
}

// endMembership deletes this host's member key of network name, if it is
// of ID id (not of a network of the name made since).
func (c *Client) endMembership(ctx context.Context, name, id string) error {
	mine := []clientv3.Cmp{clientv3.Compare(clientv3.Value(memberKey(name, c.host)), "=", id)}
	_, err := c.txn(ctx, "leave network "+name, mine, []clientv3.Op{clientv3.OpDelete(memberKey(name, c.host))}, nil)
	return err
}

func isDefinitionOf(v []byte, id string) bool {
	var d Definition
	return json.Unmarshal(v, &d) == nil && d.ID == id
}

// deleteMine deletes the keys under dir whose value is this host, each
// only if it still is: a key another request of this host deleted or
// changed meanwhile (a claim given back by Sync) keeps no other from
// going, as one compare for the whole batch did.
func (c *Client) deleteMine(ctx context.Context, dir string) error {
	r, err := c.get(ctx, "list "+dir, dir, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	if c.listed != nil {
		c.listed()
	}
	var ops []clientv3.Op
	for i, kv := range r.Kvs {
		if string(kv.Value) == c.host {
			k := string(kv.Key)
			ops = append(ops, clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", c.host)}, []clientv3.Op{clientv3.OpDelete(k)}, nil))
		}
		if len(ops) == 64 || (i == len(r.Kvs)-1 && len(ops) > 0) {
			if _, err := c.txn(ctx, "give back "+dir, nil, ops, nil); err != nil {
				return err
			}
			ops = nil
		}
	}
	return nil
}

// Lookup returns the definition of network name in etcd; false if there
// is none.
func (c *Client) Lookup(ctx context.Context, name string) (Definition, bool, error) {
	r, err := c.get(ctx, "look up network "+name, networkKey(name))
	if err != nil || len(r.Kvs) == 0 {
		return Definition{}, false, err
	}
	d, err := c.decode(r.Kvs[0])
	return d, err == nil, err
}

// Definitions returns every cluster network defined in etcd; one that
// does not decode, or whose ID is not mvlan's, is left out with a
// warning naming it.
func (c *Client) Definitions(ctx context.Context) ([]Definition, error) {
	r, err := c.get(ctx, "list networks", networksDir(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]Definition, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		d, err := c.decode(kv)
		if err != nil {
			c.log.Warn("cluster: network definition left out: "+err.Error(), "key", string(kv.Key))
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// Reachable fails, wrapping ErrUnreachable, when etcd does not answer.
func (c *Client) Reachable(ctx context.Context) error {
	_, err := c.get(ctx, "reach etcd", networksDir(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	return err
}

// ForgetDead ends the membership in network name (ID id) of the hosts
// that have had no liveness key for longer than the grace (deadHosts) and
// hold no block or claim of it any more (reclaimed), so that the last
// live host's Leave removes the definition. A host that comes back joins
// again (the engine rejoins on each new lease). It returns how many went.
func (c *Client) ForgetDead(ctx context.Context, name, id string) (int, error) {
	r, err := c.get(ctx, "list members of "+name, membersDir(name), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, err
	}
	members := map[string]bool{}
	for _, kv := range r.Kvs {
		members[string(kv.Key)[len(membersDir(name)):]] = true
	}
	dead, err := c.deadHosts(ctx, members)
	if err != nil || len(dead) == 0 {
		return 0, err
	}
	// Nothing leased or claimed since it was listed, and the member is
	// one of this network, not of one made since under its name.
	unchanged := []clientv3.Cmp{}
	for _, dir := range []string{blocksDir(id), claimsDir(id)} {
		held, err := c.get(ctx, "list "+dir, dir, clientv3.WithPrefix())
		if err != nil {
			return 0, err
		}
		for _, kv := range held.Kvs {
			delete(dead, string(kv.Value))
		}
		unchanged = append(unchanged, clientv3.Compare(clientv3.ModRevision(dir), "<", held.Header.Revision+1).WithPrefix())
	}
	n := 0
	for h, epoch := range dead {
		cmp := append(stillDead(h, epoch), clientv3.Compare(clientv3.Value(memberKey(name, h)), "=", id))
		t, err := c.txn(ctx, "forget member "+h+" of "+name, append(cmp, unchanged...),
			[]clientv3.Op{clientv3.OpDelete(memberKey(name, h))}, nil)
		if err != nil {
			return n, err
		}
		if t.Succeeded {
			n++
			c.log.Info("cluster: a dead host that holds nothing of the network is no longer a member", "network", name, "host", h)
		}
	}
	return n, nil
}

// Memberships returns the networks (name to ID) etcd has this host as a
// member of.
func (c *Client) Memberships(ctx context.Context) (map[string]string, error) {
	r, err := c.get(ctx, "list memberships", membersRoot(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, kv := range r.Kvs {
		name, host, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), membersRoot()), "/")
		if ok && host == c.host {
			out[name] = string(kv.Value)
		}
	}
	return out, nil
}

// Epoch counts the liveness leases this host has taken: it changes when
// the host (re)appears in etcd.
func (c *Client) Epoch() uint64 { return c.live.epoch.Load() }
