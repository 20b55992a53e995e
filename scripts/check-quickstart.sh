#!/usr/bin/env bash
# Runs the quickstart, then every curl command and gRPC call it prints, and checks each
# answers the status (HTTP code or gRPC code) its comment line promises. Usage: scripts/check-quickstart.sh [extra env...]
# Example: scripts/check-quickstart.sh FEDN_AUTH_SCHEME=Token FEDN_CUSTOM_URL_PREFIX=/internal
# A first argument without `=` names another example: scripts/check-quickstart.sh remote_keys
# `client` runs the quickstart and then examples/client.rs against it.
set -euo pipefail
cd "$(dirname "$0")/.."
example=quickstart
if [[ $# -gt 0 && $1 != *=* ]]; then example=$1; shift; fi
# Below the kernel's ephemeral range (32768 and up), so no client socket holds the port.
port=${PORT:-$((20000 + RANDOM % 12000))}
grpc_port=$((port + 1))
out=$(mktemp)
if [[ $example == client ]]; then
  # The client example calls the quickstart's routes: run the quickstart with a shared
  # secret, then the client, which checks every answer itself and exits non-zero otherwise.
  secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  cargo build -q --features client,tonic --example quickstart --example client
  bin_dir="${CARGO_TARGET_DIR:-target}/debug/examples"
  env PORT="$port" GRPC_PORT="$grpc_port" FEDN_JWT_SECRET_KEY="$secret" "$@" "$bin_dir/quickstart" >"$out" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null || true; rm -f "$out"' EXIT
  for _ in $(seq 1 100); do
    grep -q "listening on" "$out" && break
    kill -0 $pid 2>/dev/null || { cat "$out"; echo "quickstart exited early"; exit 1; }
    sleep 0.1
  done
  env PORT="$port" GRPC_PORT="$grpc_port" FEDN_JWT_SECRET_KEY="$secret" "$@" timeout 60 "$bin_dir/client"
  echo "client: every answer as expected"
  exit 0
fi
cargo build -q --example "$example"
bin_dir="${CARGO_TARGET_DIR:-target}/debug/examples"
env PORT="$port" GRPC_PORT="$grpc_port" "$@" "$bin_dir/$example" >"$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$out"' EXIT
# Up to 60 s: on a busy two-core machine the first start (keys, listeners) can take a while.
for _ in $(seq 1 600); do
  grep -q "listening on" "$out" && break
  kill -0 $pid 2>/dev/null || { cat "$out"; echo "$example exited early"; exit 1; }
  sleep 0.1
done
grep -q "listening on" "$out" || { cat "$out"; echo "$example did not say it was listening within 60 s"; exit 1; }
# Token variables printed by the example (upper-case names).
eval "$(grep -E "^[A-Z][A-Z_]*='" "$out" || true)"
pass=0; fail=0; expect=""
while IFS= read -r line; do
  if [[ $line =~ ^#.*-\>\ ([0-9]{3}|[A-Z_]+) ]]; then
    expect=${BASH_REMATCH[1]}
  elif [[ $line == curl* && -n $expect ]]; then
    cmd=${line/curl -i/curl -s -o /dev/null -w %\{http_code\} --max-time 5}
    got=$(eval "$cmd" || true)
  elif [[ $line == *"--example quickstart -- call"* && -n $expect ]]; then
    cmd=${line/cargo run -q --example quickstart -- call/env "$@" $bin_dir/quickstart call}
    got=$(eval "$cmd" 2>&1 | head -1 | cut -d' ' -f1)
  else
    continue
  fi
  if [[ -n ${got+x} ]]; then
    if [[ $got == "$expect" ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: expected $expect, got $got: $line"; fi
    expect=""
    unset got
  fi
done <"$out"
echo "$example: $pass passed, $fail failed"
[[ $fail -eq 0 && $pass -gt 0 ]]
