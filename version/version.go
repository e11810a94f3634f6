// Package version holds what a build of mvlan is: the release (set at
// build time) and the API version the client and the agent speak.
package version

// Version is the release, set at build time:
// -ldflags "-X github.com/mvlan/mvlan/version.Version=v1.2.3".
var Version = "dev"

// API is the version of the agent's HTTP API (its path prefix, /v1).
const API = "v1"
