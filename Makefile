# mvlan — see README.md. Privileged tests need root; they skip otherwise.
GO          ?= go
BIN         := bin/mvlan
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 10s
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X github.com/mvlan/mvlan/agent.Version=$(VERSION)

.PHONY: all build test unit lint fuzz generate check-generate demo lab bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/mvlan

# Everything CI runs: lint, every test (privileged ones as root), bounded fuzzing.
test: lint check-generate unit fuzz

unit:
	$(GO) test -count=1 -timeout 20m ./...

lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Each fuzz target for FUZZTIME (go test runs one target per invocation).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s $$pkg; \
	  done; \
	done

# BPF objects (loader/*_bpfel.{go,o}) from bpf/*.c: needs clang-19, llvm-19 and
# libbpf-dev (apt-get install -y clang-19 llvm-19 libbpf-dev). Reproducible:
# CI checks that a run leaves the committed files unchanged.
generate:
	$(GO) generate ./loader/

# The committed BPF objects must be what the sources and clang-19 give.
check-generate: generate
	@git diff --exit-code --stat -- loader/ || { echo "loader/*_bpfel.* differ from make generate: commit the regenerated files"; exit 1; }

# The reference's pub_net example in a namespace sandbox (root).
demo: build
	bash scripts/demo.sh

lab:
	@echo "make lab: arrives with the multi-VM lab (issue 6)"; exit 1

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./ipam/

clean:
	rm -rf bin
