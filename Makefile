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

test: build fixtures layer-deps layer-arm64-deps qemu-deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -race -count=1 -timeout 10m -run '^(TestLoad|TestReplayInterruptedCalls)$$' ./supervisor/
	# The supervisor's behaviour tests again under each ptrace backend: the
	# same cases, the same answers and audit lines (tests of the notify
	# backend's own machinery say so and skip).
	VIGIL_TEST_BACKEND=ptrace-seccomp $(GO) test -count=1 -timeout 20m ./supervisor/ ./e2e/
	VIGIL_TEST_BACKEND=ptrace-alone $(GO) test -count=1 -timeout 20m ./supervisor/ ./e2e/

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
	$(GO) test -run '^$$' -fuzz '^FuzzRequest$$' -fuzztime $(FUZZTIME) ./runtimeapi/
	$(GO) test -run '^$$' -fuzz '^FuzzAnswer$$' -fuzztime $(FUZZTIME) ./runtimeapi/

demo: build fixtures
	./fixtures/demo.sh

clean:
	rm -rf $(BIN) dist

# The Lambda layer: a statically linked bootstrap (libseccomp linked in, no
# loader, no libc needed on the host) and an example policy, laid out for
# /opt: bootstrap -> /opt/bootstrap, vigil/rules.toml -> /opt/vigil/rules.toml.
# DIST may be overridden (bootstrap/layer_test.go builds into a temp dir).
# `make layer-arm64` cross-builds the same layer for arm64 Lambdas
# (dist/vigil-layer-arm64.zip) with Debian's gcc-aarch64-linux-gnu and
# libseccomp-dev:arm64 (layer-arm64-deps installs them when missing).
DIST          ?= dist
LAYER_POLICY  := fixtures/layer/rules.toml
LAYER_GOFLAGS := -trimpath -tags netgo,osusergo
LAYER_LDFLAGS := -s -w -linkmode external -extldflags "-static"

ARM64_CC      ?= aarch64-linux-gnu-gcc

.PHONY: layer layer-deps layer-arm64 layer-arm64-deps qemu-deps sam

layer: deps layer-deps $(DIST)/vigil-layer-x86_64.zip

# What the layer needs beyond `deps`: zip, file (to check the binary), and
# libseccomp.a (libseccomp-dev ships it; checked in case only the shared
# library is installed).
layer-deps:
	@for t in zip file; do command -v $$t >/dev/null || { echo "installing $$t"; export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y $$t >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y $$t >/dev/null; }; }; done
	@test -n "$$($(CC) -print-file-name=libseccomp.a | grep /)" || { echo "installing libseccomp-dev (for libseccomp.a)"; \
		export DEBIAN_FRONTEND=noninteractive; apt-get update >/dev/null && apt-get install -y libseccomp-dev >/dev/null; }

$(DIST)/vigil-layer-x86_64.zip: $(GOFILES) $(LAYER_POLICY)
	@rm -rf $(DIST)/layer-x86_64 && mkdir -p $(DIST)/layer-x86_64/vigil
	CGO_ENABLED=1 GOOS=linux GOARCH=amd64 CC=$(CC) $(GO) build $(LAYER_GOFLAGS) -ldflags '$(LAYER_LDFLAGS)' -o $(DIST)/layer-x86_64/bootstrap ./bootstrap
	@out=$$(file $(DIST)/layer-x86_64/bootstrap); echo "$$out"; \
		case "$$out" in *"statically linked"*) ;; *) echo "bootstrap is not statically linked" >&2; exit 1;; esac
	@out=$$(ldd $(DIST)/layer-x86_64/bootstrap 2>&1); echo "ldd: $$out"; \
		case "$$out" in *"not a dynamic executable"*) ;; *) echo "ldd: bootstrap is dynamic" >&2; exit 1;; esac
	$(DIST)/layer-x86_64/bootstrap --check $(LAYER_POLICY) >/dev/null
	cp $(LAYER_POLICY) $(DIST)/layer-x86_64/vigil/rules.toml
	chmod 0755 $(DIST)/layer-x86_64/bootstrap $(DIST)/layer-x86_64/vigil && chmod 0644 $(DIST)/layer-x86_64/vigil/rules.toml
	touch -d 1980-01-02T00:00:00Z $(DIST)/layer-x86_64/bootstrap $(DIST)/layer-x86_64/vigil $(DIST)/layer-x86_64/vigil/rules.toml
	rm -f $@ && cd $(DIST)/layer-x86_64 && zip -X -q ../$(notdir $@) bootstrap vigil/ vigil/rules.toml
	@zip -sf $@

# The arm64 layer, cross-built. What it needs beyond `layer-deps`: the
# cross compiler and libseccomp-dev:arm64 (libseccomp.a for aarch64), with
# arm64 added to dpkg's architectures. Idempotent: installs only what is
# missing. `make test` installs it and qemu-user-static (qemu-deps) to run
# the arm64 bootstrap under qemu-aarch64-static (bootstrap's
# TestLayerArm64UnderQemu: --check runs; seccomp does not, under qemu-user).
layer-arm64: deps layer-deps layer-arm64-deps $(DIST)/vigil-layer-arm64.zip

qemu-deps:
	@command -v qemu-aarch64-static >/dev/null || { echo "installing qemu-user-static"; export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y qemu-user-static >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y qemu-user-static >/dev/null; }; }

layer-arm64-deps:
	@need=; \
	command -v $(ARM64_CC) >/dev/null || need="$$need gcc-aarch64-linux-gnu"; \
	dpkg-query -W -f='$${Status}' libseccomp-dev:arm64 2>/dev/null | grep -q 'ok installed' || need="$$need libseccomp-dev:arm64"; \
	if [ -n "$$need" ]; then \
		echo "installing$$need"; export DEBIAN_FRONTEND=noninteractive; \
		dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64; \
		apt-get update >/dev/null && apt-get install -y $$need >/dev/null; \
	fi
	@test -n "$$($(ARM64_CC) -print-file-name=libseccomp.a | grep /)" || { echo "no libseccomp.a for $(ARM64_CC)" >&2; exit 1; }

# Like the x86_64 layer; the binary cannot run here, so the policy is
# checked with the host's bootstrap (the policy format is the same).
$(DIST)/vigil-layer-arm64.zip: $(GOFILES) $(LAYER_POLICY) $(BIN)/bootstrap
	@rm -rf $(DIST)/layer-arm64 && mkdir -p $(DIST)/layer-arm64/vigil
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=$(ARM64_CC) $(GO) build $(LAYER_GOFLAGS) -ldflags '$(LAYER_LDFLAGS)' -o $(DIST)/layer-arm64/bootstrap ./bootstrap
	@out=$$(file $(DIST)/layer-arm64/bootstrap); echo "$$out"; \
		case "$$out" in *"ARM aarch64"*) ;; *) echo "bootstrap is not an ARM aarch64 binary" >&2; exit 1;; esac; \
		case "$$out" in *"statically linked"*) ;; *) echo "bootstrap is not statically linked" >&2; exit 1;; esac
	$(BIN)/bootstrap --check $(LAYER_POLICY) >/dev/null
	cp $(LAYER_POLICY) $(DIST)/layer-arm64/vigil/rules.toml
	chmod 0755 $(DIST)/layer-arm64/bootstrap $(DIST)/layer-arm64/vigil && chmod 0644 $(DIST)/layer-arm64/vigil/rules.toml
	touch -d 1980-01-02T00:00:00Z $(DIST)/layer-arm64/bootstrap $(DIST)/layer-arm64/vigil $(DIST)/layer-arm64/vigil/rules.toml
	rm -f $@ && cd $(DIST)/layer-arm64 && zip -X -q ../$(notdir $@) bootstrap vigil/ vigil/rules.toml
	@zip -sf $@

# The two example functions of fixtures/sam/template.yaml, each with its
# rules.toml: dist/sam/python (handler.py, exec wrapper) and dist/sam/go
# (handler, built from fixtures/functions/go, custom runtime). Then
# `sam deploy -t fixtures/sam/template.yaml --guided`.
sam: layer
	rm -rf $(DIST)/sam && mkdir -p $(DIST)/sam/python $(DIST)/sam/go
	cp fixtures/functions/python/handler.py $(DIST)/sam/python/
	cp fixtures/sam/rules.toml $(DIST)/sam/python/rules.toml
	cd fixtures/functions/go && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -tags lambda.norpc -o $(abspath $(DIST))/sam/go/handler .
	cp fixtures/sam/go.rules.toml $(DIST)/sam/go/rules.toml
	$(DIST)/layer-x86_64/bootstrap --check $(DIST)/sam/python/rules.toml >/dev/null
	$(DIST)/layer-x86_64/bootstrap --check $(DIST)/sam/go/rules.toml >/dev/null
