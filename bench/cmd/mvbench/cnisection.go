package main

import (
	"context"
	"errors"
	"fmt"
)

// runCNI is the cni section (-only cni, never part of a full run, where
// the control section's anchor measures the same): that anchor alone in a
// sandbox and agent of its own, `mvlan run -d`, `cnitool add` of macvlan +
// host-local and of mvlan-cni interleaved, then detached. It takes about
// a minute, so that builds of mvlan-cni can be compared run after run.
func runCNI(ctx context.Context, e *env, r *report) error {
	var c control
	sb, err := e.sandbox("cn")
	if err != nil {
		return err
	}
	if err := errors.Join(noIPv6(sb.host), noIPv6(sb.wire), sb.veth("cni0", "wcni0")); err != nil {
		return err
	}
	a := e.newAgent("cni", sb.host, "127.0.0.1:9469", "--log-level", "debug")
	if _, err := a.start(ctx); err != nil {
		return err
	}
	if _, _, err := a.mv(ctx, "network", "create", "--subnet=10.20.0.0/16", "-o", "parent=eth0", "bench"); err != nil {
		return err
	}
	if err := c.anchor(ctx, e, a, sb); err != nil {
		return err
	}
	if _, _, err := a.mv(ctx, "network", "rm", "bench"); err != nil {
		return err
	}
	if err := a.stop(); err != nil {
		return err
	}
	c.writeCNI(r)
	s := r.section("cni: mvlan-cni next to macvlan + host-local (the control anchor alone)")
	s.para("The control section's anchor without the rest of that section (`-only cni`): %d rounds, each `mvlan run -d`, `cnitool add` "+
		"of macvlan + host-local (%s, cnitool %s), `cnitool add` of mvlan-cni and of two no-op plugins, a shell script and a Go one (the floors), interleaved, then detached the same way.",
		anchorRounds(e.cfg), cniPluginsVersion, cniToolVersion)
	t := s.table("command", "p50 ms", "p99 ms", "min", "max", "n")
	for _, row := range []struct {
		what string
		s    samples
	}{
		{"mvlan attach: `run -d`", c.attach}, {"CNI attach: `cnitool add`", c.cniAttach}, {"mvlan-cni attach: `cnitool add`", c.mvcniAttach},
		{"mvlan detach: `rm -f`", c.detach}, {"CNI detach: `cnitool del`", c.cniDetach}, {"mvlan-cni detach: `cnitool del`", c.mvcniDetach},
		{"no-op plugin attach: `cnitool add`", c.nopAttach}, {"no-op plugin detach: `cnitool del`", c.nopDetach},
		{"Go no-op plugin attach: `cnitool add`", c.goNopAttach}, {"Go no-op plugin detach: `cnitool del`", c.goNopDetach},
	} {
		t.row(row.what, num(row.s.median()), num(row.s.pct(99)), num(row.s.min()), num(row.s.max()), fmt.Sprint(len(row.s)))
	}
	return nil
}
