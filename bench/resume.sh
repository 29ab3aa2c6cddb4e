#!/usr/bin/env bash
# Bytes fetched again by `aimem backup --retry 1` after the snapshot download is cut at 50 %,
# for one collection whose snapshot carries SIZE bytes (default 256 MiB), served by the Qdrant
# test double on loopback.
#
#   bench/resume.sh [SIZE]      e.g. bench/resume.sh 1GiB
#
# The double cuts its first snapshot download after half of the body and reports the body
# bytes it sent per request. Target (issue 11): at most 55 % of the file fetched again.
set -euo pipefail
size="${1:-256MiB}"
source "$(dirname "$0")/common.sh"
start_double double --seed-ai-memory --filler "discussions=$size" --cut-first-download-at 50 --report-served
/usr/bin/time -v ./target/release/aimem --quiet backup --collection discussions --retry 1 \
    --output "$work/backups" --install-dir "$work/install" >"$work/out" 2>"$work/time" || {
    cat "$work/time"
    exit 1
}
stop_double

snapshot="$(find "$work/backups" -name 'discussions.snapshot' -printf '%s')"
# `served <bytes> <METHOD> <path>` per answer; the downloads are GETs of files in its folder.
downloads="$(awk '$1 == "served" && $3 == "GET" && $4 ~ "^/collections/discussions/snapshots/." {print $2}' "$work/double")"
first="$(echo "$downloads" | head -1)"
again="$(echo "$downloads" | tail -n +2 | awk '{s += $1} END {print s + 0}')"
requests="$(echo "$downloads" | wc -l)"
rss_kib="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")"
printf 'snapshot size:        %d bytes (%.1f MiB)\n' "$snapshot" "$(echo "$snapshot / 1048576" | bc -l)"
printf 'download requests:    %d\n' "$requests"
printf 'sent before the cut:  %d bytes (%.1f %%)\n' "$first" "$(echo "100 * $first / $snapshot" | bc -l)"
printf 'fetched again:        %d bytes (%.1f %% of the file; target <= 55 %%)\n' "$again" "$(echo "100 * $again / $snapshot" | bc -l)"
printf 'peak RSS aimem:       %d KiB (%.1f MiB)\n' "$rss_kib" "$(echo "$rss_kib / 1024" | bc -l)"
