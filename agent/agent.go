// Package agent is the mvlan daemon: it owns the state file, the kernel
// links of its networks, the HTTP+JSON API on a unix socket, the reconcile
// that brings the kernel in line with the state on start, and the metrics.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
)

// Config is what the agent is told on its command line.
type Config struct {
	StateDir    string // bbolt state lives here (one agent per directory)
	Socket      string // API unix socket, created 0600
	MetricsAddr string // host:port for /metrics; "" disables
	BPFFS       string // bpffs directory for pinned objects
	AttachMode  string // auto|tcx|tc
	HostNetns   string // namespace the agent manages; "" means its own
	// PluginSocket is where Docker finds the agent as a network and IPAM
	// plugin (/run/docker/plugins/NAME.sock makes the driver NAME); ""
	// disables it.
	PluginSocket string
	// DockerHost is dockerd's Engine API (unix:///PATH), asked for the
	// names of the containers of Docker endpoints; "" disables it.
	DockerHost string
	Log        *slog.Logger
}

// Agent is a running mvlan daemon.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	host  *link.Host
	met   *metrics
	dp    *loader.Datapath
	mode  loader.Mode

	hostIno uint64 // inode of the managed namespace, never a container's

	mu     sync.Mutex // serialises changes to networks and endpoints
	nets   map[string]*network
	docker *dockerState  // what Docker's plugin calls leave between them (docker.go)
	engine *dockerEngine // dockerd's Engine API, for container names; nil: off
}

// New opens the state (taking its lock) and the managed namespace. It does
// not touch the kernel; Start does.
func New(cfg Config) (*Agent, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	a := &Agent{cfg: cfg, log: cfg.Log, nets: map[string]*network{}, met: newMetrics(), docker: newDockerState()}
	var err error
	if a.store, err = store.Open(cfg.StateDir); err != nil {
		return nil, err
	}
	if a.host, err = link.OpenHost(cfg.HostNetns); err != nil {
		return nil, errors.Join(fmt.Errorf("open host namespace: %w", err), a.Close())
	}
	a.host.SetTag(a.store.AgentID())
	if a.engine, err = newDockerEngine(cfg.DockerHost); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	hostPath := cfg.HostNetns
	if hostPath == "" {
		hostPath = "/proc/self/ns/net"
	}
	if a.hostIno, err = link.CheckNetns(hostPath); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	if a.mode, err = loader.ResolveMode(cfg.AttachMode); err != nil {
		return nil, errors.Join(fmt.Errorf("--attach-mode %s: %w", cfg.AttachMode, err), a.Close())
	}
	if a.dp, err = loader.Load(context.Background(), cfg.BPFFS); err != nil {
		return nil, errors.Join(fmt.Errorf("load the BPF datapath under %s: %w (mvlan doctor tells what the kernel lacks)", cfg.BPFFS, err), a.Close())
	}
	return a, nil
}

// Close releases the state file and namespace handles. Kernel objects stay:
// they belong to the networks and survive the agent.
func (a *Agent) Close() error {
	var errs []error
	if a.dp != nil {
		errs = append(errs, a.dp.Close())
	}
	if a.host != nil {
		errs = append(errs, a.host.Close())
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	return errors.Join(errs...)
}

// Run reconciles, then serves the API and metrics until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	a.finishHandoffs()
	if err := a.Reconcile(ctx); err != nil {
		return err
	}
	ln, err := listenUnix(a.cfg.Socket)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
	servers := []*http.Server{srv}
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(ln) }()
	if a.cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", a.cfg.MetricsAddr)
		if err != nil {
			return errors.Join(fmt.Errorf("listen metrics on %s: %w", a.cfg.MetricsAddr, err), srv.Close())
		}
		msrv := &http.Server{Handler: a.met.handler(a), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, msrv)
		go func() { errc <- msrv.Serve(mln) }()
	}
	psrv, err := a.servePlugin(ctx, errc)
	if err != nil {
		return errors.Join(err, shutdown(servers))
	}
	if psrv != nil {
		servers = append(servers, psrv)
	}
	a.nameDockerEndpoints(ctx)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go a.watch(wctx)
	go a.watchLinks(wctx)
	a.log.Info("agent ready", "socket", a.cfg.Socket, "metrics", a.cfg.MetricsAddr, "state", a.cfg.StateDir, "agent_id", a.store.AgentID())
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	err = errors.Join(err, shutdown(servers))
	if rerr := os.Remove(a.cfg.Socket); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

func shutdown(servers []*http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listenUnix listens on path with mode 0600. A stale socket is replaced:
// the caller holds the state lock, so no other agent of ours serves it,
// but a live socket of some other agent is refused.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("socket %s is served by another agent; give this one its own --socket", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, errors.Join(fmt.Errorf("chmod %s: %w", path, err), ln.Close())
	}
	return ln, nil
}

// crashpoint kills the process when the test hook names this point. It lets
// the crash-safety tests stop the agent between two steps of an operation.
func crashpoint(name string) {
	if os.Getenv("MVLAN_TEST_CRASHPOINT") == name {
		p, _ := os.FindProcess(os.Getpid())
		_ = p.Kill()
		select {}
	}
}
