// Package rules holds mvlan's Prometheus recording and alerting rules
// (mvlan.rules.yml) and their promtool unit tests (mvlan.rules.test.yml).
// The Go package only runs promtool on them; there is no Go API.
package rules
