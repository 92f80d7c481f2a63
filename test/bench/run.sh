#!/usr/bin/env bash
# test/bench/run.sh (make bench): issuance throughput and cost of acmebridge
# side by side with the servers users would pick instead, on this machine,
# in one run. Never part of `make test`.
#
# Starts on loopback, with comparable signing set-ups (ECDSA P-256 CA keys
# and certificate keys; in-memory or local-disk storage):
#   acmebridge-bolt   acmebridge, local CA, bolt file
#   acmebridge-redis  acmebridge, local CA, Redis (no persistence)
#   acmebridge-redis-durable  the same on a Redis master with one replica,
#                     every write waiting for it (store.redis.durability:
#                     replicas 1); not in the default list
#   acmebridge-bolt-base  acmebridge-bolt run from BASE_BIN (a binary built
#                     from another commit), to measure a change in
#                     alternated pairs in one run; not in the default list
#   acmebridge-vault  acmebridge in front of the Vault dev server (pki/sign)
#   vault-acme        Vault's own ACME on the same dev server
#   step-ca           step-ca v0.30.2, ACME provisioner, badger on disk
#   pebble            Pebble v2.10.3 (VA without sleeps, no nonce rejection,
#                     no authorization reuse)
# and runs the same `acmebridge bench` against each (CLIENTS clients x
# ORDERS issuances), ROUNDS times, alternating the order of the servers
# every round so drift cancels out; raw Vault pki/sign at the same
# concurrency runs in every round too. Prints one table (medians over the
# rounds, ratios against acmebridge-bolt), writes it as Markdown and keeps
# every JSON result under OUT.
#
# Environment: CLIENTS (16), ORDERS (20), ROUNDS (5), CHALLENGE (http-01:
# every server fetches the bench's own responder, as a fleet's clients
# answer; dns-01: every server validates through the bench's DNS server;
# http-01 needs port 80 free for Vault's ACME, which always validates
# there), POLLS (client: read the authorization and the order once more
# after they said valid, as certbot does, 7 requests per issuance; none:
# only the requests the answers make necessary, 5), PROFILE (a directory:
# every acmebridge server writes a CPU profile of its whole run there,
# serve --cpuprofile, and the table is followed by each profile's split
# into kinds of work, benchtool profile-split), SPLIT (1: servers on CPU 0, the load
# generator on CPU 1), SERVERS
# (the list above), OUT (a fresh directory under /tmp), WAIT_IDLE (0: how
# many seconds to wait for other work to leave the CPUs idle first),
# RUN_TIMEOUT (300: seconds one bench run may take).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
CLIENTS=${CLIENTS:-16}
ORDERS=${ORDERS:-20}
ROUNDS=${ROUNDS:-5}
CHALLENGE=${CHALLENGE:-http-01}
POLLS=${POLLS:-client}
# SPLIT=1 pins every server process (and Redis, Vault) to CPU 0 and the
# load generator to CPU 1, each with GOMAXPROCS=1: on a 2-core machine the
# client then cannot take the server's CPU, so a client-bound ratio shows
# as one (each server's figures are what one core of it serves).
SPLIT=${SPLIT:-0}
SRV_PIN=()
CLI_PIN=()
if [ "$SPLIT" = 1 ]; then
	SRV_PIN=(taskset -c 0 env GOMAXPROCS=1)
	CLI_PIN=(taskset -c 1 env GOMAXPROCS=1)
fi
SERVERS=${SERVERS:-"acmebridge-bolt acmebridge-redis acmebridge-vault vault-acme step-ca pebble"}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/acmebridge
WORK=$(mktemp -d /tmp/acmebridge-bench.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
STEP_VERSION=v0.30.2
PEBBLE_VERSION=v2.10.3
BASELINE=acmebridge-bolt

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for p in ${REDIS_PIDFILE:-} ${DURABLE_PIDFILES:-}; do
		[ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
	done
}
trap cleanup EXIT
has() { case " $SERVERS " in *" $1 "*) return 0 ;; esac; return 1; }

# --- tools: built or installed here when missing ------------------------
STEP_DIR=$CACHE/step-$STEP_VERSION
PEBBLE_DIR=$CACHE/pebble-$PEBBLE_VERSION
STEP_INSTALL_PID=""
if has step-ca && ! [ -x "$STEP_DIR/step-ca" -a -x "$STEP_DIR/step" ]; then
	# The longest build (minutes): in the background while the rest starts.
	log "installing step-ca and step $STEP_VERSION into $STEP_DIR (several minutes the first time)"
	mkdir -p "$STEP_DIR"
	(CGO_ENABLED=0 GOBIN=$STEP_DIR go install github.com/smallstep/certificates/cmd/step-ca@$STEP_VERSION &&
		CGO_ENABLED=0 GOBIN=$STEP_DIR go install github.com/smallstep/cli/cmd/step@$STEP_VERSION) >"$WORK/step-install.log" 2>&1 &
	STEP_INSTALL_PID=$!
fi
if has pebble && ! [ -x "$PEBBLE_DIR/pebble" ]; then
	log "installing pebble $PEBBLE_VERSION into $PEBBLE_DIR"
	mkdir -p "$PEBBLE_DIR"
	GOBIN=$PEBBLE_DIR go install github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION
fi
if (has acmebridge-vault || has vault-acme) && ! command -v openssl >/dev/null; then
	log "installing openssl from Debian (Vault's TLS certificate)"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi
if { has acmebridge-redis || has acmebridge-redis-durable; } && ! command -v redis-server >/dev/null; then
	log "installing redis-server from Debian"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
if has acmebridge-vault || has vault-acme; then
	if [ -z "${ACMEBRIDGE_VAULT_BIN:-}" ]; then
		hash=$(cat test/vaultdev/go.mod test/vaultdev/go.sum test/vaultdev/main.go | sha256sum | cut -c1-12)
		ACMEBRIDGE_VAULT_BIN=$CACHE/vault-dev-$hash
	fi
	[ -x "$ACMEBRIDGE_VAULT_BIN" ] || make -s vault-dev
fi
log "building acmebridge and benchtool"
go build -o "$WORK/acmebridge" ./cmd/acmebridge
go build -o "$WORK/benchtool" ./test/bench/benchtool
AB=$WORK/acmebridge
BT=$WORK/benchtool

# Ports: HTTP_PORT is where every server validates http-01 (Vault: 80),
# DNS_PORT the bench's DNS server every server resolves through.
read -r HTTP_PORT DNS_PORT <<<"$($BT ports 2)"
DOMAIN=bench.test

declare -A DIR CA PIDOF HTTPP ADMIN
start_bg() { # name logfile cmd...: start a server in the background, remember its pid
	local name=$1 logf=$2
	shift 2
	"${SRV_PIN[@]}" "$@" >"$logf" 2>&1 &
	PIDS+=($!)
	PIDOF[$name]=$!
}

# --- Vault dev server (TLS), PKI and its own ACME ----------------------
if has acmebridge-vault || has vault-acme; then
	read -r VP <<<"$($BT ports 1)"
	VDIR=$WORK/vault
	mkdir -p "$VDIR"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -keyout "$VDIR/key.pem" -out "$VDIR/cert.pem" 2>/dev/null
	VAULT_URL=https://127.0.0.1:$VP
	VAULT_TOKEN=bench-root
	start_bg vault "$VDIR/vault.log" "$ACMEBRIDGE_VAULT_BIN" -addr "127.0.0.1:$VP" -root-token "$VAULT_TOKEN" \
		-tls-cert "$VDIR/cert.pem" -tls-key "$VDIR/key.pem"
	$BT wait -url "$VAULT_URL/v1/sys/health" -ca-file "$VDIR/cert.pem" || { cat "$VDIR/vault.log"; die "vault did not start"; }
	$BT vault-setup -addr "$VAULT_URL" -token "$VAULT_TOKEN" -ca-file "$VDIR/cert.pem" -domain "$DOMAIN" \
		-acme-dns "127.0.0.1:$DNS_PORT"
	printf '%s' "$VAULT_TOKEN" >"$VDIR/token"
	if has vault-acme; then
		DIR[vault-acme]=$VAULT_URL/v1/pki/acme/directory
		CA[vault-acme]=$VDIR/cert.pem
		PIDOF[vault-acme]=${PIDOF[vault]}
		HTTPP[vault-acme]=80
	fi
	log "vault dev server at $VAULT_URL"
fi

# --- Redis --------------------------------------------------------------
if has acmebridge-redis; then
	read -r RP <<<"$($BT ports 1)"
	REDIS_PIDFILE=$WORK/redis.pid
	"${SRV_PIN[@]}" redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
		--pidfile "$REDIS_PIDFILE" --logfile "$WORK/redis.log"
	for _ in $(seq 50); do redis-cli -p "$RP" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
	redis-cli -p "$RP" ping | grep -q PONG || die "redis did not start"
	REDIS_PID=$(cat "$REDIS_PIDFILE")
	log "redis on 127.0.0.1:$RP (pid $REDIS_PID)"
fi

# A master and its replica, for acmebridge-redis-durable.
if has acmebridge-redis-durable; then
	read -r DMP DRP <<<"$($BT ports 2)"
	DURABLE_PIDFILES="$WORK/redis-master.pid $WORK/redis-replica.pid"
	"${SRV_PIN[@]}" redis-server --port "$DMP" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
		--pidfile "$WORK/redis-master.pid" --logfile "$WORK/redis-master.log"
	"${SRV_PIN[@]}" redis-server --port "$DRP" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
		--pidfile "$WORK/redis-replica.pid" --logfile "$WORK/redis-replica.log" --replicaof 127.0.0.1 "$DMP"
	for _ in $(seq 100); do redis-cli -p "$DMP" info replication 2>/dev/null | grep -q 'state=online' && break; sleep 0.1; done
	redis-cli -p "$DMP" info replication | grep -q 'state=online' || die "the redis replica did not come online"
	DURABLE_REDIS_PIDS="$(cat "$WORK/redis-master.pid") $(cat "$WORK/redis-replica.pid")"
	log "redis master on 127.0.0.1:$DMP, replica on 127.0.0.1:$DRP"
fi

# --- acmebridge ----------------------------------------------------------
start_acmebridge() { # name extra-yaml [binary]
	local name=$1 extra=$2 bin=${3:-$AB} d=$WORK/$1 p a
	read -r p a <<<"$($BT ports 2)"
	mkdir -p "$d"
	cat >"$d/acmebridge.yaml" <<EOF
data_dir: $d/data
server:
  listen: "127.0.0.1:$p"
  external_url: "https://127.0.0.1:$p"
admin:
  listen: "127.0.0.1:$a"
validation:
  http_port: $HTTP_PORT
  dns_resolvers: ["127.0.0.1:$DNS_PORT"]
  allow_private_addresses: true
log:
  level: warn
$extra
EOF
	local prof=()
	[ -n "${PROFILE:-}" ] && mkdir -p "$PROFILE" && prof=(--cpuprofile "$PROFILE/$name.pprof")
	start_bg "$name" "$d/serve.log" "$bin" serve --config "$d/acmebridge.yaml" "${prof[@]}"
	$BT wait -url "http://127.0.0.1:$a/readyz" || { cat "$d/serve.log"; die "$name did not start"; }
	DIR[$name]=https://127.0.0.1:$p/directory
	ADMIN[$name]=http://127.0.0.1:$a
	CA[$name]=$d/data/ca.pem
	HTTPP[$name]=$HTTP_PORT
	log "$name at ${DIR[$name]} (pid ${PIDOF[$name]})"
}
has acmebridge-bolt && start_acmebridge acmebridge-bolt ""
if has acmebridge-bolt-base; then
	[ -x "${BASE_BIN:-}" ] || die "acmebridge-bolt-base needs BASE_BIN, an acmebridge binary built from the commit to compare with"
	start_acmebridge acmebridge-bolt-base "" "$BASE_BIN"
fi
if has acmebridge-redis; then
	mkdir -p "$WORK/acmebridge-redis"
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/acmebridge-redis/store.key"
	start_acmebridge acmebridge-redis "store:
  driver: redis
  encryption_key_file: $WORK/acmebridge-redis/store.key
  redis: {addrs: [\"127.0.0.1:$RP\"], key_prefix: \"bench:\"}"
	REDIS_SERVER_PIDS="--server-pid $REDIS_PID"
fi
if has acmebridge-redis-durable; then
	mkdir -p "$WORK/acmebridge-redis-durable"
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/acmebridge-redis-durable/store.key"
	start_acmebridge acmebridge-redis-durable "store:
  driver: redis
  encryption_key_file: $WORK/acmebridge-redis-durable/store.key
  redis: {addrs: [\"127.0.0.1:$DMP\"], key_prefix: \"bench:\", durability: {replicas: 1}}"
fi
has acmebridge-vault && start_acmebridge acmebridge-vault "upstreams:
  - name: vault
    type: vault
    vault: {address: \"$VAULT_URL\", ca_file: \"$VDIR/cert.pem\", token_file: \"$VDIR/token\", mount: pki, role: bench, mode: sign}
policy:
  default: {upstreams: [vault]}"

# --- Pebble ---------------------------------------------------------------
if has pebble; then
	read -r PP PM <<<"$($BT ports 2)"
	PEBBLE_SRC=$(go mod download -json github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -d "$PEBBLE_SRC/test/certs" ] || die "pebble's test certificates not found (go mod download)"
	mkdir -p "$WORK/pebble"
	cat >"$WORK/pebble/config.json" <<EOF
{"pebble": {"listenAddress": "127.0.0.1:$PP", "managementListenAddress": "127.0.0.1:$PM",
  "certificate": "$PEBBLE_SRC/test/certs/localhost/cert.pem", "privateKey": "$PEBBLE_SRC/test/certs/localhost/key.pem",
  "httpPort": $HTTP_PORT, "tlsPort": $HTTP_PORT, "ocspResponderURL": "", "externalAccountBindingRequired": false,
  "keyAlgorithm": "ecdsa", "profiles": {"default": {"description": "bench", "validityPeriod": 7776000}}}}
EOF
	DIR[pebble]=https://127.0.0.1:$PP/dir
	CA[pebble]=$PEBBLE_SRC/test/certs/pebble.minica.pem
	HTTPP[pebble]=$HTTP_PORT
	# Pebble keeps everything in memory and, under this load, has been seen
	# to stop answering newOrder for good after some 1,300 orders: it starts
	# afresh before each of its rounds.
	start_pebble() {
		if [ -n "${PIDOF[pebble]:-}" ]; then
			kill "${PIDOF[pebble]}" 2>/dev/null || true
			wait "${PIDOF[pebble]}" 2>/dev/null || true
		fi
		PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
			start_bg pebble "$WORK/pebble/pebble.log" "$PEBBLE_DIR/pebble" -config "$WORK/pebble/config.json" -dnsserver "127.0.0.1:$DNS_PORT"
		$BT wait -url "${DIR[pebble]}" -ca-file "${CA[pebble]}" || { cat "$WORK/pebble/pebble.log"; die "pebble did not start"; }
	}
	start_pebble
	log "pebble at ${DIR[pebble]} (pid ${PIDOF[pebble]})"
fi

# --- step-ca ---------------------------------------------------------------
if has step-ca; then
	if [ -n "$STEP_INSTALL_PID" ]; then
		log "waiting for the step-ca build"
		wait "$STEP_INSTALL_PID" || { cat "$WORK/step-install.log"; die "step-ca install failed"; }
	fi
	read -r SP <<<"$($BT ports 1)"
	export STEPPATH=$WORK/step
	mkdir -p "$STEPPATH"
	echo bench-password >"$WORK/step-pw"
	"$STEP_DIR/step" ca init --name bench --dns 127.0.0.1 --address "127.0.0.1:$SP" --provisioner admin \
		--password-file "$WORK/step-pw" --provisioner-password-file "$WORK/step-pw" --acme \
		--deployment-type standalone >"$WORK/step-init.log" 2>&1 || { cat "$WORK/step-init.log"; die "step ca init failed"; }
	start_bg step-ca "$WORK/step-ca.log" "$STEP_DIR/step-ca" "$STEPPATH/config/ca.json" --password-file "$WORK/step-pw" \
		--resolver "127.0.0.1:$DNS_PORT" --insecure --acme-http-port "$HTTP_PORT"
	DIR[step-ca]=https://127.0.0.1:$SP/acme/acme/directory
	CA[step-ca]=$STEPPATH/certs/root_ca.crt
	HTTPP[step-ca]=$HTTP_PORT
	$BT wait -url "${DIR[step-ca]}" -ca-file "${CA[step-ca]}" || { cat "$WORK/step-ca.log"; die "step-ca did not start"; }
	log "step-ca at ${DIR[step-ca]} (pid ${PIDOF[step-ca]})"
fi

# Vault's ACME validates http-01 on port 80 only.
if has vault-acme && [ "$CHALLENGE" = http-01 ] && (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null; then
	log "port 80 is taken: vault-acme left out of an http-01 run (use CHALLENGE=dns-01)"
	SERVERS=${SERVERS//vault-acme/}
fi

# --- rounds ---------------------------------------------------------------
POLL_FLAGS=()
case $POLLS in
client) POLL_FLAGS=(--client-polls) ;;
none) ;;
*) die "POLLS=$POLLS: want client or none" ;;
esac
store_ops() { # name
	$BT storeops -url "${ADMIN[$1]}/metrics"
}
run_one() { # name round
	local name=$1 round=$2 f=$OUT/$1-$2.json pids=(--server-pid "${PIDOF[$1]}") rc=0 before after ops_before
	[ "$name" = acmebridge-redis ] && pids+=(--server-pid "$REDIS_PID")
	if [ "$name" = acmebridge-redis-durable ]; then
		for p in $DURABLE_REDIS_PIDS; do pids+=(--server-pid "$p"); done
	fi
	[ "$name" = acmebridge-vault ] && pids+=(--server-pid "${PIDOF[vault]}")
	[ "$name" = pebble ] && [ "$round" -gt 1 ] && start_pebble && pids=(--server-pid "${PIDOF[pebble]}")
	[ "$name" = acmebridge-redis ] && before=$(redis-cli -p "$RP" info stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p') &&
		ops_before=$(store_ops "$name")
	# A server that stops answering costs RUN_TIMEOUT, not an issuance
	# timeout per order: on SIGTERM the bench prints what it has.
	timeout -s TERM "${RUN_TIMEOUT:-300}" "${CLI_PIN[@]}" "$AB" bench --directory "${DIR[$name]}" --ca-bundle "${CA[$name]}" --clients "$CLIENTS" --orders "$ORDERS" \
		--challenge "$CHALLENGE" --http-port "${HTTPP[$name]}" --dns-server "127.0.0.1:$DNS_PORT" --domain "$DOMAIN" \
		"${pids[@]}" "${POLL_FLAGS[@]}" --label "$name" --json --no-progress >"$f" 2>"$OUT/$name-$round.err" || rc=$?
	if [ "$name" = acmebridge-redis ]; then
		after=$(redis-cli -p "$RP" info stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p')
		echo "$(( after - before - 1 )) $($BT summary -issued "$f") $(( $(store_ops "$name") - ops_before ))" >>"$OUT/redis-commands.txt"
	fi
	[ -s "$f" ] || { cat "$OUT/$name-$round.err" >&2; die "$name: bench produced no result"; }
	log "round $round $name: $($BT summary "$f")$([ $rc = 0 ] || echo " (exit $rc)")"
}
run_sign() { # round
	local f=$OUT/vault-sign-$1.json
	$BT vault-sign -addr "$VAULT_URL" -token "$VAULT_TOKEN" -ca-file "$VDIR/cert.pem" -domain "$DOMAIN" \
		-clients "$CLIENTS" -count $((CLIENTS * ORDERS)) -server-pid "${PIDOF[vault]}" >"$f"
	log "round $1 vault pki/sign: $($BT summary "$f")"
}

read -r -a order <<<"$SERVERS"
log "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); $(go version | cut -d' ' -f3)"
busy() { # percent of all CPUs busy over 2 s (the servers here are idle)
	local a b
	read -r -a a < <(grep '^cpu ' /proc/stat)
	sleep 2
	read -r -a b < <(grep '^cpu ' /proc/stat)
	local total=0 idle i
	for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
	idle=$((b[4] - a[4] + b[5] - a[5]))
	echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
BUSY_BEFORE=$(busy)
waited=0
while [ "$BUSY_BEFORE" -gt 10 ] && [ "$waited" -lt "${WAIT_IDLE:-0}" ]; do
	log "CPUs $BUSY_BEFORE% busy with other work: waiting for quiet (WAIT_IDLE=${WAIT_IDLE:-0}s)"
	sleep 10
	waited=$((waited + 12))
	BUSY_BEFORE=$(busy)
done
log "$CHALLENGE (polls: $POLLS, split: $SPLIT), $CLIENTS clients x $ORDERS orders, $ROUNDS rounds; results in $OUT; CPU busy before the runs: $BUSY_BEFORE%"
[ "$BUSY_BEFORE" -le 10 ] || log "warning: other work keeps the CPUs $BUSY_BEFORE% busy: the figures are skewed"
for round in $(seq "$ROUNDS"); do
	list=("${order[@]}")
	if (( round % 2 == 0 )); then # every other round backwards
		list=()
		for ((i = ${#order[@]} - 1; i >= 0; i--)); do list+=("${order[i]}"); done
	fi
	for s in "${list[@]}"; do run_one "$s" "$round"; done
	if [ -n "${VAULT_URL:-}" ]; then run_sign "$round"; fi
done

{
	echo
	echo "$CHALLENGE (polls: $POLLS, split: $SPLIT), $CLIENTS clients x $ORDERS orders, median of $ROUNDS rounds; $(nproc) cores; $(date -u +%Y-%m-%d); CPU busy before the runs: $BUSY_BEFORE%, after: $(busy)%"
	$BT compare -baseline "$BASELINE" -pair acmebridge-bolt:step-ca -pair acmebridge-vault:vault-acme "$OUT"/*.json
	if [ -f "$OUT/redis-commands.txt" ]; then
		awk '{c += $1; n += $2; o += $3} END {if (n) printf "Redis commands executed per issuance (acmebridge-redis; INFO total_commands_processed, so the calls inside Lua scripts count, and so do registrations and idle worker polls): %.1f\nRound trips to Redis per issuance (acmebridge-redis; its store operations, one command each once the scripts are cached; registrations included, idle worker polls not): %.1f\n", c / n, o / n}' "$OUT/redis-commands.txt"
	fi
} | tee "$OUT/table.txt"
$BT compare -markdown -baseline "$BASELINE" "$OUT"/*.json >"$OUT/table.md"
log "Markdown table: $OUT/table.md"

# Each profile is written when its server stops: stop them, then split
# each into kinds of work per issuance (benchtool profile-split).
if [ -n "${PROFILE:-}" ]; then
	for s in "${order[@]}"; do
		[ -f "$WORK/$s/acmebridge.yaml" ] || continue
		kill "${PIDOF[$s]}" 2>/dev/null || true
		wait "${PIDOF[$s]}" 2>/dev/null || true
		[ -s "$PROFILE/$s.pprof" ] || { log "no profile from $s"; continue; }
		{
			echo
			echo "$s: where its CPU went (the profile of its whole run, $PROFILE/$s.pprof)"
			$BT profile-split -profile "$PROFILE/$s.pprof" "$OUT/$s"-[0-9]*.json
		} | tee -a "$OUT/table.txt"
		$BT profile-split -markdown -profile "$PROFILE/$s.pprof" "$OUT/$s"-[0-9]*.json >"$OUT/$s-profile.md"
	done
fi
