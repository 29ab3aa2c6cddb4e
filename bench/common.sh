# Shared set-up of the single-double benchmarks (sourced, not run): builds aimem and the test
# double in release, makes a temporary work folder removed on exit, and starts the double.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet -p aimem -p qdrant-double

work="$(mktemp -d /tmp/aimem-bench.XXXXXX)"
double_pid=""
cleanup() {
    [ -n "$double_pid" ] && kill "$double_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start_double OUT ARGS...: starts qdrant-double with ARGS, its stdout in $work/OUT, and exports
# QDRANT_URL and QDRANT_API_KEY for it. The double exits (and removes its storage) when fd 3,
# its stdin, is closed: `stop_double`.
start_double() {
    local out="$work/$1"
    shift
    mkfifo "$work/stdin"
    mkdir -p "$work/storage"
    ./target/release/qdrant-double --port 0 --api-key bench-key --storage "$work/storage" \
        --exit-on-stdin-eof "$@" <"$work/stdin" >"$out" &
    double_pid=$!
    exec 3>"$work/stdin"
    for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
    local url
    url="$(head -1 "$out")"
    [ -n "$url" ] || { echo "the test double did not start" >&2; exit 1; }
    export QDRANT_URL="$url" QDRANT_API_KEY=bench-key NO_COLOR=1
}

# stop_double: closes the double's stdin and waits for it to finish.
stop_double() {
    exec 3>&-
    wait "$double_pid" || true
    double_pid=""
    rm -f "$work/stdin"
}
