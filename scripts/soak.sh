#!/usr/bin/env bash
# The soak: corio-http under every hostile behaviour at once plus normal
# load, for DURATION seconds (tests/hostile/hostile.c does the work).
# Reports requests served, wrong responses, unexpected errors, server RSS
# at the start, middle and end, and descriptors at the start and end; exits
# non-zero if any response was wrong, any error unexpected, RSS kept
# growing or descriptors leaked.
#
#   scripts/soak.sh [BUILD_DIR] [DURATION]      (make soak DURATION=120)
set -euo pipefail
cd "$(dirname "$0")/.."

B=${1:-build/cc}
DURATION=${2:-120}
THREADS=${SOAK_THREADS:-1}
for f in "$B/corio-http" "$B/corio-hostile"; do
    [ -x "$f" ] || { echo "soak: $f is missing (make B=$B soak builds it)" >&2; exit 2; }
done

report=$B/soak-report.txt
{
    echo "soak: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(uname -sr), $(nproc) CPUs, ulimit -n $(ulimit -n)"
    echo "soak: $B/corio-http with $THREADS loop(s), $DURATION s"
} | tee "$report"
set +e
"$B/corio-hostile" soak --server "$B/corio-http" --duration "$DURATION" --threads "$THREADS" \
    2>&1 | tee -a "$report"
status=${PIPESTATUS[0]}
set -e
echo "soak: report in $report"
exit "$status"
