#!/usr/bin/env bash
# The load bench (issue 10): release servers on 127.0.0.1, wrk against them, a table of
# req/s, p99 and peak RSS with ratios against plain axum and against each peer measured
# in the same run. See BENCHMARKS.md ("Whole-server load") for the figures.
#
#   benches/load/run.sh            the matrix: every variant x algorithm x workload,
#                                  ROUNDS interleaved rounds, medians
#   benches/load/run.sh memory     1,000,000 distinct tokens through portcullis (cache
#                                  on, HS256), peak RSS against the cache's bound
#   benches/load/run.sh paired     plain axum and portcullis side by side on the server
#                                  CPU, measured in alternate windows (PAIRS pairs of
#                                  WINDOW seconds, 10 and 2; WORKLOADS_PAIRED "one rot10k
#                                  none norole"; BASE, VARIANT, PORT2 18482): the median
#                                  of the pairs' ratios, steadier than separate cells where
#                                  the machine's speed drifts from second to second.
#                                  VARIANT=portcullis-outer: the layer around the whole
#                                  router instead of on it (portcullis-on, per route).
#                                  WORKLOADS_PAIRED=distinct BASE=handrolled: every token
#                                  distinct against the hand-rolled check, each window
#                                  on its own slice of the token file
#
# Settings (environment):
#   QUICK=1       smoke test: DURATION=2, WARMUP=1, ROUNDS=1, ALGS=HS256 unless set
#   DURATION      seconds measured per cell (10)     WARMUP  seconds before it (3)
#   WARM_PASSES   rounds over the 10,000 rotating tokens before measuring them (5)
#   ROT_TOKENS    tokens the rot10k workload sends in turn (10000): fewer, and the cached
#                 entries they hit stay in the CPU's caches (a working-set experiment)
#   ROUNDS        interleaved rounds (3)             ALGS    "HS256 RS256 ES256 EdDSA"
#   VARIANTS, WORKLOADS   subsets of the lists below
#   BUILD=0       reuse the built binaries           PORT, ISSUER_PORT  (18480, 18481)
#   CARGO_TARGET_DIR      where the servers are built and tokens kept
#                         (default: <repo>/target/load)
#   MEM_TOKENS (1000000), MEM_REPEAT (2: each token sent twice in a row, so the cache
#                         admits it; 1: once, so the admission filter keeps it out)
#   SERVER_CPU_QUOTA=P    the server may use P % of one CPU (a cgroup's CPU bandwidth
#                         limit, 10 ms periods; needs root and the cgroup cpu controller).
#                         On a machine where one wrk core cannot outrun one server core,
#                         this makes the server set the pace: wrk stays well below its
#                         core, and req/s measures what each server does per request.
#
# Pinning: every server runs on one tokio worker (current-thread runtime) pinned to CPU 0,
# wrk (-t1 -c64) to CPU 1. Every cell starts a fresh server, warms it up with the cell's
# workload (WARMUP seconds; the rotating tokens WARM_PASSES times round; the
# distinct-token workload warms up with the one-token workload, so no measured token is
# ever seen twice), then measures; a cell fails when any response has
# another status than the expected one, on socket errors, or when the distinct tokens
# run out. Beside req/s, each cell reports the server's and wrk's CPU use and the
# requests per second of server CPU time (and the table its inverse, server CPU time per
# request), which hold up better than req/s when other processes share the machine, and
# which are the measure to read where wrk, not the server, sets the pace. Only 127.0.0.1 is ever a target; every server is stopped on exit and stops by
# itself after LOAD_MAX_SECONDS anyway.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MODE=${1:-matrix}

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/load}
export CARGO_INCREMENTAL=0
if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-2} WARMUP=${WARMUP:-1} ROUNDS=${ROUNDS:-1} ALGS=${ALGS:-HS256}
fi
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
WARM_PASSES=${WARM_PASSES:-5}
ROT_TOKENS=${ROT_TOKENS:-10000}
if ! [[ $ROT_TOKENS =~ ^[1-9][0-9]*$ ]]; then
    echo "run.sh: ROT_TOKENS=$ROT_TOKENS: set it to a whole number of tokens, such as 200 (default 10000)" >&2
    exit 1
fi
ROUNDS=${ROUNDS:-3}
ALGS=${ALGS:-HS256 RS256 ES256 EdDSA}
VARIANTS=${VARIANTS:-plain handrolled jwt-authorizer tower-oauth2 portcullis-off portcullis-on plain-axum07}
WORKLOADS=${WORKLOADS:-one rot10k distinct none norole}
PORT=${PORT:-18480}
ISSUER_PORT=${ISSUER_PORT:-18481}
CONNECTIONS=64
SERVER_CPU=0
CLIENT_CPU=1
MEM_TOKENS=${MEM_TOKENS:-1000000}
MEM_REPEAT=${MEM_REPEAT:-2}
# The cache's documented bound (TokenCache: "its memory stays under 32 MiB").
CACHE_BOUND_MIB=32

BIN=$CARGO_TARGET_DIR/release
DATA=$CARGO_TARGET_DIR/load-data
OUT=${LOAD_OUT:-$CARGO_TARGET_DIR/load-results/$(date +%Y%m%d-%H%M%S)-$MODE}
mkdir -p "$DATA" "$OUT"

export LOAD_FIXTURES=$ROOT/tests/fixtures
export LOAD_ISSUER=http://127.0.0.1:$ISSUER_PORT
export LOAD_JWKS_DIR=$DATA
export LOAD_MAX_SECONDS=${LOAD_MAX_SECONDS:-900}

SERVER_PID=
WRK_PID=
CGROUP=
BASE_PID=
cleanup() {
    if [[ -n $BASE_PID ]] && kill -0 "$BASE_PID" 2>/dev/null; then kill "$BASE_PID" 2>/dev/null || true; fi
    if [[ -n $WRK_PID ]] && kill -0 "$WRK_PID" 2>/dev/null; then kill "$WRK_PID" 2>/dev/null || true; fi
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n $CGROUP && -d $CGROUP ]]; then rmdir "$CGROUP" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }

for tool in wrk taskset curl awk; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y wrk util-linux curl gawk)"
done
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU)"

# ----- the server's CPU quota (SERVER_CPU_QUOTA) ---------------------------------------
if [[ -n ${SERVER_CPU_QUOTA:-} ]]; then
    [[ $SERVER_CPU_QUOTA =~ ^[0-9]+$ && $SERVER_CPU_QUOTA -ge 5 && $SERVER_CPU_QUOTA -le 100 ]] ||
        die "SERVER_CPU_QUOTA is a percentage of one CPU, 5 to 100 (got $SERVER_CPU_QUOTA)"
    period=10000
    quota=$((SERVER_CPU_QUOTA * period / 100))
    if [[ -w /sys/fs/cgroup/cpu/cgroup.procs ]]; then
        # cgroup v1
        CGROUP=/sys/fs/cgroup/cpu/portcullis-load-$$
        mkdir "$CGROUP" && echo "$period" >"$CGROUP/cpu.cfs_period_us" && echo "$quota" >"$CGROUP/cpu.cfs_quota_us" ||
            die "could not set up the cgroup $CGROUP for SERVER_CPU_QUOTA"
    elif [[ -w /sys/fs/cgroup/cgroup.procs ]] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        # cgroup v2: the cpu controller must be on for the root's children
        grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu >/sys/fs/cgroup/cgroup.subtree_control ||
            die "SERVER_CPU_QUOTA: could not enable the cgroup v2 cpu controller"
        CGROUP=/sys/fs/cgroup/portcullis-load-$$
        mkdir "$CGROUP" && echo "$quota $period" >"$CGROUP/cpu.max" ||
            die "could not set up the cgroup $CGROUP for SERVER_CPU_QUOTA"
    else
        die "SERVER_CPU_QUOTA needs root and a cgroup cpu controller (/sys/fs/cgroup/cpu or cgroup v2)"
    fi
fi

# ----- build once ---------------------------------------------------------------------
if [[ ${BUILD:-1} == 1 ]]; then
    say "building release servers into $CARGO_TARGET_DIR"
    (cd "$HERE/servers" && cargo build --release --quiet)
    (cd "$HERE/peers" && cargo build --release --quiet)
fi
[[ -x $BIN/load-server && -x $BIN/load-peer ]] || die "no binaries in $BIN (run with BUILD=1)"

# ----- tokens -------------------------------------------------------------------------
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
# gen FILE COUNT ALG ROLE TAG: (re)generates FILE unless it has COUNT tokens already.
gen() {
    if [[ $(lines "$1") -lt $2 ]]; then
        say "signing $2 $3 tokens into $1"
        "$BIN/load-server" gen "$3" "$4" "$2" "$5" "$1"
    fi
}
# Distinct tokens needed per measured second: above the fastest rate any server reached
# on this workload here, so that none runs out (a cell that runs out fails; plain axum,
# which reads no token, may go round the file).
distinct_rate() {
    case $1 in HS256) echo 170000 ;; RS256) echo 45000 ;; ES256) echo 20000 ;; EdDSA) echo 32000 ;; esac
}
# The rotating tokens of ALG (a file per count, so that each has exactly ROT_TOKENS).
rot_file() { if [[ $ROT_TOKENS == 10000 ]]; then echo "$DATA/rot-$1.txt"; else echo "$DATA/rot$ROT_TOKENS-$1.txt"; fi; }
tokens_for() {
    local alg=$1
    gen "$DATA/one-$alg.txt" 1 "$alg" client one
    gen "$DATA/norole-$alg.txt" 1 "$alg" none norole
    gen "$(rot_file "$alg")" "$ROT_TOKENS" "$alg" client rot
    if [[ $alg != HS256 && ! -s $DATA/jwks-$alg.json ]]; then
        "$BIN/load-server" jwks "$alg" "$DATA/jwks-$alg.json"
    fi
}

# ----- servers ------------------------------------------------------------------------
server_cmd() { # variant alg port
    case $1 in
        plain | handrolled | portcullis-off | portcullis-on | portcullis-outer) echo "$BIN/load-server serve $1 $2 $3" ;;
        jwt-authorizer | tower-oauth2 | plain-axum07) echo "$BIN/load-peer serve $1 $2 $3" ;;
        *) die "unknown variant $1" ;;
    esac
}

port_free() { # port: nothing answers there
    local rc=0
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" || rc=$?
    [[ $rc == 7 ]]
}

# launch PORT VARIANT ALG: starts a server on PORT, pinned (and in the quota's cgroup, if
# any), into LAUNCHED; returns 0 once it answers a valid token, 3 unsupported, 1 failed.
LAUNCHED=
launch() {
    local port=$1 variant=$2 alg=$3 log=$OUT/server-$1.log token code i
    port_free "$port" || die "127.0.0.1:$port is in use; set PORT (PORT2 for paired)"
    if [[ $variant == tower-oauth2 ]]; then port_free "$ISSUER_PORT" || die "127.0.0.1:$ISSUER_PORT is in use; set ISSUER_PORT"; fi
    # shellcheck disable=SC2046
    taskset -c "$SERVER_CPU" $(server_cmd "$variant" "$alg" "$port") >"$log" 2>&1 &
    LAUNCHED=$!
    if [[ -n $CGROUP ]]; then echo "$LAUNCHED" >"$CGROUP/cgroup.procs" || die "could not put the server into $CGROUP"; fi
    token=$(head -n1 "$DATA/one-$alg.txt")
    for i in $(seq 1 150); do
        if ! kill -0 "$LAUNCHED" 2>/dev/null; then
            local rc=0
            wait "$LAUNCHED" || rc=$?
            LAUNCHED=
            [[ $rc == 3 ]] && return 3
            say "server $variant $alg exited ($rc): $(tail -n3 "$log")"
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
            -H "Authorization: Bearer $token" "http://127.0.0.1:$port/me" || true)
        [[ $code == 200 ]] && return 0
        sleep 0.1
    done
    say "server $variant $alg never answered 200 to a valid token (last: $code)"
    kill "$LAUNCHED" 2>/dev/null || true
    wait "$LAUNCHED" 2>/dev/null || true
    LAUNCHED=
    return 1
}

# start_server VARIANT ALG: the server of a cell, on PORT, into SERVER_PID; as `launch`.
start_server() {
    local rc=0
    launch "$PORT" "$1" "$2" || rc=$?
    SERVER_PID=$LAUNCHED
    return "$rc"
}

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# CPU time of a process in ns, all its threads (scheduler statistics, ns resolution).
cpu_ns() { cat "/proc/$1/task/"*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

expected_status() { # variant workload
    case $1 in plain | plain-axum07) echo 200; return ;; esac
    case $2 in none) echo 401 ;; norole) echo 403 ;; *) echo 200 ;; esac
}

lua_args() { # workload alg expected -> the script's arguments
    case $1 in
        one) echo "static $3 $DATA/one-$2.txt" ;;
        rot10k) echo "rotate $3 $(rot_file "$2")" ;;
        distinct) echo "stream $3 $DATA/distinct-$2.txt ${4:-0}" ;;
        none) echo "static $3" ;;
        norole) echo "static $3 $DATA/norole-$2.txt" ;;
    esac
}

# wrk_run SECONDS OUTFILE LUA-ARGS...: pinned wrk against PORT; prints "user sys real" of
# wrk to OUTFILE.time
wrk_run() {
    local secs=$1 out=$2
    shift 2
    local TIMEFORMAT='%3U %3S %3R'
    { time taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency \
        -s "$HERE/load.lua" "http://127.0.0.1:$PORT/me" -- "$@" >"$out" 2>"$out.err"; } 2>"$out.time" || true
}

# wrk_until MAXSECONDS OUTFILE MARKER LUA-ARGS...: pinned wrk until the script writes
# MARKER (it stops after a number of requests), at most MAXSECONDS.
wrk_until() {
    local secs=$1 out=$2 marker=$3 i
    shift 3
    rm -f "$marker"
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${secs}s" -s "$HERE/load.lua" \
        "http://127.0.0.1:$PORT/me" -- "$@" >"$out" 2>"$out.err" &
    WRK_PID=$!
    for i in $(seq 1 $((secs * 10))); do
        [[ -f $marker ]] && break
        kill -0 "$WRK_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -INT "$WRK_PID" 2>/dev/null || true
    wait "$WRK_PID" 2>/dev/null || true
    WRK_PID=
    [[ -f $marker ]]
}

field() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" "$1" | head -n1; }

# check_result FILE [reuse-ok]: the reason the run is invalid, or nothing.
check_result() {
    local f=$1 reuse_ok=${2:-}
    grep -q '^LOADRESULT' "$f" || { echo "wrk gave no result: $(head -c 300 "$f.err")"; return; }
    local bad wrapped sock timeouts requests
    bad=$(field "$f" bad); wrapped=$(field "$f" wrapped); sock=$(field "$f" sock_errors)
    timeouts=$(field "$f" timeouts); requests=$(field "$f" requests)
    [[ $requests -gt 0 ]] || { echo "no request completed"; return; }
    [[ $bad == 0 ]] || { echo "$bad unexpected statuses ($(field "$f" bad_statuses))"; return; }
    [[ $sock == 0 && $timeouts == 0 ]] || { echo "socket errors $sock, timeouts $timeouts"; return; }
    [[ $wrapped == 0 || -n $reuse_ok ]] || { echo "distinct tokens ran out (raise distinct_rate)"; return; }
}

RESULTS=$OUT/results.tsv

# run_cell ROUND ALG WORKLOAD VARIANT: appends one line to RESULTS.
run_cell() {
    local round=$1 alg=$2 wl=$3 variant=$4 expected rc=0 why t0 t1 hwm f
    expected=$(expected_status "$variant" "$wl")
    f=$OUT/wrk-$round-$alg-$wl-$variant.txt
    start_server "$variant" "$alg" || rc=$?
    if [[ $rc == 3 ]]; then
        printf '%s\t%s\t%s\t%s\tNA\t\t\t\t\t\tno HMAC (OIDC JWK sets only)\n' "$round" "$alg" "$wl" "$variant" >>"$RESULTS"
        return
    elif [[ $rc != 0 ]]; then
        printf '%s\t%s\t%s\t%s\tFAIL\t\t\t\t\t\tserver did not start\n' "$round" "$alg" "$wl" "$variant" >>"$RESULTS"
        FAILED=1
        return
    fi
    # Warm-up (not recorded, but checked). The rotating tokens go round WARM_PASSES
    # times whatever the machine's speed (a cache admits a token on its second sight).
    local warm
    if [[ $wl == rot10k ]]; then
        wrk_until 120 "$f.warm" "$OUT/warm.done" rotate "$expected" "$(rot_file "$alg")" \
            "$OUT/warm.done" $((WARM_PASSES * ROT_TOKENS)) || echo "no end marker" >>"$f.warm"
    else
        if [[ $wl == distinct ]]; then warm=$(lua_args one "$alg" "$expected"); else warm=$(lua_args "$wl" "$alg" "$expected"); fi
        # shellcheck disable=SC2086
        wrk_run "$WARMUP" "$f.warm" $warm
    fi
    why=$(check_result "$f.warm")
    if [[ -z $why ]] && grep -q "no end marker" "$f.warm"; then why="did not go round the tokens $WARM_PASSES times in 120 s"; fi
    if [[ -z $why ]]; then
        t0=$(cpu_ns "$SERVER_PID")
        # shellcheck disable=SC2046
        wrk_run "$DURATION" "$f" $(lua_args "$wl" "$alg" "$expected")
        t1=$(cpu_ns "$SERVER_PID")
        why=$(check_result "$f" "$(case $variant in plain | plain-axum07) echo yes ;; esac)")
    else
        why="warm-up: $why"
    fi
    hwm=$(status_kb "$SERVER_PID" VmHWM || echo 0)
    stop_server
    if [[ -n $why ]]; then
        say "FAIL $alg $wl $variant: $why"
        printf '%s\t%s\t%s\t%s\tFAIL\t\t\t\t\t\t%s\n' "$round" "$alg" "$wl" "$variant" "$why" >>"$RESULTS"
        FAILED=1
        return
    fi
    local rps p99 srv cli real percpu
    rps=$(field "$f" rps); p99=$(field "$f" p99_us)
    real=$(awk '{print $3}' "$f.time")
    srv=$(awk -v a="$t0" -v b="$t1" -v d="$real" 'BEGIN {printf "%.0f", 100 * (b - a) / 1e9 / d}')
    cli=$(awk '{printf "%.0f", 100 * ($1 + $2) / $3}' "$f.time")
    # Requests per second of server CPU time: what a server does with the CPU it got,
    # steadier than req/s when other processes take part of its core.
    percpu=$(awk -v n="$(field "$f" requests)" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", (b > a) ? n / ((b - a) / 1e9) : 0}')
    printf '%s\t%s\t%s\t%s\tOK\t%s\t%s\t%s\t%s\t%s\t\t%s\n' "$round" "$alg" "$wl" "$variant" "$rps" "$p99" "$hwm" "$srv" "$cli" "$percpu" >>"$RESULTS"
    printf '  %-6s %-8s %-15s %10.0f req/s  p99 %6.2f ms  RSS %5.1f MiB  cpu srv %s%% wrk %s%%  %s req/cpu-s\n' \
        "$alg" "$wl" "$variant" "$rps" "$(awk -v p="$p99" 'BEGIN {print p / 1000}')" \
        "$(awk -v k="$hwm" 'BEGIN {print k / 1024}')" "$srv" "$cli" "$percpu" >&2
}

machine() {
    echo "- machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
    echo "- $(wrk --version 2>&1 | head -n1 | sed 's/ Copyright.*//'); $(rustc --version)"
    if [[ $ROT_TOKENS != 10000 ]]; then echo "- rot10k sends $ROT_TOKENS tokens in turn here (ROT_TOKENS)"; fi
}

# ----- the table ----------------------------------------------------------------------
# The median of the space-separated numbers in s ("" for none), for the awk tables.
AWK_MEDIAN='
    function median(s,    a, n, i, j, t) {
        n = split(s, a, " ")
        for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        if (n == 0) return ""
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }'

summarize() {
    awk -F'\t' -v algs="$ALGS" -v wls="$WORKLOADS" -v vars="$VARIANTS" "$AWK_MEDIAN"'
    function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
    # The req/s ratio, and the ratio of requests per server CPU-second in parentheses.
    function ratios(k, o) { return (m[o] == "") ? "-" : ratio(m[k], m[o]) " (" ratio(c[k], c[o]) ")" }
    {
        k = $2 SUBSEP $3 SUBSEP $4
        st[k] = ($5 == "OK" && st[k] != "FAIL") ? "OK" : $5
        if ($5 == "NA" || $5 == "FAIL") note[k] = $11
        if ($5 != "OK") next
        rps[k] = rps[k] " " $6; p99[k] = p99[k] " " $7; srv[k] = srv[k] " " $9; cli[k] = cli[k] " " $10; pc[k] = pc[k] " " $12
        if ($8 + 0 > hwm[k]) hwm[k] = $8 + 0
        nr[k]++
    }
    END {
        na = split(algs, A, " "); nw = split(wls, W, " "); nv = split(vars, V, " ")
        for (k in st) { m[k] = (st[k] == "OK") ? median(rps[k]) : ""; c[k] = (st[k] == "OK") ? median(pc[k]) : "" }
        for (a = 1; a <= na; a++) {
            printf "\n### %s\n\n", A[a]
            print "| workload | variant | req/s | p99 ms | peak RSS MiB | CPU server / wrk | req per server CPU-s | server CPU µs per req | x plain | x hand-rolled | x jwt-authorizer | x tower-oauth2 |"
            print "|---|---|---|---|---|---|---|---|---|---|---|---|"
            for (w = 1; w <= nw; w++) for (v = 1; v <= nv; v++) {
                k = A[a] SUBSEP W[w] SUBSEP V[v]
                if (!(k in st)) continue
                if (st[k] != "OK") { printf "| %s | %s | %s | | | | | | | | | |\n", W[w], V[v], (st[k] == "NA" ? "- (" note[k] ")" : "FAIL: " note[k]); continue }
                base = A[a] SUBSEP W[w] SUBSEP
                printf "| %s | %s | %.0f | %.2f | %.1f | %d%% / %d%% | %.0f | %.2f | %s | %s | %s | %s |\n", W[w], V[v], m[k], median(p99[k]) / 1000, hwm[k] / 1024,
                    median(srv[k]), median(cli[k]), c[k], (c[k] > 0 ? 1e6 / c[k] : 0), ratios(k, base "plain"), ratios(k, base "handrolled"),
                    ratios(k, base "jwt-authorizer"), ratios(k, base "tower-oauth2")
            }
        }
        # The acceptance lines of issue 10, from these medians.
        print "\n### Acceptance (issue 10), from these medians\n"
        for (a = 1; a <= na; a++) {
            al = A[a]
            for (w = 1; w <= nw; w++) {
                wl = W[w]; b = al SUBSEP wl SUBSEP
                p = b "portcullis-on"
                if (wl == "one" || wl == "rot10k") {
                    check("1 cache on / plain", al, wl, p, b "plain", 0.90)
                    need = (al == "RS256") ? 6 : ((al == "ES256" || al == "EdDSA") ? 10 : 0)
                    if (need) { check("2 cache on / jwt-authorizer", al, wl, p, b "jwt-authorizer", need); check("2 cache on / tower-oauth2", al, wl, p, b "tower-oauth2", need) }
                }
                if (wl == "distinct") { check("3 cache on / hand-rolled", al, wl, p, b "handrolled", 1.0); check("3 cache off / hand-rolled", al, wl, b "portcullis-off", b "handrolled", 1.0) }
                if (wl == "none") { check("4 401 cache on / plain", al, wl, p, b "plain", 0.95); check("4 401 cache off / plain", al, wl, b "portcullis-off", b "plain", 0.95) }
                if (wl == "norole") check("4 403 cache on / plain", al, wl, p, b "plain", 0.85)
            }
        }
    }
    # An acceptance line is judged on req/s; the per-CPU-second ratio is shown beside it.
    function check(what, al, wl, x, y, need,    r) {
        if (m[x] == "" || m[y] == "") { printf "- %s, %s %s: not measured\n", what, al, wl; return }
        r = m[x] / m[y]
        printf "- %s, %s %s: %.2f (need >= %s) %s; per server CPU-s %s\n", what, al, wl, r, need, (r >= need ? "met" : "NOT MET"), ratio(c[x], c[y])
    }' "$RESULTS"
}

# ----- modes --------------------------------------------------------------------------
matrix() {
    FAILED=0
    for alg in $ALGS; do
        tokens_for "$alg"
        local need=$(( $(distinct_rate "$alg") * DURATION ))
        if [[ " $WORKLOADS " == *" distinct "* ]]; then gen "$DATA/distinct-$alg.txt" "$need" "$alg" client distinct; fi
    done
    : >"$RESULTS"
    {
        echo "# load bench: DURATION=${DURATION}s WARMUP=${WARMUP}s ROUNDS=$ROUNDS wrk -t1 -c$CONNECTIONS, server on CPU $SERVER_CPU${SERVER_CPU_QUOTA:+ (at most $SERVER_CPU_QUOTA % of it)}, wrk on CPU $CLIENT_CPU"
        machine
        echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    } | tee "$OUT/header.md" >&2
    local round alg wl variant
    for round in $(seq 1 "$ROUNDS"); do
        say "round $round of $ROUNDS"
        for alg in $ALGS; do
            for wl in $WORKLOADS; do
                for variant in $VARIANTS; do
                    # plain axum 0.7 is jwt-authorizer's own baseline: one workload is enough.
                    [[ $variant == plain-axum07 && $wl != one ]] && continue
                    run_cell "$round" "$alg" "$wl" "$variant"
                done
            done
        done
    done
    echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/header.md" >&2
    { cat "$OUT/header.md"; summarize; } | tee "$OUT/table.md"
    say "results: $OUT (results.tsv, table.md, wrk outputs)"
    [[ $FAILED == 0 ]] || die "some cells failed (see above)"
}

memory() {
    local alg=HS256
    local file=$DATA/mem-$alg.txt marker=$OUT/mem.done
    tokens_for "$alg"
    gen "$file" "$MEM_TOKENS" "$alg" client mem
    rm -f "$marker"
    machine >&2
    say "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    start_server portcullis-on "$alg" || die "server did not start"
    local before before_rss
    before=$(status_kb "$SERVER_PID" VmHWM); before_rss=$(status_kb "$SERVER_PID" VmRSS)
    say "sending $MEM_TOKENS distinct $alg tokens, each $MEM_REPEAT times in a row, to portcullis (cache on, defaults)"
    local TIMEFORMAT='%3R'
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d600s --latency -s "$HERE/load.lua" \
        "http://127.0.0.1:$PORT/me" -- once 200 "$file" "$marker" "$MEM_REPEAT" >"$OUT/mem.txt" 2>"$OUT/mem.err" &
    WRK_PID=$!
    local peak_rss=0 rss s
    for s in $(seq 1 6000); do
        [[ -f $marker ]] && break
        kill -0 "$WRK_PID" 2>/dev/null || break
        rss=$(status_kb "$SERVER_PID" VmRSS); ((rss > peak_rss)) && peak_rss=$rss
        sleep 0.1
    done
    [[ -f $marker ]] || die "wrk stopped before the tokens ran out: $(tail -n3 "$OUT/mem.err")"
    sleep 1
    kill -INT "$WRK_PID" 2>/dev/null || true
    wait "$WRK_PID" || true
    WRK_PID=
    local after after_rss why
    after=$(status_kb "$SERVER_PID" VmHWM); after_rss=$(status_kb "$SERVER_PID" VmRSS)
    stop_server
    why=$(check_result "$OUT/mem.txt" yes)
    [[ -z $why ]] || die "memory run invalid: $why"
    local requests limit
    requests=$(field "$OUT/mem.txt" requests)
    limit=$(( (CACHE_BOUND_MIB + 64) * 1024 ))
    {
        echo "| | KiB | MiB |"
        echo "|---|---|---|"
        echo "| VmHWM before (started, one request) | $before | $(awk -v k="$before" 'BEGIN {printf "%.1f", k / 1024}') |"
        echo "| VmHWM after $requests requests ($MEM_TOKENS distinct tokens x $MEM_REPEAT) | $after | $(awk -v k="$after" 'BEGIN {printf "%.1f", k / 1024}') |"
        echo "| growth of VmHWM | $((after - before)) | $(awk -v k="$((after - before))" 'BEGIN {printf "%.1f", k / 1024}') |"
        echo "| VmRSS before / after | $before_rss / $after_rss | |"
        echo "| the cache's documented bound + 64 MiB | $limit | $((CACHE_BOUND_MIB + 64)) |"
        echo
        if ((after <= limit)); then echo "Acceptance 5: peak RSS $((after / 1024)) MiB <= $((CACHE_BOUND_MIB + 64)) MiB: met"; else echo "Acceptance 5: peak RSS $((after / 1024)) MiB > $((CACHE_BOUND_MIB + 64)) MiB: NOT MET"; fi
    } | tee "$OUT/memory.md"
    say "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ----- paired: two servers side by side, measured in alternate windows -----------------
# The base and the variant run side by side on the server CPU, idle in turn; PAIRS pairs
# of WINDOW-second windows, in alternate order (base first, then variant first), so that
# the machine's drift from second to second falls on both alike. Each pair gives a ratio;
# the table gives their median and range, and each server's CPU time per request.
paired() {
    local base=${BASE:-plain} variant=${VARIANT:-portcullis-on} pairs=${PAIRS:-10} win=${WINDOW:-2}
    local port2=${PORT2:-18482} wls=${WORKLOADS_PAIRED:-one rot10k none norole}
    local tsv=$OUT/paired.tsv
    : >"$tsv"
    {
        echo "# paired load bench: $base vs $variant, $pairs pairs of ${win}s windows, wrk -t1 -c$CONNECTIONS, servers on CPU $SERVER_CPU${SERVER_CPU_QUOTA:+ (at most $SERVER_CPU_QUOTA % of it)}, wrk on CPU $CLIENT_CPU"
        machine
        echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    } | tee "$OUT/header.md" >&2
    local alg wl i who f t0 t1 why
    # Each side: its variant, port, and in a cell its pid and expected status.
    local -A name=([base]=$base [variant]=$variant) port=([base]=$PORT [variant]=$port2) pid want
    for alg in $ALGS; do
        tokens_for "$alg"
        # Every token distinct: each window reads its own slice of the file (both sides
        # the same slices, each its own server), sized for the fastest rate at this quota,
        # so that no measured token is ever seen twice by one server.
        local slice=$(( $(distinct_rate "$alg") * ${SERVER_CPU_QUOTA:-100} / 100 * win ))
        if [[ " $wls " == *" distinct "* ]]; then gen "$DATA/distinct-$alg.txt" $((slice * pairs)) "$alg" client distinct; fi
        for wl in $wls; do
            for who in base variant; do
                launch "${port[$who]}" "${name[$who]}" "$alg" || die "$who ($alg) did not start"
                pid[$who]=$LAUNCHED
                want[$who]=$(expected_status "${name[$who]}" "$wl")
                if [[ $who == base ]]; then BASE_PID=$LAUNCHED; else SERVER_PID=$LAUNCHED; fi
            done
            for who in base variant; do
                # The distinct-token workload warms up with one token, as in the matrix.
                # shellcheck disable=SC2046
                PORT=${port[$who]} wrk_run "$WARMUP" "$OUT/warm-$who.txt" $(lua_args "${wl/distinct/one}" "$alg" "${want[$who]}")
                if [[ $wl == rot10k ]]; then
                    PORT=${port[$who]} wrk_until 120 "$OUT/warm-$who.txt" "$OUT/warm.done" rotate "${want[$who]}" "$(rot_file "$alg")" \
                        "$OUT/warm.done" $((WARM_PASSES * ROT_TOKENS)) || die "$who did not go round the tokens"
                fi
            done
            for i in $(seq 1 "$pairs"); do
                local order="base variant"
                ((i % 2 == 0)) && order="variant base"
                for who in $order; do
                    f=$OUT/pair-$alg-$wl-$i-$who.txt
                    t0=$(cpu_ns "${pid[$who]}")
                    # shellcheck disable=SC2046
                    PORT=${port[$who]} wrk_run "$win" "$f" $(lua_args "$wl" "$alg" "${want[$who]}" $(((i - 1) * slice)))
                    t1=$(cpu_ns "${pid[$who]}")
                    why=$(check_result "$f" "$([[ ${name[$who]} == plain ]] && echo yes)")
                    if [[ -z $why && $wl == distinct && ${name[$who]} != plain && $(field "$f" requests) -gt $slice ]]; then
                        why="$(field "$f" requests) requests ran into the next window's distinct tokens (raise distinct_rate)"
                    fi
                    [[ -z $why ]] || die "$alg $wl $who window $i: $why"
                    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$alg" "$wl" "$i" "$who" "$(field "$f" rps)" \
                        "$(awk -v n="$(field "$f" requests)" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (n > 0) ? (b - a) / 1e3 / n : 0}')" \
                        "$(awk '{printf "%.0f", 100 * ($1 + $2) / $3}' "$f.time")" >>"$tsv"
                done
            done
            kill "${pid[base]}" "${pid[variant]}" 2>/dev/null || true
            wait "${pid[base]}" "${pid[variant]}" 2>/dev/null || true
            SERVER_PID= BASE_PID=
            say "  $alg $wl: $(awk -F'\t' -v a="$alg" -v w="$wl" '$1 == a && $2 == w {r[$3 " " $4] = $5} END {for (k in r) if (k ~ / variant$/) {split(k, p, " "); printf "%.2f ", r[k] / r[p[1] " base"]}}' "$tsv")"
        done
    done
    echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/header.md" >&2
    {
        cat "$OUT/header.md"
        echo
        echo "| alg | workload | $variant / $base, median of $pairs pairs | range | $base req/s | server CPU µs per req, $base -> $variant | wrk CPU, $base |"
        echo "|---|---|---|---|---|---|---|"
        awk -F'\t' "$AWK_MEDIAN"'
        {
            k = $1 SUBSEP $2
            if (!(k in seen)) { seen[k] = 1; order[++n] = k }
            rps[k, $3, $4] = $5; us[k, $4] = us[k, $4] " " $6; cli[k, $4] = cli[k, $4] " " $7
            if ($4 == "base") brps[k] = brps[k] " " $5
            pairs[k] = ($3 > pairs[k]) ? $3 : pairs[k]
        }
        END {
            for (x = 1; x <= n; x++) {
                k = order[x]; r = ""; lo = 1e9; hi = 0
                for (i = 1; i <= pairs[k]; i++) {
                    q = rps[k, i, "variant"] / rps[k, i, "base"]; r = r " " q
                    if (q < lo) lo = q; if (q > hi) hi = q
                }
                split(k, ka, SUBSEP)
                printf "| %s | %s | **%.2f** | %.2f-%.2f | %.0f | %.2f -> %.2f | %d%% |\n", ka[1], ka[2], median(r), lo, hi, median(brps[k]),
                    median(us[k, "base"]), median(us[k, "variant"]), median(cli[k, "base"])
            }
        }' "$tsv"
    } | tee "$OUT/table.md"
    say "results: $OUT (paired.tsv, table.md, wrk outputs)"
}

case $MODE in
    matrix) matrix ;;
    memory) memory ;;
    paired) paired ;;
    *) die "usage: run.sh [matrix|memory|paired]" ;;
esac
