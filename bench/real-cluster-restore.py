#!/usr/bin/env python3
"""Cluster restores against real Qdrant clusters, repeated, with an independent check.

A check by hand, never part of the test suite: it needs a real Qdrant binary.

    QDRANT_BIN=/path/to/qdrant AIMEM=target/release/aimem \
        python3 bench/real-cluster-restore.py --runs 10 [--scenarios auto,custom,overwrite,rollback]

It starts a three-node source cluster on loopback, fills a collection `github` in two shapes
(auto sharding 3 shards x replication 2 with 900 points; custom sharding with keys `alpha`
(200 points) and `beta` (300), replication 2), and backs each up with aimem. Then, for each
run of each scenario, it starts a fresh three-node target cluster and restores:

- auto, custom: into the empty target;
- overwrite: over an existing `github` of the same sharding holding other points;
- rollback: over an existing `github`, with one shard file of the backup swapped for the
  same shard of a smaller backup (and --skip-checksum-verify), so that aimem's own checks fail
  after the uploads and it must roll back;
- single: a single-node backup (one shard, replication factor 2 in its config, 900 points)
  into the empty target, where the collection snapshot goes to both replicas of shard 0.

A run passes when aimem's exit status is the expected one and, once the cluster has settled
and again five seconds later, every replica of every shard holds the expected number of points
on the peer that holds it, every read through every peer counts the expected total, and (custom
sharding) each key its own count. It prints one line per run and the pass counts.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

DIM = 64


def call(url, method="GET", body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read()
            try:
                return resp.status, json.loads(text or b"null")
            except ValueError:
                return resp.status, text.decode(errors="replace")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text.decode(errors="replace")


class Cluster:
    """Three real Qdrant nodes on loopback: REST on base + 10 * i, gRPC + 1, P2P + 2."""

    def __init__(self, binary, base, nodes=3, distributed=True):
        self.root = tempfile.mkdtemp(prefix=f"aimem-real-cluster-{base}-")
        self.urls = []
        self.procs = []
        for i in range(nodes):
            http = base + 10 * i
            node = os.path.join(self.root, f"node{i}")
            os.makedirs(node)
            env = dict(
                os.environ,
                RUN_MODE="production",
                QDRANT__CLUSTER__ENABLED="true" if distributed else "false",
                QDRANT__CLUSTER__P2P__PORT=str(http + 2),
                QDRANT__SERVICE__HTTP_PORT=str(http),
                QDRANT__SERVICE__GRPC_PORT=str(http + 1),
                QDRANT__SERVICE__HOST="127.0.0.1",
                QDRANT__STORAGE__STORAGE_PATH=os.path.join(node, "storage"),
                QDRANT__STORAGE__SNAPSHOTS_PATH=os.path.join(node, "snapshots"),
                QDRANT__TELEMETRY_DISABLED="true",
                QDRANT__LOG_LEVEL="WARN",
            )
            args = [binary]
            if distributed:
                args += ["--uri", f"http://127.0.0.1:{http + 2}"]
            if distributed and i > 0:
                args += ["--bootstrap", f"http://127.0.0.1:{base + 2}"]
            log = open(os.path.join(node, "qdrant.log"), "w")
            self.procs.append(
                subprocess.Popen(args, cwd=node, env=env, stdout=log, stderr=log)
            )
            url = f"http://127.0.0.1:{http}"
            self.urls.append(url)
            wait(lambda: ready(url), 60, f"node {i} ready")
            time.sleep(1)
        if distributed:
            wait(lambda: self.peers_seen() >= nodes, 60, "every peer in the cluster")

    def peers_seen(self):
        status, body = call(self.urls[0] + "/cluster")
        if status != 200:
            return 0
        return len(body["result"].get("peers", {}))

    def stop(self):
        # Its data is thrown away: no need for a graceful shutdown.
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def ready(url):
    try:
        return call(url + "/readyz", timeout=2)[0] == 200
    except OSError:
        return False


def wait(predicate, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def vector(i):
    return [((i * 31 + k * 17) % 97) / 97.0 + 0.01 for k in range(DIM)]


def points(ids):
    return [{"id": i, "vector": vector(i), "payload": {"n": i, "text": f"point {i}"}} for i in ids]


def ok(result, what):
    status, body = result
    if status != 200:
        raise SystemExit(f"{what}: {status} {body}")
    return body


def settled(cluster, name):
    """Every peer's view: every replica Active, no transfer."""
    for url in cluster.urls:
        status, body = call(f"{url}/collections/{name}/cluster")
        if status != 200:
            return False
        view = body["result"]
        if view.get("shard_transfers"):
            return False
        for shard in view.get("local_shards", []) + view.get("remote_shards", []):
            if shard["state"] != "Active":
                return False
    return True


def wait_settled(cluster, name, timeout=60):
    wait(lambda: settled(cluster, name), timeout, f"{name} settled")
    time.sleep(1)
    wait(lambda: settled(cluster, name), timeout, f"{name} settled")


def fill_auto(cluster, name, ids, shards=3):
    url = cluster.urls[0]
    body = {
        "vectors": {"size": DIM, "distance": "Cosine"},
        "shard_number": shards,
        "replication_factor": 2,
    }
    ok(call(f"{url}/collections/{name}?timeout=60", "PUT", body), "create")
    wait_settled(cluster, name)
    for start in range(0, len(ids), 300):
        chunk = ids[start : start + 300]
        ok(call(f"{url}/collections/{name}/points?wait=true", "PUT", {"points": points(chunk)}), "upsert")


def fill_custom(cluster, name, keys):
    url = cluster.urls[0]
    body = {
        "vectors": {"size": DIM, "distance": "Cosine"},
        "shard_number": 1,
        "replication_factor": 2,
        "sharding_method": "custom",
    }
    ok(call(f"{url}/collections/{name}?timeout=60", "PUT", body), "create")
    for key in keys:
        ok(call(f"{url}/collections/{name}/shards?timeout=60", "PUT", {"shard_key": key}), "key")
    wait_settled(cluster, name)
    for key, ids in keys.items():
        for start in range(0, len(ids), 300):
            chunk = ids[start : start + 300]
            ok(
                call(
                    f"{url}/collections/{name}/points?wait=true",
                    "PUT",
                    {"points": points(chunk), "shard_key": key},
                ),
                "upsert",
            )


def replica_counts(cluster, name):
    """(shard id, peer id) -> points_count as the holding peer reports it."""
    counts = {}
    for url in cluster.urls:
        view = ok(call(f"{url}/collections/{name}/cluster"), "view")["result"]
        for shard in view.get("local_shards", []):
            counts[(shard["shard_id"], view["peer_id"])] = shard["points_count"]
    return counts


def per_shard(cluster, name):
    """shard id -> the set of counts its replicas report."""
    shards = {}
    for (shard, _), n in replica_counts(cluster, name).items():
        shards.setdefault(shard, set()).add(n)
    return shards


def totals(cluster, name, keys):
    """Exact counts through every peer (and with consistency=all), and per key."""
    seen = []
    for url in cluster.urls:
        for query in ("", "?consistency=all"):
            seen.append(
                ok(call(f"{url}/collections/{name}/points/count{query}", "POST", {"exact": True}), "count")[
                    "result"
                ]["count"]
            )
    per_key = {}
    for key in keys:
        per_key[key] = sorted(
            {
                ok(
                    call(
                        f"{url}/collections/{name}/points/count{query}",
                        "POST",
                        {"exact": True, "shard_key": key},
                    ),
                    "count",
                )["result"]["count"]
                for url in cluster.urls
                for query in ("", "?consistency=all")
            }
        )
    return sorted(set(seen)), per_key


def snapshot_state(cluster, name, keys):
    replicas = {}
    for (shard, _) in replica_counts(cluster, name):
        replicas[shard] = replicas.get(shard, 0) + 1
    return {
        "shards": {s: sorted(c) for s, c in per_shard(cluster, name).items()},
        "replicas": replicas,
        "totals": totals(cluster, name, keys),
    }


def expected_state(shard_counts, keys_expected):
    total = sum(shard_counts.values())
    return {
        "shards": {s: [n] for s, n in shard_counts.items()},
        # Every collection here has replication factor 2.
        "replicas": {s: 2 for s in shard_counts},
        "totals": ([total], {k: [n] for k, n in keys_expected.items()}),
    }


def aimem(args, cluster, root, extra=(), peers=True):
    env = dict(os.environ, AI_MEMORY_BACKUP_DIR=root, NO_COLOR="1")
    env.pop("QDRANT_API_KEY", None)
    cmd = [os.environ["AIMEM"], "--no-progress", *args, "--url", cluster.urls[0]]
    for url in cluster.urls if peers else ():
        cmd += ["--peer", url]
    cmd += list(extra)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scenarios", default="auto,custom,overwrite,rollback,single")
    parser.add_argument("--source-port", type=int, default=16333)
    parser.add_argument("--target-port", type=int, default=17333)
    opts = parser.parse_args()
    binary = os.environ["QDRANT_BIN"]
    work = tempfile.mkdtemp(prefix="aimem-real-restore-")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# {version}; aimem {os.environ['AIMEM']}; {opts.runs} runs per scenario", flush=True)

    source = Cluster(binary, opts.source_port)
    backups = {}
    truth = {}
    try:
        for shape in ("auto", "custom"):
            root = os.path.join(work, shape)
            os.makedirs(root)
            if shape == "auto":
                fill_auto(source, "github", list(range(1, 901)))
                keys = {}
            else:
                keys = {"alpha": list(range(1, 201)), "beta": list(range(1001, 1301))}
                fill_custom(source, "github", keys)
            wait_settled(source, "github")
            shard_counts = {s: max(c) for s, c in per_shard(source, "github").items()}
            truth[shape] = (shard_counts, {k: len(v) for k, v in keys.items()})
            run = aimem(["backup", "--collection", "github"], source, root)
            if run.returncode != 0:
                raise SystemExit(f"backup failed: {run.stderr}")
            backups[shape] = run.stdout.strip()
            # A smaller backup of the same collection, for the rollback scenario.
            if shape == "auto":
                ok(call(f"{source.urls[0]}/collections/github/points/delete?wait=true", "POST",
                        {"points": list(range(1, 301))}), "delete")
                small = aimem(["backup", "--collection", "github"], source, root)
                if small.returncode != 0:
                    raise SystemExit(f"backup failed: {small.stderr}")
                backups["auto-small"] = small.stdout.strip()
            ok(call(f"{source.urls[0]}/collections/github?timeout=60", "DELETE"), "delete collection")
            time.sleep(1)
    finally:
        source.stop()
    if "single" in opts.scenarios:
        node = Cluster(binary, opts.source_port, nodes=1, distributed=False)
        try:
            root = os.path.join(work, "single")
            os.makedirs(root)
            fill_auto(node, "github", list(range(1, 901)), shards=1)
            run = aimem(["backup", "--collection", "github"], node, root, peers=False)
            if run.returncode != 0:
                raise SystemExit(f"backup failed: {run.stderr}")
            backups["single"] = run.stdout.strip()
            truth["single"] = ({0: 900}, {})
        finally:
            node.stop()

    passed = {}
    for scenario in opts.scenarios.split(","):
        passed[scenario] = 0
        for n in range(1, opts.runs + 1):
            target = Cluster(binary, opts.target_port)
            try:
                verdict = run_scenario(scenario, target, backups, truth, work, n)
            finally:
                target.stop()
            if verdict.startswith("pass"):
                passed[scenario] += 1
            print(f"{scenario} run {n}: {verdict}", flush=True)
    print("# passes: " + ", ".join(f"{s} {p}/{opts.runs}" for s, p in passed.items()), flush=True)
    shutil.rmtree(work, ignore_errors=True)


def run_scenario(scenario, target, backups, truth, work, n):
    root = os.path.join(work, f"restore-{scenario}-{n}")
    os.makedirs(root)
    shape = {"custom": "custom", "single": "single"}.get(scenario, "auto")
    extra = []
    expect_code = 0
    backup = backups[shape]
    shard_counts, keys_expected = truth[shape]
    if scenario in ("overwrite", "rollback"):
        # An existing collection with other points, sharded as the backup.
        fill_auto(target, "github", list(range(5001, 5121)))
        wait_settled(target, "github")
        before = {s: max(c) for s, c in per_shard(target, "github").items()}
    if scenario == "rollback":
        backup = os.path.join(root, "tampered")
        shutil.copytree(backups["auto"], backup)
        small = backups["auto-small"]
        shutil.copyfile(
            os.path.join(small, "qdrant", "github", "shard-1.snapshot"),
            os.path.join(backup, "qdrant", "github", "shard-1.snapshot"),
        )
        extra = ["--skip-checksum-verify"]
        expect_code = 4
        shard_counts, keys_expected = before, {}
    started = time.time()
    run = aimem(["restore", backup, "--force", *extra], target, root)
    took = time.time() - started
    last = (run.stderr.strip().splitlines() or [""])[-1]
    if run.returncode != expect_code:
        state = ""
        if run.returncode == 0 or scenario in ("overwrite", "rollback"):
            try:
                wait_settled(target, "github")
                state = f"; then {snapshot_state(target, 'github', keys_expected)}"
            except SystemExit as e:
                state = f"; {e}"
        return f"FAIL exit {run.returncode} (expected {expect_code}) in {took:.1f}s: {last}{state}"
    try:
        wait_settled(target, "github")
    except SystemExit as e:
        return f"FAIL exit {run.returncode}, then {e}"
    want = expected_state(shard_counts, keys_expected)
    first = snapshot_state(target, "github", keys_expected)
    time.sleep(5)
    second = snapshot_state(target, "github", keys_expected)
    for got in (first, second):
        if got != want:
            return f"FAIL exit {run.returncode} in {took:.1f}s but {got} != {want}"
    return f"pass (exit {run.returncode}, {took:.1f}s)"


if __name__ == "__main__":
    sys.exit(main())
