#!/usr/bin/env bash
# corio-http against what users would pick instead, on /plaintext:
#
#   epoll   a hand-written edge-triggered epoll server (bench/peers/epoll_ref.c):
#           the reference, the fastest plain way to do the same work
#   corio   corio-http, one loop
#   nginx   `return 200`, one worker, no access log
#   libuv   bench/peers/libuv_http.c
#   go      net/http (bench/peers/go_http.go), GOMAXPROCS=1
#   uvloop  an asyncio Protocol on uvloop (bench/peers/uvloop_http.py)
#
# Every server is pinned to CPU 0 and the load (wrk, then corio-load) to
# CPU 1.  The servers are started once and the rounds visit them in turn,
# the order reversed every other round (A B .. B A), so that a slow
# minute of a shared machine does not fall on one peer.  Per measurement:
# requests per second from the load tool, and the server's CPU time per
# request from /proc/<pid>/stat (utime + stime) over the same window: the
# steadier figure where other work shares the machine.  Prints medians and
# each peer's ratio to the reference, writes results.md and a PNG chart.
#
#   bench/peers/run.sh BUILD_DIR
#   BENCH_SECONDS=5 BENCH_ROUNDS=3 BENCH_CONNS=128 BENCH_PEERS="epoll corio nginx"
#   BENCH_TOOLS="wrk corio-load" BENCH_DEPTHS="1 16" BENCH_OUT=dir
#
# Changes nothing on the machine; stops everything it starts.
set -euo pipefail

B=$(cd "${1:-build/cc}" && pwd)
SECS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-128}
PEERS=${BENCH_PEERS:-"epoll corio nginx libuv go uvloop"}
TOOLS=${BENCH_TOOLS:-"wrk corio-load"}
DEPTHS=${BENCH_DEPTHS:-"1 16"}
OUT=${BENCH_OUT:-$B/peers}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

TMP=$(mktemp -d /tmp/corio-peers.XXXXXX)
declare -A PID PORT
cleanup() {
    for p in "${!PID[@]}"; do
        kill "${PID[$p]}" 2>/dev/null || true
    done
    for p in "${!PID[@]}"; do
        wait "${PID[$p]}" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
SRV_CPU=() LOAD_CPU=()
if [ "$(nproc)" -ge 2 ]; then
    SRV_CPU=(taskset -c 0)
    LOAD_CPU=(taskset -c 1)
fi
HZ=$(getconf CLK_TCK)

# ---- The peers ----

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts a server whose first stdout line says where it listens (or, for
# nginx, whose port is given), and waits until it accepts.
start() {
    local name=$1
    shift
    "${SRV_CPU[@]}" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PID[$name]=$!
    local port=${PORT[$name]:-}
    for _ in $(seq 1 200); do
        if [ -z "$port" ]; then
            port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/$name.out" | head -1)
        fi
        if [ -n "$port" ] && (exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            PORT[$name]=$port
            return 0
        fi
        kill -0 "${PID[$name]}" 2>/dev/null || break
        sleep 0.05
    done
    echo "peers: $name did not start: $(cat "$TMP/$name.err")" >&2
    exit 1
}

start_nginx() {
    local port
    port=$(free_port)
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $TMP/nginx/error.log error;
pid $TMP/nginx/nginx.pid;
events { worker_connections 65536; }
http {
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $TMP/nginx;
    proxy_temp_path $TMP/nginx;
    fastcgi_temp_path $TMP/nginx;
    uwsgi_temp_path $TMP/nginx;
    scgi_temp_path $TMP/nginx;
    server {
        listen 127.0.0.1:$port backlog=4096;
        location = /plaintext { default_type text/plain; return 200 "Hello, World!"; }
    }
}
EOF
    PORT[nginx]=$port
    start nginx nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx"
}

start_peer() {
    case $1 in
    epoll) start epoll "$B/peers/epoll-ref" ;;
    corio) start corio "$B/corio-http" -q -l 127.0.0.1:0 -t 1 ;;
    nginx) start_nginx ;;
    libuv) start libuv "$B/peers/libuv-http" ;;
    go)
        # The standard library only: builds offline; its cache stays in the build tree.
        (cd "$HERE" && GOCACHE="$B/peers/gocache" GO111MODULE=off go build -o "$B/peers/go-http" go_http.go)
        GOMAXPROCS=1 start go "$B/peers/go-http"
        ;;
    uvloop) start uvloop /usr/bin/python3 "$HERE/uvloop_http.py" ;;
    *) echo "peers: unknown peer $1" >&2; exit 2 ;;
    esac
}

cpu_ticks() { # utime + stime of a process, all its threads
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# ---- One measurement ----

# measure PEER TOOL DEPTH -> "requests_per_s cpu_us_per_request"
measure() {
    local peer=$1 tool=$2 depth=$3 url="http://127.0.0.1:${PORT[$1]}/plaintext"
    local t0 t1 rps n
    t0=$(cpu_ticks "${PID[$peer]}")
    if [ "$tool" = wrk ]; then
        local out
        out=$("${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$HERE/pipeline.lua" "$url" -- "$depth")
        rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
        n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
        if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
            echo "peers: $peer under wrk: $(grep "Non-2xx\|Socket errors" <<<"$out")" >&2
        fi
    else
        local out
        out=$("${LOAD_CPU[@]}" "$B/corio-load" -q --json -c "$CONNS" -p "$depth" -d "$SECS" "$url" || true)
        rps=$(sed -n 's/.*"requests_per_s":\([0-9.]*\).*/\1/p' <<<"$out")
        n=$(sed -n 's/.*"answered":\([0-9]*\).*/\1/p' <<<"$out")
        local errs
        errs=$(sed -n 's/.*"total":\([0-9]*\).*/\1/p' <<<"$out")
        [ "${errs:-1}" = 0 ] || echo "peers: $peer under corio-load: $errs errors" >&2
    fi
    t1=$(cpu_ticks "${PID[$peer]}")
    awk -v r="${rps:-0}" -v n="${n:-0}" -v d=$((t1 - t0)) -v hz="$HZ" \
        'BEGIN { printf "%.0f %.3f\n", r, (n > 0 ? d / hz / n * 1e6 : 0) }'
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---- Run ----

read -r -a PEER_LIST <<<"$PEERS"
for p in "${PEER_LIST[@]}"; do
    start_peer "$p"
done
echo "peers: ${PEER_LIST[*]} on CPU 0, load on CPU 1; $CONNS connections, ${SECS} s per run, $ROUNDS rounds"
: >"$TMP/raw"
for depth in $DEPTHS; do
    for tool in $TOOLS; do
        for p in "${PEER_LIST[@]}"; do # warm-up: connections, caches, JITs
            SECS=1 measure "$p" "$tool" "$depth" >/dev/null
        done
        for r in $(seq 1 "$ROUNDS"); do
            order=("${PEER_LIST[@]}")
            if [ $((r % 2)) = 0 ]; then
                order=()
                for ((i = ${#PEER_LIST[@]} - 1; i >= 0; i--)); do order+=("${PEER_LIST[$i]}"); done
            fi
            for p in "${order[@]}"; do
                read -r rps cpu <<<"$(measure "$p" "$tool" "$depth")"
                echo "$depth $tool $p $rps $cpu" >>"$TMP/raw"
                printf "  depth %-2s %-10s round %d  %-7s %10s req/s  %7s us CPU/req\n" \
                    "$depth" "$tool" "$r" "$p" "$rps" "$cpu"
            done
        done
    done
done

# ---- Medians, ratios, table, chart ----

REF=${PEER_LIST[0]}
{
    echo "| depth | load | peer | requests/s | vs $REF | server CPU per request | vs $REF |"
    echo "|---:|---|---|---:|---:|---:|---:|"
} >"$OUT/results.md"
: >"$OUT/results.dat"
for depth in $DEPTHS; do
    for tool in $TOOLS; do
        ref_rps=$(awk -v d="$depth" -v t="$tool" -v p="$REF" '$1 == d && $2 == t && $3 == p { print $4 }' "$TMP/raw" | median)
        ref_cpu=$(awk -v d="$depth" -v t="$tool" -v p="$REF" '$1 == d && $2 == t && $3 == p { print $5 }' "$TMP/raw" | median)
        for p in "${PEER_LIST[@]}"; do
            rps=$(awk -v d="$depth" -v t="$tool" -v p="$p" '$1 == d && $2 == t && $3 == p { print $4 }' "$TMP/raw" | median)
            cpu=$(awk -v d="$depth" -v t="$tool" -v p="$p" '$1 == d && $2 == t && $3 == p { print $5 }' "$TMP/raw" | median)
            rr=$(awk -v a="$rps" -v b="$ref_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
            # CPU ratio as "reference CPU / peer CPU": above 1 means cheaper than the reference.
            cr=$(awk -v a="$cpu" -v b="$ref_cpu" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')
            printf "| %s | %s | %s | %s | %sx | %.2f us | %sx |\n" "$depth" "$tool" "$p" \
                "$(printf %.0f "$rps" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')" "$rr" "$cpu" "$cr" >>"$OUT/results.md"
            echo "\"$p\" $depth $tool $rr $cr" >>"$OUT/results.dat"
        done
    done
done
{
    echo
    echo "Medians of $ROUNDS rounds of ${SECS} s, $CONNS connections; server pinned to CPU 0, load to CPU 1."
    echo "CPU ratios are $REF's CPU time per request over the peer's: above 1 is cheaper than $REF."
    echo "$(date -u +%Y-%m-%d), $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs, $(uname -sr)."
} >>"$OUT/results.md"
echo
cat "$OUT/results.md"

if command -v gnuplot >/dev/null; then
    for tool in $TOOLS; do
        for depth in $DEPTHS; do
            awk -v d="$depth" -v t="$tool" '$2 == d && $3 == t { print $1, $4, $5 }' "$OUT/results.dat" \
                >"$TMP/chart-$tool-$depth.dat"
        done
    done
    {
        echo "set terminal pngcairo size 1200,$((350 * $(wc -w <<<"$TOOLS"))) font 'sans,10' noenhanced"
        echo "set output '$OUT/peers.png'"
        echo "set multiplot layout $(wc -w <<<"$TOOLS"),$(wc -w <<<"$DEPTHS")"
        echo "set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8 border -1"
        echo "set yrange [0:*]; set offsets 0,0,graph 0.2,0; set grid ytics; set xtics nomirror"
        echo "set key top center horizontal"
        for tool in $TOOLS; do
            for depth in $DEPTHS; do
                echo "set title 'vs $REF (1.0 = the reference): $tool, pipelining depth $depth'"
                echo "plot '$TMP/chart-$tool-$depth.dat' using 2:xtic(1) title 'throughput', '' using 3 title 'CPU efficiency'"
            done
        done
        echo "unset multiplot"
    } >"$TMP/chart.gp"
    gnuplot "$TMP/chart.gp" 2>/dev/null && echo "chart: $OUT/peers.png" ||
        echo "peers: gnuplot could not draw the chart" >&2
fi
echo "table: $OUT/results.md"
