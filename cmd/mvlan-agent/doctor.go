package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/agent"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/doctor"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/internal/format"
)

func doctorCommand(onUsage cli.OnUsageErrorFunc) *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check the kernel features mvlan needs, and a running agent's state, and say what a problem means",
		Description: "Tries each feature in a throwaway network namespace (macvlan, 8021q, dummy, bridge, veth,\n" +
			"TCX, clsact + cls_bpf) and checks BTF and the bpffs directory. Nothing is created in the\n" +
			"host's namespace and nothing is mounted. Run as root; otherwise the probes are not run.\n" +
			"Then asks the agent at --socket whether its state, the kernel's links and programs and its\n" +
			"IPAM agree (drift), and what containers did to their links (tamper), with what to do.\n" +
			"Exit code 0 whatever is missing (the report is the result), 1 if doctor itself failed.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "bpffs", Value: doctor.DefaultBPFFS, EnvVars: []string{"MVLAN_BPFFS"}, Usage: "bpffs directory the agent pins maps and links under"},
			&cli.StringFlag{Name: "format", Value: "table", Usage: "table or json"},
			// Also after doctor, as mvlan's flags may be (mvlan doctor --socket S).
			// No EnvVars: MVLAN_SOCKET is the global flag's, which an
			// explicit --socket before doctor must beat.
			&cli.StringFlag{Name: "socket", Value: api.DefaultSocket, Usage: "API socket of the agent whose state to check"},
		},
		Action:       runDoctor,
		OnUsageError: onUsage,
	}
}

// doctorSection is one part of the doctor's report.
type doctorSection struct {
	Name   string         `json:"name"`
	Checks []doctor.Check `json:"checks"`
}

// doctorOutput is what `mvlan doctor --format json` prints.
type doctorOutput struct {
	Kernel   string          `json:"kernel"`
	Sections []doctorSection `json:"sections"`
}

// doctorSections are the parts of the report, in order. Kernel features
// come first; the agent's drift check joins here as another section.
var doctorSections = []func(ctx context.Context, c *cli.Context, out *doctorOutput) error{
	kernelSection,
	driftSection,
}

// checkTimeout bounds the agent's check (two looks a second apart, a
// namespace read per endpoint: seconds with thousands).
var checkTimeout = 30 * time.Second

// driftSection asks a running agent whether state, kernel and IPAM agree.
func driftSection(ctx context.Context, c *cli.Context, out *doctorOutput) error {
	cl := api.NewClient(givenSocket(c))
	defer cl.Close()
	s := doctorSection{Name: "agent"}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout) // a wedged agent is a finding, not a hang
	defer cancel()
	ch, err := cl.Check(ctx)
	switch {
	case errors.Is(err, api.ErrUnreachable):
		s.Checks = append(s.Checks, doctor.Check{Name: "drift", Skipped: true, Detail: "agent not reachable: " + err.Error()})
	case err != nil:
		s.Checks = append(s.Checks, doctor.Check{Name: "drift", Detail: "the agent's check failed: " + err.Error(),
			Impact: "drift unknown; the agent log says why the check failed"})
	case len(ch.Drift) == 0:
		s.Checks = append(s.Checks, doctor.Check{Name: "drift", OK: true, Detail: "state, kernel links and IPAM agree"})
	}
	findings := ch.Findings
	if len(findings) == 0 { // an agent that does not send kinds
		for _, d := range ch.Drift {
			findings = append(findings, api.DriftFinding{Detail: d})
		}
	}
	for _, f := range findings {
		s.Checks = append(s.Checks, doctor.Check{Name: "drift", Detail: f.Detail, Impact: driftImpact(f.Kind)})
	}
	out.Sections = append(out.Sections, s)
	return nil
}

// driftImpact is what a finding of kind means and what to do about it.
func driftImpact(kind string) string {
	switch kind {
	case string(engine.DriftTamper):
		return "a container changed its link (README: Threat model); the agent repaired what it could (mvlan_datapath_reattach_total): find out why the container did it"
	case string(engine.DriftQuarantine):
		return "state records the agent could not use (the finding says why) are set aside: their containers' links are left working and their addresses held. " +
			"A container's record goes at the first agent start after the container is gone, a network's once none of its containers is left (a cluster network's stays): " +
			"remove those containers the way they were made (docker rm, the CNI runtime, ip netns del for mvlan run's), then restart the agent"
	case string(engine.DriftCluster):
		return "the cluster network is not as etcd defines it, or this host's part in it failed (the finding says which): a changed definition takes removing the network here and joining it again"
	case string(engine.DriftIPAM):
		return "held addresses and endpoints disagree (a restart of the agent reconciles them), or an endpoint's DHCP lease is missing, expired or not renewed: its DHCP server must answer (the agent keeps asking)"
	case string(engine.DriftLink):
		return "host links and state disagree, or a network takes no endpoint (the finding says why: its parent is missing, is a link mvlan did not make, or has no datapath); a restart of the agent removes mvlan's leftovers and makes mvlan's parents again; a parent mvlan did not make must be made again by whoever made it"
	}
	return "state and kernel disagree; a restart of the agent reconciles what it can, the agent log says what it cannot"
}

// givenSocket is --socket where it was given, after doctor or before it
// (mvlan-agent --socket S doctor), else its default.
func givenSocket(c *cli.Context) string {
	for _, cc := range c.Lineage() {
		if cc.IsSet("socket") {
			return cc.String("socket")
		}
	}
	return c.String("socket")
}

func kernelSection(ctx context.Context, c *cli.Context, out *doctorOutput) error {
	r, err := doctor.Run(ctx, c.String("bpffs"))
	if err != nil {
		return err
	}
	out.Kernel = r.Kernel
	out.Sections = append(out.Sections, doctorSection{Name: "kernel", Checks: append(r.Checks, mountCheck())})
	return nil
}

// mountCheck says whether an agent started like this doctor (same mount
// namespace) would see its /run/netns mounts shared with the host.
func mountCheck() doctor.Check {
	ch := doctor.Check{Name: "mount namespace", OK: true, Detail: "PID 1's: /run/netns mounts are seen by the host"}
	if err := agent.CheckMountNamespace(); err != nil {
		ch = doctor.Check{Name: "mount namespace", Detail: "not PID 1's",
			Impact: "an agent started from here refuses to run: " + err.Error()}
	}
	return ch
}

func runDoctor(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("doctor takes no arguments, got %q", c.Args().First())
	}
	kind := c.String("format")
	if kind != "table" && kind != "json" {
		return usagef("unknown --format %q; use table or json", kind)
	}
	if c.String("bpffs") == "" {
		return usagef("--bpffs is empty; use a directory such as %s", doctor.DefaultBPFFS)
	}
	var out doctorOutput
	for _, section := range doctorSections {
		if err := section(c.Context, c, &out); err != nil {
			return err
		}
	}
	if kind == "json" {
		return format.PrintJSON(c.App.Writer, out)
	}
	return printDoctor(c, out)
}

func printDoctor(c *cli.Context, out doctorOutput) error {
	w := c.App.Writer
	fmt.Fprintf(w, "kernel %s\n", out.Kernel)
	var rows [][]string
	for _, s := range out.Sections {
		for _, ch := range s.Checks {
			rows = append(rows, []string{ch.Name, checkStatus(ch), checkText(ch)})
		}
	}
	return format.PrintTable(w, []string{"CHECK", "STATUS", "DETAIL/IMPACT"}, rows)
}

func checkStatus(ch doctor.Check) string {
	switch {
	case ch.Skipped:
		return "not run"
	case ch.OK:
		return "ok"
	case ch.Name == "drift":
		return "drift"
	}
	return "missing"
}

// checkText is the detail of a present (or unchecked) feature, and the
// impact of a missing one followed by why the probe failed.
func checkText(ch doctor.Check) string {
	if ch.OK || ch.Skipped || ch.Impact == "" {
		return ch.Detail
	}
	return ch.Impact + " (" + ch.Detail + ")"
}
