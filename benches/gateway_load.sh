#!/usr/bin/env bash
# Load test of the gateway (workspace member gateway/) with wrk (a real HTTP load generator), on loopback only,
# bounded in time: the demo gateway with its JWT plan against the same gateway started with
# --benchmark-without-plans (same proxy, no layer), and nginx (one worker, upstream keep-alive)
# as a plain reverse proxy to the same echo upstream. Repeat tokens, so the layer's token cache
# hits. nginx comes from Debian's packages (installed when missing; its row is skipped with a
# message when it cannot be had).
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
  RUST_LOG=warn "$bin" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 "$@" >"$out" 2>/dev/null &
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

# nginx as a plain reverse proxy (no authentication) to the demo's echo upstream, the same
# upstream the gateway forwards to: /echo/... -> /..., as the gateway strips its context path.
run_nginx() {
  if ! command -v nginx >/dev/null; then
    echo "installing nginx (Debian package nginx-light)..." >&2
    apt-get install -y nginx-light >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && apt-get install -y nginx-light >/dev/null 2>&1; } \
      || true
  fi
  if ! command -v nginx >/dev/null; then
    printf '%-14s %s\n' nginx "skipped: nginx is not installed and could not be installed"
    return
  fi
  local out dir; out=$(mktemp); dir=$(mktemp -d)
  RUST_LOG=warn "$bin" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$out" 2>/dev/null &
  local gw=$!
  for _ in $(seq 100); do grep -q '^demo: echo upstream at' "$out" && break; sleep 0.1; done
  local upstream
  upstream=$(grep -o 'echo upstream at http://127.0.0.1:[0-9]*' "$out" | head -1 | sed 's#.*http://##')
  [ -n "$upstream" ] || { echo "gateway did not start" >&2; kill "$gw"; exit 1; }
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  upstream echo { server $upstream; keepalive 64; }
  server {
    listen 127.0.0.1:$port;
    location /echo/ {
      proxy_pass http://echo/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' &
  local ngx=$!
  local url="http://127.0.0.1:$port/echo/hello?name=world" status=000
  for _ in $(seq 50); do
    status=$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)
    [ "$status" = 200 ] && break
    sleep 0.1
  done
  if [ "$status" != 200 ]; then
    echo "nginx: expected 200, got $status" >&2; kill "$ngx" "$gw"; exit 1
  fi
  local report
  report=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "$url")
  kill -QUIT "$ngx"; wait "$ngx" 2>/dev/null || true
  kill -TERM "$gw"; wait "$gw" 2>/dev/null || true
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$report")
  p50=$(awk '$1=="50%" {print $2}' <<<"$report")
  p99=$(awk '$1=="99%" {print $2}' <<<"$report")
  printf '%-14s %12s %10s %10s\n' nginx "$rps" "$p50" "$p99"
  echo "$rps" >/tmp/gateway_load_nginx
  rm -rf "$out" "$dir"
}

echo "wrk -t1 -c$conns -d${secs}s, loopback, $(nproc) cores"
printf '%-14s %12s %10s %10s\n' mode "requests/s" p50 p99
run jwt_plan
run without_layer --benchmark-without-plans
rm -f /tmp/gateway_load_nginx
run_nginx
awk -v a="$(cat /tmp/gateway_load_jwt_plan)" -v b="$(cat /tmp/gateway_load_without_layer)" \
  'BEGIN { printf "ratio jwt_plan/without_layer requests/s: %.3f\n", a / b }'
if [ -s /tmp/gateway_load_nginx ]; then
  awk -v a="$(cat /tmp/gateway_load_jwt_plan)" -v b="$(cat /tmp/gateway_load_without_layer)" \
    -v n="$(cat /tmp/gateway_load_nginx)" \
    'BEGIN { printf "ratio jwt_plan/nginx requests/s: %.3f; without_layer/nginx: %.3f\n", a / n, b / n }'
fi
