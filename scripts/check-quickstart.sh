#!/usr/bin/env bash
# Runs the quickstart, then every curl command it prints, and checks each answers the
# status its comment line promises. Usage: scripts/check-quickstart.sh [extra env...]
# Example: scripts/check-quickstart.sh FEDN_AUTH_SCHEME=Token FEDN_CUSTOM_URL_PREFIX=/internal
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-$((20000 + RANDOM % 20000))}
out=$(mktemp)
cargo build -q --example quickstart
env PORT="$port" "$@" ./target/debug/examples/quickstart >"$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$out" && break
  kill -0 $pid 2>/dev/null || { cat "$out"; echo "quickstart exited early"; exit 1; }
  sleep 0.1
done
# Token variables printed by the quickstart.
eval "$(grep -E "^(ADMIN|CLIENT|NOROLE)='" "$out" || true)"
pass=0; fail=0; expect=""
while IFS= read -r line; do
  if [[ $line =~ ^#.*-\>\ ([0-9]{3}) ]]; then
    expect=${BASH_REMATCH[1]}
  elif [[ $line == curl* && -n $expect ]]; then
    cmd=${line/curl -i/curl -s -o /dev/null -w %\{http_code\} --max-time 5}
    got=$(eval "$cmd" || true)
    if [[ $got == "$expect" ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: expected $expect, got $got: $line"; fi
    expect=""
  fi
done <"$out"
echo "quickstart: $pass passed, $fail failed"
[[ $fail -eq 0 && $pass -gt 0 ]]
