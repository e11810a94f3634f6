package docker

// Docker's network names. Docker's driver protocol never sends a
// network's name: a network made with `docker network create -d mvlan`
// and no -o name=NAME is made named by its short ID (api.NameDockerID).
// With --docker-host, the agent then asks dockerd's Engine API for the
// network's name and renames it (engine.RenameNetwork; api.NameDockerd):
// after CreateNetwork (dockerd stores the network only once the driver
// answered, so the first answers may be 404), after each Join, and on
// start for every Docker network, so that a network dockerd knows under
// another name since is renamed again. Without an answer the name stays;
// a name another mvlan network has is not taken (the log says why).

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
)

// errUnknown: dockerd has no such network (not yet, or not any more).
var errUnknown = errors.New("dockerd does not know the network")

// networkName returns the name dockerd has for network id.
func (d *daemon) networkName(ctx context.Context, id string) (string, error) {
	var n struct{ Name, ID string }
	err := d.get(ctx, "/networks/"+url.PathEscape(id), &n)
	var se *statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound {
		return "", errUnknown
	}
	if err != nil {
		return "", err
	}
	if n.ID != id {
		return "", errUnknown // id was a prefix of another's, or a name
	}
	return n.Name, nil
}

// fromDocker reports whether n's name is Docker's to give.
func fromDocker(n api.Network) bool {
	return n.NameFrom == api.NameDockerID || n.NameFrom == api.NameDockerd
}

// nameNetwork renames network id after dockerd's name for it, trying a
// few times over some 15 s; one at a time per network.
func (d *Driver) nameNetwork(ctx context.Context, id string) {
	if d.dockerd == nil {
		return
	}
	d.mu.Lock()
	if d.naming[id] {
		d.mu.Unlock()
		return
	}
	d.naming[id] = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.naming, id)
		d.mu.Unlock()
	}()
	wait := 100 * time.Millisecond
	var err error
	for range 9 {
		var done bool
		if done, err = d.tryNameNetwork(ctx, id); done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 4*time.Second)
	}
	d.log.Info("Docker network keeps its name: dockerd does not tell it", "network", shortID(id), "err", err)
}

// tryNameNetwork reports whether there is nothing left to do.
func (d *Driver) tryNameNetwork(ctx context.Context, id string) (bool, error) {
	n, err := d.eng.Network(id)
	if err != nil || !fromDocker(n) {
		return true, nil
	}
	name, err := d.dockerd.networkName(ctx, id)
	if err != nil || name == "" {
		return false, err
	}
	if name == n.Name {
		return true, nil
	}
	_, err = d.eng.RenameNetwork(id, n.Name, name, api.NameDockerd)
	switch kind := engine.KindOf(err); {
	case kind == engine.KindConflict:
		d.log.Warn("Docker network keeps its name: dockerd's name for it is another mvlan network's; rename or remove that one, then restart the agent",
			"network", n.Name, "docker_name", name, "err", err)
	case kind == engine.KindInvalid:
		d.log.Info("Docker network keeps its name", "network", n.Name, "docker_name", name, "err", err)
	case kind == engine.KindNotFound: // removed meanwhile
	case err != nil:
		return false, err
	}
	return true, nil
}

// nameNetworks, on start, asks dockerd for the names of every network
// whose name is Docker's.
func (d *Driver) nameNetworks(ctx context.Context) {
	if d.dockerd == nil {
		return
	}
	nets, err := d.eng.Networks()
	if err != nil {
		return
	}
	for _, n := range nets {
		if fromDocker(n) {
			d.spawn(func() { d.nameNetwork(ctx, n.ID) })
		}
	}
}
