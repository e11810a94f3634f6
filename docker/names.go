package docker

// Docker's container names. Docker's driver protocol never sends them: an
// endpoint is stored at Join named by its sandbox key (the base name of
// the sandbox's path). Once the endpoint is ready, the agent asks dockerd's
// Engine API (Config.DockerHost) which container holds the endpoint and
// renames the endpoint after it, in the background: a dockerd that does
// not answer leaves the key as the name. On start (Driver.Start), the same
// is done for the Docker endpoints still named by their key.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/link"
)

// daemon is a client of dockerd's Engine API on a unix socket.
type daemon struct{ http *http.Client }

// newDaemon returns a client for host (unix:///PATH), nil for "".
func newDaemon(host string) (*daemon, error) {
	if host == "" {
		return nil, nil
	}
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok || !filepath.IsAbs(path) {
		return nil, fmt.Errorf("--docker-host %q: want unix:///PATH (empty: off)", host)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &daemon{http: &http.Client{Transport: tr, Timeout: 5 * time.Second}}, nil
}

func (d *daemon) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{path: path, code: resp.StatusCode, status: resp.Status}
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// statusError is an answer of dockerd other than 200 OK.
type statusError struct {
	path, status string
	code         int
}

func (e *statusError) Error() string { return fmt.Sprintf("dockerd: GET %s: %s", e.path, e.status) }

// containerName returns the name (without its "/") of the container that
// holds Docker endpoint e: the one whose network settings name the
// endpoint's ID or, before dockerd records it there, whose sandbox is
// e's. "" means none yet.
func (d *daemon) containerName(ctx context.Context, e api.Endpoint) (string, error) {
	type netSettings struct {
		Networks map[string]struct {
			NetworkID, EndpointID string
		}
	}
	var list []struct {
		ID              string `json:"Id"`
		Names           []string
		NetworkSettings netSettings
	}
	if err := d.get(ctx, "/containers/json?all=1", &list); err != nil {
		return "", err
	}
	name := func(names []string) string {
		if len(names) == 0 {
			return ""
		}
		return strings.TrimPrefix(names[0], "/")
	}
	var maybe []string
	for _, c := range list {
		for _, n := range c.NetworkSettings.Networks {
			if n.EndpointID == e.ID {
				return name(c.Names), nil
			}
			if n.NetworkID == e.NetworkID && n.EndpointID == "" {
				maybe = append(maybe, c.ID)
			}
		}
	}
	for _, id := range maybe {
		var c struct {
			Name            string
			NetworkSettings struct{ SandboxKey string }
		}
		if err := d.get(ctx, "/containers/"+id+"/json", &c); err != nil {
			continue // removed in between
		}
		if c.NetworkSettings.SandboxKey == e.Netns {
			return strings.TrimPrefix(c.Name, "/"), nil
		}
	}
	return "", nil
}

// namedByKey reports whether e is a Docker endpoint still named by its
// sandbox key (endpoints of mvlan connect on /run/netns/NAME are named
// by their path too, but no Docker sandbox lives there).
func namedByKey(e api.Endpoint) bool {
	return !e.OwnsNetns && e.Name == filepath.Base(e.Netns) && !strings.HasPrefix(e.Netns, link.NetnsDir+"/")
}

// nameEndpoint renames endpoint id after its container, trying a few
// times over some 15 s; it gives up quietly (the name stays the key).
func (d *Driver) nameEndpoint(ctx context.Context, id string) {
	if d.dockerd == nil {
		return
	}
	wait := 100 * time.Millisecond
	var err error
	for range 9 {
		var done bool
		if done, err = d.tryNameEndpoint(ctx, id); done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 4*time.Second)
	}
	d.log.Debug("Docker endpoint keeps its sandbox key as its name: dockerd does not tell its container", "endpoint", shortID(id), "err", err)
}

// tryNameEndpoint reports whether there is nothing left to do.
func (d *Driver) tryNameEndpoint(ctx context.Context, id string) (bool, error) {
	e, err := d.eng.Endpoint(id)
	if err != nil || !namedByKey(e) {
		return true, nil
	}
	name, err := d.dockerd.containerName(ctx, e)
	if err != nil || name == "" {
		return false, err
	}
	renamed, err := d.eng.RenameEndpoint(id, e.Name, name)
	switch {
	case engine.KindOf(err) == engine.KindConflict:
		d.log.Info("Docker endpoint keeps its sandbox key as its name: its container's name is taken on the network", "endpoint", shortID(id), "container", name)
	case engine.KindOf(err) == engine.KindInvalid:
		d.log.Info("Docker endpoint keeps its sandbox key as its name", "endpoint", shortID(id), "container", name, "err", err)
	case err != nil:
		d.log.Warn("Docker endpoint: store its container's name", "endpoint", shortID(id), "container", name, "err", err)
	case renamed:
		d.log.Info("Docker endpoint named after its container", "name", name, "sandbox", e.Netns)
	}
	return true, nil
}

// nameEndpoints, on start, names the Docker endpoints still named by
// their sandbox key (dockerd was not there, or the agent stopped first).
func (d *Driver) nameEndpoints(ctx context.Context) {
	if d.dockerd == nil {
		return
	}
	eps, err := d.eng.Endpoints()
	if err != nil {
		return
	}
	for _, e := range eps {
		if namedByKey(e) && e.State == api.EndpointReady {
			d.spawn(func() { d.nameEndpoint(ctx, e.ID) })
		}
	}
}
