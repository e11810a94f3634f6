# mvlan — see README.md. Privileged tests need root; they skip otherwise.
GO          ?= go
BIN         := bin/mvlan
BINS        := ./cmd/mvlan ./cmd/mvlan-agent
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# A count, not a duration: go1.26's fuzz coordinator can report its own
# -fuzztime deadline as a failure (golang/go#75804, fixed in go1.27).
FUZZTIME    ?= 50000x
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X github.com/mvlan/mvlan/version.Version=$(VERSION)

.PHONY: all build deps package test unit race cover lint fuzz generate check-generate dashboards screenshots demo lab bench clean

all: build

# bin/mvlan (the CLI: API client and printing only) and bin/mvlan-agent
# (the daemon, which `mvlan agent` runs from next to bin/mvlan), static.
build:
	CGO_ENABLED=0 $(GO) build -tags urfave_cli_no_docs -ldflags "$(LDFLAGS)" -o bin/ $(BINS)
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.Version=$(VERSION)" -o bin/mvlan-cni ./cmd/mvlan-cni

# Everything CI runs: lint, every test (privileged ones as root), bounded
# fuzzing, and the two-VM lab (802.1q, dummy, clsact on Debian's 6.1).
test: deps lint check-generate unit fuzz lab

# What the build and the tests need beyond Go, on Debian, as root: installs
# only what is missing (scripts/deps.sh; .ci/run runs the same).
deps:
	bash scripts/deps.sh

# The Debian package (scripts/package.sh): bin/mvlan_VERSION_ARCH.deb.
package: build
	bash scripts/package.sh

# -parallel 4: cmd/mvlan's parallel end-to-end tests mostly wait (agents,
# leases, timers), not compute; two at a time left the cores idle.
unit:
	$(GO) test -count=1 -timeout 20m -parallel 4 ./...

# The privileged end-to-end tests with the agent, CLI and plugin built with
# the race detector (nstest.RaceEnv): a data race in any of them fails the
# test that ran it. Not part of test: about 30 minutes on 2 cores.
race:
	MVLAN_E2E_RACE=1 $(GO) test -count=1 -timeout 60m ./cmd/mvlan-cni ./cmd/mvlan

# gofmt, a tidy go.mod, vet, staticcheck (with ST1000: a package comment on
# every package) and the race detector on the tests that need no root.
lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt -l: not formatted:"; gofmt -l .; exit 1; }
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) -checks inherit,ST1000 ./...
	$(GO) test -race -count=1 $$(bash scripts/unprivileged-packages.sh)

# Each fuzz target for FUZZTIME (go test runs one target per invocation).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 200x $$pkg; \
	  done; \
	done

# BPF objects (loader/*_bpfel.{go,o}) from bpf/*.c: needs clang-19, llvm-19 and
# libbpf-dev (apt-get install -y clang-19 llvm-19 libbpf-dev). Reproducible:
# CI checks that a run leaves the committed files unchanged.
generate:
	$(GO) generate ./loader/

# The committed BPF objects must be what the sources and clang-19 give,
# and the dashboards what their Go code gives; generating must not leave
# files git does not track.
check-generate: generate dashboards
	@git diff --exit-code --stat -- loader/ || { echo "loader/*_bpfel.* differ from make generate: commit the regenerated files"; exit 1; }
	@git diff --exit-code --stat -- dashboards/ || { echo "dashboards/*.json differ from make dashboards: commit the regenerated files"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- loader/ dashboards/)" || { git status --short --untracked-files=all -- loader/ dashboards/; echo "make generate/dashboards left untracked files: commit them or stop generating them"; exit 1; }

# Grafana dashboards (dashboards/mvlan-*.json) from their Go code in dashboards/.
dashboards:
	$(GO) generate ./dashboards/

# The README's pictures (docs/dash-*.png): TestDashboardsPrometheus's scene
# with a few minutes of traffic, Prometheus' graph page for the key panel
# queries (its web pages unpacked from Debian's packages into bin/), headless
# Chromium (apt-get install chromium). Root; not in make test.
screenshots:
	MVLAN_PROM_WEB=$$(bash scripts/prometheus-web.sh $(CURDIR)/bin/prometheus-web) && export MVLAN_PROM_WEB && \
	MVLAN_SCREENSHOTS=$(CURDIR)/docs $(GO) test -count=1 -timeout 10m -run '^TestDashboardsPrometheus$$' -v ./cmd/mvlan/

# The reference's pub_net example in a namespace sandbox (root).
demo: build
	bash scripts/demo.sh

# The multi-VM lab (lab/lab.sh): two qemu VMs (software emulation) on Debian's
# kernel, joined by an 802.1q trunk over a socket on 127.0.0.1; every scenario
# of lab/scenarios on both. Needs qemu-system-x86, busybox-static and apt (the
# kernel is fetched once into lab/cache/). LAB_ONLY="vlan reboot" runs a subset.
lab: build
	MVLAN_BIN=$(BIN) bash lab/lab.sh

# Every measurement of issues 8 and 12 in one go, as root (namespaces, agents,
# BPF; iperf3 from Debian's package; the CNI plugins it compares with are built
# from the Go module proxy into bench/cache/ once): writes bench/results.json and
# docs/benchmarks.md, about 10 minutes on 2 cores. BENCH_QUICK=1: a smoke run
# into bench/out/. MVLAN_BENCH_ENDPOINTS (1000), BENCH_REPS (5): sizes.
bench: build
	$(GO) run ./bench/cmd/mvbench -mvlan $(BIN)

# Coverage of the unit and the privileged end-to-end tests together: with
# MVLAN_E2E_COVERDIR the e2e harnesses (nstest.GoBuild) build mvlan-agent,
# mvlan and mvlan-cni with -cover, and every process they start writes its
# counters there when it exits (a SIGKILLed agent writes none); the test
# binaries write theirs to cover/unit. Prints each package's coverage of
# both merged, also when a test fails (make then fails); cover/cover.out is
# the profile (go tool cover -html). COVERPKGS and COVERRUN narrow the run
# (go test -run; write $$ for a regexp's $).
COVER     := cover
COVERPKGS ?= ./...
COVERRUN  ?= .
cover:
	rm -rf $(COVER) && mkdir -p $(COVER)/e2e $(COVER)/unit
	st=0; MVLAN_E2E_COVERDIR=$(CURDIR)/$(COVER)/e2e $(GO) test -count=1 -timeout 20m -run '$(COVERRUN)' \
		-cover -coverpkg=./... $(COVERPKGS) -args -test.gocoverdir=$(CURDIR)/$(COVER)/unit || st=$$?; \
	$(GO) tool covdata percent -i=$(COVER)/unit,$(COVER)/e2e; \
	$(GO) tool covdata textfmt -i=$(COVER)/unit,$(COVER)/e2e -o $(COVER)/cover.out; \
	exit $$st

clean:
	rm -rf bin $(COVER)
