#!/usr/bin/env bash
# Peak memory of aimem reading hostile inputs (issue 17): for each crafted input, the command
# that reads it, its exit code and its peak RSS (GNU `time -f %M`). Target: under 64 MiB each.
#
#   bench/hostile-memory.sh
#
# The inputs, made in a temporary folder (about 250 MiB, removed on exit):
#   cluster-63MiB       GET /cluster answers 63 MiB of `{"a":0},` repeated in a field aimem
#                       does not use (a small Python server on loopback plays Qdrant): `backup`
#   cluster-15MiB       the same, 15 MiB (under the 16 MiB bound of a JSON answer)
#   cluster-peers-15MiB GET /cluster lists 15 MiB of peers (`"N":{"uri":…}` repeated)
#   manifest-16MiB      manifest.json of 16 MiB, `{"a":0},` repeated in an unknown field:
#                       `verify`, `restore --dry-run`; and a root of four such folders:
#                       `list`, `verify latest`
#   manifest-4MiB       the same just under the 4 MiB manifest bound: `verify`; and a root of
#                       four such folders: `list`, `verify latest`
#   manifest-schema-4MiB the repetition inside a collection's schema, under 4 MiB: `verify`,
#                       `restore --dry-run`
#   snapshot-16MiB      a snapshot whose tar holds a 16 MiB config.json and payload_index.json:
#                       `verify`
#   snapshot-1MiB       the repetition inside config.json's `params` and payload_index.json's
#                       `schema`, each just under the 1 MiB bound of payload_index.json: `verify`
#   snapshot-config-128MiB  a config.json of 128 MiB, the repetition in a field aimem does not
#                       use (as a collection's metadata would be): `verify`
#   snapshot-params-16MiB   a config.json of 16 MiB, the repetition inside `params`: `verify`
#
# Prints one line per run: input, command, exit code, peak RSS (with SHOW_ERRORS=1, also the
# first lines aimem wrote on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v /usr/bin/time >/dev/null || { echo "needs GNU time at /usr/bin/time" >&2; exit 1; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 1; }
cargo build --release --quiet -p aimem
aimem="$PWD/target/release/aimem"

work="$(mktemp -d /tmp/aimem-bench-hostile.XXXXXX)"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export NO_COLOR=1 QDRANT_API_KEY=bench-key

MiB=$((1024 * 1024))

# The backup folders and snapshots, made by Python (tarfile, hashlib): a valid backup around
# each crafted file, so that every check before the crafted one passes.
python3 - "$work" <<'PY'
import hashlib, io, json, os, sys, tarfile

work = sys.argv[1]
MiB = 1024 * 1024
UNIT = b'{"a":0},'

def repeated(size):
    """A JSON array of `{"a":0}` objects, `size` bytes long."""
    n = (size - 2) // len(UNIT)
    body = UNIT * n
    return b"[" + body[:-1] + b" " * (size - 2 - len(body)) + b"]"

SCHEMA = {
    "params": {"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 1,
               "replication_factor": 1, "write_consistency_factor": 1, "on_disk_payload": True},
    "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
    "quantization_config": None,
    "payload_schema": {},
}

def manifest(collections, padding=None, field="python_only_field"):
    head = {"backup_date": "2026-02-03T14:30:52+00:00", "ai_memory_version": "2.4.1",
            "qdrant_host": "localhost", "qdrant_port": 6333, "collections": collections,
            "config_files": [], "includes_logs": False, "runtime_flags": {}}
    text = json.dumps(head).encode()
    if padding is None:
        return text
    # The crafted field goes last, so that the file is exactly `padding` bytes.
    prefix = text[:-1] + b', "' + field.encode() + b'": '
    return prefix + repeated(padding - len(prefix) - 1) + b"}"

def folder(path, manifest_bytes, files=()):
    os.makedirs(path, exist_ok=True)
    lines = []
    for rel, data in files:
        os.makedirs(os.path.dirname(os.path.join(path, rel)), exist_ok=True)
        with open(os.path.join(path, rel), "wb") as f:
            f.write(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {rel}\n")
    with open(os.path.join(path, "manifest.json"), "wb") as f:
        f.write(manifest_bytes)
    lines.append(f"{hashlib.sha256(manifest_bytes).hexdigest()}  manifest.json\n")
    with open(os.path.join(path, "CHECKSUMS.sha256"), "w") as f:
        f.writelines(lines)

def snapshot(config, payload_index):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [("0/segments/x", b"\0" * 4096), ("config.json", config),
                           ("payload_index.json", payload_index)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()

def entry(snapshot_bytes=None):
    e = {"name": "c", "records": 1, "snapshot_file": "c.snapshot", "size_bytes": 0,
         "schema": SCHEMA}
    if snapshot_bytes is not None:
        e["size_bytes"] = len(snapshot_bytes)
        e["sha256"] = hashlib.sha256(snapshot_bytes).hexdigest()
    return e

def crafted_snapshot(config_size, payload_size, inside):
    """config.json and payload_index.json of the given sizes, the repetition in `inside`
    (an unused field, or the parts the schema is read from)."""
    def padded(prefix, size, suffix):
        return prefix + repeated(size - len(prefix) - len(suffix)) + suffix
    params = b'{"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 1, "filler": '
    if inside:
        config = padded(b'{"params": ' + params, config_size,
                        b'}, "hnsw_config": {}, "quantization_config": null}')
        payload = padded(b'{"schema": {"field": {"type": "keyword", "filler": ',
                         payload_size or 64, b'}}}')
    else:
        # The collection's real schema, and the repetition in its metadata.
        real = json.dumps({"params": SCHEMA["params"], "hnsw_config": SCHEMA["hnsw_config"],
                           "quantization_config": None}).encode()
        config = padded(real[:-1] + b', "metadata": ', config_size, b'}')
        payload = padded(b'{"schema": {}, "filler": ', payload_size or 64, b'}')
    if payload_size is None:
        payload = b'{"schema": {}}'
    return snapshot(config, payload)

# (b) manifests
snap = snapshot(json.dumps({"params": SCHEMA["params"], "hnsw_config": SCHEMA["hnsw_config"],
                            "quantization_config": None}).encode(), b'{"schema": {}}')
files = [("qdrant/c.snapshot", snap)]
big = manifest({"c": entry(snap)}, 16 * MiB - 1024)
folder(f"{work}/manifest-16MiB/2026-02-03_143052", big, files)
for i in range(4):
    folder(f"{work}/root-4x16MiB/2026-02-0{i + 1}_143052", big, files)
small = manifest({"c": entry(snap)}, 4 * MiB - 1024)
folder(f"{work}/manifest-4MiB/2026-02-03_143052", small, files)
for i in range(4):
    folder(f"{work}/root-4x4MiB/2026-02-0{i + 1}_143052", small, files)
schema_entry = entry(snap)
head = manifest({"c": schema_entry})
# The repetition inside the collection's schema: its payload_schema holds it.
prefix, suffix = head.split(b'"payload_schema": {}', 1)
prefix += b'"payload_schema": {"f": {"data_type": "keyword", "params": '
suffix = b'}}' + suffix
filler = repeated(4 * MiB - 1024 - len(prefix) - len(suffix))
folder(f"{work}/manifest-schema-4MiB/2026-02-03_143052", prefix + filler + suffix, files)

# (c) snapshots
for name, size, payload_size, inside in [
        ("snapshot-16MiB", 16 * MiB - 1024, 16 * MiB - 1024, False),
        ("snapshot-1MiB", MiB - 1024, MiB - 1024, True),
        ("snapshot-config-128MiB", 128 * MiB, None, False),
        ("snapshot-params-16MiB", 16 * MiB, None, True)]:
    crafted = crafted_snapshot(size, payload_size, inside)
    folder(f"{work}/{name}/2026-02-03_143052", manifest({"c": entry(crafted)}),
           [("qdrant/c.snapshot", crafted)])

# (a) GET /cluster answers
def cluster_answer(size, peers):
    if peers:
        unit = b'"%d":{"uri":"http://127.0.0.1:1/"},'
        parts, total, i = [], 0, 2
        while total < size:
            part = unit % i
            parts.append(part)
            total += len(part)
            i += 1
        inner = (b'{"status":"enabled","peer_id":1,"peers":{' + b"".join(parts) +
                 b'"1":{"uri":"http://127.0.0.1:1/"}}}')
    else:
        inner = (b'{"status":"disabled","raft_info":' + repeated(size) + b'}')
    return b'{"result":' + inner + b',"status":"ok","time":0.0}'

for name, size, peers in [("cluster-63MiB", 63 * MiB, False), ("cluster-15MiB", 15 * MiB, False),
                          ("cluster-peers-15MiB", 15 * MiB, True)]:
    with open(f"{work}/{name}.json", "wb") as f:
        f.write(cluster_answer(size, peers))
PY

# A Qdrant that answers GET / with its version, GET /cluster with the file given, and every
# other call with an empty collection list.
cat >"$work/server.py" <<'PY'
import http.server, socketserver, sys

with open(sys.argv[1], "rb") as f:
    CLUSTER = f.read()

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/cluster":
            body = CLUSTER
        elif self.path == "/":
            body = b'{"title":"qdrant","version":"1.18.3"}'
        else:
            body = b'{"result":{"collections":[]},"status":"ok","time":0.0}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
PY

# run INPUT COMMAND ARGS...: runs aimem ARGS under GNU time and prints one result line.
run() {
    local input="$1" shown="$2"
    shift 2
    local code=0
    /usr/bin/time -f %M -o "$work/rss" "$aimem" --quiet "$@" >"$work/out" 2>"$work/err" || code=$?
    local kib
    kib="$(tail -1 "$work/rss")"
    printf '%-22s %-26s exit %-3s peak RSS %7.1f MiB\n' "$input" "$shown" "$code" \
        "$(echo "$kib / 1024" | bc -l)"
    # SHOW_ERRORS=1: what aimem said, for checking the messages.
    if [ -n "${SHOW_ERRORS:-}" ]; then
        { grep -v '^\s*$' "$work/err" || true; } | head -3 | cut -c1-160 | sed 's/^/    /'
    fi
}

# serve FILE: starts the Python Qdrant for FILE and exports QDRANT_URL.
serve() {
    python3 "$work/server.py" "$1" >"$work/port" &
    server_pid=$!
    for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
    [ -s "$work/port" ] || { echo "the Python server did not start" >&2; exit 1; }
    export QDRANT_URL="http://127.0.0.1:$(head -1 "$work/port")"
}

unserve() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    rm -f "$work/port"
}

for input in cluster-63MiB cluster-15MiB cluster-peers-15MiB; do
    serve "$work/$input.json"
    run "$input" "backup" backup --output "$work/backups" --install-dir "$work/install"
    unserve
done

# Nothing listens here: restore --dry-run reads the manifest before it connects.
export QDRANT_URL="http://127.0.0.1:9"
run manifest-16MiB "verify" verify "$work/manifest-16MiB/2026-02-03_143052"
run manifest-16MiB "restore --dry-run" restore --dry-run "$work/manifest-16MiB/2026-02-03_143052"
run "4 x manifest-16MiB" "list" list "$work/root-4x16MiB"
AI_MEMORY_BACKUP_DIR="$work/root-4x16MiB" run "4 x manifest-16MiB" "verify latest" verify latest
run manifest-4MiB "verify" verify "$work/manifest-4MiB/2026-02-03_143052"
run "4 x manifest-4MiB" "list" list "$work/root-4x4MiB"
AI_MEMORY_BACKUP_DIR="$work/root-4x4MiB" run "4 x manifest-4MiB" "verify latest" verify latest
run manifest-schema-4MiB "verify" verify "$work/manifest-schema-4MiB/2026-02-03_143052"
run manifest-schema-4MiB "restore --dry-run" restore --dry-run \
    "$work/manifest-schema-4MiB/2026-02-03_143052"
run snapshot-16MiB "verify" verify "$work/snapshot-16MiB/2026-02-03_143052"
run snapshot-1MiB "verify" verify "$work/snapshot-1MiB/2026-02-03_143052"
run snapshot-config-128MiB "verify" verify "$work/snapshot-config-128MiB/2026-02-03_143052"
run snapshot-params-16MiB "verify" verify "$work/snapshot-params-16MiB/2026-02-03_143052"
