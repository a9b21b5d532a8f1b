#!/usr/bin/env bash
# Massive connections: N idle keep-alive HTTP connections held by a server
# in prefork mode (one process per 15,000 connections: the descriptor cap
# here is 20,000 per process), opened by corio-load's idle mode from
# several processes and source addresses; then an active fraction sends
# requests at a fixed rate while the rest stay idle.  Reports:
#
#   - user-space memory per connection: the server processes' RSS growth / N
#   - kernel memory per connection (per connected pair: both ends live on
#     this machine): slab and socket-buffer growth / N
#   - connect rate: N / the time until every connection was open (each
#     also did one request, so it is an idle *keep-alive* connection)
#   - latency of the active fraction, and whether every request was answered
#
#   massive.sh -b BUILD_DIR [-n CONNS] [-a ACTIVE] [-r RATE] [-d SECS]
#              [--server corio-http|corio-idle|nginx|go|libuv] [--peers]
#
# --peers measures the idle memory of each server in turn (corio-http,
# corio-idle, nginx, Go net/http, libuv) at the same N, in the same run.
# Sysctls it raises (fs.file-max, net.ipv4.tcp_mem, somaxconn, SYN
# backlog, the ephemeral port range) are restored on exit, and every
# process it started is stopped.
set -euo pipefail

B=build/cc N=100000 ACTIVE= RATE= SECS=10 SERVER=corio-http PEERS=0
PER_PROC=15000 # connections per process, under the 20,000-descriptor cap
while [ $# -gt 0 ]; do
    case "$1" in
    -b) B=$2; shift ;;
    -n) N=$2; shift ;;
    -a) ACTIVE=$2; shift ;;
    -r) RATE=$2; shift ;;
    -d) SECS=$2; shift ;;
    --server) SERVER=$2; shift ;;
    --peers) PEERS=1 ;;
    *) echo "usage: $0 -b BUILD_DIR [-n N] [-a ACTIVE] [-r RATE] [-d SECS] [--server S] [--peers]" >&2; exit 2 ;;
    esac
    shift
done
ACTIVE=${ACTIVE:-$(( N / 100 < 1000 ? (N / 100 > 10 ? N / 100 : 10) : 1000 ))}
RATE=${RATE:-$(( ACTIVE * 5 ))}
M=$B/massive
WORK=$(mktemp -d /tmp/corio-massive.XXXXXX)
[ $EUID -eq 0 ] || { echo "massive.sh: needs root (sysctls)" >&2; exit 2; }
for bin in "$B/corio-http" "$B/corio-load" "$M/corio-prefork" "$M/corio-idle"; do
    [ -x "$bin" ] || { echo "massive.sh: $bin missing (make bench-c100k builds it)" >&2; exit 2; }
done

# ---- Cleanup: our processes, then the sysctls ----
declare -A SAVED
PIDS=()
set_sysctl() { # key value: set, remembering the old value once
    local key=$1 val=$2
    [ -e "/proc/sys/${key//.//}" ] || return 0
    [ -n "${SAVED[$key]+x}" ] || SAVED[$key]=$(sysctl -n "$key")
    sysctl -qw "$key=$val"
}
raise_sysctl() { # key value...: only where each number is above the current one
    local key=$1 cur new=() i=0
    shift
    [ -e "/proc/sys/${key//.//}" ] || return 0
    read -r -a cur <<< "$(sysctl -n "$key")"
    for v in "$@"; do new+=($(( v > ${cur[$i]:-0} ? v : ${cur[$i]:-0} ))); i=$((i + 1)); done
    [ "${new[*]}" = "${cur[*]}" ] || set_sysctl "$key" "${new[*]}"
}
stop_pids() { # signal, then wait up to 10 s, then SIGKILL
    local p
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 100); do
        local alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && return 0
        sleep 0.1
    done
    for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
}
cleanup() {
    set +e
    [ ${#PIDS[@]} -gt 0 ] && stop_pids "${PIDS[@]}"
    wait 2>/dev/null
    for key in "${!SAVED[@]}"; do sysctl -qw "$key=${SAVED[$key]}"; done
    [ ${#SAVED[@]} -gt 0 ] && echo "# restored: ${!SAVED[*]}"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Measurements ----
kb_meminfo() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; }
tcp_mem_pages() { awk '$1 == "TCP:" {for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }
tcp_inuse() { awk '$1 == "TCP:" {print $3}' /proc/net/sockstat; }
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' || true; }
rss_kb() { local s=0 p v; for p in "$@"; do v=$(awk '/^VmRSS:/ {print $2}' /proc/"$p"/status 2>/dev/null || echo 0); s=$((s + ${v:-0})); done; echo $s; }
now_ms() { date +%s%3N; }
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 10000))
        ss -Htln "sport = :$p" | grep -q . || { echo $p; return; }
    done
    echo "massive.sh: no free port" >&2; exit 1
}
wait_for() { # file pattern count seconds
    local t=0
    while [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -lt "$3" ]; do
        sleep 0.1; t=$((t + 1))
        [ $t -lt $(($4 * 10)) ] || { echo "massive.sh: timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1; }
    done
}

# ---- The machine ----
procs=$(( (N + PER_PROC - 1) / PER_PROC ))
# Source addresses 127.0.0.1, .2, ...: the kernel picks a client port per
# (source, destination), and a port space that is more than a few percent
# full makes every connect() scan for a free one (the connect rate falls
# tenfold near exhaustion).  5,000 connections per source address out of
# 64,000 ports keeps the first pick free.
sources=$(( (N + 4999) / 5000 ))
[ $sources -le 250 ] || { echo "massive.sh: more than 250 source addresses needed" >&2; exit 2; }
set_sysctl net.ipv4.ip_local_port_range "1024 65535"
raise_sysctl fs.file-max $(( 4 * N + 1000000 ))
raise_sysctl net.core.somaxconn 65535
raise_sysctl net.ipv4.tcp_max_syn_backlog 65535
# Idle sockets hold no buffers, but the answers in flight do: room for them
# (in pages; the kernel's defaults are sized for the machine, keep the larger).
raise_sysctl net.ipv4.tcp_mem $(( N / 2 )) $(( N )) $(( N * 2 ))
if [ -e /proc/sys/net/netfilter/nf_conntrack_max ] &&
   [ "$(cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 0)" -gt 0 ]; then
    raise_sysctl net.netfilter.nf_conntrack_max $(( 2 * N + 65536 ))
fi
echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), ulimit -n $(ulimit -n)"

# ---- One server ----
# start_server NAME PORT PROCS: sets SUP (the pid we stop) and WORKERS.
start_server() {
    local name=$1 port=$2 p=$3 out=$WORK/server.out
    : > "$out"
    case "$name" in
    corio-http)
        "$M/corio-prefork" -n "$p" -q -- "$B/corio-http" -l "127.0.0.1:$port" -t 1 -q \
            --idle-timeout 3600 --backlog 65535 > "$out" 2>&1 &
        SUP=$!; wait_for "$out" "listening" "$p" 30 ;;
    corio-idle)
        "$M/corio-prefork" -n "$p" -q -- "$M/corio-idle" -l "127.0.0.1:$port" -t 1 \
            --idle-timeout 3600 > "$out" 2>&1 &
        SUP=$!; wait_for "$out" "listening" "$p" 30 ;;
    libuv)
        "$M/corio-prefork" -n "$p" -q -- "$M/uv-idle" "$port" > "$out" 2>&1 &
        SUP=$!; wait_for "$out" "listening" "$p" 30 ;;
    go)
        GOMAXPROCS=1 "$M/corio-prefork" -n "$p" -q -- "$M/go-idle" "$port" > "$out" 2>&1 &
        SUP=$!; wait_for "$out" "listening" "$p" 30 ;;
    nginx)
        mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
        cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes $p;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 19500; }
http {
    access_log off;
    keepalive_timeout 3600;
    keepalive_requests 1000000000;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    server {
        listen 127.0.0.1:$port reuseport backlog=65535;
        location / { default_type text/plain; return 200 "Hello, World!"; }
    }
}
EOF
        nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" > "$out" 2>&1 &
        SUP=$!
        local t=0
        while [ "$(children $SUP | wc -l)" -lt "$p" ] || ! ss -Htln "sport = :$port" | grep -q .; do
            sleep 0.1; t=$((t + 1)); [ $t -lt 300 ] || { echo "nginx did not start" >&2; cat "$WORK/nginx/error.log" >&2; exit 1; }
        done ;;
    *) echo "massive.sh: unknown server $name" >&2; exit 2 ;;
    esac
    PIDS+=("$SUP")
    sleep 0.5
    WORKERS=$(children "$SUP")
}

# open_idle PORT COUNT: corio-load idle processes, PER_PROC connections
# each, spread over `sources` source addresses; sets LOADS, CONNECT_MS.
open_idle() {
    local port=$1 count=$2 left=$2 i=0 per t0 p j
    LOADS=()
    t0=$(now_ms)
    while [ "$left" -gt 0 ]; do
        per=$(( left < PER_PROC ? left : PER_PROC ))
        "$B/corio-load" idle -c "$per" -t 1 --sources "$sources" --warm --timeout 60 -d 36000 -q \
            "127.0.0.1:$port" > "$WORK/load.$i" 2>&1 &
        LOADS+=($!); PIDS+=($!)
        left=$((left - per)); i=$((i + 1))
    done
    local n=0 t=0
    while [ $n -lt ${#LOADS[@]} ]; do
        n=0
        for j in $(seq 0 $((i - 1))); do grep -q "connections open" "$WORK/load.$j" && n=$((n + 1)); done
        for p in "${LOADS[@]}"; do
            kill -0 "$p" 2>/dev/null || { echo "massive.sh: a load process ended early:" >&2; cat "$WORK"/load.* >&2; exit 1; }
        done
        sleep 0.05; t=$((t + 1))
        [ $t -lt 12000 ] || { echo "massive.sh: connections not open after 600 s" >&2; exit 1; }
    done
    CONNECT_MS=$(( $(now_ms) - t0 ))
}

measure_idle() { # NAME: one server, N idle connections, memory per connection
    local name=$1 p=$(( (N + PER_PROC - 1) / PER_PROC ))
    PORT=$(free_port)
    start_server "$name" "$PORT" "$p"
    local rss0 slab0 sock0 used0
    sleep 1
    rss0=$(rss_kb $WORKERS)
    slab0=$(kb_meminfo Slab); sock0=$(tcp_mem_pages)
    used0=$(( $(kb_meminfo MemTotal) - $(kb_meminfo MemAvailable) ))
    open_idle "$PORT" "$N"
    sleep 2 # let the last answers drain and the loops settle
    local rss1 slab1 sock1 used1 load_rss
    rss1=$(rss_kb $WORKERS)
    slab1=$(kb_meminfo Slab); sock1=$(tcp_mem_pages)
    used1=$(( $(kb_meminfo MemTotal) - $(kb_meminfo MemAvailable) ))
    load_rss=$(rss_kb "${LOADS[@]}")
    awk -v name="$name" -v n="$N" -v p="$p" -v r0="$rss0" -v r1="$rss1" -v s0="$slab0" -v s1="$slab1" \
        -v k0="$sock0" -v k1="$sock1" -v u0="$used0" -v u1="$used1" -v lr="$load_rss" -v ms="$CONNECT_MS" 'BEGIN {
        user = (r1 - r0) * 1024 / n; slab = (s1 - s0) * 1024 / n; sockb = (k1 - k0) * 4096 / n
        printf "%-11s %8d conns %3d procs | user %6.1f B/conn (server RSS %d -> %d KiB) | kernel %5.0f B/pair (slab %.0f, socket buffers %.0f) | connect %6.0f/s (%.1f s)\n",
            name, n, p, user, r0, r1, slab + sockb, slab, sockb, n / (ms / 1000), ms / 1000
    }'
}

active_phase() { # PORT: the active fraction, while N idle connections are held
    local port=$1
    "$B/corio-load" http -c "$ACTIVE" -t 1 -r "$RATE" -d "$SECS" --timeout 10 --json -q \
        "http://127.0.0.1:$port/plaintext" > "$WORK/active.json" 2> "$WORK/active.err" || true
    python3 - "$WORK/active.json" "$ACTIVE" "$RATE" "$N" <<'EOF'
import json, sys
try:
    r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
except Exception as e:
    print("active     : no report (%s)" % e); sys.exit(0)
l = r["latency_ns"]; e = r["errors"]["total"]
ok = r["sent"] == r["answered"] and e == 0
print("active     : %s connections at %s req/s for %.0f s beside %s idle: %d sent, %d answered, %d errors%s" %
      (sys.argv[2], sys.argv[3], r["seconds"], sys.argv[4], r["sent"], r["answered"], e, "" if ok else "  <-- NOT ALL ANSWERED"))
print("latency    : p50 %.0f us, p90 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us" %
      (l["p50"] / 1e3, l["p90"] / 1e3, l["p99"] / 1e3, l["p999"] / 1e3, l["max"] / 1e3))
EOF
}

finish_server() {
    stop_pids "${LOADS[@]}"
    stop_pids "$SUP"
    PIDS=()
}

if [ $PEERS -eq 1 ]; then
    echo "# idle keep-alive memory, N = $N, each server in $(( (N + PER_PROC - 1) / PER_PROC )) process(es)"
    for s in corio-http corio-idle nginx go libuv; do
        if [ "$s" = go ] && [ ! -x "$M/go-idle" ]; then echo "go         : skipped (no $M/go-idle)"; continue; fi
        if [ "$s" = libuv ] && [ ! -x "$M/uv-idle" ]; then echo "libuv      : skipped (no $M/uv-idle)"; continue; fi
        measure_idle "$s"
        finish_server
    done
    exit 0
fi

echo "# C$((N / 1000))K: $SERVER in prefork mode ($procs processes), $N idle keep-alive connections from $sources source addresses, $ACTIVE active"
measure_idle "$SERVER"
active_phase "$PORT"
finish_server
