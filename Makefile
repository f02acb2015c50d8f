# scached — see README.md. `make run` serves on a local socket; `make test`
# runs every test (root-only parts say SKIP when not root).

SHELL   := /bin/bash
GO      ?= go
PREFIX  ?= /usr
DESTDIR ?=
BIN     := bin/scached
RUNDIR  ?= $(CURDIR)/run
FUZZTIME ?=

GOFILES := $(shell find . -name '*.go' -not -path './.git/*')

.PHONY: all build run test check fmt-check vet staticcheck unit fuzz integration faults conformance root-tests e2e units selinux systemd-e2e bench soak clean

all: build

build: $(BIN)

$(BIN): $(GOFILES) go.mod go.sum
	$(GO) build -o $@ ./cmd/scached

# Serve on a local socket with a config directory of its own (no main.cf:
# Postfix's defaults). Stop with Ctrl-C.
run: build
	@mkdir -p $(RUNDIR)
	@echo "scached: listening on $(RUNDIR)/scached (config directory $(RUNDIR); Ctrl-C stops)"
	@echo "scached: point Postfix at it with a socket in its private/ directory, see README.md"
	exec $(BIN) -c $(RUNDIR) -listen $(RUNDIR)/scached -o "scached_authorized_users=root, $$(id -u)"

# Every test. The order goes from cheap to expensive.
test: check unit fuzz integration faults conformance root-tests
	@echo "make test: all passed"

check: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Pinned with a tool directive in go.mod.
staticcheck:
	$(GO) tool staticcheck ./...

# The cache once more without -race: race builds take the cache's memory
# from the Go heap, other builds from mmap(2) (pkg/cache/mem.go).
unit:
	$(GO) test -race -count=1 ./pkg/... ./cmd/...
	$(GO) test -count=1 ./pkg/cache ./pkg/server

# A short run of every fuzz target (make fuzz FUZZTIME=10m for a long one).
# By default a count of executions (about 5 s each here), not a duration:
# Go 1.26's fuzz coordinator can end a timed run with "context deadline
# exceeded" and no failing input (golang/go#75804).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadRequest$$' -fuzztime $(or $(FUZZTIME),100000x) ./pkg/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzParseNumber$$' -fuzztime $(or $(FUZZTIME),300000x) ./pkg/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzCacheOps$$' -fuzztime $(or $(FUZZTIME),20000x) ./pkg/cache
	$(GO) test -run '^$$' -fuzz '^FuzzServeConn$$' -fuzztime $(or $(FUZZTIME),10000x) ./pkg/server

# The real binary over real sockets: -listen, socket activation with
# re-activation, signals, main.cf.
integration:
	$(GO) test -race -count=1 ./test/integration/...

# Fault and hostile-input matrix: the real binary (built with -race inside
# the test) under disconnects, stalls, garbage, crowds and signals, with a
# canary client checking its answers throughout.
faults:
	$(GO) test -count=1 -timeout 5m -v ./test/faults | grep -E '^(--- |    --- |ok|FAIL|PASS)|^\||fault matrix|PASS, |BUG'; test $${PIPESTATUS[0]} -eq 0

# The differential suite: against an in-process scached and, as root with
# Postfix installed, against Postfix's own scache (TestPostfix says SKIP
# otherwise); then against the real binary.
conformance:
	$(GO) test -race -count=1 -v -run 'TestScached|TestPostfix|TestDifferences' ./test/conformance | grep -E '^(---|ok|FAIL|PASS)|passed|SKIP'; test $${PIPESTATUS[0]} -eq 0
	test/conformance/binary.sh

# Tests that need root: real smtp(8)/lmtp(8) deliveries through scached
# and Postfix's scache, the shipped units (verify and the security score),
# the SELinux module, and scached installed into a booted Debian 12 under
# systemd-nspawn. Each says SKIP loudly when it cannot run. (The
# real-journald tests run within unit and integration.)
root-tests: e2e units selinux systemd-e2e

e2e:
	test/postfix/e2e.sh

# The shipped units: systemd-analyze verify (any output fails) and the
# security exposure level asserted; make install/uninstall into a staging
# directory.
units:
	dist/systemd/verify.sh
	dist/install-check.sh

# The SELinux policy module: built with no warnings, linked into a private
# copy of the full policy with neverallow checks, rules asserted.
selinux:
	dist/selinux/check.sh

# scached installed with make install into a booted Debian 12 (systemd-nspawn,
# a debootstrap root built once at /var/tmp/scached-root and reused), checked
# as an operator would: activation, idle exit and 50 re-activations, real
# Postfix delivering through it, the journal, stop/restart, the sandbox
# from /proc, activation latency hardened vs unhardened (~2.5 min warm).
systemd-e2e:
	test/systemd/e2e.sh

# Side by side with Postfix's scache and the limit mode, A/B alternated;
# writes docs/benchmarks.md and its plot (root, Postfix installed; ~7 min;
# QUICK=1 for a short smoke run). Never part of make test.
bench:
	test/bench/run.sh

# Soak: scached under a moderate realistic load with expiry churn for 10
# minutes (SOAK_DURATION=60s for a smoke run, written to /tmp/scached-soak);
# descriptors, RSS, threads and goroutines must stay flat and every saved
# descriptor be accounted for, at expiry and at SIGTERM; writes docs/soak.md,
# .csv, .png (root: a private journald carries the goroutine figures).
# Never part of make test.
soak:
	test/soak/run.sh

clean:
	rm -rf bin run

# make install / make uninstall (DESTDIR, PREFIX): see dist/install.mk.
include dist/install.mk
