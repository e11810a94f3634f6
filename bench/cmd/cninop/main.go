// Command cninop is a CNI plugin that does nothing, built with the CNI
// project's skel and types as mvlan-cni is: mvbench times `cnitool add`
// and `del` of it next to mvlan-cni's, the cost of a Go plugin process
// that does no work.
package main

import (
	"encoding/json"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			var c types.NetConf
			if err := json.Unmarshal(args.StdinData, &c); err != nil {
				return err
			}
			return types.PrintResult(&current.Result{CNIVersion: current.ImplementedSpecVersion}, c.CNIVersion)
		},
		Del:    func(*skel.CmdArgs) error { return nil },
		Check:  func(*skel.CmdArgs) error { return nil },
		GC:     func(*skel.CmdArgs) error { return nil },
		Status: func(*skel.CmdArgs) error { return nil },
	}, version.PluginSupports("0.4.0", "1.0.0", "1.1.0"), "CNI plugin cninop")
}
