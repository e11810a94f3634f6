package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/agent"
	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/loader"
	"github.com/mvlan/mvlan/version"
)

// agentFlags are the daemon's settings; each can come from the environment
// (the package's /etc/default/mvlan sets them for mvlan.service).
func agentFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "state-dir", Value: "/var/lib/mvlan", EnvVars: []string{"MVLAN_STATE_DIR"}, Usage: "directory of the state file (one agent per directory)"},
		&cli.StringFlag{Name: "metrics-addr", Value: "127.0.0.1:9469", EnvVars: []string{"MVLAN_METRICS_ADDR"}, Usage: "host:port serving /metrics (empty: off)"},
		&cli.StringFlag{Name: "web-config-file", EnvVars: []string{"MVLAN_WEB_CONFIG_FILE"}, Usage: "TLS and basic authentication for /metrics: a Prometheus exporter-toolkit web configuration file (empty: plain HTTP)"},
		&cli.StringFlag{Name: "bpffs", Value: "/sys/fs/bpf/mvlan", EnvVars: []string{"MVLAN_BPFFS"}, Usage: "bpffs directory for pinned maps and links"},
		&cli.StringFlag{Name: "attach-mode", Value: "auto", EnvVars: []string{"MVLAN_ATTACH_MODE"}, Usage: "how BPF programs attach: auto, tcx or tc"},
		&cli.StringFlag{Name: "endpoint-programs", Value: "auto", EnvVars: []string{"MVLAN_ENDPOINT_PROGRAMS"}, Usage: "how the endpoint programs find their endpoint: direct (they read their device's namespace; Linux 6.2+ with BTF), stub (a stub per namespace hands it over) or auto (direct where the kernel allows it)"},
		&cli.StringFlag{Name: "plugin-socket", Value: "/run/docker/plugins/mvlan.sock", EnvVars: []string{"MVLAN_PLUGIN_SOCKET"}, Usage: "socket where Docker finds mvlan as a network and IPAM plugin (driver name: the file name without .sock; empty: off)"},
		&cli.StringFlag{Name: "docker-host", Value: "unix:///run/docker.sock", EnvVars: []string{"MVLAN_DOCKER_HOST"}, Usage: "dockerd's Engine API (unix:///PATH), asked for the names of Docker's containers shown by mvlan ps (empty: off)"},
		&cli.DurationFlag{Name: "tamper-check", Value: engine.DefaultTamperCheck, EnvVars: []string{"MVLAN_TAMPER_CHECK"}, Usage: "how often containers' links are checked for removed or bypassed programs, links of their own on the parent, a changed MAC or macvlan mode, and filters of their own after mvlan's, and repaired (0: never)"},
		&cli.BoolFlag{Name: "recover", Usage: "rebuild a corrupt state file from its last good snapshot (mvlan.db.snap) and the endpoint links the kernel holds; the bad file is kept aside"},
		&cli.StringFlag{Name: "socket-group", Value: agent.DefaultSocketGroup, EnvVars: []string{"MVLAN_SOCKET_GROUP"}, Usage: "members of this group may use the API socket (0660) when the group exists; else, or empty: root only (0600)"},
		&cli.StringFlag{Name: "cluster", EnvVars: []string{"MVLAN_CLUSTER"}, Usage: "etcd://HOST:PORT[,HOST:PORT...]: join the etcd cluster that holds networks of --scope cluster (empty: none)"},
		&cli.StringFlag{Name: "cluster-ca", EnvVars: []string{"MVLAN_CLUSTER_CA"}, Usage: "PEM CA of etcd's TLS certificate (with --cluster-cert and --cluster-key)"},
		&cli.StringFlag{Name: "cluster-cert", EnvVars: []string{"MVLAN_CLUSTER_CERT"}, Usage: "PEM client certificate for etcd"},
		&cli.StringFlag{Name: "cluster-key", EnvVars: []string{"MVLAN_CLUSTER_KEY"}, Usage: "PEM key of --cluster-cert"},
		&cli.DurationFlag{Name: "cluster-ttl", Value: cluster.DefaultTTL, EnvVars: []string{"MVLAN_CLUSTER_TTL"}, Usage: "TTL of this host's liveness lease in etcd (at least 2s)"},
		&cli.DurationFlag{Name: "cluster-grace", Value: cluster.DefaultGrace, EnvVars: []string{"MVLAN_CLUSTER_GRACE"}, Usage: "how long a host must have lost its liveness lease before its blocks are reclaimed (only if none of their addresses answers an ARP/ND probe); a host cut off from etcd stops using its blocks TTL + grace/2 after its last renewal"},
		&cli.DurationFlag{Name: "cluster-dad", Value: 100 * time.Millisecond, EnvVars: []string{"MVLAN_CLUSTER_DAD"}, Usage: "on cluster networks, how long an attach waits for answers to its duplicate address probe (ARP/ND) on the parent; an address that answers is set aside (0: no probe)"},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"MVLAN_LOG_LEVEL"}, Usage: "debug, info, warn or error"},
	}
}

func runAgent(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("agent takes no arguments, got %q", c.Args().First())
	}
	switch m := c.String("attach-mode"); m {
	case "auto", "tcx", "tc":
	default:
		return usagef("unknown --attach-mode %q; use auto, tcx or tc", m)
	}
	if _, err := loader.ParseEndpointPath(c.String("endpoint-programs")); err != nil {
		return usagef("unknown --endpoint-programs %q; use auto, direct or stub", c.String("endpoint-programs"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return usagef("unknown --log-level %q; use debug, info, warn or error", c.String("log-level"))
	}
	var cl *cluster.Config
	if u := c.String("cluster"); u != "" {
		cl = &cluster.Config{URL: u, CA: c.String("cluster-ca"), Cert: c.String("cluster-cert"), Key: c.String("cluster-key"),
			TTL: c.Duration("cluster-ttl"), Grace: c.Duration("cluster-grace"), DAD: c.Duration("cluster-dad")}
		if cl.TTL < 2*time.Second || cl.Grace < cl.TTL {
			return usagef("--cluster-ttl %v --cluster-grace %v: want a TTL of at least 2s and a grace of at least the TTL", cl.TTL, cl.Grace)
		}
		if _, err := cluster.ParseURL(u); err != nil {
			return usagef("%v", err)
		}
	} else if c.String("cluster-ca")+c.String("cluster-cert")+c.String("cluster-key") != "" {
		return usagef("--cluster-ca, --cluster-cert and --cluster-key need --cluster etcd://HOST:PORT")
	}
	agent.Version = version.Version
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	a, err := agent.New(agent.Config{
		StateDir:         c.String("state-dir"),
		Socket:           c.String("socket"),
		SocketGroup:      c.String("socket-group"),
		MetricsAddr:      c.String("metrics-addr"),
		MetricsWebConfig: c.String("web-config-file"),
		BPFFS:            c.String("bpffs"),
		AttachMode:       c.String("attach-mode"),
		EndpointPrograms: c.String("endpoint-programs"),
		PluginSocket:     c.String("plugin-socket"),
		DockerHost:       c.String("docker-host"),
		Recover:          c.Bool("recover"),
		TamperCheck:      c.Duration("tamper-check"),
		Cluster:          cl,
		Log:              log,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = a.Run(ctx)
	if cerr := a.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		log.Info("agent stopped")
	}
	return err
}
