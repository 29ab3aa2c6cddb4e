#!/usr/bin/env python3
"""Streamed shard snapshots against stored ones, on a real Qdrant (issue 19, groundwork).

A measurement by hand, never part of the test suite: it needs a real Qdrant binary.

    QDRANT_BIN=/path/to/qdrant python3 bench/real-stream.py [--points 10000] [--dim 768] [--rounds 5]

It starts a single node on loopback in a temporary folder, fills one collection with random
dense vectors (and a small payload), then runs interleaved rounds of the two ways to get a
snapshot of it into a local file, the order alternating each round:

- stored: POST /collections/c/snapshots?wait=true, GET the file, DELETE it (what aimem does
  today, without its checks);
- streamed: GET /collections/c/shards/0/snapshot (nothing stored on the server).

Both ask for `Accept-Encoding: identity` and write to a file without fsync. It prints each
round, the medians, their ratio, the archive sizes, and what the snapshots folder held after
each way (the streamed way must leave no snapshot file).
"""

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, folder):
        self.port = free_port()
        self.folder = folder
        env = dict(os.environ)
        env.update(
            {
                "QDRANT__SERVICE__HTTP_PORT": str(self.port),
                "QDRANT__SERVICE__GRPC_PORT": str(free_port()),
                "QDRANT__STORAGE__STORAGE_PATH": os.path.join(folder, "storage"),
                "QDRANT__STORAGE__SNAPSHOTS_PATH": os.path.join(folder, "snapshots"),
                "QDRANT__TELEMETRY_DISABLED": "true",
                "QDRANT__LOG_LEVEL": "WARN",
            }
        )
        self.process = subprocess.Popen(
            [binary], cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self.call("GET", "/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("qdrant did not start")

    def connection(self):
        return http.client.HTTPConnection(HOST, self.port, timeout=600)

    def call(self, method, path, body=None):
        conn = self.connection()
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if data else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        return response.status, payload

    def download(self, path, target):
        """GETs `path` into `target` (identity encoding); returns the bytes written."""
        conn = self.connection()
        conn.request("GET", path, headers={"accept-encoding": "identity"})
        response = conn.getresponse()
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {response.read()[:200]!r}")
        written = 0
        with open(target, "wb") as out:
            while True:
                block = response.read(1 << 20)
                if not block:
                    break
                out.write(block)
                written += len(block)
        conn.close()
        return written

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def fill(server, points, dim):
    status, body = server.call(
        "PUT", "/collections/c", {"vectors": {"size": dim, "distance": "Cosine"}}
    )
    if status != 200:
        raise SystemExit(f"create: {status} {body[:200]!r}")
    rng = random.Random(19)
    batch = 500
    for start in range(0, points, batch):
        chunk = [
            {
                "id": i,
                "vector": [rng.random() for _ in range(dim)],
                "payload": {"n": i, "text": f"point {i}"},
            }
            for i in range(start, min(points, start + batch))
        ]
        status, body = server.call("PUT", "/collections/c/points?wait=true", {"points": chunk})
        if status != 200:
            raise SystemExit(f"upsert: {status} {body[:200]!r}")


def stored_files(server):
    folder = os.path.join(server.folder, "snapshots")
    found = []
    for root, _, files in os.walk(folder):
        found.extend(os.path.join(root, f) for f in files)
    return found


def stored(server, target):
    status, body = server.call("POST", "/collections/c/snapshots?wait=true")
    if status != 200:
        raise SystemExit(f"create snapshot: {status} {body[:200]!r}")
    name = json.loads(body)["result"]["name"]
    size = server.download(f"/collections/c/snapshots/{name}", target)
    status, body = server.call("DELETE", f"/collections/c/snapshots/{name}?wait=true")
    if status != 200:
        raise SystemExit(f"delete snapshot: {status} {body[:200]!r}")
    return size


def streamed(server, target):
    return server.download("/collections/c/shards/0/snapshot", target)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    binary = os.environ.get("QDRANT_BIN")
    if not binary:
        raise SystemExit("set QDRANT_BIN to a qdrant binary")
    folder = tempfile.mkdtemp(prefix="aimem-stream-")
    server = Server(binary, folder)
    try:
        version = json.loads(server.call("GET", "/")[1]).get("version", "?")
        print(f"# qdrant {version}; {args.points} points x {args.dim} dims, {args.rounds} rounds")
        started = time.time()
        fill(server, args.points, args.dim)
        print(f"# filled in {time.time() - started:.1f} s")
        ways = {"stored": stored, "streamed": streamed}
        times = {name: [] for name in ways}
        sizes = {}
        left = {}
        for round_ in range(args.rounds):
            order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
            for name in order:
                target = os.path.join(folder, f"{name}.snapshot")
                began = time.perf_counter()
                sizes[name] = ways[name](server, target)
                times[name].append(time.perf_counter() - began)
                left[name] = stored_files(server)
                os.remove(target)
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in ways)
            )
        medians = {n: statistics.median(t) for n, t in times.items()}
        for name in ways:
            print(
                f"{name:9} median {medians[name]:.2f} s, {sizes[name] / 2**20:.1f} MiB, "
                f"files left in the snapshots folder: {len(left[name])}"
            )
        print(f"streamed / stored: {medians['streamed'] / medians['stored']:.2f}x")
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
