# acmebridge: the two set-up commands are `make run` and `make test`.
GO ?= go
BIN := bin/acmebridge

.PHONY: build run test deps unit e2e fmt vet

build:
	$(GO) build -o $(BIN) ./cmd/acmebridge

## run: the quickstart server (bolt store and local CA under ./acmebridge-data).
run: build
	./$(BIN) serve

## deps: install the real servers and clients the tests drive (Debian packages).
deps:
	@missing=""; \
	command -v certbot >/dev/null || missing="$$missing certbot"; \
	command -v lego >/dev/null || missing="$$missing lego"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

## test: every test: vet, unit and integration tests with -race, end-to-end with real clients.
test: deps vet
	$(GO) test -race -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')
