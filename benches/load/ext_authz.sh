#!/usr/bin/env bash
# Load: Envoy's gRPC ext_authz `Check` answered by `portcullis serve --grpc-listen` against
# a bare tonic server whose `Check` answers OK to everything (same messages, same tonic,
# no decision), in one run, on loopback. ghz is not used: the client is
# `cli/examples/ext_authz_load.rs` (tonic), bounded in streams and time.
#
#   benches/load/ext_authz.sh                 # 2 rounds of 30 s per side, 64 streams
#   DURATION=10 ROUNDS=3 STREAMS=32 benches/load/ext_authz.sh
#
# Builds the release binary and the example. The servers are pinned to CPU 0 and the
# client to CPU 1 when taskset and two CPUs are there. Every answer is checked by the
# client: the bare server's must be OK, serve's must be OK with X-Auth-Subject set to the
# token's subject (a valid HS256 token, one policy rule, the verified-token cache on by
# default); anything else counts as wrong. The sides alternate, ROUNDS times. The resident
# memory of serve is sampled every second of its runs; the mean of the last 10 samples
# must be within 10 % of the first 10. Server CPU time per request is reported beside the
# throughput: with two cores the client often sets the pace, and then the ratio says
# little and the CPU per request says more.
# Exits non-zero on a wrong answer, a transport error, memory growth, or a ratio under
# MIN_RATIO (0.8). Everything it started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-30}
ROUNDS=${ROUNDS:-2}
STREAMS=${STREAMS:-64}
CONNECTIONS=${CONNECTIONS:-4}
WARMUP=${WARMUP:-3}
MIN_RATIO=${MIN_RATIO:-0.8}
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release -p portcullis-cli --bin portcullis --example ext_authz_load >&2
BIN="$TARGET/release/portcullis"
LOAD="$TARGET/release/examples/ext_authz_load"

DIR=$(mktemp -d /tmp/portcullis-ext-authz.XXXXXX)
SERVE_PID=
BARE_PID=
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true
  [ -n "$BARE_PID" ] && kill "$BARE_PID" 2>/dev/null || true
  sleep 0.3
  rm -rf "$DIR"
}
trap cleanup EXIT

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "load: nothing listens on $1" >&2
  exit 1
}

PIN_SERVER=()
PIN_CLIENT=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER=(taskset -c 0)
  PIN_CLIENT=(taskset -c 1)
fi

SECRET=0123456789abcdef0123456789abcdef
HTTP=$(free_port)
GRPC=$(free_port)
BARE=$(free_port)

cat >"$DIR/policy.toml" <<'EOF'
[[rule]]
roles = ["client"]
path = "/api/{*rest}"
EOF

FEDN_JWT_SECRET_KEY=$SECRET "${PIN_SERVER[@]}" "$BIN" serve --listen "127.0.0.1:$HTTP" \
  --grpc-listen "127.0.0.1:$GRPC" --proxy envoy --policy "$DIR/policy.toml" --log warn \
  2>"$DIR/serve.log" &
SERVE_PID=$!
"${PIN_SERVER[@]}" "$LOAD" bare "127.0.0.1:$BARE" 2>"$DIR/bare.log" &
BARE_PID=$!
wait_port "$GRPC"
wait_port "$BARE"

TOKEN=$("$BIN" mint --secret "$SECRET" --sub load --role client --exp 2h)

run() { # port seconds expect
  "${PIN_CLIENT[@]}" "$LOAD" load "127.0.0.1:$1" "$2" "$STREAMS" "$CONNECTIONS" "$TOKEN" "$3"
}
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" <<<"$2"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVE_PID/status"; }
# CPU time of a process so far, in clock ticks (utime + stime).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

echo "load: warm-up ${WARMUP}s each" >&2
run "$BARE" "$WARMUP" ok >/dev/null
run "$GRPC" "$WARMUP" subject=load >/dev/null

# Rounds of (baseline, serve), DURATION seconds each, so that a neighbour's load on the
# shared machine weighs on both sides alike; serve's memory is sampled every second of
# each of its runs.
: >"$DIR/rss"
B_REQ=0; S_REQ=0; B_SEC=0; S_SEC=0; B_TICKS=0; S_TICKS=0; WRONG=0; ERRORS=0; ROUND_LINES=""
for round in $(seq 1 "$ROUNDS"); do
  echo "load: round $round: baseline (bare tonic Check, OK) ${DURATION}s, $STREAMS streams over $CONNECTIONS connections" >&2
  T0=$(ticks "$BARE_PID")
  OUT=$(run "$BARE" "$DURATION" ok)
  B_TICKS=$(( B_TICKS + $(ticks "$BARE_PID") - T0 ))
  B_REQ=$(( B_REQ + $(field requests "$OUT") )); B_SEC=$(awk -v a="$B_SEC" -v b="$(field seconds "$OUT")" 'BEGIN {print a + b}')
  WRONG=$(( WRONG + $(field wrong "$OUT") )); ERRORS=$(( ERRORS + $(field errors "$OUT") ))
  ROUND_LINES+="round $round baseline: $OUT"$'\n'
  echo "load: round $round: portcullis serve --grpc-listen ${DURATION}s" >&2
  ( for _ in $(seq 1 "$DURATION"); do sleep 1; rss_kib >>"$DIR/rss"; done ) &
  SAMPLER=$!
  T0=$(ticks "$SERVE_PID")
  OUT=$(run "$GRPC" "$DURATION" subject=load)
  S_TICKS=$(( S_TICKS + $(ticks "$SERVE_PID") - T0 ))
  wait "$SAMPLER" || true
  S_REQ=$(( S_REQ + $(field requests "$OUT") )); S_SEC=$(awk -v a="$S_SEC" -v b="$(field seconds "$OUT")" 'BEGIN {print a + b}')
  WRONG=$(( WRONG + $(field wrong "$OUT") )); ERRORS=$(( ERRORS + $(field errors "$OUT") ))
  ROUND_LINES+="round $round serve:    $OUT"$'\n'
done

read -r RSS_FIRST RSS_LAST < <(awk '{v[NR]=$1} END {n=NR; k=(n<10?n:10); for(i=1;i<=k;i++) a+=v[i]; for(i=n-k+1;i<=n;i++) b+=v[i]; printf "%d %d\n", a/k, b/k}' "$DIR/rss")
B_RPS=$(awk -v n="$B_REQ" -v s="$B_SEC" 'BEGIN {printf "%.0f", n / s}')
S_RPS=$(awk -v n="$S_REQ" -v s="$S_SEC" 'BEGIN {printf "%.0f", n / s}')
RATIO=$(awk -v s="$S_RPS" -v b="$B_RPS" 'BEGIN {printf "%.2f", s / b}')
GROWTH=$(awk -v f="$RSS_FIRST" -v l="$RSS_LAST" 'BEGIN {printf "%.1f", (l - f) * 100 / f}')
# Server CPU per answered request, in microseconds, and the share of its core it used.
cpu_us() { awk -v t="$1" -v n="$2" -v hz="$HZ" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}'; }
cpu_pct() { awk -v t="$1" -v s="$2" -v hz="$HZ" 'BEGIN {printf "%.0f", t * 100 / hz / s}'; }

printf "%s" "$ROUND_LINES"
echo "requests/s over $ROUNDS rounds of ${DURATION}s: serve $S_RPS, baseline $B_RPS; ratio serve/baseline: $RATIO"
echo "answers: $((B_REQ + S_REQ)), wrong answers: $WRONG, transport errors: $ERRORS"
echo "server CPU per request: baseline $(cpu_us "$B_TICKS" "$B_REQ") us, serve $(cpu_us "$S_TICKS" "$S_REQ") us (of CPU 0: baseline $(cpu_pct "$B_TICKS" "$B_SEC") %, serve $(cpu_pct "$S_TICKS" "$S_SEC") %)"
echo "serve resident memory: first 10 s $RSS_FIRST KiB, last 10 s $RSS_LAST KiB ($GROWTH %), over $(wc -l <"$DIR/rss") s of load"
echo "machine: $(nproc) CPUs, $(uname -m), $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"

FAIL=0
[ "$WRONG" -eq 0 ] || { echo "load: $WRONG wrong answers" >&2; FAIL=1; }
[ "$ERRORS" -eq 0 ] || { echo "load: $ERRORS transport errors" >&2; FAIL=1; }
awk -v g="$GROWTH" 'BEGIN {exit !(g <= 10)}' || { echo "load: memory grew $GROWTH %" >&2; FAIL=1; }
awk -v r="$RATIO" -v m="$MIN_RATIO" 'BEGIN {exit !(r >= m)}' || { echo "load: ratio $RATIO under $MIN_RATIO" >&2; FAIL=1; }
exit "$FAIL"
