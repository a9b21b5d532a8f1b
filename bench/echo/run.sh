#!/bin/sh
# Echo over loopback: corio streams (echo_corio, in its two styles) against
# a hand-written edge-triggered epoll server (echo_epoll), in the same run.
# The servers are pinned to CPU 0 and the load generator to CPU 1; the
# rounds interleave (epoll corio park park corio epoll) so drift hits all
# alike.  Then each server runs once under `strace -c -f` to count
# syscalls per message.
#
#   bench/echo/run.sh BUILD_DIR/bench/echo  (SECS=2 CONNS="100 1000" SIZE=64 ROUNDS=1)
set -eu
D=${1:?usage: run.sh DIR-with-echo-binaries}
SECS=${SECS:-2}
CONNS=${CONNS:-100 1000}
SIZE=${SIZE:-64}
ROUNDS=${ROUNDS:-1}
CPU_SRV=${CPU_SRV:-0}
CPU_CLI=${CPU_CLI:-1}
PA=$((20000 + $$ % 10000)) # below the ephemeral range, where load tests hold ports
PB=$((PA + 1))
PC=$((PA + 2))
ulimit -n 20000 2>/dev/null || true

taskset -c "$CPU_SRV" "$D/echo_epoll" "$PA" & A=$!
taskset -c "$CPU_SRV" "$D/echo_corio" "$PB" & B=$!
taskset -c "$CPU_SRV" "$D/echo_corio" "$PC" park & C=$!
trap 'kill $A $B $C 2>/dev/null || true' EXIT INT TERM
sleep 0.3

cpu() { # pid -> CPU ticks used so far (user + system)
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# One round: port pid conns -> "msgs/s cpu-ticks-per-million-messages".
run() {
    t0=$(cpu "$2")
    out=$(taskset -c "$CPU_CLI" "$D/echo_client" "$1" "$3" "$SECS" "$SIZE")
    t1=$(cpu "$2")
    echo "$out" | awk '$6 > 0 {print "warning: " $6 " connections stalled" > "/dev/stderr"}'
    echo "$out" | awk -v t="$((t1 - t0))" '{printf "%s %.3f\n", $2, t * 1e6 / ($4 > 0 ? $4 : 1)}'
}

echo "echo, $SIZE-byte messages, ping-pong per connection, ${SECS}s rounds x $ROUNDS"
echo "servers on CPU $CPU_SRV, client on CPU $CPU_CLI; rounds interleaved: epoll corio park park corio epoll"
echo "  epoll: hand-written edge-triggered epoll; corio: a coroutine per connection;"
echo "  park: corio, parked without a stack while idle (corio_park)"
echo "ratios to epoll, higher is better for corio: throughput (msgs/s), and CPU per message"
echo "(the server's user + system time: it holds up better when other work shares the machine)"
for c in $CONNS; do
    M_A=0 M_B=0 M_C=0 T_A=0 T_B=0 T_C=0 i=0
    while [ $i -lt "$ROUNDS" ]; do
        for s in "A $PA $A" "B $PB $B" "C $PC $C" "C $PC $C" "B $PB $B" "A $PA $A"; do
            set -- $s
            r=$(run "$2" "$3" "$c")
            eval "M_$1=\"\$M_$1 + ${r% *}\"; T_$1=\"\$T_$1 + ${r#* }\""
        done
        i=$((i + 1))
    done
    awk -v c="$c" -v n="$((2 * ROUNDS))" "BEGIN {
        ma = $M_A; mb = $M_B; mc = $M_C; ta = $T_A; tb = $T_B; tc = $T_C;
        printf \"conns %5d  msgs/s: epoll %8.0f corio %8.0f park %8.0f   cpu-ticks/Mmsg: %6.1f %6.1f %6.1f\\n\",
               c, ma / n, mb / n, mc / n, ta / n, tb / n, tc / n;
        printf \"             ratio corio %.3f (cpu %.3f)   ratio park %.3f (cpu %.3f)\\n\",
               mb / ma, (tb > 0 ? ta / tb : 0), mc / ma, (tc > 0 ? ta / tc : 0) }"
done

if command -v strace >/dev/null 2>&1; then
    c=$(echo "$CONNS" | awk '{print $1}')
    for s in "epoll $A $PA" "corio $B $PB" "park $C $PC"; do
        set -- $s
        strace -c -f -p "$2" -o /tmp/corio-echo-strace.$$ 2>/dev/null & T=$!
        sleep 0.3
        m=$(taskset -c "$CPU_CLI" "$D/echo_client" "$3" "$c" 1 "$SIZE" | awk '{print $4}')
        kill -INT $T; wait $T 2>/dev/null || true
        calls=$(awk '$NF == "total" {print $4}' /tmp/corio-echo-strace.$$)
        top=$(awk 'NR > 2 && $NF != "total" && $1 !~ /^-/ && $4 > 100 {printf "%s %s, ", $NF, $4}' /tmp/corio-echo-strace.$$)
        awk -v n="$1" -v calls="$calls" -v m="$m" -v top="$top" 'BEGIN {
            printf "%s: %.2f syscalls per echoed message (strace -c, %d conns: %s%d messages)\n",
                   n, calls / m, '"$c"', top, m }'
        rm -f /tmp/corio-echo-strace.$$
    done
fi
