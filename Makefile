# Vigil: runtime defender for serverless functions.
# `make demo` runs Vigil on a bundled example; `make test` runs every test.

GO        ?= go
BIN       := bin
CC        ?= gcc
FIXTURE_C := $(wildcard fixtures/c/*.c fixtures/bench/*.c)
FIXTURES  := $(addprefix $(BIN)/fixtures/,$(basename $(notdir $(FIXTURE_C))))
GOFILES    = $(shell find . -name '*.go' -not -path './.git/*') go.mod go.sum

.PHONY: all deps build fixtures test bench demo fuzz clean

all: build

# What a fresh machine lacks. Idempotent: installs only what is missing.
deps:
	@if ! pkg-config --exists libseccomp 2>/dev/null && ! test -f /usr/include/seccomp.h; then \
		echo "installing libseccomp-dev"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y libseccomp-dev >/dev/null 2>&1 || \
		{ apt-get update >/dev/null && apt-get install -y libseccomp-dev >/dev/null; }; \
	fi
	@command -v $(CC) >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update >/dev/null && apt-get install -y gcc libc6-dev >/dev/null; }

build: deps $(BIN)/bootstrap

$(BIN)/bootstrap: $(GOFILES)
	@mkdir -p $(BIN)
	$(GO) build -o $@ ./bootstrap

fixtures: deps $(FIXTURES)

$(BIN)/fixtures/%: fixtures/c/%.c
	@mkdir -p $(BIN)/fixtures
	$(CC) -O2 -Wall -o $@ $< -lpthread

$(BIN)/fixtures/%: fixtures/bench/%.c
	@mkdir -p $(BIN)/fixtures
	$(CC) -O2 -Wall -o $@ $< -lpthread

test: build fixtures
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -race -count=1 -timeout 10m -run '^(TestLoad|TestReplayInterruptedCalls)$$' ./supervisor/

# Micro-benchmarks (policy decisions, path resolution, the Runtime API
# proxy) run the usual way; the end-to-end ones compare whole workloads with
# and without Vigil in interleaved rounds inside one iteration, so they run
# once each and print their ratios.
bench: build fixtures
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./rules/ ./internal/resolve/ ./runtimeapi/
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m ./supervisor/ ./e2e/ ./lambdatest/

# Each fuzz target for FUZZTIME (plain `make test` runs their seed corpora).
FUZZTIME ?= 30s
fuzz: deps
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./rules/
	$(GO) test -run '^$$' -fuzz '^FuzzPathMatch$$' -fuzztime $(FUZZTIME) ./rules/
	$(GO) test -run '^$$' -fuzz '^FuzzAddrMatch$$' -fuzztime $(FUZZTIME) ./rules/
	$(GO) test -run '^$$' -fuzz '^FuzzResolve$$' -fuzztime $(FUZZTIME) ./internal/resolve/
	$(GO) test -run '^$$' -fuzz '^FuzzDecoders$$' -fuzztime $(FUZZTIME) ./supervisor/
	$(GO) test -run '^$$' -fuzz '^FuzzMsghdr$$' -fuzztime $(FUZZTIME) ./supervisor/

demo: build fixtures
	./fixtures/demo.sh

clean:
	rm -rf $(BIN) dist
