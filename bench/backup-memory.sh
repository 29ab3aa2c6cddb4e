#!/usr/bin/env bash
# Peak memory and wall time of `aimem backup` of one collection whose snapshot is SIZE bytes
# (default 1 GiB), served by the Qdrant test double on loopback.
#
#   bench/backup-memory.sh [SIZE]      e.g. bench/backup-memory.sh 4GiB
#
# Prints the snapshot size, wall time, throughput and the peak RSS of aimem
# (/usr/bin/time -v "Maximum resident set size"). Target: peak RSS under 32 MiB.
set -euo pipefail
size="${1:-1GiB}"
source "$(dirname "$0")/common.sh"
start_double url --seed-ai-memory --filler "discussions=$size"
/usr/bin/time -v ./target/release/aimem --quiet backup --collection discussions \
    --output "$work/backups" --install-dir "$work/install" >"$work/out" 2>"$work/time" || {
    cat "$work/time"
    exit 1
}
stop_double

snapshot="$(find "$work/backups" -name 'discussions.snapshot' -printf '%s')"
rss_kib="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")"
wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time")"
seconds="$(echo "$wall" | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')"
printf 'snapshot size:   %d bytes (%.2f GiB)\n' "$snapshot" "$(echo "$snapshot / 1073741824" | bc -l)"
printf 'wall time:       %s s (create + download + hash + sync)\n' "$seconds"
printf 'throughput:      %.0f MiB/s\n' "$(echo "$snapshot / 1048576 / $seconds" | bc -l)"
printf 'peak RSS aimem:  %d KiB (%.1f MiB; target < 32 MiB)\n' "$rss_kib" "$(echo "$rss_kib / 1024" | bc -l)"
