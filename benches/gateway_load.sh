#!/usr/bin/env bash
# Load test of the gateway (workspace member gateway/) with wrk (a real HTTP load generator), on
# loopback only, bounded in time. Three proxies in front of the same upstream process, measured
# one after the other:
#
#   jwt_plan       the gateway from a configuration file: one API with a JWT plan (the demo
#                  IdP's ES256 keys), repeat tokens, so the layer's token cache hits;
#   without_layer  the same gateway and file with --benchmark-without-plans (same proxy, no layer);
#   nginx          nginx (one worker, upstream keep-alive) as a plain reverse proxy that sets
#                  the gateway's forwarding headers (X-Forwarded-*, Forwarded, X-Real-IP);
#   nginx_plain    the same nginx with its defaults: no forwarding header added.
#
# Every row gets the same request, the JWT plan's bearer token included (nginx forwards it
# untouched, as the gateway does). The upstream echoes the request's headers back, so a row
# that sent fewer or shorter headers would also get a cheaper answer.
#
# The upstream and the IdP are a demo gateway's (`gateway` with no arguments: its echo upstream
# and its IdP's JWKS), in their own process, so no proxy shares its CPU with them. nginx comes
# from Debian's packages (installed when missing; its row is skipped with a message when it
# cannot be had).
#
#   bash benches/gateway_load.sh [seconds per run (default 10)] [connections (default 32)]
#
# The four rows run in turn, ROUNDS times (default 3), and each row's median requests/s gives
# the ratios: rows measured side by side in rounds, so a slow stretch of the shared machine
# weighs on every row rather than on one.
#
# With INSTRUCTIONS=1, the jwt_plan gateway runs under callgrind instead, and the script prints
# its instructions per proxied request over one wrk run (8 connections; warm-up excluded):
# repeatable where requests/s on shared cores are not. KEEP=FILE keeps the callgrind output.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
conns="${2:-32}"
rounds="${ROUNDS:-3}"

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)..." >&2
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
# The gateway's own binary: the same program as `cargo run --example gateway`, without building
# the root package's dev-dependencies.
cargo build --release -p tower-jwt-plan-gateway --bin gateway >/dev/null 2>&1
bin=target/release/gateway
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The upstream and IdP: a demo gateway, whose printed lines give their addresses and a token.
RUST_LOG=warn "$bin" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$work/upstream.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do grep -q '^curl -i -H' "$work/upstream.out" && break; sleep 0.1; done
upstream=$(grep -o 'echo upstream at http://127.0.0.1:[0-9]*' "$work/upstream.out" | head -1 | sed 's#.*http://##')
jwks=$(grep -o 'IdP keys at http://[^ ]*' "$work/upstream.out" | head -1 | sed 's#IdP keys at ##')
token=$(grep -o "Bearer [A-Za-z0-9._-]*" "$work/upstream.out" | head -1 | sed 's#Bearer ##')
[ -n "$upstream" ] && [ -n "$jwks" ] && [ -n "$token" ] || { echo "the upstream did not start" >&2; exit 1; }
issuer="${jwks%/.well-known/jwks.json}"

port=$(free_port)
cat >"$work/gateway.toml" <<TOML
listen = "127.0.0.1:$port"

[[api]]
id = "echo"
context_path = "/echo"
backend = "http://$upstream"

[[api.plan]]
id = "gold"
name = "Gold"
security = "jwt"
status = "published"
algorithms = ["ES256"]
jwks_url = "$jwks"
issuer = "$issuer"
audience = ["api://echo"]

[[application]]
id = "demo-app"
client_id = "demo-client"

[[subscription]]
id = "demo-sub"
api = "echo"
plan = "gold"
application = "demo-app"
status = "accepted"
TOML

measure() { # mode url [header] -> one line, and the requests/s in $work/rps_$mode
  local mode="$1" url="$2" header="${3:-}"
  local status=000
  for _ in $(seq 100); do
    status=$(curl -s -o /dev/null -w '%{http_code}' ${header:+-H "$header"} "$url" || true)
    [ "$status" = 200 ] && break
    sleep 0.1
  done
  [ "$status" = 200 ] || { echo "$mode: expected 200, got $status" >&2; exit 1; }
  local report
  report=$(wrk -t1 -c"$conns" -d"${secs}s" --latency ${header:+-H "$header"} "$url")
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$report")
  p50=$(awk '$1=="50%" {print $2}' <<<"$report")
  p99=$(awk '$1=="99%" {print $2}' <<<"$report")
  printf '%-14s %12s %10s %10s\n' "$mode" "$rps" "$p50" "$p99"
  echo "$rps" >>"$work/rps_$mode"
}

median() { # mode -> the median of its rows' requests/s (empty when the row was skipped)
  [ -s "$work/rps_$1" ] || return 0
  sort -g "$work/rps_$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

run_gateway() { # mode [flags]
  local mode="$1"; shift
  RUST_LOG=warn "$bin" --config "$work/gateway.toml" --admin-listen 127.0.0.1:0 "$@" \
    >"$work/$mode.out" 2>&1 &
  local pid=$!
  pids+=("$pid")
  measure "$mode" "http://127.0.0.1:$port/echo/hello?name=world" "Authorization: Bearer $token"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

run_nginx() { # mode, extra configuration lines of the location
  local mode="$1" extra="$2"
  if ! command -v nginx >/dev/null; then
    echo "installing nginx (Debian package nginx-light)..." >&2
    apt-get install -y nginx-light >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && apt-get install -y nginx-light >/dev/null 2>&1; } \
      || true
  fi
  if ! command -v nginx >/dev/null; then
    printf '%-14s %s\n' "$mode" "skipped: nginx is not installed and could not be installed"
    return
  fi
  local dir="$work/$mode" nport
  nport=$(free_port)
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
    listen 127.0.0.1:$nport;
    location /echo/ {
      proxy_pass http://echo/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
$extra
    }
  }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' &
  local ngx=$!
  pids+=("$ngx")
  measure "$mode" "http://127.0.0.1:$nport/echo/hello?name=world" "Authorization: Bearer $token"
  kill -QUIT "$ngx"; wait "$ngx" 2>/dev/null || true
}

# The gateway's forwarding headers, in nginx (and its `Host`, the backend's address): the
# upstream, which echoes every header back, gets the same request from both proxies.
same_headers="      proxy_set_header Host $upstream;
"'      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header Forwarded "for=$remote_addr;host=\"$http_host\";proto=$scheme";'

if [ -n "${INSTRUCTIONS:-}" ]; then
  command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install -y valgrind)"; exit 1; }
  url="http://127.0.0.1:$port/echo/hello?name=world"
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
    "$bin" --config "$work/gateway.toml" --admin-listen 127.0.0.1:0 >"$work/callgrind.log" 2>&1 &
  gw=$!
  pids+=("$gw")
  status=000
  for _ in $(seq 300); do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$url" || true)
    [ "$status" = 200 ] && break
    sleep 0.2
  done
  [ "$status" = 200 ] || { echo "the gateway under callgrind answered $status" >&2; exit 1; }
  wrk -t1 -c8 -d3s -H "Authorization: Bearer $token" "$url" >/dev/null
  callgrind_control -z "$gw" >/dev/null 2>&1
  report=$(wrk -t1 -c8 -d"${secs}s" -H "Authorization: Bearer $token" "$url")
  callgrind_control -d "$gw" >/dev/null 2>&1
  sleep 1
  requests=$(awk '/requests in/ {print $1}' <<<"$report")
  dump=$(ls -t "$work"/callgrind.out.* | head -1)
  instructions=$(grep -E '^(summary|totals):' "$dump" | head -1 | awk '{print $2}')
  echo "jwt_plan under callgrind: $requests requests, $((instructions / requests)) instructions per request"
  if [ -n "${KEEP:-}" ]; then
    cp "$dump" "$KEEP" && echo "callgrind output kept in $KEEP (read it with callgrind_annotate)"
  fi
  exit 0
fi

echo "wrk -t1 -c$conns -d${secs}s, loopback, $(nproc) cores; upstream: the demo's echo server, own process; $rounds rounds"
printf '%-14s %12s %10s %10s\n' mode "requests/s" p50 p99
for _ in $(seq "$rounds"); do
  run_gateway jwt_plan
  run_gateway without_layer --benchmark-without-plans
  run_nginx nginx "$same_headers"
  run_nginx nginx_plain ""
done
jwt=$(median jwt_plan) bare=$(median without_layer) ngx=$(median nginx) plain=$(median nginx_plain)
echo "medians of $rounds rounds: jwt_plan $jwt, without_layer $bare, nginx ${ngx:-skipped}, nginx_plain ${plain:-skipped}"
awk -v a="$jwt" -v b="$bare" 'BEGIN { printf "ratio jwt_plan/without_layer requests/s: %.3f\n", a / b }'
if [ -n "$ngx" ]; then
  awk -v a="$jwt" -v b="$bare" -v n="$ngx" \
    'BEGIN { printf "ratio jwt_plan/nginx requests/s: %.3f; without_layer/nginx: %.3f\n", a / n, b / n }'
fi
if [ -n "$plain" ]; then
  awk -v a="$jwt" -v n="$plain" 'BEGIN { printf "ratio jwt_plan/nginx_plain requests/s: %.3f\n", a / n }'
fi
