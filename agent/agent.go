// Package agent is the mvlan daemon's wiring: its configuration, the engine
// it opens (package engine owns networks, endpoints and the kernel), the
// HTTP+JSON API on a unix socket, the /metrics server, and the Docker
// plugin socket served by package docker.
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
	"strings"
	"sync"
	"time"

	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/docker"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/plugin"
)

// Config is what the agent is told on its command line.
type Config struct {
	StateDir string // bbolt state lives here (one agent per directory)
	// Cluster is the etcd cluster of networks of scope cluster; nil: none.
	Cluster *cluster.Config
	Socket  string // API unix socket, created 0600 (0660 with SocketGroup)
	// SocketGroup may use the API socket (0660 root:GROUP) when it exists.
	SocketGroup string
	MetricsAddr string // host:port for /metrics; "" disables
	// MetricsWebConfig is an exporter-toolkit web configuration file: TLS
	// and basic authentication for /metrics ("": plain HTTP).
	MetricsWebConfig string
	BPFFS            string // bpffs directory for pinned objects
	AttachMode       string // auto|tcx|tc
	EndpointPrograms string // auto|direct|stub
	HostNetns        string // namespace the agent manages; "" means its own
	// PluginSocket is where Docker finds the agent as a network and IPAM
	// plugin (/run/docker/plugins/NAME.sock makes the driver NAME); ""
	// disables it.
	PluginSocket string
	// DockerHost is dockerd's Engine API (unix:///PATH), asked for the
	// names of the containers of Docker endpoints; "" disables it.
	DockerHost string
	// Recover rebuilds a corrupt state from its last good snapshot and the
	// kernel's marked endpoint links (mvlan agent --recover).
	Recover bool
	// TamperCheck is how often endpoints are checked for tampering and
	// repaired (engine.DefaultTamperCheck; 0: never).
	TamperCheck time.Duration
	Log         *slog.Logger
}

// Agent is a running mvlan daemon: the engine and its front ends.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	eng    *engine.Engine
	docker *docker.Driver
	met    *metrics

	kernelOnce sync.Once // kernel and features, for GET /v1/version
	kernel     string
	features   []string
}

// New opens the engine (taking the state's lock) and the Docker backend.
// It does not touch the kernel's links; Run does.
func New(cfg Config) (*Agent, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := CheckMountNamespace(); err != nil {
		return nil, err
	}
	if err := checkWebConfig(cfg.MetricsWebConfig); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Log, met: newMetrics()}
	var err error
	a.eng, err = engine.Open(engine.Config{StateDir: cfg.StateDir, BPFFS: cfg.BPFFS,
		AttachMode: cfg.AttachMode, EndpointPrograms: cfg.EndpointPrograms, HostNetns: cfg.HostNetns, Recover: cfg.Recover, TamperCheck: cfg.TamperCheck,
		Cluster: cfg.Cluster, Background: atLowPriority, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	if a.docker, err = docker.New(a.eng, cfg.DockerHost, cfg.Log); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	return a, nil
}

// Close releases the engine. Kernel objects stay: they belong to the
// networks and survive the agent.
func (a *Agent) Close() error {
	if a.eng == nil {
		return nil
	}
	return a.eng.Close()
}

// Run starts the engine (reconcile), then serves the API, metrics and the
// Docker plugin until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	start := time.Now()
	if err := a.eng.Start(ctx); err != nil {
		return err
	}
	a.met.reconcile.Set(time.Since(start).Seconds())
	ln, err := listenAPI(a.cfg.Socket)
	if err != nil {
		return err
	}
	group, err := shareSocket(a.cfg.Socket, a.cfg.SocketGroup)
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	errc := make(chan error, 3)
	// The driver's goroutines (handoff watches, naming) call the engine:
	// their life is dctx, from before Docker can call, ended and waited
	// for before the engine closes, however Run ends.
	dctx, stopDocker := context.WithCancel(ctx)
	defer func() { stopDocker(); a.docker.Wait() }()
	a.docker.Start(dctx)
	// Docker's socket is there before the API answers: whoever waits for
	// the API (a test, a unit ordered after the agent's) finds it.
	psrv, err := a.servePlugin(errc)
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	srv := newServer(a.logMutations(a.handler()))
	srv.ConnContext = withPeer
	servers := []*http.Server{srv}
	if psrv != nil {
		servers = append(servers, psrv)
	}
	go func() { errc <- srv.Serve(ln) }()
	if a.cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", a.cfg.MetricsAddr)
		if err != nil {
			return errors.Join(fmt.Errorf("listen metrics on %s: %w", a.cfg.MetricsAddr, err), shutdown(servers))
		}
		msrv := newServer(a.met.handler(a))
		servers = append(servers, msrv)
		go func() { errc <- serveMetrics(msrv, mln, a.cfg.MetricsWebConfig, a.log) }()
	}
	wctx, stopWatch := context.WithCancel(ctx)
	watching := make(chan struct{})
	defer func() { stopWatch(); <-watching }() // before the engine closes
	go func() {
		defer close(watching)
		a.eng.Watch(wctx)
	}()
	a.log.Info("agent ready", "socket", a.cfg.Socket, "socket_group", group, "metrics", a.cfg.MetricsAddr, "state", a.cfg.StateDir, "agent_id", a.eng.AgentID())
	if err := notify("READY=1"); err != nil {
		a.log.Warn("cannot tell the service manager the agent is ready", "err", err)
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	_ = notify("STOPPING=1")
	err = errors.Join(err, shutdown(servers))
	if rerr := os.Remove(a.cfg.Socket); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// servePlugin serves Docker's plugin protocols on cfg.PluginSocket. A
// socket another live agent serves is left to it: this agent runs on
// without Docker (two agents on one host, as in the tests and the lab).
func (a *Agent) servePlugin(errc chan<- error) (*http.Server, error) {
	path := a.cfg.PluginSocket
	if path == "" {
		return nil, nil
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		a.log.Warn("Docker plugin socket is served by another agent; this one runs without Docker (give it its own --plugin-socket)", "plugin_socket", path)
		return nil, nil
	}
	ln, err := listenUnix(path)
	if err != nil {
		return nil, fmt.Errorf("plugin socket for Docker: %w (--plugin-socket \"\" disables it)", err)
	}
	srv := newServer(plugin.Handler(a.docker, a.log))
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("serving Docker", "plugin_socket", path, "driver", strings.TrimSuffix(filepath.Base(path), ".sock"))
	return srv, nil
}

// The servers' timeouts. A request's header must arrive within
// readHeaderTimeout and the whole request, body included (at most
// maxBody, 1 MiB, from a local socket), within readTimeout: a client
// that sends a header and stalls its body no longer holds a goroutine
// for ever, nor a stop for shutdownWait (its body read fails, and so
// does the request). A kept-alive connection is closed after
// idleTimeout without a request. There is no WriteTimeout: an answer may
// come long after the request (a DHCP attach, a network on a slow etcd).
// ReadTimeout does not cut such a request: net/http lifts the read
// deadline once the body is read, when it starts to watch for the
// client's close (which cancels the request's context).
var (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 30 * time.Second
)

// newServer is an HTTP server of h with the agent's timeouts.
func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, IdleTimeout: idleTimeout}
}

// shutdownWait bounds how long a stop waits for the requests under way:
// longer than the slowest, a DHCP attach (an IPv4 and an IPv6 lease, 8 s
// each, and the address probe), so that the engine does not close under
// one (systemd waits 90 s by default).
const shutdownWait = 30 * time.Second

func shutdown(servers []*http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fileKind names what kind of file mode is, for an error.
func fileKind(mode os.FileMode) string {
	switch {
	case mode.IsDir():
		return "directory"
	case mode&os.ModeSymlink != 0:
		return "symbolic link"
	case mode.IsRegular():
		return "regular file"
	}
	return "file"
}

// listenAPI is listenUnix for the API socket, whose missing directories
// are made 0755 whatever the umask (the unit's is 0077): one only root
// may enter would shut the socket's group out. (Not for the Docker
// plugin's: dockerd's own /run/docker stays as the umask makes it.)
func listenAPI(path string) (net.Listener, error) {
	if err := mkdirOpen(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	return listenUnix(path)
}

// mkdirOpen makes dir and its missing parents 0755.
func mkdirOpen(dir string) error {
	var made []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range made {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// listenUnix listens on path with mode 0600. A stale socket is replaced
// (anything else at path is refused, never deleted):
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
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("%s is a %s, not a socket: give --socket (or --plugin-socket) a path of its own", path, fileKind(fi.Mode()))
	}
	_ = os.Remove(path) // a stale socket
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, errors.Join(fmt.Errorf("chmod %s: %w", path, err), ln.Close())
	}
	return ln, nil
}
