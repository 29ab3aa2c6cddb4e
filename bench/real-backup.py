#!/usr/bin/env python3
"""aimem backup and restore against the plain tools, on a real Qdrant (issue 19's targets).

A measurement by hand, never part of the test suite: it needs a real Qdrant binary.

    QDRANT_BIN=/path/to/qdrant AIMEM=target/release/aimem python3 bench/real-backup.py \\
        [--collections 4] [--points 40000] [--dim 768] [--rounds 3]

It starts a single node on loopback in a temporary folder, fills `--collections` collections
with random dense vectors (and a small payload), waits until each is green, then runs
interleaved rounds (the order alternating each round) of:

- backup floor: for each collection in turn, `curl` POST /collections/c/snapshots?wait=true,
  `curl` GET of the file (identity encoding, no fsync), `curl` DELETE;
- `aimem backup` (default settings: streamed shard snapshots, --jobs 3);
- `aimem backup --no-stream` (stored snapshots, for comparison);

and then, the collections deleted before each run:

- restore floor: `curl -F snapshot=@file …/collections/c/snapshots/upload?wait=true&priority=snapshot`
  of the floor's files, one collection after another;
- `aimem restore` of the streamed backup (default settings, --jobs 2);
- `aimem restore` of the `--no-stream` backup.

Each run's time is wall clock; aimem's peak RSS comes from GNU time. It prints every run, the
medians, and aimem's ratios to the floors.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HOST = "127.0.0.1"


def free_port():
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, folder):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
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
                self.call("GET", "/")
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("qdrant did not start")

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("content-type", "application/json")
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read() or b"null")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


def fill(server, name, points, dim, seed):
    server.call("PUT", f"/collections/{name}", {"vectors": {"size": dim, "distance": "Cosine"}})
    rng = random.Random(seed)
    batch = 1000
    for start in range(0, points, batch):
        chunk = [
            {
                "id": i,
                "vector": [rng.random() for _ in range(dim)],
                "payload": {"n": i, "text": f"point {i}"},
            }
            for i in range(start, min(points, start + batch))
        ]
        server.call("PUT", f"/collections/{name}/points?wait=true", {"points": chunk})


def wait_green(server, names):
    deadline = time.time() + 1800
    while time.time() < deadline:
        states = [server.call("GET", f"/collections/{n}")["result"]["status"] for n in names]
        if all(s == "green" for s in states):
            return
        time.sleep(1)
    raise SystemExit("collections did not turn green")


def curl(*args):
    run = subprocess.run(["curl", "-sS", "--fail-with-body", *args], capture_output=True)
    if run.returncode != 0:
        raise SystemExit(f"curl {args}: {run.stderr.decode()} {run.stdout[:300]!r}")
    return run.stdout


def floor_backup(server, names, folder):
    """The plain tools: create, download, delete, one collection after another."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name in names:
        made = json.loads(curl("-X", "POST", f"{server.url}/collections/{name}/snapshots?wait=true"))
        snapshot = made["result"]["name"]
        curl(
            "-H", "Accept-Encoding: identity",
            "-o", os.path.join(folder, f"{name}.snapshot"),
            f"{server.url}/collections/{name}/snapshots/{snapshot}",
        )
        curl("-X", "DELETE", f"{server.url}/collections/{name}/snapshots/{snapshot}?wait=true")


def floor_restore(server, names, folder):
    for name in names:
        curl(
            "-F", f"snapshot=@{os.path.join(folder, name + '.snapshot')}",
            f"{server.url}/collections/{name}/snapshots/upload?wait=true&priority=snapshot",
        )


def drop_all(server, names):
    for name in names:
        server.call("DELETE", f"/collections/{name}")


def timed(command, env):
    """Runs `command` under GNU time: (seconds, peak RSS in KiB, stdout)."""
    began = time.perf_counter()
    run = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - began
    if run.returncode != 0:
        raise SystemExit(f"{command}: exit {run.returncode}\n{run.stderr[-2000:]}")
    rss = int(run.stderr.strip().splitlines()[-1])
    return seconds, rss, run.stdout.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--collections", type=int, default=4)
    parser.add_argument("--points", type=int, default=40000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = os.environ.get("QDRANT_BIN") or sys.exit("set QDRANT_BIN to a qdrant binary")
    aimem = os.path.abspath(os.environ.get("AIMEM", "target/release/aimem"))
    folder = tempfile.mkdtemp(prefix="aimem-real-backup-")
    server = Server(binary, folder)
    names = [f"bench{i}" for i in range(args.collections)]
    home = os.path.join(folder, "home")
    install = os.path.join(folder, "install")
    root = os.path.join(folder, "backups")
    for path in (home, install, root):
        os.makedirs(path)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": home,
        "NO_COLOR": "1",
        "QDRANT_URL": server.url,
        "AI_MEMORY_BACKUP_DIR": root,
        "AI_MEMORY_INSTALL_DIR": install,
    }
    selected = [a for n in names for a in ("--collection", n)]
    try:
        version = server.call("GET", "/").get("version", "?")
        print(
            f"# qdrant {version}; {args.collections} x {args.points} points x {args.dim} dims, "
            f"{args.rounds} rounds; aimem {aimem}",
            flush=True,
        )
        started = time.time()
        for i, name in enumerate(names):
            fill(server, name, args.points, args.dim, seed=i)
        wait_green(server, names)
        print(f"# filled in {time.time() - started:.0f} s", flush=True)

        files = os.path.join(folder, "floor")
        backups = {}
        times = {}
        rss = {}

        def note(name, seconds, peak=None):
            times.setdefault(name, []).append(seconds)
            if peak is not None:
                rss[name] = max(rss.get(name, 0), peak)

        def aimem_backup(extra):
            seconds, peak, out = timed(
                [aimem, "--no-progress", "-q", "backup", *selected, *extra], env
            )
            return seconds, peak, out

        ways = {
            "backup floor": lambda: (timed_call(lambda: floor_backup(server, names, files)), None),
            "aimem backup": lambda: aimem_backup([]),
            "aimem backup --no-stream": lambda: aimem_backup(["--no-stream"]),
        }
        for round_ in range(args.rounds):
            order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
            for way in order:
                result = ways[way]()
                seconds, peak = result[0], result[1]
                note(way, seconds, peak)
                if way.startswith("aimem"):
                    if way in backups:
                        shutil.rmtree(backups[way])
                    backups[way] = result[2]
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{w} {times[w][-1]:.2f} s" for w in ways),
                flush=True,
            )

        def aimem_restore(backup):
            drop_all(server, names)
            return timed([aimem, "--no-progress", "-q", "restore", backup, "--force"], env)

        def restore_floor():
            drop_all(server, names)
            return timed_call(lambda: floor_restore(server, names, files)), None

        restores = {
            "restore floor": restore_floor,
            "aimem restore": lambda: aimem_restore(backups["aimem backup"]),
            "aimem restore (stored backup)": lambda: aimem_restore(
                backups["aimem backup --no-stream"]
            ),
        }
        for round_ in range(args.rounds):
            order = list(restores) if round_ % 2 == 0 else list(reversed(restores))
            for way in order:
                result = restores[way]()
                note(way, result[0], result[1])
                counts = [
                    server.call("POST", f"/collections/{n}/points/count", {"exact": True})[
                        "result"
                    ]["count"]
                    for n in names
                ]
                if counts != [args.points] * len(names):
                    raise SystemExit(f"{way} restored {counts}")
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{w} {times[w][-1]:.2f} s" for w in restores),
                flush=True,
            )

        medians = {w: statistics.median(t) for w, t in times.items()}
        print("# medians")
        for way, median in medians.items():
            peak = f", peak RSS {rss[way] / 1024:.1f} MiB" if way in rss else ""
            print(f"{way:32} {median:7.2f} s  ({' '.join(f'{t:.2f}' for t in times[way])}){peak}")
        print(f"aimem backup / backup floor: {medians['aimem backup'] / medians['backup floor']:.2f}x")
        print(
            "aimem backup --no-stream / backup floor: "
            f"{medians['aimem backup --no-stream'] / medians['backup floor']:.2f}x"
        )
        print(f"aimem restore / restore floor: {medians['aimem restore'] / medians['restore floor']:.2f}x")
        print(
            "aimem restore (stored backup) / restore floor: "
            f"{medians['aimem restore (stored backup)'] / medians['restore floor']:.2f}x"
        )
        sizes = {
            way: sum(
                os.path.getsize(os.path.join(d, f))
                for d, _, fs in os.walk(os.path.join(path, "qdrant"))
                for f in fs
            )
            for way, path in backups.items()
        }
        floor_size = sum(os.path.getsize(os.path.join(files, f)) for f in os.listdir(files))
        print(
            f"snapshot bytes: floor {floor_size / 2**20:.0f} MiB, "
            + ", ".join(f"{w} {s / 2**20:.0f} MiB" for w, s in sizes.items())
        )
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def timed_call(action):
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


if __name__ == "__main__":
    sys.exit(main())
