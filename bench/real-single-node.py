#!/usr/bin/env python3
"""aimem's everyday commands against a real single Qdrant node, with an API key.

A check by hand, never part of the test suite: it needs a real Qdrant binary.

    QDRANT_BIN=/path/to/qdrant AIMEM=target/release/aimem python3 bench/real-single-node.py

It starts one node on loopback (port 19333, key `real-check-key`), makes a collection with a
named dense vector, a sparse vector and payload indexes, fills it with 500 points, and runs:
backup (each shard's snapshot streamed), verify latest, list --json, diff-schema, restore over
the live collection (after more points were added, so the restore must bring the count back),
restore into a new name, prune --dry-run, and a backup through another spelling of the URL
(localhost). Then the same for a collection of two shards, and a `--no-stream` backup (one
stored snapshot) restored over the live collection. Each step prints `ok` or `FAIL` with what
it checked; the last line counts them.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

PORT = 19333
KEY = "real-check-key"
URL = f"http://127.0.0.1:{PORT}"


def call(path, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("api-key", KEY)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, ValueError):
        return 0, None


def count(name):
    status, body = call(f"/collections/{name}/points/count", "POST", {"exact": True})
    return body["result"]["count"] if status == 200 else None


def upsert(name, ids):
    points = [
        {
            "id": i,
            "vector": {
                "dense": [((i * 7 + k) % 13) / 13.0 + 0.01 for k in range(32)],
                "bm25": {"indices": [i % 50, 60 + i % 7], "values": [1.0, 0.5]},
            },
            "payload": {"group_id": f"g{i % 5}", "type": "note", "n": i},
        }
        for i in ids
    ]
    return call(f"/collections/{name}/points?wait=true", "PUT", {"points": points})[0]


results = []


def manifest_entry(backup, name):
    try:
        with open(os.path.join(backup, "manifest.json")) as f:
            return json.load(f)["collections"][name]
    except (OSError, ValueError, KeyError):
        return {}


def check(what, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok else ': ' + detail}", flush=True)


def main():
    binary = os.environ["QDRANT_BIN"]
    aimem_bin = os.environ["AIMEM"]
    work = tempfile.mkdtemp(prefix="aimem-real-single-")
    env = dict(
        os.environ,
        RUN_MODE="production",
        QDRANT__SERVICE__HTTP_PORT=str(PORT),
        QDRANT__SERVICE__GRPC_PORT=str(PORT + 1),
        QDRANT__SERVICE__HOST="127.0.0.1",
        QDRANT__SERVICE__API_KEY=KEY,
        QDRANT__STORAGE__STORAGE_PATH=os.path.join(work, "storage"),
        QDRANT__STORAGE__SNAPSHOTS_PATH=os.path.join(work, "snapshots"),
        QDRANT__TELEMETRY_DISABLED="true",
        QDRANT__LOG_LEVEL="WARN",
    )
    log = open(os.path.join(work, "qdrant.log"), "w")
    server = subprocess.Popen([binary], cwd=work, env=env, stdout=log, stderr=log)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# {version}; aimem {aimem_bin}", flush=True)
    try:
        for _ in range(100):
            if call("/readyz")[0] == 200:
                break
            time.sleep(0.2)
        body = {
            "vectors": {"dense": {"size": 32, "distance": "Cosine"}},
            "sparse_vectors": {"bm25": {"modifier": "idf"}},
        }
        call("/collections/notes", "PUT", body)
        for field, schema in [("group_id", "keyword"), ("type", "keyword"), ("n", "integer")]:
            call("/collections/notes/index?wait=true", "PUT", {"field_name": field, "field_schema": schema})
        upsert("notes", range(1, 501))
        root = os.path.join(work, "backups")
        base = dict(os.environ, QDRANT_URL=URL, QDRANT_API_KEY=KEY, AI_MEMORY_BACKUP_DIR=root, NO_COLOR="1")
        base.pop("QDRANT_PEERS", None)

        def aimem(*args, url=URL):
            return subprocess.run(
                [aimem_bin, "--no-progress", *args],
                env=dict(base, QDRANT_URL=url),
                capture_output=True,
                text=True,
                timeout=600,
            )

        run = aimem("backup", "--collection", "notes")
        backup = run.stdout.strip()
        check("backup", run.returncode == 0 and os.path.isdir(backup), run.stderr[-400:])
        entry = manifest_entry(backup, "notes")
        check("its shard snapshot streamed", "cluster" in entry and "snapshot_file" not in entry, str(entry)[:400])
        run = aimem("verify", "latest", "--json")
        check("verify latest", run.returncode == 0 and json.loads(run.stdout).get("ok") is True, run.stdout[-400:])
        run = aimem("list", "--json")
        listed = json.loads(run.stdout) if run.returncode == 0 else {}
        check("list --json", len(listed.get("backups", [])) == 1, run.stdout[-400:] + run.stderr[-400:])
        run = aimem("diff-schema", "latest")
        check("diff-schema latest (no difference)", run.returncode == 0, run.stderr[-400:])
        upsert("notes", range(501, 551))
        check("50 points added since", count("notes") == 550, str(count("notes")))
        run = aimem("restore", "latest", "--force")
        check("restore over the live collection", run.returncode == 0 and count("notes") == 500, f"exit {run.returncode}, count {count('notes')}: {run.stderr[-600:]}")
        status, info = call("/collections/notes")
        schema = sorted(info["result"]["payload_schema"].keys()) if status == 200 else []
        check("payload indexes kept", schema == ["group_id", "n", "type"], str(schema))
        run = aimem("restore", "latest", "--collection", "notes", "--target-name", "notes_copy", "--force")
        check("restore into a new name", run.returncode == 0 and count("notes_copy") == 500, f"exit {run.returncode}: {run.stderr[-600:]}")
        status, snaps = call("/collections/notes/snapshots")
        left = [s["name"] for s in snaps["result"]] if status == 200 else ["?"]
        check("no snapshot left on the server", left == [], str(left))
        run = aimem("prune", "--keep-last", "1", "--dry-run")
        check("prune --dry-run", run.returncode == 0, run.stderr[-400:])
        run = aimem("backup", "--collection", "notes", url=f"http://localhost:{PORT}")
        check("backup through http://localhost", run.returncode == 0, run.stderr[-400:])
        run = aimem("verify", "latest")
        check("verify latest again", run.returncode == 0, run.stderr[-400:])

        call("/collections/halves", "PUT", dict(body, shard_number=2))
        upsert("halves", range(1, 301))
        run = aimem("backup", "--collection", "halves")
        entry = manifest_entry(run.stdout.strip(), "halves")
        shards = [s["shard_id"] for s in entry.get("cluster", {}).get("shards", [])]
        check("two shards streamed", run.returncode == 0 and shards == [0, 1], f"{shards}: {run.stderr[-400:]}")
        upsert("halves", range(301, 351))
        run = aimem("restore", "latest", "--force")
        check("two shards restored over the live collection", run.returncode == 0 and count("halves") == 300, f"exit {run.returncode}, count {count('halves')}: {run.stderr[-600:]}")
        run = aimem("restore", "latest", "--collection", "halves", "--target-name", "halves_copy", "--force")
        status, info = call("/collections/halves_copy")
        shard_number = info["result"]["config"]["params"].get("shard_number") if status == 200 else None
        check("two shards restored into a new name", run.returncode == 0 and count("halves_copy") == 300 and shard_number == 2, f"exit {run.returncode}, shards {shard_number}: {run.stderr[-600:]}")

        run = aimem("backup", "--collection", "notes", "--no-stream")
        entry = manifest_entry(run.stdout.strip(), "notes")
        check("--no-stream: one stored snapshot", run.returncode == 0 and "snapshot_file" in entry, str(entry)[:400] + run.stderr[-400:])
        upsert("notes", range(551, 561))
        run = aimem("restore", "latest", "--force")
        check("--no-stream backup restored over the live collection", run.returncode == 0 and count("notes") == 500, f"exit {run.returncode}, count {count('notes')}: {run.stderr[-600:]}")
        status, snaps = call("/collections/notes/snapshots")
        left = [s["name"] for s in snaps["result"]] if status == 200 else ["?"]
        check("still no snapshot left on the server", left == [], str(left))
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"# {sum(results)}/{len(results)} checks passed", flush=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
