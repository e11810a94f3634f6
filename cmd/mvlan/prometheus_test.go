package main

// A real Prometheus (Debian's binary) for the tests that check what an
// operator's Prometheus sees: it runs inside a sandbox's host namespace,
// scrapes the agent's /metrics there every second and evaluates rules
// every second.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// promAddr is where Prometheus listens, inside the sandbox.
const promAddr = "127.0.0.1:9090"

// promServer is a running Prometheus and a client for its HTTP API.
type promServer struct {
	t      *testing.T
	client *http.Client
	log    *lockedBuffer
}

// prometheusBin is Debian's prometheus binary; the test skips without it.
func prometheusBin(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	p, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (/usr/bin/prometheus): apt-get install prometheus, or extract Debian's prometheus .deb as .ci/run does")
	}
	return p
}

// startPrometheus runs Prometheus in sb's host namespace, scraping the
// agent at metricsAddr (job "mvlan") and loading ruleFiles (absolute
// paths). It is killed when the test ends.
func startPrometheus(t *testing.T, sb *nstest.Sandbox, ruleFiles ...string) *promServer {
	t.Helper()
	return startPrometheusJob(t, sb, "", ruleFiles...)
}

// startPrometheusJob is startPrometheus with more settings for the job
// "mvlan": YAML lines indented by four spaces (scheme, tls_config, ...).
func startPrometheusJob(t *testing.T, sb *nstest.Sandbox, job string, ruleFiles ...string) *promServer {
	t.Helper()
	bin := prometheusBin(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%s]
scrape_configs:
  - job_name: mvlan
%s    static_configs:
      - targets: ["%s"]
`, strings.Join(ruleFiles, ", "), job, metricsAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &promServer{t: t, client: nsClient(sb.Path), log: &lockedBuffer{}}
	cmd := exec.Command("nsenter", "--net="+sb.Path, "--", bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)
	if web := os.Getenv("MVLAN_PROM_WEB"); web != "" { // its web pages (make screenshots)
		cmd.Args = append(cmd.Args, "--web.local-assets="+web)
	}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() { // before t.TempDir's removal: cleanups run last in, first out
		p.client.Transport.(*http.Transport).CloseIdleConnections()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return p
}

// api GETs /api/v1/PATH and decodes the "data" member of a success.
func (p *promServer) api(path string, params url.Values, data any) error {
	resp, err := p.client.Get("http://" + promAddr + "/api/v1/" + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", resp.Status, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// promSample is one series of an instant query's vector.
type promSample struct {
	Metric map[string]string
	Value  float64
}

// query evaluates expr now; the result must be a vector (or nothing).
func (p *promServer) query(expr string) ([]promSample, error) {
	var d struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.api("query", url.Values{"query": {expr}}, &d); err != nil {
		return nil, err
	}
	out := make([]promSample, 0, len(d.Result))
	for _, r := range d.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("value %v of %v: %w", r.Value[1], r.Metric, err)
		}
		out = append(out, promSample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// waitQuery evaluates expr until ok accepts the result (at most d) and
// returns the last result; it fails the test on timeout.
func (p *promServer) waitQuery(expr string, d time.Duration, ok func([]promSample) bool) []promSample {
	p.t.Helper()
	r, err := p.tryQuery(expr, d, ok)
	if err != nil {
		p.t.Fatalf("%v\nprometheus log:\n%s", err, p.log)
	}
	return r
}

// tryQuery is waitQuery returning an error instead of failing.
func (p *promServer) tryQuery(expr string, d time.Duration, ok func([]promSample) bool) ([]promSample, error) {
	var last []promSample
	var err error
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if last, err = p.query(expr); err == nil && ok(last) {
			return last, nil
		}
	}
	return last, fmt.Errorf("PromQL %s: no acceptable answer within %v; last: %v %v", expr, d, last, err)
}

// promGroup is a rule group as /api/v1/rules reports it.
type promGroup struct {
	Name           string    `json:"name"`
	LastEvaluation time.Time `json:"lastEvaluation"`
	Rules          []struct {
		Name      string `json:"name"`
		Query     string `json:"query"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
		Type      string `json:"type"` // recording or alerting
	} `json:"rules"`
}

// ruleGroups are the loaded rule groups.
func (p *promServer) ruleGroups() ([]promGroup, error) {
	var r struct {
		Groups []promGroup `json:"groups"`
	}
	err := p.api("rules", nil, &r)
	return r.Groups, err
}

// waitRulesAfter waits until every rule group was evaluated after t.
func (p *promServer) waitRulesAfter(t time.Time, d time.Duration) {
	p.t.Helper()
	var gs []promGroup
	var err error
	before := func(g promGroup) bool { return !g.LastEvaluation.After(t) }
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if gs, err = p.ruleGroups(); err == nil && len(gs) > 0 && !slices.ContainsFunc(gs, before) {
			return
		}
	}
	p.t.Fatalf("rule groups not all evaluated after %v within %v: %v %+v\nprometheus log:\n%s", t, d, err, gs, p.log)
}

// nonEmpty accepts any result with a series.
func nonEmpty(r []promSample) bool { return len(r) > 0 }
