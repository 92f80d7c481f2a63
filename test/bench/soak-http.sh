#!/usr/bin/env bash
# test/bench/soak-http.sh (make soak-http): a long real-time run over HTTP
# against one acmebridge (bolt store on disk, local CA, http-01 answered by
# the bench's responder, names resolved by the bench's DNS server, clients polling as certbot does), printing every
# WINDOW issuances the window's throughput, p50/p99 and the server's RSS
# (and its anonymous part: the rest is the bbolt file's mapped pages). Orders
# live 30 s and certificates 30 s past a minute (valid 90 s from a minute
# before finalize), each kept 30 s more (retention, swept every 5 s), so the
# store reaches in about a minute the plateau a fleet reaches in months:
# after the first window, latency and memory must stay flat while the
# sweeper removes as much as is issued. Never part of `make test`.
#
# Environment: ISSUANCES (100000), CLIENTS (16), WINDOW (10000), LIFETIMES
# (short: as above; default: the quickstart's lifetimes and retention, so
# the store grows through the run as in a deployment's first month), OUT (a
# fresh directory under /tmp: the JSON result and the server's log).
set -euo pipefail
cd "$(dirname "$0")/../.."
ISSUANCES=${ISSUANCES:-100000}
CLIENTS=${CLIENTS:-16}
WINDOW=${WINDOW:-10000}
LIFETIMES=${LIFETIMES:-short}
WORK=$(mktemp -d /tmp/acmebridge-soak-http.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
log() { printf '[soak-http %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true' EXIT

go build -o "$WORK/acmebridge" ./cmd/acmebridge
go build -o "$WORK/benchtool" ./test/bench/benchtool
BT=$WORK/benchtool
read -r P A H D <<<"$($BT ports 4)"
SHORT=""
if [ "$LIFETIMES" = short ]; then
	SHORT="upstreams:
  - name: dev
    type: local
    local: {validity: 90s}
orders:
  order_lifetime: 30s
  authz_lifetime: 30s
retention:
  orders: 30s
  certificates: 30s
  sweep_interval: 5s"
fi
cat >"$WORK/acmebridge.yaml" <<YAML
$SHORT
data_dir: $WORK/data
server:
  listen: "127.0.0.1:$P"
  external_url: "https://127.0.0.1:$P"
admin:
  listen: "127.0.0.1:$A"
validation:
  http_port: $H
  dns_resolvers: ["127.0.0.1:$D"]
  allow_private_addresses: true
log:
  level: warn
YAML
"$WORK/acmebridge" serve --config "$WORK/acmebridge.yaml" >"$OUT/serve.log" 2>&1 &
PID=$!
$BT wait -url "http://127.0.0.1:$A/readyz" || { cat "$OUT/serve.log"; exit 1; }
ORDERS=$(( (ISSUANCES + CLIENTS - 1) / CLIENTS ))
log "acmebridge (bolt, local CA) pid $PID; $CLIENTS clients x $ORDERS orders, http-01, client polls, a line every $WINDOW"
"$WORK/acmebridge" bench --directory "https://127.0.0.1:$P/directory" --ca-bundle "$WORK/data/ca.pem" \
	--clients "$CLIENTS" --orders "$ORDERS" --challenge http-01 --http-port "$H" --dns-server "127.0.0.1:$D" --client-polls \
	--server-pid "$PID" --window "$WINDOW" --label acmebridge-bolt --json --no-progress >"$OUT/soak-http.json"
log "store file: $(du -h "$WORK/data/acmebridge.db" | cut -f1); swept: $(curl -s "http://127.0.0.1:$A/metrics" | grep '^acmebridge_retention_removed_total' | tr '\n' ' '); result: $OUT/soak-http.json"
