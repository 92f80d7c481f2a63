# acmebridge: the two set-up commands are `make run` and `make test`.
GO ?= go
BIN := bin/acmebridge

.PHONY: build run test deps unit e2e fmt vet lint vault-dev bench soak soak-http matrix fuzz fuzz-short security-report chaos-redis

# The Vault dev server the Vault tests run (test/vaultdev, its own Go module
# linking Vault's packages): built once into the cache, named by a hash of
# its sources, reused while they are unchanged. The tests find it through
# ACMEBRIDGE_VAULT_BIN (and build it themselves when it is unset and absent).
VAULT_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/acmebridge
VAULT_DEV_HASH := $(shell cat test/vaultdev/go.mod test/vaultdev/go.sum test/vaultdev/main.go | sha256sum | cut -c1-12)
VAULT_DEV_BIN := $(VAULT_CACHE)/vault-dev-$(VAULT_DEV_HASH)
ACMEBRIDGE_VAULT_BIN ?= $(VAULT_DEV_BIN)
export ACMEBRIDGE_VAULT_BIN

# Pebble, the ACME CA the upstream/acme and relay tests run (Let's
# Encrypt's test server), installed once; the tests find it through
# ACMEBRIDGE_PEBBLE_DIR (and install it themselves when it is absent).
PEBBLE_VERSION := v2.10.3
ACMEBRIDGE_PEBBLE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/acmebridge/pebble-$(PEBBLE_VERSION)
PEBBLE_DIR := $(ACMEBRIDGE_PEBBLE_DIR)
export ACMEBRIDGE_PEBBLE_DIR

# helm, which lints and renders the chart in deploy/helm (deploy/packaging_test.go
# finds it through ACMEBRIDGE_HELM_BIN), installed once from the Go module proxy.
HELM_VERSION := v3.22.0
HELM_DIR := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/acmebridge/helm-$(HELM_VERSION)
ACMEBRIDGE_HELM_BIN ?= $(HELM_DIR)/helm
export ACMEBRIDGE_HELM_BIN

# golangci-lint v2 with .golangci.yml (staticcheck, errcheck, gosec and the
# usual set), installed once from the Go module proxy like helm.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT_DIR := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/acmebridge/golangci-lint-$(GOLANGCI_LINT_VERSION)
GOLANGCI_LINT := $(GOLANGCI_LINT_DIR)/golangci-lint

build:
	$(GO) build -o $(BIN) ./cmd/acmebridge

## run: the quickstart server (bolt store and local CA under ./acmebridge-data).
run: build
	./$(BIN) serve

## deps: install the real servers and clients the tests drive (Debian packages: certbot, lego,
## redis, chromium, prometheus's promtool, systemd's systemd-analyze; Pebble and helm from the Go module proxy).
deps:
	@missing=""; \
	command -v certbot >/dev/null || missing="$$missing certbot"; \
	command -v lego >/dev/null || missing="$$missing lego"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@test -x $(PEBBLE_DIR)/pebble -a -x $(PEBBLE_DIR)/pebble-challtestsrv || { \
	  echo "installing Pebble $(PEBBLE_VERSION) into $(PEBBLE_DIR)"; \
	  GOBIN=$(PEBBLE_DIR) GOWORK=off GOFLAGS= $(GO) install \
	    github.com/letsencrypt/pebble/v2/cmd/pebble@$(PEBBLE_VERSION) \
	    github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$(PEBBLE_VERSION); }
	@test -x $(HELM_DIR)/helm || { \
	  echo "installing helm $(HELM_VERSION) into $(HELM_DIR)"; \
	  GOBIN=$(HELM_DIR) GOWORK=off GOFLAGS= $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); }
	@GO="$(GO)" bash test/matrix-deps.sh

## matrix: the client matrix (every ACME client x upstream kind, test/matrix_test.go),
## recorded in test/matrix.json and rendered into README.md by test/matrixgen.
matrix: deps vault-dev
	@ACMEBRIDGE_MATRIX_OUT=$(CURDIR)/test/matrix.json $(GO) test -count=1 -timeout 15m -run TestMatrix ./test/; \
	status=$$?; $(GO) run ./test/matrixgen -in test/matrix.json -readme README.md && exit $$status

## vault-dev: build the Vault dev server once (6 to 9 minutes cold on 2 cores; seconds after an edit).
vault-dev: $(ACMEBRIDGE_VAULT_BIN)

$(VAULT_DEV_BIN):
	@mkdir -p $(VAULT_CACHE)
	@echo "building the Vault dev server into $@ (6 to 9 minutes the first time)"
	@start=$$(date +%s); \
	cd test/vaultdev && GOWORK=off $(GO) build -trimpath -ldflags "-s -w" -o $@.tmp . && mv $@.tmp $@ && \
	echo "built the Vault dev server in $$(( $$(date +%s) - start ))s"

## test: every test: vet, lint, unit and integration tests with -race, end-to-end with real clients
## (Vault tests against the real dev server built by vault-dev), then the short fuzz pass.
test: deps vet lint vault-dev
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz-short

## fuzz-short: every fuzz target for 5 seconds (about a minute in all; the end of `make test`).
## fuzz: every fuzz target for 10 minutes. FUZZ_TARGETS=regexp limits either (test/fuzz.sh).
fuzz-short:
	GO=$(GO) FUZZTIME=5s FUZZMINIMIZETIME=100x test/fuzz.sh

fuzz:
	GO=$(GO) FUZZTIME=10m test/fuzz.sh

## security-report: run the hostile-request suite, the fuzz targets, the SSRF tests and the
## chaos tests, and write SECURITY.md from their results (test/security_report.sh).
security-report: deps
	GO=$(GO) test/security_report.sh

## bench: issuance throughput and CPU side by side with step-ca, Vault's own ACME
## and Pebble (test/bench/run.sh: CLIENTS, ORDERS, ROUNDS, CHALLENGE, POLLS, SPLIT, PROFILE, SERVERS, BASE_BIN, OUT, WAIT_IDLE, RUN_TIMEOUT).
## A measurement, not a test: never part of `make test`.
bench: deps vault-dev
	test/bench/run.sh

## soak: two simulated years of a fleet's renewals (1,000,000 issuances by default) through the
## domain core on a bolt file, with the retention sweep, printing the store's size every simulated
## month (test/soak; SOAK_FLAGS="-store redis -redis 127.0.0.1:6379" for Redis). soak-http: 100,000
## issuances over HTTP in real time, printing p50/p99 and the server's RSS every 10,000.
SOAK_FLAGS ?=
soak:
	$(GO) run ./test/soak $(SOAK_FLAGS)

soak-http:
	test/bench/soak-http.sh

## chaos-redis: Redis failing over or crashing under load (test/redisfailover_test.go): CHAOS_ROUNDS
## rounds per topology (Sentinel, one Redis with an AOF, Cluster), without and with the durability the
## README recommends, then a table of the promises that broke per topology and setting (test/chaosreport).
## `make test` runs one round of each, with durability, and fails on any broken promise.
## ACMEBRIDGE_CHAOS_SECOND_FAILOVER=1 (a second Sentinel failover while the killed master resyncs) and
## ACMEBRIDGE_CHAOS_PERSIST=1 (an AOF on the Sentinel's data nodes) vary the Sentinel runs.
CHAOS_ROUNDS ?= 5
chaos-redis: deps vault-dev
	@out=$$(mktemp); status=0; \
	for d in off on; do \
	  ACMEBRIDGE_CHAOS_ROUNDS=$(CHAOS_ROUNDS) ACMEBRIDGE_CHAOS_DURABILITY=$$d ACMEBRIDGE_CHAOS_OUT=$$out \
	    $(GO) test -count=1 -timeout 90m -run 'TestRedisChaos' ./test/ || status=1; \
	done; \
	$(GO) run ./test/chaosreport -in $$out; rm -f $$out; exit $$status

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }

## lint: golangci-lint v2 with .golangci.yml (about 4 minutes cold on 2 cores; installs it once).
lint:
	@test -x $(GOLANGCI_LINT) || { \
	  echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into $(GOLANGCI_LINT_DIR)"; \
	  GOBIN=$(GOLANGCI_LINT_DIR) GOWORK=off GOFLAGS= $(GO) install \
	    github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); }
	$(GOLANGCI_LINT) run ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
