#!/usr/bin/env bash
# Transfer benchmark (issue 11): aimem against the plain tools on the same server, interleaved.
#
#   bench/transfer.sh            # 3 rounds, 5 collections x 420 MiB (2.05 GiB of snapshots)
#
# The Qdrant test double serves the five AI Memory collections, each snapshot carrying
# incompressible filler, and simulates a real server's work: building a snapshot and
# recovering an upload each take at least size / rate (default 208,333,333 B/s, i.e. about
# 1.2 s per 250 MB as measured on a real Qdrant 1.18.3 on these machines).
# Each round runs, alternating which goes first:
#   backup   aimem backup (default settings; also --jobs 1 when aimem has it)
#            vs the floor: curl create + download + delete, one collection after another,
#            and the floor plus one sync of the downloaded files
#   restore  aimem restore --force into an empty server
#            vs curl -F snapshot=@file .../snapshots/upload?wait=true&priority=snapshot, one by one
#   verify   aimem verify (and --no-deep) vs sha256sum -c CHECKSUMS.sha256 (page cache warm)
# and prints medians, the peak RSS of each aimem command (GNU time -v) and the ratios against
# the issue's targets. Everything lives in a mktemp folder in /tmp (about 7 GiB at peak),
# removed at the end. Takes about 5 to 8 minutes on 2 cores. Not part of the test suite.
#
# Knobs (environment): ROUNDS (3), COLLECTION_SIZE (420MiB; any --filler size of the double),
# SERVER_RATE (bytes per second for snapshot creation and recovery; 0 = no simulated delay),
# CREATE_DELAY_MS (300: the server's time to create a collection) and INDEX_DELAY_MS (25: to
# build one payload index; an index asked for with wait=false is acknowledged at once and shows
# up after it). A real Qdrant 1.18.3 takes 0.4-0.8 s for a collection and its 11-20 indexes,
# which 300 ms + 25 ms per index matches; 0 = none.
# The restore pair also runs aimem restore --jobs 1 once aimem has that flag.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-3}
size=${COLLECTION_SIZE:-420MiB}
rate=${SERVER_RATE:-208333333}
create_delay=${CREATE_DELAY_MS:-300}
index_delay=${INDEX_DELAY_MS:-25}
key=bench-key
collections="discussions conventions code-patterns github jira-data"

if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time (for peak RSS)" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq time >/dev/null; else sudo apt-get install -y -qq time >/dev/null; fi
fi
for tool in curl jq sha256sum; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

echo "building aimem and qdrant-double (release)" >&2
cargo build --release --quiet -p aimem -p qdrant-double
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
aimem="$bin/aimem"
double="$bin/qdrant-double"
jobs_supported=false
grep -q -- '--jobs' <<<"$("$aimem" backup --help)" && jobs_supported=true
restore_jobs_supported=false
grep -q -- '--jobs' <<<"$("$aimem" restore --help)" && restore_jobs_supported=true

work="$(mktemp -d /tmp/aimem-bench-transfer.XXXXXX)"
declare -A double_pid=() double_fd=()
cleanup() {
    local name
    for name in "${!double_fd[@]}"; do eval "exec ${double_fd[$name]}>&-" || true; done
    for name in "${!double_pid[@]}"; do kill "${double_pid[$name]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start_double NAME ARGS...: a double whose storage is in $work/NAME.storage; its URL goes to
# $work/NAME.url. It stops (and removes its storage) when stop_double closes its stdin.
start_double() {
    local name=$1 fd
    shift
    mkdir -p "$work/$name.storage"
    rm -f "$work/$name.stdin" "$work/$name.url"
    mkfifo "$work/$name.stdin"
    "$double" --port 0 --api-key "$key" --storage "$work/$name.storage" --exit-on-stdin-eof "$@" \
        <"$work/$name.stdin" >"$work/$name.url" &
    double_pid[$name]=$!
    exec {fd}>"$work/$name.stdin"
    double_fd[$name]=$fd
    for _ in $(seq 100); do [ -s "$work/$name.url" ] && break; sleep 0.1; done
    [ -s "$work/$name.url" ] || { echo "the test double $name did not start" >&2; exit 1; }
}
stop_double() {
    local name=$1
    eval "exec ${double_fd[$name]}>&-"
    wait "${double_pid[$name]}" || true
    unset "double_fd[$name]" "double_pid[$name]"
}
url_of() { head -1 "$work/$1.url"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# record METRIC SECONDS [RSS_KIB]
record() { echo "$1 $2 ${3:-}" >>"$work/results"; }
rss_of() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }

# timed_aimem METRIC ARGS...: runs aimem under GNU time, records wall seconds and peak RSS.
timed_aimem() {
    local metric=$1 t0 secs
    shift
    t0=$(now)
    /usr/bin/time -v -o "$work/time.txt" "$aimem" --quiet --no-progress "$@" >"$work/out.txt" 2>"$work/err.txt" || {
        echo "aimem $* failed:" >&2
        cat "$work/err.txt" "$work/time.txt" >&2
        exit 1
    }
    secs=$(elapsed "$t0")
    record "$metric" "$secs" "$(rss_of "$work/time.txt")"
    echo "  $metric: $secs s" >&2
}

src_flags=(--seed-ai-memory)
for c in $collections; do src_flags+=(--filler "$c=$size"); done
rate_flags=()
[ "$rate" != 0 ] && rate_flags=(--create-rate "$rate" --recover-rate "$rate")
[ "$create_delay" != 0 ] && rate_flags+=(--collection-create-delay "$create_delay")
[ "$index_delay" != 0 ] && rate_flags+=(--index-create-delay "$index_delay")
start_double source "${src_flags[@]}" "${rate_flags[@]}"
src_url=$(url_of source)
export QDRANT_API_KEY=$key NO_COLOR=1
mkdir -p "$work/install"
aimem_backup=""

bench_aimem_backup() { # METRIC [EXTRA ARGS]
    local metric=$1
    shift
    QDRANT_URL=$src_url timed_aimem "$metric" backup --output "$work/aimem-backups" \
        --install-dir "$work/install" "$@"
    local made
    made=$(tail -1 "$work/out.txt")
    [ -d "$made" ] || { echo "aimem backup printed no folder: $made" >&2; exit 1; }
    # Keep only the newest aimem backup (restore and verify use it).
    [ -n "$aimem_backup" ] && [ "$aimem_backup" != "$made" ] && rm -rf "$aimem_backup"
    aimem_backup=$made
}

bench_floor_backup() {
    local dir="$work/curl-backup" t0 name secs c
    rm -rf "$dir"
    mkdir -p "$dir"
    t0=$(now)
    for c in $collections; do
        name=$(curl -sfS -X POST -H "api-key: $key" "$src_url/collections/$c/snapshots?wait=true" | jq -er .result.name)
        curl -sfS -H "api-key: $key" -o "$dir/$c.snapshot" "$src_url/collections/$c/snapshots/$name"
        curl -sfS -X DELETE -H "api-key: $key" "$src_url/collections/$c/snapshots/$name" >/dev/null
    done
    secs=$(elapsed "$t0")
    # One sync of what was downloaded (the files and their folder), as a careful person would.
    sync "$dir"/*.snapshot "$dir"
    record backup-floor "$secs"
    record backup-floor-sync "$(elapsed "$t0")"
    echo "  backup-floor: $secs s" >&2
    rm -rf "$dir"
}

bench_aimem_restore() { # METRIC [EXTRA ARGS]
    local metric=${1:-restore}
    shift || true
    start_double target "${rate_flags[@]}"
    QDRANT_URL=$(url_of target) timed_aimem "$metric" restore "$aimem_backup" --force "$@"
    stop_double target
}

bench_floor_restore() {
    local t0 url c secs
    start_double target "${rate_flags[@]}"
    url=$(url_of target)
    t0=$(now)
    for c in $collections; do
        curl -sfS -H "api-key: $key" -F "snapshot=@$aimem_backup/qdrant/$c.snapshot" \
            "$url/collections/$c/snapshots/upload?wait=true&priority=snapshot" >/dev/null
    done
    secs=$(elapsed "$t0")
    record restore-floor "$secs"
    echo "  restore-floor: $secs s" >&2
    stop_double target
}

bench_sha256sum() {
    local t0 secs
    t0=$(now)
    (cd "$aimem_backup" && sha256sum -c --quiet CHECKSUMS.sha256)
    secs=$(elapsed "$t0")
    record verify-sha256sum "$secs"
    echo "  verify-sha256sum: $secs s" >&2
}

echo "source: 5 collections x $size, server rate ${rate} B/s, collection create ${create_delay} ms, index ${index_delay} ms; $rounds rounds; work dir $work" >&2
for round in $(seq "$rounds"); do
    echo "round $round" >&2
    # Odd rounds start with aimem, even ones with the plain tools.
    if [ $((round % 2)) = 1 ]; then
        bench_aimem_backup backup
        $jobs_supported && bench_aimem_backup backup-jobs1 --jobs 1
        bench_floor_backup
        bench_aimem_restore
        $restore_jobs_supported && bench_aimem_restore restore-jobs1 --jobs 1
        bench_floor_restore
        timed_aimem verify verify "$aimem_backup"
        timed_aimem verify-no-deep verify --no-deep "$aimem_backup"
        bench_sha256sum
    else
        bench_floor_backup
        $jobs_supported && bench_aimem_backup backup-jobs1 --jobs 1
        bench_aimem_backup backup
        bench_floor_restore
        $restore_jobs_supported && bench_aimem_restore restore-jobs1 --jobs 1
        bench_aimem_restore
        bench_sha256sum
        timed_aimem verify-no-deep verify --no-deep "$aimem_backup"
        timed_aimem verify verify "$aimem_backup"
    fi
done
total=$(du -sb "$aimem_backup/qdrant" | cut -f1)

median() { awk -v m="$1" '$1 == m {print $2}' "$work/results" | sort -n | awk '{v[NR] = $1} END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
runs() { awk -v m="$1" '$1 == m {printf "%s%s", sep, $2; sep = " "}' "$work/results"; }
peak() { awk -v m="$1" '$1 == m && $3 != "" { if ($3 > p) p = $3 } END { if (p) printf "%.1f MiB", p / 1024; else print "-" }' "$work/results"; }
ratio() { # NAME A B TARGET
    awk -v a="$(median "$2")" -v b="$(median "$3")" -v t="$4" -v n="$1" 'BEGIN {
        if (a == "-" || b == "-") exit
        r = a / b
        printf "%-44s %5.2fx  target <= %.1fx  %s\n", n, r, t, (r <= t ? "met" : "MISSED") }'
}

echo
printf 'machine: %s cores, %s MiB RAM, %s\n' "$(nproc)" "$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)" \
    "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
printf 'data:    %d bytes of snapshots (%.2f GiB) in 5 collections; server rate %s B/s; create %s ms, index %s ms; %s rounds, medians\n\n' \
    "$total" "$(awk -v t="$total" 'BEGIN {print t / 1073741824}')" "$rate" "$create_delay" "$index_delay" "$rounds"
printf '%-44s %9s  %-22s %s\n' "run" "median s" "runs (s)" "peak RSS"
row() { printf '%-44s %9s  %-22s %s\n' "$1" "$(median "$2")" "$(runs "$2")" "$(peak "$2")"; }
row "backup: aimem (default)" backup
$jobs_supported && row "backup: aimem --jobs 1" backup-jobs1
row "backup: curl create+download+delete (floor)" backup-floor
row "backup: floor + one sync" backup-floor-sync
row "restore: aimem restore --force" restore
$restore_jobs_supported && row "restore: aimem restore --force --jobs 1" restore-jobs1
row "restore: curl -F upload, one by one (floor)" restore-floor
row "verify: aimem verify" verify
row "verify: aimem verify --no-deep" verify-no-deep
row "verify: sha256sum -c CHECKSUMS.sha256" verify-sha256sum
echo
ratio "backup default / floor" backup backup-floor 0.8
$jobs_supported && ratio "backup --jobs 1 / (floor + sync)" backup-jobs1 backup-floor-sync 1.1
$jobs_supported || ratio "backup default (sequential) / (floor + sync)" backup backup-floor-sync 1.1
ratio "restore / curl -F floor" restore restore-floor 0.9
ratio "verify / sha256sum -c" verify verify-sha256sum 0.5
ratio "verify --no-deep / sha256sum -c" verify-no-deep verify-sha256sum 0.5
awk '$3 != "" { if ($3 > p) p = $3 } END { printf "%-44s %5.1f MiB target < 32 MiB  %s\n", "peak RSS of any aimem run", p / 1024, (p < 32768 ? "met" : "MISSED") }' "$work/results"
