#!/usr/bin/env bash
# Benchmark: `aimem verify --no-deep` against `sha256sum -c CHECKSUMS.sha256` on a generated
# multi-file backup of at least 2 GiB (four large snapshots and 256 small files).
#
# Prints, for each tool, the best wall time of 3 runs and the peak RSS (GNU time -v), and
# the ratio aimem/sha256sum. Both run with the files in the page cache (a warm-up pass reads
# them first), so the figures compare hashing, not the disk.
#
# Usage: bench/verify.sh [LARGE_MIB] (size of each of the four large files; default 512)
set -euo pipefail
cd "$(dirname "$0")/.."

large_mib=${1:-512}
small_count=256
small_kib=1024

command -v /usr/bin/time >/dev/null || { echo "needs GNU time at /usr/bin/time" >&2; exit 1; }
cargo build --release --quiet
aimem="$PWD/target/release/aimem"

work=$(mktemp -d /tmp/aimem-bench-verify.XXXXXX)
trap 'rm -rf "$work"' EXIT
backup="$work/2026-01-01_000000"
mkdir -p "$backup/qdrant" "$backup/logs"

echo "generating $((4 * large_mib)) MiB in 4 snapshots + $small_count x $small_kib KiB files in $backup" >&2
collections=""
for i in 1 2 3 4; do
  file="$backup/qdrant/big-$i.snapshot"
  # Pseudo-random bytes, fast: AES-CTR keystream of a zero stream.
  openssl enc -aes-128-ctr -pass pass:"bench-$i" -nosalt -pbkdf2 </dev/zero 2>/dev/null \
    | head -c $((large_mib * 1024 * 1024)) >"$file" || true # openssl stops on SIGPIPE
  size=$(stat -c %s "$file")
  [ -n "$collections" ] && collections+=","
  collections+="\"big-$i\":{\"name\":\"big-$i\",\"records\":1,\"snapshot_file\":\"big-$i.snapshot\",\"size_bytes\":$size,\"schema\":{\"params\":{\"vectors\":{\"size\":4,\"distance\":\"Dot\"}},\"hnsw_config\":null,\"quantization_config\":null,\"payload_schema\":{}}}"
done
openssl enc -aes-128-ctr -pass pass:small -nosalt -pbkdf2 </dev/zero 2>/dev/null \
  | head -c $((small_count * small_kib * 1024)) \
  | split -b $((small_kib * 1024)) -d -a 4 - "$backup/logs/part-" || true
cat >"$backup/manifest.json" <<JSON
{"backup_date":"2026-01-01T00:00:00.000000+00:00","ai_memory_version":"bench","qdrant_host":"localhost","qdrant_port":26350,"collections":{$collections},"config_files":[],"includes_logs":true,"runtime_flags":{}}
JSON
(cd "$backup" && find . -type f ! -name CHECKSUMS.sha256 -printf '%P\n' | sort | xargs sha256sum >CHECKSUMS.sha256)
total=$(du -sb "$backup" | cut -f1)
[ "$total" -ge $((4 * large_mib * 1024 * 1024)) ] || { echo "generation failed" >&2; exit 1; }
echo "backup: $(numfmt --to=iec "$total") in $(wc -l <"$backup/CHECKSUMS.sha256") files; $(nproc) cores" >&2

# Best wall seconds and peak RSS (KiB) of 3 runs of "$@", run in the backup folder.
measure() {
  local best="" rss=0 out wall kib
  for _ in 1 2 3; do
    out=$(cd "$backup" && /usr/bin/time -v "$@" 2>&1 >/dev/null) || { echo "$out" >&2; exit 1; }
    wall=$(echo "$out" | awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' \
      | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
    kib=$(echo "$out" | awk -F': ' '/Maximum resident set size/ {print $2}')
    if [ -z "$best" ] || awk "BEGIN {exit !($wall < $best)}"; then best=$wall; fi
    [ "$kib" -gt "$rss" ] && rss=$kib
  done
  echo "$best $rss"
}

cat "$backup"/qdrant/* "$backup"/logs/* >/dev/null   # warm the page cache
read -r sum_wall sum_rss < <(measure sha256sum -c --quiet CHECKSUMS.sha256)
read -r aim_wall aim_rss < <(measure "$aimem" verify --no-deep "$backup")

printf '%-34s %8s s  %8s MiB peak RSS\n' "sha256sum -c CHECKSUMS.sha256" "$sum_wall" "$((sum_rss / 1024))"
printf '%-34s %8s s  %8s MiB peak RSS\n' "aimem verify --no-deep" "$aim_wall" "$((aim_rss / 1024))"
awk "BEGIN {printf \"ratio aimem/sha256sum: %.2fx (target <= 0.5x)\n\", $aim_wall / $sum_wall}"
