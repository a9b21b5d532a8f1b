#!/usr/bin/env bash
# Scaling from 1 to 2 loops: corio-http with -t 1 and -t 2 (one loop per
# thread, SO_REUSEPORT listener each), plaintext, closed loop, at
# pipelining depths 1 and 16.  Prints throughput and CPU time per request
# for the server and for the load generator.
#
# On a 2-core machine the load generator competes with the server for the
# cores: with 2 server loops, every request's CPU is shared three ways, so
# throughput cannot double.  CPU time per request is the steadier figure:
# if it stays flat from 1 to 2 loops, the loops do not contend.
#
#   scaling.sh -b BUILD_DIR [-d SECS] [-c CONNS]
set -euo pipefail

B=build/cc SECS=5 CONNS=100
while [ $# -gt 0 ]; do
    case "$1" in
    -b) B=$2; shift ;;
    -d) SECS=$2; shift ;;
    -c) CONNS=$2; shift ;;
    *) echo "usage: $0 -b BUILD_DIR [-d SECS] [-c CONNS]" >&2; exit 2 ;;
    esac
    shift
done
WORK=$(mktemp -d /tmp/corio-scaling.XXXXXX)
SRV=
cleanup() {
    set +e
    if [ -n "$SRV" ]; then kill -TERM "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; } # utime + stime, all threads
HZ=$(getconf CLK_TCK)

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs; corio-load -t 1 -c $CONNS for $SECS s per row, plaintext"
printf "%-6s %-6s %12s %14s %14s %8s\n" loops depth "req/s" "server us/req" "load us/req" errors
for threads in 1 2; do
    for depth in 1 16; do
        "$B/corio-http" -l 127.0.0.1:0 -t "$threads" -q > "$WORK/srv.out" 2>&1 &
        SRV=$!
        for _ in $(seq 100); do grep -q "listening on" "$WORK/srv.out" && break; sleep 0.05; done
        url=$(grep -o "http://[0-9.:]*" "$WORK/srv.out" | head -1)/plaintext
        s0=$(ticks "$SRV")
        /usr/bin/time -f "%U %S" -o "$WORK/load.time" \
            "$B/corio-load" http -c "$CONNS" -t 1 -p "$depth" -d "$SECS" --json -q "$url" > "$WORK/load.json" || true
        s1=$(ticks "$SRV")
        python3 - "$WORK/load.json" "$WORK/load.time" "$threads" "$depth" "$s0" "$s1" "$HZ" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
u, s = (float(x) for x in open(sys.argv[2]).read().split()[-2:])
n = max(r["answered"], 1)
srv = (int(sys.argv[6]) - int(sys.argv[5])) / float(sys.argv[7])
print("%-6s %-6s %12.0f %14.2f %14.2f %8d" % (sys.argv[3], sys.argv[4], r["requests_per_s"],
      srv / n * 1e6, (u + s) / n * 1e6, r["errors"]["total"]))
EOF
        kill -TERM "$SRV"; wait "$SRV" 2>/dev/null || true
        SRV=
    done
done
