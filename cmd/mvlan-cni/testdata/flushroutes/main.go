// Command flushroutes is a CNI plugin for mvlan-cni's tests, chained after
// mvlan as route-override's flushgateway is: on ADD it deletes the
// namespace's default routes and takes them out of the result; CHECK and
// DEL do nothing.
package main

import (
	"encoding/json"
	"fmt"
	"os/exec"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

func main() {
	nop := func(*skel.CmdArgs) error { return nil }
	skel.PluginMainFuncs(skel.CNIFuncs{Add: add, Check: nop, Del: nop}, version.All, "flushroutes (a test plugin)")
}

func add(args *skel.CmdArgs) error {
	conf := &types.NetConf{}
	if err := json.Unmarshal(args.StdinData, conf); err != nil {
		return err
	}
	if err := version.ParsePrevResult(conf); err != nil {
		return err
	}
	r, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return err
	}
	var kept []*types.Route
	for _, rt := range r.Routes {
		if ones, _ := rt.Dst.Mask.Size(); ones != 0 {
			kept = append(kept, rt)
		}
	}
	r.Routes = kept
	for _, dst := range []string{"0.0.0.0/0", "::/0"} {
		out, err := exec.Command("nsenter", "--net="+args.Netns, "ip", "route", "flush", "exact", dst).CombinedOutput()
		if err != nil {
			return fmt.Errorf("flush %s: %v: %s", dst, err, out)
		}
	}
	return types.PrintResult(r, conf.CNIVersion)
}
