#!/usr/bin/env bash
# The cost of the metrics: HTTP plaintext throughput of the same server
# built with the counters (ON) and with -DCORIO_NO_STATS (OFF), measured
# with wrk in alternating rounds so drift in the machine hits both alike.
#
#   tests/top/overhead.sh "ON_CMD" "OFF_CMD" [ROUNDS] [SECONDS] [CONNS]
#
# Each command starts a server on 127.0.0.1 port 0 that prints its port
# ("port P", or a URL "http://127.0.0.1:P/") and serves GET /plaintext:
# corio-http -l 127.0.0.1:0 -t 1, or tests/top/stats_server.  Prints each
# round, then the medians: throughput and the server's CPU per request.
set -euo pipefail
on=${1:?usage: overhead.sh ON_CMD OFF_CMD [ROUNDS] [SECONDS] [CONNS]}
off=${2:?usage: overhead.sh ON_CMD OFF_CMD [ROUNDS] [SECONDS] [CONNS]}
rounds=${3:-3}
secs=${4:-3}
conns=${5:-50}
command -v wrk >/dev/null || { echo "overhead: wrk is missing (scripts/install-deps.sh peers)"; exit 1; }

pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true' EXIT

# Runs one wrk round against a fresh server; prints requests per second.
round() {
    local out
    out=$(mktemp)
    bash -c "exec $1" >"$out" 2>&1 &
    pid=$!
    local port=
    for _ in $(seq 100); do
        port=$(sed -nE 's/^port ([0-9]+).*/\1/p; s/.*http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$out" | head -1)
        [ -n "$port" ] && break
        sleep 0.05
    done
    rm -f "$out"
    [ -n "$port" ] || { echo "overhead: $1 did not start" >&2; exit 1; }
    local reqs ticks
    reqs=$(wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/plaintext" |
        awk '/ requests in /{print $1}')
    # The server's CPU time (utime + stime, clock ticks): per request it is
    # far less sensitive than throughput to other work on a shared machine.
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    awk -v r="$reqs" -v t="$ticks" -v s="$secs" -v hz="$(getconf CLK_TCK)" \
        'BEGIN{printf "%d %.0f\n", r / s, t / hz * 1e9 / r}'
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

ons=() offs=() cpu_on=() cpu_off=()
for r in $(seq "$rounds"); do
    read -r a ca < <(round "$on")
    read -r b cb < <(round "$off")
    ons+=("$a") offs+=("$b") cpu_on+=("$ca") cpu_off+=("$cb")
    echo "round $r: metrics on $a req/s ($ca ns CPU/req), compiled out $b req/s ($cb ns CPU/req)"
done
mon=$(printf '%s\n' "${ons[@]}" | median)
moff=$(printf '%s\n' "${offs[@]}" | median)
con=$(printf '%s\n' "${cpu_on[@]}" | median)
coff=$(printf '%s\n' "${cpu_off[@]}" | median)
awk -v a="$mon" -v b="$moff" -v c="$con" -v d="$coff" 'BEGIN{
    printf "median throughput: on %d req/s, off %d req/s, on/off = %.3f (%+.1f%%)\n", a, b, a/b, 100*(a/b-1)
    printf "median CPU per request: on %d ns, off %d ns (%+.1f%%)\n", c, d, 100*(c/d-1)}'
