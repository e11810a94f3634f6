package agent

import (
	"net/http"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/loader"
	"github.com/mvlan/mvlan/version"
)

// kernelInfo is the kernel's release and the features the agent uses,
// found once: "attach=tcx" or "attach=tc" (how BPF programs attach with
// the --attach-mode given), "endpoint-programs=direct" or "=stub" (how the
// endpoint programs find their endpoint), "btf" when the kernel has BTF.
func (a *Agent) kernelInfo() (string, []string) {
	a.kernelOnce.Do(func() {
		var u unix.Utsname
		if unix.Uname(&u) == nil {
			a.kernel = unix.ByteSliceToString(u.Release[:])
		}
		if m, err := loader.ResolveMode(a.cfg.AttachMode); err == nil {
			a.features = append(a.features, "attach="+string(m))
		}
		a.features = append(a.features, "endpoint-programs="+a.eng.EndpointPrograms())
		if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err == nil {
			a.features = append(a.features, "btf")
		}
	})
	return a.kernel, a.features
}

func (a *Agent) handleVersion(w http.ResponseWriter, _ *http.Request) {
	k, f := a.kernelInfo()
	writeJSON(w, http.StatusOK, api.Version{Version: version.Version, API: version.API,
		GoVersion: runtime.Version(), Kernel: k, Features: append([]string(nil), f...)})
}
