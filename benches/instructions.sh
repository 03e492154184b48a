#!/usr/bin/env bash
# Instructions per request under callgrind (repeatable, unlike wall-clock time on shared cores).
# For each case of benches/plans.rs it runs the bench binary under `valgrind --tool=callgrind`,
# counting only inside the loop of N requests (`--toggle-collect=*callgrind_loop*`: set-up, key
# generation and background threads are left out), and prints Ir / N.
#
#   bash benches/instructions.sh [N, default 20000] [case ...]
#
# Cases: router_noauth router_layer_floor router_hit router_around_hit plans_1_hit plans_5_off unsubscribed_on ...
# (see plans.rs).
# Keep the callgrind output of the last run with KEEP=1 (then read it with callgrind_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20000}"
shift || true
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(router_noauth router_layer_floor router_hit router_around_hit plans_1_hit plans_1_off plans_5_off unsubscribed_on)
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install -y valgrind)"; exit 1; }
bin=$(cargo bench --bench plans --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*plans-[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$bin" ] || { echo "could not build the plans bench"; exit 1; }
out=$(mktemp -d)
trap '[ -z "${KEEP:-}" ] && rm -rf "$out"' EXIT
total() { # case, requests -> instructions inside the request loop
  valgrind --tool=callgrind --toggle-collect='*callgrind_loop*' \
    --callgrind-out-file="$out/$1.$2.out" "$bin" "$2" \
    >/dev/null 2>"$out/$1.$2.log" </dev/null
  grep -o 'Collected : [0-9]*' "$out/$1.$2.log" | grep -o '[0-9]*$'
}
printf '%-18s %14s\n' case "instr/request"
for c in "${cases[@]}"; do
  export TJP_BENCH_LOOP="$c"
  full=$(total "$c" "$n")
  printf '%-18s %14d\n' "$c" $(( full / n ))
done
[ -n "${KEEP:-}" ] && echo "callgrind output kept in $out"
