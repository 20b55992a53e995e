#!/usr/bin/env bash
# Load: nginx + `portcullis serve` (auth_request) against nginx straight to the same
# upstream, in one run, on loopback.
#
#   benches/load/forward_auth.sh            # 30 s per side, 64 connections
#   DURATION=10 CONNS=32 benches/load/forward_auth.sh
#
# Needs nginx and wrk (apt-get install -y nginx wrk) and builds the release binary. One
# nginx (one worker) serves three ports: the upstream (`return 200`), the baseline (proxy
# to the upstream) and the guarded route (auth_request to serve, then the upstream). nginx
# and serve are pinned to CPU 0 and wrk to CPU 1 when taskset and two CPUs are there.
# Every response is checked by a wrk Lua script (any status but 200 is unexpected); the
# resident memory of serve is sampled every second of the guarded run, and the mean of the
# last 10 s must be within 10 % of the first 10 s. Exits non-zero on any unexpected status,
# socket error or memory growth. Bounded: each run lasts DURATION seconds, and everything
# it started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-30}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-3}
TARGET=${CARGO_TARGET_DIR:-target}
for tool in nginx wrk; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || {
    echo "load: $tool not installed (apt-get install -y nginx wrk)" >&2
    exit 2
  }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release -p portcullis-cli --bin portcullis >&2
BIN="$TARGET/release/portcullis"

DIR=$(mktemp -d /tmp/portcullis-load.XXXXXX)
SERVE_PID=
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true
  [ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
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
UP=$(free_port)
BASE=$(free_port)
GUARD=$(free_port)
SERVE=$(free_port)

cat >"$DIR/policy.toml" <<'EOF'
[[rule]]
roles = ["client"]
path = "/api/{*rest}"
EOF

FEDN_JWT_SECRET_KEY=$SECRET "${PIN_SERVER[@]}" "$BIN" serve --listen "127.0.0.1:$SERVE" \
  --proxy nginx --policy "$DIR/policy.toml" --log warn 2>"$DIR/serve.log" &
SERVE_PID=$!
wait_port "$SERVE"

cat >"$DIR/nginx.conf" <<EOF
worker_processes 1;
error_log $DIR/error.log warn;
pid $DIR/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $DIR/body;
    proxy_temp_path $DIR/proxy;
    fastcgi_temp_path $DIR/fastcgi;
    uwsgi_temp_path $DIR/uwsgi;
    scgi_temp_path $DIR/scgi;
    upstream app { server 127.0.0.1:$UP; keepalive 64; }
    upstream portcullis { server 127.0.0.1:$SERVE; keepalive 64; }

    server {
        listen 127.0.0.1:$UP;
        location / { return 200 "ok\n"; }
    }
    server {
        listen 127.0.0.1:$BASE;
        location / {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://app;
        }
    }
    server {
        listen 127.0.0.1:$GUARD;
        location = /_portcullis {
            internal;
            proxy_pass http://portcullis/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method \$request_method;
            proxy_set_header X-Original-URI \$request_uri;
        }
        location / {
            auth_request /_portcullis;
            auth_request_set \$auth_subject \$upstream_http_x_auth_subject;
            auth_request_set \$auth_roles \$upstream_http_x_auth_roles;
            proxy_set_header X-Auth-Subject \$auth_subject;
            proxy_set_header X-Auth-Roles \$auth_roles;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://app;
        }
    }
}
EOF
"${PIN_SERVER[@]}" "$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -g 'daemon off;' 2>>"$DIR/error.log" &
wait_port "$GUARD"

TOKEN=$("$BIN" mint --secret "$SECRET" --sub load --role client --exp 2h)
export TOKEN
cat >"$DIR/check.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local unexpected = 0
  for _, t in ipairs(threads) do unexpected = unexpected + t:get("bad") end
  local e = summary.errors
  io.write(string.format("RESULT requests=%d rps=%.0f p50_us=%d p99_us=%d unexpected=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), unexpected,
    e.connect + e.read + e.write + e.timeout))
end
EOF

run() { # port duration
  "${PIN_CLIENT[@]}" wrk -t 1 -c "$CONNS" -d "${2}s" --latency -s "$DIR/check.lua" \
    "http://127.0.0.1:$1/api/items" | grep '^RESULT'
}
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVE_PID/status"; }

echo "load: warm-up ${WARMUP}s each" >&2
run "$BASE" "$WARMUP" >/dev/null
run "$GUARD" "$WARMUP" >/dev/null

echo "load: baseline (nginx -> upstream) ${DURATION}s, $CONNS connections" >&2
BASE_OUT=$(run "$BASE" "$DURATION")
echo "load: guarded (nginx -> auth_request -> serve, then upstream) ${DURATION}s" >&2
: >"$DIR/rss"
( for _ in $(seq 1 "$DURATION"); do sleep 1; rss_kib >>"$DIR/rss"; done ) &
SAMPLER=$!
GUARD_OUT=$(run "$GUARD" "$DURATION")
wait "$SAMPLER" || true

# Every guarded request was decided by serve (warm-up included): its counter says so.
scrape() {
  exec 3<>"/dev/tcp/127.0.0.1/$SERVE"
  printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  cat <&3
  exec 3>&-
}
DECIDED=$(scrape | awk '/^portcullis_decisions_total[{]protocol="http",outcome="allowed",reason="authorized"[}]/ {print $2}')
DECIDED=${DECIDED:-0}

read -r RSS_FIRST RSS_LAST < <(awk '{v[NR]=$1} END {n=NR; k=(n<10?n:10); for(i=1;i<=k;i++) a+=v[i]; for(i=n-k+1;i<=n;i++) b+=v[i]; printf "%d %d\n", a/k, b/k}' "$DIR/rss")
B_RPS=$(field rps "$BASE_OUT"); G_RPS=$(field rps "$GUARD_OUT")
B_P99=$(field p99_us "$BASE_OUT"); G_P99=$(field p99_us "$GUARD_OUT")
UNEXPECTED=$(( $(field unexpected "$BASE_OUT") + $(field unexpected "$GUARD_OUT") ))
ERRORS=$(( $(field socket_errors "$BASE_OUT") + $(field socket_errors "$GUARD_OUT") ))
RATIO=$(awk -v g="$G_RPS" -v b="$B_RPS" 'BEGIN {printf "%.2f", g / b}')
GROWTH=$(awk -v f="$RSS_FIRST" -v l="$RSS_LAST" 'BEGIN {printf "%.1f", (l - f) * 100 / f}')

echo "baseline: $BASE_OUT"
echo "guarded:  $GUARD_OUT"
cat <<EOF
| | requests/s | p50 | p99 | unexpected statuses |
|---|---|---|---|---|
| nginx -> upstream (baseline) | $B_RPS | $(field p50_us "$BASE_OUT") µs | $B_P99 µs | $(field unexpected "$BASE_OUT") |
| nginx -> auth_request -> portcullis serve -> upstream | $G_RPS | $(field p50_us "$GUARD_OUT") µs | $G_P99 µs | $(field unexpected "$GUARD_OUT") |

throughput ratio guarded/baseline: $RATIO
decisions counted by serve (warm-up included): $DECIDED
load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)
serve resident memory: first 10 s mean ${RSS_FIRST} KiB, last 10 s mean ${RSS_LAST} KiB (${GROWTH} %)
EOF

status=0
[ "$DECIDED" -ge "$(field requests "$GUARD_OUT")" ] || { echo "load: serve decided $DECIDED requests, fewer than the guarded run sent" >&2; status=1; }
[ "$UNEXPECTED" -eq 0 ] || { echo "load: $UNEXPECTED unexpected statuses" >&2; status=1; }
[ "$ERRORS" -eq 0 ] || { echo "load: $ERRORS socket errors" >&2; status=1; }
awk -v g="$GROWTH" 'BEGIN {exit !(g <= 10 && g >= -10)}' || { echo "load: resident memory moved by $GROWTH %" >&2; status=1; }
exit $status
