# acmebridge: the two set-up commands are `make run` and `make test`.
GO ?= go
BIN := bin/acmebridge

.PHONY: build run test deps unit e2e fmt vet

build:
	$(GO) build -o $(BIN) ./cmd/acmebridge

## run: the quickstart server (bolt store and local CA under ./acmebridge-data).
run: build
	./$(BIN) serve

## deps: install the real clients the end-to-end tests drive (Debian packages).
deps:
	@command -v certbot >/dev/null && command -v lego >/dev/null || { \
	  echo "installing certbot and lego from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq certbot lego >/dev/null; }

## test: every test: vet, unit and integration tests with -race, end-to-end with real clients.
test: deps vet
	$(GO) test -race -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')
