#!/usr/bin/env bash
# Instructions per request (valgrind's callgrind, collected inside the measured loop only):
# plain axum against the same router behind AuthLayer. Deterministic: the machine's load
# does not move it. From the repository root:
#
#   benches/icount/run.sh [CASE ...]      (default: the cases BENCHMARKS.md reports)
#
# Needs valgrind (apt-get install -y valgrind). K=20000 requests a case unless K is set;
# ICOUNT_HEADERS=N adds N more request headers to every case (see src/main.rs).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install -y valgrind)"; exit 1; }
(cd "$root" && cargo build -q --release -p portcullis-icount)
bin=$root/target/release/portcullis-icount
out=$root/target/icount
mkdir -p "$out"
k=${K:-20000}
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(plain-none plain-hs hs rs none norole outer-hs outer-none worker-hs worker-none rot distinct plain-tenant tenant tenant-cond)
declare -A per
for c in "${cases[@]}"; do
  valgrind --tool=callgrind --callgrind-out-file="$out/$c.out" --toggle-collect='*run_loop*' --toggle-collect='*run_rotating*' \
    "$bin" "$c" "$k" >/dev/null 2>"$out/$c.log" || { echo "case $c failed: $(tail -3 "$out/$c.log")"; exit 1; }
  ir=$(grep -E '^(summary|totals):' "$out/$c.out" | head -1 | awk '{print $2}')
  per[$c]=$((ir / k))
  printf '%-13s %8d instructions per request\n' "$c" "${per[$c]}"
done
over() { [ -n "${per[$1]:-}" ] && [ -n "${per[$2]:-}" ] && printf '%s %+d\n' "$3" $((per[$1] - per[$2])); return 0; }
echo "over plain axum (same request):"
over hs plain-hs "  cache hit HS256"
over rs plain-hs "  cache hit RS256"
over none plain-none "  401, no token"
over norole plain-hs "  403, no role"
over outer-hs plain-hs "  cache hit HS256, layer around the whole router"
over outer-none plain-none "  401, layer around the whole router"
over rot plain-hs "  cache hit HS256, 10,000 tokens in turn (shared cache)"
over distinct plain-hs "  every token distinct HS256 (a miss: verified in full, not admitted)"
over worker-hs plain-hs "  cache hit HS256, router built on another thread"
over worker-none plain-none "  401, router built on another thread"
over generic-hs plain-hs "  cache hit HS256, generic body (AuthBody)"
over generic-none plain-none "  401, generic body (AuthBody)"
over tenant plain-tenant "  rule, no condition"
over tenant-cond plain-tenant "  rule with a path-claim condition"
if [ -n "${per[tenant]:-}" ] && [ -n "${per[tenant-cond]:-}" ]; then
  echo "condition: +$((per[tenant-cond] - per[tenant])) instructions over the same rule without it"
fi
echo "(callgrind files in $out; callgrind_annotate --inclusive=yes $out/CASE.out | head -60)"
