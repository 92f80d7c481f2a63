#!/usr/bin/env bash
# Installs the ACME clients of the client matrix (test/matrix_test.go) that
# are not already here. Debian packages come from apt; the clients Debian
# does not ship at the wanted version are built once into a cache folder
# named by version, where the tests look for them:
#
#   $CACHE/lego-v4.25.2/lego       lego 4.25 (ARI, profiles), built in a throwaway module
#   $CACHE/caddy-v2.11.9/caddy     Caddy 2.11 (ARI, profiles)
#   $CACHE/step-v0.30.2/step       the step CLI (shared with test/bench/run.sh)
#
# CACHE is ${XDG_CACHE_HOME:-$HOME/.cache}/acmebridge. Run by `make deps`;
# safe to run again (each step is skipped when its result is present).
set -euo pipefail

CACHE=${ACMEBRIDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/acmebridge}
GO=${GO:-go}
LEGO_VERSION=v4.25.2
CADDY_VERSION=v2.11.9
STEP_VERSION=v0.30.2

log() { echo "matrix-deps: $*" >&2; }

# --- Debian packages ---------------------------------------------------------
missing=""
command -v certbot >/dev/null || missing="$missing certbot"
command -v lego >/dev/null || missing="$missing lego"
command -v dehydrated >/dev/null || missing="$missing dehydrated"
command -v uacme >/dev/null || missing="$missing uacme"
test -x /usr/bin/caddy || missing="$missing caddy"
command -v curl >/dev/null || missing="$missing curl"
command -v openssl >/dev/null || missing="$missing openssl"
if [ -n "$missing" ]; then
	log "installing from Debian:$missing"
	apt-get update -qq
	# The caddy package would start a service where an init system runs;
	# the tests start their own.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- Go-built clients ----------------------------------------------------------
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0

# lego 4.25: its module's go.mod has replace-free requirements, but the CLI
# is built inside a throwaway module so its graph never touches ours.
LEGO_DIR=$CACHE/lego-$LEGO_VERSION
if ! [ -x "$LEGO_DIR/lego" ]; then
	log "building lego $LEGO_VERSION into $LEGO_DIR (about 5 minutes the first time)"
	start=$(date +%s)
	mkdir -p "$LEGO_DIR"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && $GO mod init legobuild >/dev/null 2>&1 &&
		$GO get github.com/go-acme/lego/v4/cmd/lego@$LEGO_VERSION >/dev/null 2>&1 &&
		$GO build -trimpath -ldflags "-s -w" -o "$LEGO_DIR/lego.tmp" github.com/go-acme/lego/v4/cmd/lego) &&
		mv "$LEGO_DIR/lego.tmp" "$LEGO_DIR/lego"
	rm -rf "$tmp"
	trap - EXIT
	log "built lego $LEGO_VERSION in $(($(date +%s) - start))s"
fi

CADDY_DIR=$CACHE/caddy-$CADDY_VERSION
if ! [ -x "$CADDY_DIR/caddy" ]; then
	log "building Caddy $CADDY_VERSION into $CADDY_DIR (about 3 minutes the first time)"
	start=$(date +%s)
	GOBIN=$CADDY_DIR $GO install -trimpath -ldflags "-s -w" github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION
	log "built Caddy $CADDY_VERSION in $(($(date +%s) - start))s"
fi

STEP_DIR=$CACHE/step-$STEP_VERSION
if ! [ -x "$STEP_DIR/step" ]; then
	log "building the step CLI $STEP_VERSION into $STEP_DIR"
	start=$(date +%s)
	GOBIN=$STEP_DIR $GO install -trimpath -ldflags "-s -w" github.com/smallstep/cli/cmd/step@$STEP_VERSION
	log "built step $STEP_VERSION in $(($(date +%s) - start))s"
fi
