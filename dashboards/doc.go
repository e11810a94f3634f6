// Package dashboards builds mvlan's Grafana dashboards in Go, with the
// Grafana Foundation SDK, and reads them back for the tests.
//
// `make dashboards` (go generate) writes them as mvlan-*.json next to this
// file: Grafana imports those files as they are, or provisions them
// (provisioning.yaml). They read the series recorded by the rules in
// ../rules/mvlan.rules.yml, so both go together.
package dashboards

//go:generate go run ./gen
