#!/bin/sh
# Echo over loopback: corio streams (echo_corio) against a hand-written
# edge-triggered epoll server (echo_epoll), in the same run.  Both servers
# are pinned to CPU 0 and the load generator to CPU 1; the rounds
# interleave (epoll corio corio epoll) so drift hits both alike.  Then each
# server runs once under `strace -c -f` to count syscalls per message.
#
#   bench/echo/run.sh BUILD_DIR/bench/echo     (SECS=2 CONNS="100 1000" SIZE=64)
set -eu
D=${1:?usage: run.sh DIR-with-echo-binaries}
SECS=${SECS:-2}
CONNS=${CONNS:-100 1000}
SIZE=${SIZE:-64}
CPU_SRV=${CPU_SRV:-0}
CPU_CLI=${CPU_CLI:-1}
PA=$((20000 + $$ % 20000))
PB=$((PA + 1))
ulimit -n 20000 2>/dev/null || true

taskset -c "$CPU_SRV" "$D/echo_epoll" "$PA" & A=$!
taskset -c "$CPU_SRV" "$D/echo_corio" "$PB" & B=$!
trap 'kill $A $B 2>/dev/null || true' EXIT INT TERM
sleep 0.3

run() { # port conns secs -> msgs/s
    taskset -c "$CPU_CLI" "$D/echo_client" "$1" "$2" "$3" "$SIZE" | awk '/msgs_per_sec/ {print $2}'
}

echo "echo, $SIZE-byte messages, ping-pong per connection, ${SECS}s rounds"
echo "server on CPU $CPU_SRV, client on CPU $CPU_CLI; ratio = corio / epoll (higher is better)"
for c in $CONNS; do
    a1=$(run $PA "$c" "$SECS"); b1=$(run $PB "$c" "$SECS")
    b2=$(run $PB "$c" "$SECS"); a2=$(run $PA "$c" "$SECS")
    awk -v c="$c" -v a1="$a1" -v a2="$a2" -v b1="$b1" -v b2="$b2" 'BEGIN {
        printf "conns %5d  epoll %9.0f %9.0f  corio %9.0f %9.0f  msgs/s  ratio %.3f\n",
               c, a1, a2, b1, b2, (b1 + b2) / (a1 + a2) }'
done

if command -v strace >/dev/null 2>&1; then
    c=$(echo "$CONNS" | awk '{print $1}')
    for s in "epoll $A $PA" "corio $B $PB"; do
        set -- $s
        strace -c -f -p "$2" -o /tmp/corio-echo-strace.$$ & T=$!
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
