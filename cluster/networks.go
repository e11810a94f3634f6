package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mvlan/mvlan/api"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Definition is a cluster network as etcd keeps it, under
// networks/NAME: its ID and the request that made it, without the
// parent (each host names its own).
type Definition struct {
	ID     string            `json:"id"`
	Create api.NetworkCreate `json:"create"`
}

func networkKey(name string) string { return prefix + "networks/" + name }

// Define stores d unless a network of its name exists; it returns the
// definition in force and whether it is d (false: another host's).
func (c *Client) Define(ctx context.Context, d Definition) (Definition, bool, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return Definition{}, false, err
	}
	key := networkKey(d.Create.Name)
	r, err := c.txn(ctx, "define network "+d.Create.Name,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(key, string(b))}, []clientv3.Op{clientv3.OpGet(key)})
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
	var cur Definition
	if err := json.Unmarshal(kvs[0].Value, &cur); err != nil {
		return Definition{}, false, fmt.Errorf("network %s in etcd at %s: %w", d.Create.Name, c.url, err)
	}
	return cur, false, nil
}
