#!/usr/bin/env bash
# Coverage-guided fuzzing: run every target for SECONDS (default 30) each.
#   fuzz/run.sh 30
#   FUZZ_SANITIZER=address fuzz/run.sh 600   # a longer local run under AddressSanitizer
# Installs cargo-fuzz if missing. libFuzzer needs nightly-only compiler flags; RUSTC_BOOTSTRAP=1
# lets the stable toolchain accept them. Seeds: fuzz/seeds/<target>/ (committed, small) plus, at
# run time, tokens and keys taken from tests/vectors/ into fuzz/corpus/<target>/ (ignored by
# git). A crash stops the script with its input in fuzz/artifacts/<target>/: turn it into a
# regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${1:-30}"
# No sanitizer by default: the library and the gateway forbid unsafe code, and the C code of
# aws-lc is not instrumented by cargo-fuzz's flags anyway, so AddressSanitizer finds little here
# while it slows the build and halves the executions per second. Panics, aborts, timeouts and
# out-of-memory are caught either way.
SANITIZER="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

TARGETS=(jws jwks discovery revocation_list gateway_config admin_bodies)

for target in "${TARGETS[@]}"; do
  mkdir -p "corpus/$target"
  cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
done

# More seeds from the Wycheproof vectors the tests use (python3 is optional).
if command -v python3 >/dev/null 2>&1; then
  python3 - <<'PY'
import json, hashlib, pathlib
root = pathlib.Path("../tests/vectors/wycheproof")
def put(target, text):
    name = hashlib.sha1(text.encode()).hexdigest()[:16]
    (pathlib.Path("corpus") / target / name).write_text(text)
jws = json.loads((root / "json_web_signature_test.json").read_text())
for group in jws["testGroups"]:
    for key in ("jwk", "jwks", "public"):
        if key in group:
            put("jwks", json.dumps(group[key]))
    for test in group["tests"][:20]:
        if isinstance(test.get("jws"), str):
            put("jws", test["jws"])
jwk = json.loads((root / "json_web_key_test.json").read_text())
for group in jwk["testGroups"]:
    for test in group["tests"]:
        for key in ("jwk", "jwks", "public", "private"):
            if isinstance(test.get(key), (dict, list)):
                put("jwks", json.dumps(test[key]))
PY
fi

# Every target in one build (one cargo invocation, shared dependencies, both cores busy).
echo "== build the fuzz targets (sanitizer: $SANITIZER)"
cargo fuzz build -s "$SANITIZER"

# libFuzzer reports every new input; keep that in fuzz/logs/ (ignored by git) and show the
# final statistics, or the end of the log when a target fails.
mkdir -p logs
for target in "${TARGETS[@]}"; do
  echo "== fuzz $target for ${SECONDS_PER_TARGET}s"
  if ! cargo fuzz run -s "$SANITIZER" "$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=16384 -timeout=10 -print_final_stats=1 \
    >"logs/$target.log" 2>&1; then
    tail -n 80 "logs/$target.log"
    echo "== fuzz $target FAILED: the input is in fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done )' "logs/$target.log" || true
done
echo "== fuzzing done: no crash"
