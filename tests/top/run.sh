#!/usr/bin/env bash
# corio-top under tmux against a live server: starts tests/top/stats_server
# with a load of its own, runs corio-top in a detached tmux pane, and checks
# the screen: every layer from the NIC to the handler, top to bottom, live
# (non-zero) request and syscall rates, the listener's accept queue, and the
# bottleneck line.  Usage: tests/top/run.sh BUILD_DIR
set -euo pipefail
B=${1:?usage: tests/top/run.sh BUILD_DIR}
command -v tmux >/dev/null || { echo "test-top: tmux is missing (apt-get install tmux)"; exit 1; }

sock="corio-top-test-$$"
out=$(mktemp)
screen=$(mktemp)
server_pid=
cleanup() {
    tmux -L "$sock" kill-server 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null || true
    rm -f "$out" "$screen"
}
trap cleanup EXIT

"$B/tests/top/stats_server" -c 4 -t 20 >"$out" &
server_pid=$!
for _ in $(seq 100); do grep -q '^port ' "$out" && break; sleep 0.05; done
port=$(awk '/^port /{print $2}' "$out")
[ -n "$port" ] || { echo "test-top: the server did not start"; exit 1; }

tmux -L "$sock" -f /dev/null new-session -d -x 132 -y 45 "$B/corio-top -d 0.5 127.0.0.1:$port"

# Wait (at most 10 s) for a table drawn from two fetches with live numbers.
ok=
for _ in $(seq 100); do
    tmux -L "$sock" capture-pane -p >"$screen" 2>/dev/null || true
    if grep -Eq '^[ >]HANDLER +requests [1-9][0-9.]*[kM]?/s' "$screen"; then ok=1; break; fi
    sleep 0.1
done

fail() {
    echo "test-top: $1"
    echo "---- screen ----"
    cat "$screen"
    echo "----------------"
    exit 1
}
[ -n "$ok" ] || fail "no live request rate on the screen"
prev=0
for layer in NIC KERNEL SOCKETS READINESS LOOP HANDLER; do
    line=$(grep -nE "^[ >]$layer " "$screen" | head -1 | cut -d: -f1)
    [ -n "$line" ] || fail "layer $layer missing"
    [ "$line" -gt "$prev" ] || fail "layer $layer out of order"
    prev=$line
done
grep -q '^corio-top ' "$screen" || fail "no title line"
grep -Eq '^[ >]NIC +lo ' "$screen" || fail "no loopback interface in the NIC layer"
grep -Eq 'listener fd [0-9]+ +accept queue [0-9]+ of 128' "$screen" || fail "no listener accept queue"
grep -Eq 'syscalls [1-9][0-9.]*[kM]?/s' "$screen" || fail "no live syscall rate"
grep -Eq 'events/wait [0-9.]+ avg' "$screen" || fail "no events per wait"
grep -Eq 'resume p50 [0-9.]+(ns|us|ms|s) p99' "$screen" || fail "no resume latency"
grep -q '^bottleneck: ' "$screen" || fail "no bottleneck line"
echo "test-top: corio-top drew every layer with live numbers"
