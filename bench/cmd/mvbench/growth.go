package main

import (
	"context"
	"errors"
	"fmt"
)

// kernelGrowth measures the alternative's growth on the same kind of
// parent: the CNI macvlan plugin's ADD on eth0, which holds the fill's N
// endpoints, next to its ADD on cni0, which holds none, interleaved. What
// a parent with N bridge-mode macvlans costs plain macvlan (its
// gratuitous ARP handed to every one of them, the parent's walk of its
// upper devices) is the kernel's floor under mvlan's attach_growth.
func (c *control) kernelGrowth(ctx context.Context, e *env, sb *sandbox) error {
	k := 20
	if e.cfg.quick {
		k = 5
	}
	full, err := e.newCNITagged(ctx, sb.host, "eth0", "10.31.0.0/16", "cnf")
	if err != nil {
		return err
	}
	empty, err := e.newCNITagged(ctx, sb.host, "cni0", "10.32.0.0/16", "cne")
	if err != nil {
		return err
	}
	progress("control: CNI macvlan add on eth0 (%d endpoints) and on cni0 (none), %d each, interleaved", e.cfg.endpoints, k)
	netns := make([][2]string, k)
	for i := range k {
		for j, tag := range []string{"gf", "ge"} {
			if netns[i][j], err = e.netns(fmt.Sprintf("%s%d", tag, i)); err != nil {
				return err
			}
		}
	}
	nets := [2]*cni{full, empty}
	outs := [2]*samples{&c.cniFullParent, &c.cniEmptyParent}
	for i := range k {
		for j := range 2 {
			l := (i + j) % 2 // who goes first alternates
			d, err := nets[l].run(ctx, "add", netns[i][l])
			if err != nil {
				return err
			}
			*outs[l] = append(*outs[l], ms(d))
		}
	}
	var errs []error
	for i := range k {
		for j, tag := range []string{"gf", "ge"} {
			if _, err := nets[j].run(ctx, "del", netns[i][j]); err != nil {
				errs = append(errs, err)
			}
			errs = append(errs, delNetns(e.base+fmt.Sprintf("-%s%d", tag, i)))
		}
	}
	progress("control: CNI macvlan add p50 on eth0 %.1f ms, on cni0 %.1f ms", c.cniFullParent.median(), c.cniEmptyParent.median())
	return errors.Join(errs...)
}
