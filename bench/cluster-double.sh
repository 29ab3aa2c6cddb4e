#!/usr/bin/env bash
# Cluster spot check against the test double's multi-peer mode: aimem's own cost for the five
# AI Memory collections on 3 peers (3 shards x replication 2 each, 100 MiB per shard snapshot,
# 1.5 GiB in 15 shard files). No simulated server work, so these are not a real cluster's
# figures (see bench/real-cluster-restore.py for those). Prints wall time and peak RSS of:
#   backup (default --jobs), restore --force into an empty cluster (default --jobs, and
#   --jobs 1), verify. Takes about a minute; needs about 5 GiB in /tmp. Not part of the tests.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }

fillers=()
for c in discussions conventions code-patterns github jira-data; do fillers+=(--filler "$c=100MiB"); done
export AI_MEMORY_BACKUP_DIR="$work/backups" AI_MEMORY_INSTALL_DIR="$work/install"
mkdir -p "$AI_MEMORY_INSTALL_DIR"

# start_cluster OUT ARGS...: a 3-peer double (its storage in the system temp dir, removed on
# exit), QDRANT_URL set to peer 0; stop_double stops it.
start_cluster() {
    local out="$work/$1"
    shift
    mkfifo "$work/stdin"
    ./target/release/qdrant-double --peers 3 --api-key bench-key --exit-on-stdin-eof "$@" \
        <"$work/stdin" >"$out" &
    double_pid=$!
    exec 3>"$work/stdin"
    for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
    local url
    url="$(head -1 "$out")"
    [ -n "$url" ] || { echo "the test double did not start" >&2; exit 1; }
    export QDRANT_URL="$url" QDRANT_API_KEY=bench-key NO_COLOR=1
}

measure() { # label, command...
    local label=$1
    shift
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
        cat "$work/err" >&2
        exit 1
    }
    read -r wall rss <"$work/time"
    printf '| %s | %s s | %s MiB |\n' "$label" "$wall" "$(awk "BEGIN { printf \"%.1f\", $rss / 1024 }")"
}

echo "| run | wall | peak RSS |"
echo "|---|---:|---:|"
start_cluster source.out --seed-ai-memory "${fillers[@]}"
measure "aimem backup" ./target/release/aimem --no-progress backup
backup="$(cat "$work/out")"
measure "aimem verify" ./target/release/aimem --no-progress verify "$backup"
stop_double
for jobs in 2 1; do
    start_cluster target.out
    measure "aimem restore --force --jobs $jobs (empty cluster)" \
        ./target/release/aimem --no-progress restore "$backup" --force --jobs "$jobs"
    stop_double
done
