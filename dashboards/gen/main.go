// Command gen writes mvlan's Grafana dashboards (package dashboards) as
// JSON files into the current directory: `go generate ./dashboards/`.
package main

import (
	"fmt"
	"os"

	"github.com/mvlan/mvlan/dashboards"
)

func main() {
	if err := dashboards.Write("."); err != nil {
		fmt.Fprintln(os.Stderr, "dashboards:", err)
		os.Exit(1)
	}
}
