# runmini: build, install and test.
#
#   make                 build bin/runmini, bin/containerd-shim-mini-v2 and bin/runmini-init
#                        (pure Go), bin/runmini-init-nsenter (with the cgo constructor) and
#                        bin/runmini-seccomp (C, libseccomp), all static
#   make install         install it into $(DESTDIR)$(PREFIX)/bin
#   make test            install missing prerequisites (as root), build, then run
#                        lint, unit, integration and conformance tests
#   make demo            drive bin/runmini by hand (scripts/demo.sh), then the shim
#                        under a private containerd (scripts/demo-containerd.sh)
#   make bench           runmini vs runc/crun start-path tables + Go benchmarks
#   make clean           remove build output; make distclean also drops the caches
#
# The steps of `make test` are targets of their own (prereqs, lint, unit,
# integration, validation-suite, conformance). The tests run against
# bin/runmini unless RUNTIME_UNDER_TEST (a path, or a name such as runc) or
# RUNMINI_BINARY names another runtime; CONFORMANCE_RUN, CONFORMANCE_JOBS
# and CONFORMANCE_TIMEOUT tune the conformance run (tests/conformance/doc.go).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := all

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
GO ?= go

# Build and module caches live outside the checkout so that a fresh clone
# (CI) on the same machine starts warm.
RUNMINI_CACHE ?= /var/tmp/runmini-cache
export RUNMINI_CACHE
export GOCACHE ?= $(RUNMINI_CACHE)/go-build
export GOMODCACHE ?= $(RUNMINI_CACHE)/gomod
export GOFLAGS := -mod=mod
export GOTOOLCHAIN := local
export RUNTIME_UNDER_TEST RUNMINI_BINARY CONFORMANCE_RUN CONFORMANCE_JOBS CONFORMANCE_TIMEOUT

BIN := bin/runmini
# Static, so the binary runs anywhere and its sealed copy needs no loader.
# netgo/osusergo keep glibc's NSS (which cannot be linked statically) out.
GO_BUILD_FLAGS := -trimpath -tags netgo,osusergo,urfave_cli_no_docs,urfave_cli_no_suggest
GO_LDFLAGS := -s -w -linkmode external -extldflags -static

step = @printf '\n==> %s\n' "$(1)"

.PHONY: all
all: $(BIN)

# Always handed to go build, which knows better than make whether
# anything changed.
.PHONY: $(BIN)
$(BIN):
	@libc_a=$$($${CC:-gcc} -print-file-name=libc.a); \
	if [[ $$libc_a != /* ]]; then \
		echo "no libc.a for the static link: install libc6-dev (or run make prereqs)" >&2; exit 1; \
	fi
	CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -ldflags '-s -w' -o $@ ./cmd/runmini
	$${CC:-gcc} -O2 -Wall -Wextra -Werror -static -o $@-seccomp cmd/runmini-seccomp/main.c -lseccomp
	CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -ldflags '-s -w' -o $@-init ./cmd/runmini-init
	CGO_ENABLED=1 $(GO) build $(GO_BUILD_FLAGS) -ldflags '$(GO_LDFLAGS)' -o $@-init-nsenter ./cmd/runmini-init
	CGO_ENABLED=0 $(GO) build $(GO_BUILD_FLAGS) -ldflags '-s -w' -o bin/containerd-shim-mini-v2 ./cmd/containerd-shim-mini-v2

# runmini-init, runmini-init-nsenter and runmini-seccomp must sit beside
# runmini and the shim (and come from the same build): every container's
# first process runs from the first, every exec from the second, and
# seccomp profiles are compiled with the third.
.PHONY: install
install: $(BIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/runmini
	install -D -m 0755 $(BIN)-init $(DESTDIR)$(BINDIR)/runmini-init
	install -D -m 0755 $(BIN)-init-nsenter $(DESTDIR)$(BINDIR)/runmini-init-nsenter
	install -D -m 0755 $(BIN)-seccomp $(DESTDIR)$(BINDIR)/runmini-seccomp
	install -D -m 0755 bin/containerd-shim-mini-v2 $(DESTDIR)$(BINDIR)/containerd-shim-mini-v2

.PHONY: test
test:
	$(call step,prerequisites)
	@$(MAKE) --no-print-directory prereqs
	$(call step,build $(BIN))
	@$(MAKE) --no-print-directory all
	$(call step,lint: gofmt and go vet)
	@$(MAKE) --no-print-directory lint
	$(call step,unit tests)
	@$(MAKE) --no-print-directory unit
	$(call step,integration tests (tests/))
	@$(MAKE) --no-print-directory integration
	$(call step,OCI validation suite: build (cached))
	@$(MAKE) --no-print-directory validation-suite
	$(call step,OCI validation suite: run)
	@$(MAKE) --no-print-directory conformance
	$(call step,make test: all steps passed)

.PHONY: prereqs
prereqs:
	scripts/prereqs.sh

.PHONY: lint
lint:
	@unformatted=$$(find . -name '*.go' -not -path './.git/*' -not -path './bin/*' -exec gofmt -l {} +); \
	if [[ -n $$unformatted ]]; then echo "not gofmt-ed:" $$unformatted >&2; exit 1; fi
	$(GO) vet ./...

# Everything but tests/, which needs a built runtime.
.PHONY: unit
unit:
	@pkgs=$$($(GO) list ./... | grep -v '/tests\(/\|$$\)' || true); \
	if [[ -z $$pkgs ]]; then echo "no unit test packages"; exit 0; fi; \
	echo "$(GO) test" $$pkgs; \
	$(GO) test $$pkgs

# The containerd releases the shim's end-to-end tests run against, built
# from the Go module proxy once and cached (1.6 is Debian's package).
CONTAINERD_VERSIONS ?= 1.7.35 2.2.9 2.4.2
.PHONY: containerd-builds
containerd-builds:
	scripts/build-containerd.sh $(CONTAINERD_VERSIONS)

# tests/ but the conformance suite: real containers, so never from cache.
.PHONY: integration
integration: containerd-builds
	@pkgs=$$($(GO) list ./tests/... | grep -v '/tests/conformance$$' || true); \
	if [[ -z $$pkgs ]]; then echo "no integration test packages"; exit 0; fi; \
	echo "$(GO) test -count=1 -timeout 15m" $$pkgs; \
	$(GO) test -count=1 -timeout 15m $$pkgs

.PHONY: validation-suite
validation-suite:
	scripts/build-validation.sh

.PHONY: conformance
conformance: validation-suite
	$(GO) test -count=1 -v -timeout 20m ./tests/conformance

# Measurements, never tests: runmini against runc (and crun where it runs on
# this host) in one interleaved run, then the shim against the runc shim
# under each containerd of BENCH_CONTAINERD, then the Go benchmarks of the
# hot paths. BENCH_N runs per latency; BENCH_FLAGS passes more flags to
# tests/bench (go run ./tests/bench -h), such as a quick run:
#   make bench BENCH_N=3 BENCH_FLAGS='-mem 5 -pod 4 -conc 10 -rounds 1 -io-bytes 64M'
BENCH_N ?= 20
BENCH_CONTAINERD ?= 1.6 2.4.2
BENCH_FLAGS ?=
.PHONY: bench
bench: prereqs all
	scripts/prereqs.sh runc crun
	$(if $(strip $(BENCH_CONTAINERD)),scripts/build-containerd.sh $(BENCH_CONTAINERD))
	$(call step,runtime start path and through containerd (BENCH_N=$(BENCH_N)))
	$(GO) run ./tests/bench -n $(BENCH_N) -containerd '$(BENCH_CONTAINERD)' $(BENCH_FLAGS)
	$(call step,Go benchmarks of the hot paths)
	$(GO) test -run '^$$' -bench . -benchtime 200x ./spec ./cgroups ./mount ./libcontainer/...

.PHONY: demo
demo: prereqs all
	scripts/demo.sh
	scripts/demo-containerd.sh

.PHONY: clean
clean:
	rm -rf bin

# The module cache is read-only on disk; go clean knows how to remove it.
.PHONY: distclean
distclean: clean
	-$(GO) clean -modcache
	rm -rf $(RUNMINI_CACHE)
