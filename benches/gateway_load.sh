#!/usr/bin/env bash
# Load test of the gateway (workspace member gateway/) with wrk (a real HTTP load generator), on loopback only,
# bounded in time: the demo gateway with its JWT plan against the same gateway started with
# --benchmark-without-plans (same proxy, no layer). Repeat tokens, so the layer's token cache hits.
#
#   bash benches/gateway_load.sh [seconds per run (default 10)] [connections (default 32)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
conns="${2:-32}"

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)..." >&2
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
# The gateway's own binary: the same program as `cargo run --example gateway`, without building
# the root package's dev-dependencies.
cargo build --release -p tower-jwt-plan-gateway --bin gateway >/dev/null 2>&1
bin=target/release/gateway

run() {
  local mode="$1"; shift
  local out; out=$(mktemp)
  RUST_LOG=warn "$bin" --listen 127.0.0.1:0 "$@" >"$out" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do grep -q '^curl -i -H' "$out" && break; sleep 0.1; done
  local url token
  url=$(grep -o "http://127.0.0.1:[0-9]*/echo/hello?name=world" "$out" | head -1)
  token=$(grep -o "Bearer [A-Za-z0-9._-]*" "$out" | head -1)
  [ -n "$url" ] && [ -n "$token" ] || { echo "gateway did not start" >&2; kill "$pid"; exit 1; }
  local status
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $token" "$url")
  [ "$status" = 200 ] || { echo "$mode: expected 200, got $status" >&2; kill "$pid"; exit 1; }
  local report
  report=$(wrk -t1 -c"$conns" -d"${secs}s" --latency -H "Authorization: $token" "$url")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$report")
  p50=$(awk '$1=="50%" {print $2}' <<<"$report")
  p99=$(awk '$1=="99%" {print $2}' <<<"$report")
  printf '%-14s %12s %10s %10s\n' "$mode" "$rps" "$p50" "$p99"
  echo "$rps" >"/tmp/gateway_load_$mode"
  rm -f "$out"
}

echo "wrk -t1 -c$conns -d${secs}s, loopback, $(nproc) cores"
printf '%-14s %12s %10s %10s\n' mode "requests/s" p50 p99
run jwt_plan
run without_layer --benchmark-without-plans
awk -v a="$(cat /tmp/gateway_load_jwt_plan)" -v b="$(cat /tmp/gateway_load_without_layer)" \
  'BEGIN { printf "ratio jwt_plan/without_layer requests/s: %.3f\n", a / b }'
