// Command mvlan-cni is a CNI plugin (spec 0.4.0 to 1.1.0) that attaches a
// runtime's network namespace to an mvlan network. It is thin: each
// command is one or two calls to the mvlan agent's API on its unix socket,
// and the agent does the work (addresses, the macvlan link, the eBPF
// programs, state), so CNI attachments get the same isolation, counters,
// crash safety and `mvlan ps` as every other endpoint.
//
// Configuration (stdin):
//
//	{"cniVersion": "1.1.0", "name": "mvnet", "type": "mvlan", "network": "pub_net"}
//
// See README.md ("With CNI") for the inline network definition, static
// addresses and MACs, and the errors it returns.
//
// Each command is a process of a few milliseconds, so GOMAXPROCS stays
// the number of CPUs: no goroutine follows the CPU limit
// (updatemaxprocs), the cgroup's limit is not used (containermaxprocs);
// about 0.1 ms of each here, as for the CLI.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"
)

// Version is set at build time (make build).
var Version = "dev"

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    cmdDel,
		Check:  cmdCheck,
		GC:     cmdGC,
		Status: cmdStatus,
	}, version.PluginSupports("0.4.0", "1.0.0", "1.1.0"), "CNI plugin mvlan "+Version)
}
