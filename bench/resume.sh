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
cd "$(dirname "$0")/.."
cargo build --release --quiet -p aimem -p qdrant-double

work="$(mktemp -d /tmp/aimem-bench.XXXXXX)"
double_pid=""
cleanup() {
    [ -n "$double_pid" ] && kill "$double_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkfifo "$work/stdin"
mkdir -p "$work/storage"
# The double exits (printing what it served) and removes its storage when its stdin closes.
./target/release/qdrant-double --port 0 --api-key bench-key --storage "$work/storage" \
    --seed-ai-memory --filler "discussions=$size" --cut-first-download-at 50 --report-served \
    --exit-on-stdin-eof <"$work/stdin" >"$work/double" &
double_pid=$!
exec 3>"$work/stdin"
for _ in $(seq 100); do [ -s "$work/double" ] && break; sleep 0.1; done
url="$(head -1 "$work/double")"
[ -n "$url" ] || { echo "the test double did not start" >&2; exit 1; }

export QDRANT_URL="$url" QDRANT_API_KEY=bench-key NO_COLOR=1
/usr/bin/time -v ./target/release/aimem --quiet backup --collection discussions --retry 1 \
    --output "$work/backups" --install-dir "$work/install" >"$work/out" 2>"$work/time" || {
    cat "$work/time"
    exit 1
}
exec 3>&-
wait "$double_pid" || true
double_pid=""

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
