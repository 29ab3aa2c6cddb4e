#!/usr/bin/env python3
"""Logical backups and selective restores against real Qdrant servers and clusters.

A check by hand, never part of the test suite: it needs real Qdrant binaries.

    OLD_BIN=/path/to/qdrant-1.16.3 NEW_BIN=/path/to/qdrant-1.18.3 AIMEM=target/release/aimem \
        python3 bench/real-logical-checks.py

Each check prints one line and PASS or FAIL; the exit status is the number of failures.

- every vector and id kind (named float32, float16 and uint8 vectors, a multivector, a sparse
  vector; integer, u64::MAX and UUID ids; payloads of any shape), with a payload index and an
  alias, backed up with --format logical from OLD and restored into NEW, and from NEW into
  OLD: scrolled back equal point for point, the index and the alias there;
- a single node's logical backup restored into a three-node NEW cluster with --shard-number 4
  --replication-factor 2: four shards, two replicas each, every point through every peer;
- a NEW cluster's custom-sharded collection (keys alpha and beta) restored into a two-node
  cluster: each key's exact count, and its points equal;
- a NEW cluster's auto-sharded collection restored into a single node;
- `--filter` on OLD and NEW, from a logical and from a snapshot backup: one group deleted by
  mistake comes back as it was, a point written after the backup and a point outside the
  filter stay as they are, no temporary collection is left;
- a logical restore over an existing collection on a cluster: the backup's points exactly.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("rc", os.path.join(HERE, "real-cluster-restore.py"))
rc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rc)
call, ok, Cluster, wait_settled = rc.call, rc.ok, rc.Cluster, rc.wait_settled

FAILURES = []


def check(what, passed, detail=""):
    print(f"{'PASS' if passed else 'FAIL'}  {what}{'' if passed else ': ' + str(detail)[-2500:]}", flush=True)
    if not passed:
        FAILURES.append(what)


def aimem(args, url, root, peers=()):
    env = dict(os.environ, AI_MEMORY_BACKUP_DIR=root, NO_COLOR="1")
    env.pop("QDRANT_API_KEY", None)
    cmd = [os.environ["AIMEM"], "--no-progress", *args, "--url", url]
    for peer in peers:
        cmd += ["--peer", peer]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def scroll_all(url, name):
    points, offset = [], None
    while True:
        body = {"limit": 256, "with_vector": True, "with_payload": True}
        if offset is not None:
            body["offset"] = offset
        result = ok(call(f"{url}/collections/{name}/points/scroll", "POST", body), "scroll")["result"]
        points.extend(result["points"])
        offset = result.get("next_page_offset")
        if offset is None:
            return sorted(points, key=lambda p: (isinstance(p["id"], str), p["id"]))


def without_shard_key(points):
    return [{k: v for k, v in p.items() if k != "shard_key"} for p in points]


def count(url, name, key=None):
    body = {"exact": True}
    if key is not None:
        body["shard_key"] = key
    return ok(call(f"{url}/collections/{name}/points/count", "POST", body), "count")["result"]["count"]


SHAPES = {
    "vectors": {
        "text": {"size": 8, "distance": "Cosine"},
        "half": {"size": 4, "distance": "Dot", "datatype": "float16"},
        "bytes": {"size": 4, "distance": "Euclid", "datatype": "uint8"},
        "colbert": {"size": 2, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}},
    },
    "sparse_vectors": {"bm25": {"modifier": "idf"}},
}


def shapes_points(n=600):
    pts = []
    for i in range(n):
        pid = [i, 2**64 - 1 - i, str(uuid.UUID(int=i * 7919 + 1))][i % 3]
        vec = {
            "text": [((i * 31 + k * 17) % 97) / 97.0 + 0.01 for k in range(8)],
            "bm25": {"indices": [i % 50, 1000 + i, 4_000_000_000 - i], "values": [0.5, 0.25, 1.0]},
        }
        if i % 2:
            vec["half"] = [0.5, 0.25, 1.5, float(i % 7)]
        if i % 5:
            vec["bytes"] = [float(i % 256), 1.0, 2.0, 255.0]
        if i % 4 == 0:
            vec["colbert"] = [[0.5, 1.0], [0.25, float(i % 3)]]
        payload = {"group_id": f"proj-{i % 4}", "n": 2**60 + i, "nested": {"a": [1, {"b": None}]},
                   "text": "naïve ✓ " + "x" * (i % 40)}
        pts.append({"id": pid, "vector": vec, "payload": payload})
    return pts


def fill_shapes(url, name):
    ok(call(f"{url}/collections/{name}", "PUT", SHAPES), "create shapes")
    ok(call(f"{url}/collections/{name}/index?wait=true", "PUT",
            {"field_name": "group_id", "field_schema": "keyword"}), "index")
    pts = shapes_points()
    for s in range(0, len(pts), 200):
        ok(call(f"{url}/collections/{name}/points?wait=true", "PUT", {"points": pts[s:s + 200]}), "upsert")
    ok(call(f"{url}/collections/aliases", "POST",
            {"actions": [{"create_alias": {"collection_name": name, "alias_name": name + "-live"}}]}), "alias")


def backup(url, root, name, fmt="logical", peers=()):
    run = aimem(["backup", "--format", fmt, "--collection", name], url, root, peers)
    if run.returncode != 0:
        raise SystemExit(f"backup of {name} failed: {run.stderr[-2000:]}")
    return run.stdout.strip()


def single(binary, port):
    return Cluster(binary, port, nodes=1, distributed=False)


def cross_version(source_bin, target_bin, label, port):
    src, dst = single(source_bin, port), single(target_bin, port + 100)
    root = tempfile.mkdtemp(prefix="aimem-logical-")
    try:
        fill_shapes(src.urls[0], "shapes")
        before = scroll_all(src.urls[0], "shapes")
        folder = backup(src.urls[0], root, "shapes")
        verify = subprocess.run([os.environ["AIMEM"], "--no-progress", "verify", folder],
                                capture_output=True, text=True, timeout=900)
        check(f"{label}: verify of the logical backup", verify.returncode == 0, verify.stdout + verify.stderr)
        run = aimem(["restore", folder, "--force"], dst.urls[0], root)
        check(f"{label}: restore exits 0", run.returncode == 0, run.stderr[-1500:])
        after = scroll_all(dst.urls[0], "shapes")
        diff = next((i for i, (a, b) in enumerate(zip(before, after)) if a != b), None)
        check(f"{label}: every point equal ({len(before)})", before == after,
              f"{len(after)} points; first difference at {diff}: {before[diff] if diff is not None else ''} vs {after[diff] if diff is not None else ''}")
        info = ok(call(f"{dst.urls[0]}/collections/shapes"), "info")["result"]
        check(f"{label}: payload index recreated", "group_id" in info.get("payload_schema", {}), info.get("payload_schema"))
        aliases = ok(call(f"{dst.urls[0]}/aliases"), "aliases")["result"]["aliases"]
        check(f"{label}: alias recreated", {"alias_name": "shapes-live", "collection_name": "shapes"} in aliases, aliases)
    finally:
        src.stop()
        dst.stop()


def into_cluster(single_bin, cluster_bin, port):
    src = single(single_bin, port)
    dst = Cluster(cluster_bin, port + 100, nodes=3)
    root = tempfile.mkdtemp(prefix="aimem-logical-")
    try:
        fill_shapes(src.urls[0], "shapes")
        before = scroll_all(src.urls[0], "shapes")
        folder = backup(src.urls[0], root, "shapes")
        run = aimem(["restore", folder, "--force", "--shard-number", "4", "--replication-factor", "2"],
                    dst.urls[0], root, dst.urls)
        check("single node → cluster: restore exits 0", run.returncode == 0, run.stderr[-1500:])
        info = ok(call(f"{dst.urls[1]}/collections/shapes"), "info")["result"]["config"]["params"]
        check("single node → cluster: 4 shards, 2 replicas",
              info.get("shard_number") == 4 and info.get("replication_factor") == 2, info)
        wait_settled(dst, "shapes")
        for i, url in enumerate(dst.urls):
            check(f"single node → cluster: peer {i} counts {len(before)}", count(url, "shapes") == len(before), count(url, "shapes"))
        check("single node → cluster: every point equal", scroll_all(dst.urls[2], "shapes") == before)
    finally:
        src.stop()
        dst.stop()


def custom_between_clusters(binary, port):
    src = Cluster(binary, port, nodes=3)
    dst = Cluster(binary, port + 100, nodes=2)
    root = tempfile.mkdtemp(prefix="aimem-logical-")
    try:
        keys = {"alpha": list(range(1, 201)), "beta": list(range(201, 501))}
        rc.fill_custom(src, "tenants", keys)
        before = without_shard_key(scroll_all(src.urls[0], "tenants"))
        folder = backup(src.urls[0], root, "tenants", peers=src.urls)
        run = aimem(["restore", folder, "--force"], dst.urls[0], root, dst.urls)
        check("custom sharding cluster → cluster: restore exits 0", run.returncode == 0, run.stderr[-1500:])
        wait_settled(dst, "tenants")
        for key, ids in keys.items():
            check(f"custom sharding: key {key} holds {len(ids)}", count(dst.urls[1], "tenants", key) == len(ids),
                  count(dst.urls[1], "tenants", key))
        check("custom sharding: every point equal", without_shard_key(scroll_all(dst.urls[0], "tenants")) == before)
        # And over the existing collection: other points first, then the backup's exactly.
        ok(call(f"{dst.urls[0]}/collections/tenants/points?wait=true", "PUT",
                {"points": rc.points([9001, 9002]), "shard_key": "alpha"}), "extra points")
        run = aimem(["restore", folder, "--force"], dst.urls[0], root, dst.urls)
        check("custom sharding: restore over the existing collection exits 0", run.returncode == 0, run.stderr[-1500:])
        check("custom sharding: over the existing collection, the backup's points exactly",
              without_shard_key(scroll_all(dst.urls[0], "tenants")) == before)
    finally:
        src.stop()
        dst.stop()


def cluster_into_single(binary, port):
    src = Cluster(binary, port, nodes=3)
    dst = single(binary, port + 100)
    root = tempfile.mkdtemp(prefix="aimem-logical-")
    try:
        rc.fill_auto(src, "github", list(range(1, 901)))
        before = scroll_all(src.urls[0], "github")
        folder = backup(src.urls[0], root, "github", peers=src.urls)
        run = aimem(["restore", folder, "--force"], dst.urls[0], root)
        check("auto-sharded cluster → single node: restore exits 0", run.returncode == 0, run.stderr[-1500:])
        check("auto-sharded cluster → single node: every point equal", scroll_all(dst.urls[0], "github") == before)
    finally:
        src.stop()
        dst.stop()


def merge(binary, label, fmt, port):
    node = single(binary, port)
    root = tempfile.mkdtemp(prefix="aimem-logical-")
    url = node.urls[0]
    try:
        ok(call(f"{url}/collections/memories", "PUT", {"vectors": {"size": 8, "distance": "Cosine"}}), "create")
        ok(call(f"{url}/collections/memories/index?wait=true", "PUT",
                {"field_name": "group_id", "field_schema": "keyword"}), "index")
        pts = [{"id": i, "vector": [((i * 7 + k) % 11) / 11.0 + 0.05 for k in range(8)],
                "payload": {"group_id": f"proj-{i % 3}", "n": i}} for i in range(1, 1201)]
        ok(call(f"{url}/collections/memories/points?wait=true", "PUT", {"points": pts}), "upsert")
        at_backup = {p["id"]: p for p in scroll_all(url, "memories")}
        folder = backup(url, root, "memories", fmt)
        flt = {"must": [{"key": "group_id", "match": {"value": "proj-1"}}]}
        ok(call(f"{url}/collections/memories/points/delete?wait=true", "POST", {"filter": flt}), "delete")
        ok(call(f"{url}/collections/memories/points?wait=true", "PUT", {"points": [
            {"id": 5000, "vector": [0.5] * 8, "payload": {"group_id": "proj-1", "new": True}},
            {"id": 3, "vector": [0.25] * 8, "payload": {"group_id": "proj-0", "changed": True}},
        ]}), "later writes")
        dry = aimem(["restore", folder, "--collection", "memories", "--filter", json.dumps(flt), "--dry-run", "--json"], url, root)
        report = json.loads(dry.stdout or "{}")
        check(f"{label} {fmt}: dry run counts 400 matching, 0 live", dry.returncode == 0 and
              report.get("merge", {}).get("matched") == 400 and report["merge"].get("existing") == 0, dry.stderr[-800:] + dry.stdout[-400:])
        run = aimem(["restore", folder, "--collection", "memories", "--filter", json.dumps(flt), "--force"], url, root)
        check(f"{label} {fmt}: merge exits 0", run.returncode == 0, run.stderr[-1500:])
        now = {p["id"]: p for p in scroll_all(url, "memories")}
        back = all(now.get(i) == at_backup[i] for i in at_backup if at_backup[i]["payload"]["group_id"] == "proj-1")
        check(f"{label} {fmt}: the deleted group is back as it was", back)
        check(f"{label} {fmt}: the later point and the point outside the filter stay",
              5000 in now and now[3]["payload"].get("changed") is True and len(now) == 1201, len(now))
        names = [c["name"] for c in ok(call(f"{url}/collections"), "list")["result"]["collections"]]
        check(f"{label} {fmt}: no temporary collection left", names == ["memories"], names)
    finally:
        node.stop()


def main():
    old, new = os.environ["OLD_BIN"], os.environ["NEW_BIN"]
    only = sys.argv[1:]
    started = time.time()
    scenarios = {
        "versions": lambda: (cross_version(old, new, "1.16.3 → 1.18.3", 27000),
                             cross_version(new, old, "1.18.3 → 1.16.3", 27300)),
        "into-cluster": lambda: into_cluster(old, new, 27600),
        "custom": lambda: custom_between_clusters(new, 28000),
        "into-single": lambda: cluster_into_single(new, 28400),
        "merge": lambda: [merge(binary, label, fmt, port + (0 if fmt == "logical" else 100))
                          for binary, label, port in [(old, "1.16.3", 28800), (new, "1.18.3", 29000)]
                          for fmt in ["logical", "snapshot"]],
    }
    for name, scenario in scenarios.items():
        if not only or name in only:
            scenario()
            sys.stdout.flush()
    print(f"{len(FAILURES)} failed, in {time.time() - started:.0f} s")
    sys.exit(len(FAILURES))


if __name__ == "__main__":
    main()
