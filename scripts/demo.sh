#!/usr/bin/env bash
# The demo: corio-http on loopback under corio-load, and a short report.
#
#   scripts/demo.sh [BUILD_DIR]        (make demo [DEMO_SECONDS=3] builds first)
#
# 1. N idle keep-alive connections (each served one request, then parked):
#    the server's memory per connection, from its VmRSS growth.
# 2. Thousands of connections, one request at a time, for DEMO_SECONDS.
# 3. The same connections with 16 pipelined requests each.
# Then the server is stopped (SIGTERM: a graceful shutdown) and its own
# counters give the per-layer figures.  Exits 1 if any request failed or
# went unanswered, or a connection could not be made.  Everything it
# starts, it stops.
set -euo pipefail

B=${1:-build/cc}
SECS=${DEMO_SECONDS:-10}
HTTP=$B/corio-http
LOAD=$B/corio-load
for f in "$HTTP" "$LOAD"; do
    [ -x "$f" ] || { echo "demo: $f is missing (run: make demo)" >&2; exit 2; }
done

# ---- Limits and CPUs ----

# Each process may hold as many descriptors as the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
[ "$FDS" = unlimited ] && FDS=1048576
IDLE=${DEMO_IDLE_CONNS:-10000}
CONNS=${DEMO_CONNS:-2000}
[ "$IDLE" -gt $((FDS - 256)) ] && IDLE=$((FDS - 256))
[ "$CONNS" -gt $((FDS - 256)) ] && CONNS=$((FDS - 256))

NCPU=$(nproc 2>/dev/null || echo 1)
SRV_T=$(( NCPU / 2 > 0 ? NCPU / 2 : 1 ))
LOAD_T=$(( NCPU - SRV_T > 0 ? NCPU - SRV_T : 1 ))
SRV_PIN=() LOAD_PIN=() WHERE="sharing the CPUs"
if [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null; then
    SRV_PIN=(taskset -c "0-$((SRV_T - 1))")
    LOAD_PIN=(taskset -c "$SRV_T-$((NCPU - 1))")
    WHERE="server on CPU 0-$((SRV_T - 1)), load on CPU $SRV_T-$((NCPU - 1))"
fi

# ---- Cleanup: whatever we started goes ----

TMP=$(mktemp -d /tmp/corio-demo.XXXXXX)
SRV_PID= LOAD_PID=
cleanup() {
    [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null && wait "$LOAD_PID" 2>/dev/null
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Helpers ----

json() { # json KEY TEXT: the number after "KEY": in TEXT
    sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2" | head -1
}
group() { # 1234567 -> 1,234,567
    printf "%s" "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'
}
ms() { # ns -> "0.81 ms"
    awk -v n="$1" 'BEGIN { if (n < 1e6) printf "%.0f us", n / 1e3; else printf "%.2f ms", n / 1e6 }'
}
rss_kb() { sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }
hwm_kb() { sed -n 's/^VmHWM:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }
netstat_field() { # netstat_field FILE PREFIX NAME
    awk -v p="$2" -v n="$3" '$1 == p":" { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 }
                                         else { print $(c[n]) + 0; exit } }' "$1" 2>/dev/null || echo 0
}
kernel_counts() {
    echo "$(netstat_field /proc/net/netstat TcpExt ListenOverflows) $(netstat_field /proc/net/snmp Tcp RetransSegs)"
}

FAILED=0
fail() { echo "  FAILED: $*"; FAILED=1; }

# ---- The server ----

mkfifo "$TMP/srv"
"${SRV_PIN[@]}" "$HTTP" -l 127.0.0.1:0 -t "$SRV_T" --idle-timeout 120 >"$TMP/srv" &
SRV_PID=$!
exec 3<"$TMP/srv"
read -r -t 30 line <&3 || { echo "demo: the server did not start" >&2; exit 1; }
PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$line")
URL=http://127.0.0.1:$PORT/plaintext
read -r K0_OVF K0_RETR <<<"$(kernel_counts)"
RSS0=$(rss_kb "$SRV_PID")

echo "corio demo: $line"
echo "  $WHERE; up to $FDS descriptors per process; $SECS s per load phase"
echo

# ---- 1. Idle connections ----

echo "1. $(group "$IDLE") idle keep-alive connections (each answered once, then parked)"
mkfifo "$TMP/idle"
"${LOAD_PIN[@]}" "$LOAD" idle --warm -q --json -c "$IDLE" -d 2 --timeout 30 "$URL" >"$TMP/idle" &
LOAD_PID=$!
exec 4<"$TMP/idle"
IDLE_OUT=
while read -r -t 120 l <&4; do
    case "$l" in
    all*open) RSS1=$(rss_kb "$SRV_PID") ;;
    \{*) IDLE_OUT=$l ;;
    esac
done
wait "$LOAD_PID" || true
LOAD_PID=
exec 4<&-
if [ -n "${RSS1:-}" ]; then
    PER=$(( (RSS1 - RSS0) * 1024 / IDLE ))
    echo "   server memory   $((RSS0 / 1024)) MB -> $((RSS1 / 1024)) MB (VmRSS): $PER bytes per idle connection"
else
    fail "not every connection opened"
fi
[ "$(json connected "$IDLE_OUT")" = "$IDLE" ] || fail "$(json connected "$IDLE_OUT") of $IDLE connections opened"
[ "$(json total "$IDLE_OUT")" = 0 ] || fail "$(json total "$IDLE_OUT") errors in idle mode"
echo "   connect time    p50 $(ms "$(json p50 "$IDLE_OUT")")   p99 $(ms "$(json p99 "$IDLE_OUT")")"
echo

# ---- 2, 3. Load ----

run_load() { # run_load TITLE ARGS...
    local title=$1
    shift
    echo "$title"
    local out
    out=$("${LOAD_PIN[@]}" "$LOAD" -q --json -t "$LOAD_T" -c "$CONNS" -d "$SECS" "$@" "$URL") || true
    local sent answered errors
    sent=$(json sent "$out")
    answered=$(json answered "$out")
    errors=$(json total "$out")
    printf "   throughput      %s requests/s   (%s answered of %s sent)\n" \
        "$(group "$(printf %.0f "$(json requests_per_s "$out")")")" "$(group "$answered")" "$(group "$sent")"
    echo "   latency         p50 $(ms "$(json p50 "$out")")   p90 $(ms "$(json p90 "$out")")   p99 $(ms "$(json p99 "$out")")   p99.9 $(ms "$(json p999 "$out")")   max $(ms "$(json max "$out")")"
    [ -n "$sent" ] && [ "$sent" -gt 0 ] || fail "no request was sent"
    [ "$answered" = "$sent" ] || fail "$((sent - answered)) requests unanswered"
    [ "$errors" = 0 ] || fail "$errors errors: $(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' <<<"$out")"
    TOTAL_ANSWERED=$((TOTAL_ANSWERED + answered))
    echo
}
TOTAL_ANSWERED=$(json answered "$IDLE_OUT")
run_load "2. $(group "$CONNS") connections, one request at a time" -p 1
run_load "3. $(group "$CONNS") connections, 16 pipelined requests each" -p 16

# ---- The server's own account ----

HWM=$(hwm_kb "$SRV_PID")
kill -TERM "$SRV_PID"
wait "$SRV_PID" || fail "the server exited with status $?"
SRV_PID=
SUMMARY=$(sed -n 's/^summary //p' <&3)
exec 3<&-
read -r K1_OVF K1_RETR <<<"$(kernel_counts)"

req=$(json requests "$SUMMARY")
[ "$req" = "$TOTAL_ANSWERED" ] || fail "the server answered $req requests, the clients counted $TOTAL_ANSWERED"
per() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }
echo "Per layer, on the server (whole run; kernel counters are machine-wide):"
echo "   kernel          $((K1_OVF - K0_OVF)) listen overflows, $((K1_RETR - K0_RETR)) TCP segments retransmitted"
echo "   readiness       $(group "$(json waits "$SUMMARY")") epoll waits, $(json events_per_wait "$SUMMARY") events per wait"
echo "   loop            $(group "$(json switches "$SUMMARY")") coroutine switches, $(group "$(json parks "$SUMMARY")") parks (idle without a stack)"
echo "   syscalls        $(per "$(json reads "$SUMMARY")" "$req") reads and $(per "$(json writes "$SUMMARY")" "$req") writes per request; $(json requests_per_write "$SUMMARY") requests per write; $(json epoll_ctl "$SUMMARY") epoll_ctl in all"
echo "   handler         $(group "$req") requests: $(group "$(json status_2xx "$SUMMARY")") 2xx, $(json status_4xx "$SUMMARY") 4xx, $(json status_5xx "$SUMMARY") 5xx"
echo "   memory          peak VmRSS $((HWM / 1024)) MB"
echo
if [ "$FAILED" = 0 ]; then
    echo "PASS: every request answered, no errors, the server stopped cleanly."
else
    echo "FAIL: see above."
fi
exit "$FAILED"
