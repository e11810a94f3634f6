package agent

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/exporter-toolkit/web"
)

// checkWebConfig reads the /metrics web configuration file (the Prometheus
// exporter-toolkit format: tls_server_config, basic_auth_users, ...) so
// that a bad one stops the agent at start, naming the file.
func checkWebConfig(path string) error {
	if path == "" {
		return nil
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("--web-config-file %s: %w", path, err)
	}
	return nil
}

// serveMetrics serves /metrics on ln: plain HTTP without a web
// configuration file, else with its TLS and basic authentication.
func serveMetrics(srv *http.Server, ln net.Listener, webConfig string, log *slog.Logger) error {
	if webConfig == "" {
		return srv.Serve(ln)
	}
	systemdSocket := false
	addrs := []string{ln.Addr().String()}
	return web.Serve(ln, srv, &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemdSocket,
		WebConfigFile: &webConfig}, log)
}
