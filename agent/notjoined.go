package agent

import (
	"context"
	"fmt"

	"github.com/mvlan/mvlan/engine"
)

// Advice for a cluster network this host has not joined (%[1]s: its name).
const (
	joinAdvice = "nothing of it is here (network ls lists it as not joined here); join it first: mvlan network create --scope cluster -o parent=IFNAME %[1]s"
	rmAdvice   = "nothing of it is here to remove; it leaves the cluster when the last host that joined it runs mvlan network rm %[1]s there"
)

// notJoined turns err, network ref not found, into an error that says
// ref is a cluster network etcd defines and this host has not joined
// (network ls lists those), and advice on what would work; any other
// error, or a ref that is no such network, is returned as it is. It asks
// etcd (a second at most) only for a network not found here.
func (a *Agent) notJoined(ctx context.Context, ref string, err error, advice string) error {
	if engine.KindOf(err) != engine.KindNotFound {
		return err
	}
	if _, lerr := a.eng.NetworkBrief(ref); lerr == nil {
		return err // ref is here: something else was not found
	}
	n, ok := a.eng.UnjoinedNetwork(ctx, ref)
	if !ok {
		return err
	}
	return engine.NotFound(fmt.Errorf("network %s is a cluster network this host has not joined: %s", n.Name, fmt.Sprintf(advice, n.Name)))
}
