#!/usr/bin/env bash
#  bench/fanout/run.sh - SSE fan-out: minerwatch gateway vs nginx + nchan.
#
#  For each client count, and for each server in turn: start the server fresh
#  (minerwatch-broker + minerwatch-gateway, or nginx + nchan with a generated
#  config), read its RSS, connect N SSE clients (sse_clients), read its RSS
#  again (memory per idle client), then publish the same timestamped events
#  at the same rate for the same time (fanout_pub) and print what the
#  clients got: delivered events/s (sum over clients), publish-to-client
#  latency p50/p99, errors. Then polling requests/s on the gateway's
#  /api/dashboard/live/status with wrk (100 connections), with and without
#  If-None-Match. Every step is bounded; everything listens on 127.0.0.1.
#
#  Usage: bench/fanout/run.sh [OPTIONS]
#    --clients "1 100 1000 5000"   client counts (default)
#    --rate R          events/s published (default 100)
#    --peak N:R        one more point: N clients at R events/s, to find where
#                      each server saturates (default 1000:1000)
#    --no-peak         no such point
#    --duration S      seconds of publishing per point (default 10)
#    --no-nchan        minerwatch only
#    --nginx-workers N nginx worker processes (default 1: like the gateway's
#                      one HTTP service thread)
#    --no-poll         skip the wrk polling runs
#    --smoke           2 clients, 1 s, minerwatch only, no polling; fails if
#                      no event arrives (what the bench_fanout_smoke test runs)
#    --bin-dir DIR     use this build directory, do not build
#  Environment: MW_BUILD_DIR (default build-fanout/, Release), MW_JOBS.
#  Needs nginx-light + libnginx-mod-nchan and wrk (Debian packages) for the
#  nchan and polling parts, curl for readiness checks.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${MW_BUILD_DIR:-$ROOT/build-fanout}"
JOBS="${MW_JOBS:-$(nproc 2>/dev/null || echo 2)}"
CLIENTS="1 100 1000 5000"
RATE=100
PEAK="1000:1000"
DURATION=10
NCHAN=1
NGINX_WORKERS=1
POLL=1
SMOKE=0
BUILD_IT=1
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --peak) PEAK="$2"; shift 2 ;;
        --no-peak) PEAK=""; shift ;;
        --duration) DURATION="$2"; shift 2 ;;
        --no-nchan) NCHAN=0; shift ;;
        --nginx-workers) NGINX_WORKERS="$2"; shift 2 ;;
        --no-poll) POLL=0; shift ;;
        --smoke) SMOKE=1; CLIENTS=2; RATE=50; DURATION=1; NCHAN=0; POLL=0; PEAK=""; shift ;;
        --bin-dir) BUILD="$2"; BUILD_IT=0; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed -E 's/^#( |$)//'; exit 0 ;;
        *) echo "run.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done

if [ "$BUILD_IT" = 1 ]; then
    echo "== building (Release) in $BUILD" >&2
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" --parallel "$JOBS" \
        --target sse_clients fanout_pub minerwatch-broker minerwatch-gateway >/dev/null
fi
SSE="$BUILD/bench/fanout/sse_clients"
PUB="$BUILD/bench/fanout/fanout_pub"
BROKER="$BUILD/broker/minerwatch-broker"
GATEWAY="$BUILD/gateway/minerwatch-gateway"
for f in "$SSE" "$PUB" "$BROKER" "$GATEWAY"; do
    [ -x "$f" ] || { echo "run.sh: missing $f" >&2; exit 1; }
done
NGINX_MOD=/usr/lib/nginx/modules/ngx_nchan_module.so
if [ "$NCHAN" = 1 ] && { ! command -v nginx >/dev/null || [ ! -f "$NGINX_MOD" ]; }; then
    echo "run.sh: nginx or the nchan module is missing (apt-get install nginx-light libnginx-mod-nchan)" >&2
    exit 1
fi
if [ "$POLL" = 1 ] && ! command -v wrk >/dev/null; then
    echo "run.sh: wrk is missing (apt-get install wrk); skipping polling" >&2
    POLL=0
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TMP="$(mktemp -d /tmp/mw-fanout.XXXXXX)"
PIDS=()
cleanup () {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
    PIDS=()
}
trap 'cleanup; rm -rf "$TMP"' EXIT

#  A free TCP port on 127.0.0.1 (not listened on, not used by a connection).
free_port () {
    local p
    for _ in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 20000 ))
        if ! ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null | grep -q .; then
            echo "$p"; return 0
        fi
    done
    return 1
}

#  Wait (at most 10 s) until URL answers any HTTP status.
wait_http () {
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null --max-time 1 "$1"; then return 0; fi
        sleep 0.1
    done
    echo "run.sh: $1 does not answer" >&2
    return 1
}

#  RSS in KiB of the given pids, summed.
rss_kib () {
    local sum=0 v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        sum=$(( sum + ${v:-0} ))
    done
    echo "$sum"
}

#  CPU time (user + system, clock ticks) of the given pids, summed.
cpu_ticks () {
    local sum=0 v
    for p in "$@"; do
        v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        sum=$(( sum + ${v:-0} ))
    done
    echo "$sum"
}

SERVER_PIDS=()   # the processes whose memory is measured
SUB_URL=""
PUB_TARGET=()
EVENT=""

start_minerwatch () {
    local pi pp ps ph
    pi=$(free_port); pp=$(free_port); ps=$(free_port); ph=$(free_port)
    "$BROKER" --ingest "@tcp://127.0.0.1:$pi" --publish "@tcp://127.0.0.1:$pp" \
        --snapshot "@tcp://127.0.0.1:$ps" --quiet >"$TMP/broker.log" 2>&1 &
    PIDS+=($!)
    "$GATEWAY" --updates ">tcp://127.0.0.1:$pp" --snapshot ">tcp://127.0.0.1:$ps" \
        --http "127.0.0.1:$ph" --max-clients 6000 --quiet >"$TMP/gateway.log" 2>&1 &
    local gw=$!
    PIDS+=("$gw")
    wait_http "http://127.0.0.1:$ph/healthz"
    #  wait for the gateway's first snapshot (status answers 200, not 503)
    for _ in $(seq 1 50); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ph/api/dashboard/live/status")" = 200 ] && break
        sleep 0.1
    done
    SERVER_PIDS=("$gw")
    HTTP_PORT=$ph
    SUB_URL="http://127.0.0.1:$ph/api/dashboard/live"
    PUB_TARGET=(--mw ">tcp://127.0.0.1:$pi")
    EVENT=bench
}

start_nchan () {
    local ph
    ph=$(free_port)
    mkdir -p "$TMP/nginx/tmp"
    cat >"$TMP/nginx/nginx.conf" <<EOF
load_module $NGINX_MOD;
daemon off;
master_process on;
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile 20000;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 12000; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    keepalive_requests 1000000;
    nchan_shared_memory_size 128M;
    server {
        listen 127.0.0.1:$ph backlog=8192;
        location = /ping { return 200 "ok\n"; }
        location ~ ^/pub/(\w+)$ {
            nchan_publisher;
            nchan_channel_id \$1;
            nchan_message_buffer_length 1000;
            nchan_message_timeout 60s;
        }
        location ~ ^/sub/(\w+)$ {
            nchan_subscriber eventsource;
            nchan_channel_id \$1;
            nchan_subscriber_first_message newest;
        }
    }
}
EOF
    nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" &
    local master=$!
    PIDS+=("$master")
    wait_http "http://127.0.0.1:$ph/ping"
    SERVER_PIDS=("$master" $(pgrep -P "$master" || true))
    SUB_URL="http://127.0.0.1:$ph/sub/bench"
    PUB_TARGET=(--http "http://127.0.0.1:$ph/pub/bench")
    EVENT=message
}

#  One point: server $1, $2 clients, $3 events/s. Prints a result line.
run_point () {
    local server=$1 n=$2 rate=$3
    trap cleanup EXIT   # run in $(...): stop what this point started, even on failure
    "start_$server"
    sleep 0.5
    local rss0 rss1
    rss0=$(rss_kib "${SERVER_PIDS[@]}")
    local out="$TMP/clients.out"
    : >"$out"
    "$SSE" --url "$SUB_URL" --clients "$n" --event "$EVENT" \
        --timeout $(( DURATION + 15 )) >"$out" 2>"$TMP/clients.err" &
    local cp=$!
    PIDS+=("$cp")
    for _ in $(seq 1 600); do
        grep -q '^READY' "$out" && break
        kill -0 "$cp" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^READY' "$out"; then
        echo "run.sh: $server: $n clients did not connect within 60 s" >&2
        cleanup; return 1
    fi
    sleep 1
    rss1=$(rss_kib "${SERVER_PIDS[@]}")
    local pubout
    local cpu0 cpu1
    cpu0=$(cpu_ticks "${SERVER_PIDS[@]}")
    pubout=$("$PUB" "${PUB_TARGET[@]}" --rate "$rate" --duration "$DURATION" |
             sed 's/\([a-z_]*\)=/pub_\1=/g')
    wait "$cp" || true
    cpu1=$(cpu_ticks "${SERVER_PIDS[@]}")
    local res
    res=$(grep '^clients=' "$out" || echo "clients=$n connected=0 errors=$n events=0")
    cleanup
    local per=$(( (rss1 - rss0) * 1024 / n ))
    echo "server=$server offered=$rate $res rss0_kib=$rss0 rss_idle_kib=$rss1 bytes_per_idle_client=$per server_cpu_s=$(awk -v t=$(( cpu1 - cpu0 )) -v h="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / h }') $pubout"
    if [ -s "$TMP/clients.err" ]; then
        echo "   (client stderr: $(sort "$TMP/clients.err" | uniq -c | head -3 | tr '\n' ' '))" >&2
    fi
}

kv () { sed -n "s/.*[ ^]$1=\([^ ]*\).*/\1/p" <<<" $2"; }

SERVERS="minerwatch"
[ "$NCHAN" = 1 ] && SERVERS="minerwatch nchan"
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "## Gateway fan-out, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(nproc) cores, ${cpu:-unknown CPU}, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(. /etc/os-release && echo "$PRETTY_NAME")."
[ "$NCHAN" = 1 ] && echo "nginx: $(nginx -v 2>&1 | sed 's/.*: //') ($NGINX_WORKERS worker process(es)), nchan $(dpkg-query -W -f '${Version}' libnginx-mod-nchan 2>/dev/null || echo '?')."
echo "Rate $RATE events/s for $DURATION s per point; load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
POINTS=""
for n in $CLIENTS; do POINTS="$POINTS $n:$RATE"; done
[ -n "$PEAK" ] && POINTS="$POINTS $PEAK"
RESULTS=()
for pt in $POINTS; do
    n=${pt%%:*}; rate=${pt##*:}
    for s in $SERVERS; do
        line=$(run_point "$s" "$n" "$rate") || { echo "run.sh: point $s/$n failed" >&2; [ "$SMOKE" = 1 ] && exit 1; continue; }
        echo "$line" >&2
        RESULTS+=("$line")
    done
done
echo "| clients | server | offered events/s | accepted events/s | delivered events/s (all clients) | of accepted x clients | p50 latency | p99 latency | errors | bytes per idle client | server CPU s |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
fail=0
for r in "${RESULTS[@]}"; do
    n=$(kv clients "$r"); s=$(kv server "$r"); ev=$(kv events "$r"); eps=$(kv events_per_s "$r")
    sent=$(kv pub_sent "$r"); conn=$(kv connected "$r")
    exp=$(( ${sent:-0} * n ))
    pct=$(awk -v a="${ev:-0}" -v b="$exp" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else print "-" }')
    p50=$(awk -v u="$(kv p50_us "$r")" 'BEGIN { printf (u >= 1000 ? "%.1f ms" : "%d us"), (u >= 1000 ? u / 1000 : u) }')
    p99=$(awk -v u="$(kv p99_us "$r")" 'BEGIN { printf (u >= 1000 ? "%.1f ms" : "%d us"), (u >= 1000 ? u / 1000 : u) }')
    err=$(kv errors "$r"); per=$(kv bytes_per_idle_client "$r")
    [ "$n" -lt 100 ] && per="$per (noise)"
    echo "| $n | $s | $(kv offered "$r") | $(kv pub_rate "$r") | $eps | $pct | $p50 | $p99 | $err ($conn connected) | $per | $(kv server_cpu_s "$r") |"
    if [ "${ev:-0}" = 0 ] || [ "${err:-1}" != 0 ]; then fail=1; fi
done
echo
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."

if [ "$POLL" = 1 ]; then
    start_minerwatch
    "$PUB" "${PUB_TARGET[@]}" --rate 200 --duration 1 >/dev/null
    sleep 0.5
    url="http://127.0.0.1:$HTTP_PORT/api/dashboard/live/status"
    etag=$(curl -sI "$url" | sed -n 's/^[Ee][Tt]ag: *\(.*\)\r$/\1/p')
    code304=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$url")
    bytes=$(curl -s "$url" | wc -c)
    full=$(wrk -t2 -c100 -d10s --timeout 5s "$url" 2>&1)
    cond=$(wrk -t2 -c100 -d10s --timeout 5s -H "If-None-Match: $etag" "$url" 2>&1)
    cleanup
    echo
    echo "### Polling /api/dashboard/live/status, wrk -t2 -c100 -d10s"
    echo
    echo "| request | answer | requests/s | mean latency | errors |"
    echo "|---|---|---:|---:|---|"
    for which in full cond; do
        o=${!which}
        rps=$(sed -n 's/^Requests\/sec: *//p' <<<"$o")
        lat=$(awk '/Latency/ {print $2; exit}' <<<"$o")
        errs=$(grep -E 'Socket errors|Non-2xx' <<<"$o" | tr -s ' ' | tr '\n' ';' || true)
        if [ "$which" = full ]; then
            echo "| plain GET | 200, $bytes bytes | $rps | $lat | ${errs:-none} |"
        else
            echo "| If-None-Match: current ETag | $code304, no body | $rps | $lat | ${errs:-none} |"
        fi
    done
fi

if [ "$SMOKE" = 1 ] && [ "$fail" = 1 ]; then
    echo "run.sh: smoke run failed: no event delivered or an error" >&2
    exit 1
fi
exit 0
