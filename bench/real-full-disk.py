#!/usr/bin/env python3
"""A backup of a real Qdrant whose disk has less room left than its collection takes (issue 19).

A check by hand, never part of the test suite: it needs a real Qdrant binary and a small file
system for the server's storage and snapshots, for example a tmpfs (as root):

    mkdir -p /mnt/aimem-small && mount -t tmpfs -o size=200m tmpfs /mnt/aimem-small
    QDRANT_BIN=/path/to/qdrant AIMEM=target/release/aimem \\
        python3 bench/real-full-disk.py --data-dir /mnt/aimem-small
    umount /mnt/aimem-small

It starts a single node with its storage and snapshots folders on `--data-dir`, fills one
collection of random 768-d vectors until the file system's free space is smaller than what
the collection takes on it, then runs `aimem backup --no-stream` (Qdrant must build the
snapshot on its disk first: expected to fail) and `aimem backup` (streamed: expected to
succeed), verifies the streamed backup, and restores it into a second server on ordinary
disk. It prints each step with `ok` or `FAIL` and the sizes.
"""

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, storage, snapshots, cwd):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        env = dict(os.environ)
        env.update(
            {
                "QDRANT__SERVICE__HTTP_PORT": str(self.port),
                "QDRANT__SERVICE__GRPC_PORT": str(free_port()),
                "QDRANT__STORAGE__STORAGE_PATH": storage,
                "QDRANT__STORAGE__SNAPSHOTS_PATH": snapshots,
                "QDRANT__TELEMETRY_DISABLED": "true",
                "QDRANT__LOG_LEVEL": "WARN",
            }
        )
        self.process = subprocess.Popen(
            [binary], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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

    def count(self, name):
        return self.call("POST", f"/collections/{name}/points/count", {"exact": True})["result"]["count"]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


def mib(n):
    return f"{n / 2**20:.0f} MiB"


def du(path):
    """Bytes `path` takes on its file system (blocks in use: sparse files count what they hold)."""
    return sum(
        os.lstat(os.path.join(d, f)).st_blocks * 512 for d, _, fs in os.walk(path) for f in fs
    )


results = []


def check(what, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok else ': ' + detail}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True, help="a folder on a small file system")
    parser.add_argument("--dim", type=int, default=768)
    args = parser.parse_args()
    binary = os.environ.get("QDRANT_BIN") or sys.exit("set QDRANT_BIN to a qdrant binary")
    aimem = os.path.abspath(os.environ.get("AIMEM", "target/release/aimem"))
    work = tempfile.mkdtemp(prefix="aimem-full-disk-")
    storage = os.path.join(args.data_dir, "storage")
    snapshots = os.path.join(args.data_dir, "snapshots")
    server = Server(binary, storage, snapshots, work)
    target = None
    root = os.path.join(work, "backups")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.path.join(work, "home"),
        "NO_COLOR": "1",
        "QDRANT_URL": server.url,
        "AI_MEMORY_BACKUP_DIR": root,
        "AI_MEMORY_INSTALL_DIR": os.path.join(work, "install"),
    }
    os.makedirs(env["HOME"])
    os.makedirs(env["AI_MEMORY_INSTALL_DIR"])

    def aimem_run(*command, url=None):
        return subprocess.run(
            [aimem, "--no-progress", *command],
            env=dict(env, QDRANT_URL=url or server.url),
            capture_output=True,
            text=True,
            timeout=900,
        )

    try:
        version = server.call("GET", "/").get("version", "?")
        print(f"# qdrant {version}; storage and snapshots on {args.data_dir}", flush=True)
        server.call("PUT", "/collections/full", {"vectors": {"size": args.dim, "distance": "Cosine"}})
        rng = random.Random(19)
        points = 0

        def free_and_used():
            stat = os.statvfs(args.data_dir)
            return stat.f_bavail * stat.f_frsize, du(storage)

        while True:
            free, used = free_and_used()
            if free < used:
                # Once the optimizers have settled, it must still hold.
                time.sleep(3)
                free, used = free_and_used()
                if free < used:
                    break
            batch = [
                {"id": points + i, "vector": [rng.random() for _ in range(args.dim)]}
                for i in range(1000)
            ]
            try:
                server.call("PUT", "/collections/full/points?wait=true", {"points": batch})
            except urllib.error.HTTPError:
                # The disk is too full for this batch's write-ahead log: as full as it gets.
                time.sleep(3)
                free, used = free_and_used()
                if free < used:
                    break
                raise
            points += len(batch)
        print(
            f"# {points} points; the collection takes {mib(du(storage))} on a file system "
            f"with {mib(free)} free",
            flush=True,
        )

        run = aimem_run("backup", "--collection", "full", "--no-stream")
        said = next((l for l in run.stderr.splitlines() if "no space left" in l.lower()), "")
        check(
            "--no-stream fails: Qdrant cannot build the snapshot on its disk",
            run.returncode != 0 and said != "",
            f"exit {run.returncode}: {run.stderr[-600:]}",
        )
        print(f"#   exit {run.returncode}: {said.strip()[:200]}", flush=True)
        run = aimem_run("backup", "--collection", "full")
        backup = run.stdout.strip()
        check("the streamed backup succeeds", run.returncode == 0 and os.path.isdir(backup), run.stderr[-600:])
        if run.returncode == 0:
            print(f"#   backup {mib(du(os.path.join(backup, 'qdrant')))} of shard files", flush=True)
            run = aimem_run("verify", backup)
            check("it verifies", run.returncode == 0, run.stderr[-400:])
            left = [f for _, _, fs in os.walk(snapshots) for f in fs]
            check("nothing left in the server's snapshots folder", left == [], str(left))
            target_dir = os.path.join(work, "target")
            os.makedirs(target_dir)
            target = Server(
                binary, os.path.join(target_dir, "storage"), os.path.join(target_dir, "snapshots"), work
            )
            run = aimem_run("restore", backup, "--force", url=target.url)
            restored = target.count("full") if run.returncode == 0 else None
            check(
                "it restores into another server, every point",
                restored == server.count("full"),
                f"exit {run.returncode}, {restored} points: {run.stderr[-600:]}",
            )
    finally:
        server.stop()
        if target:
            target.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(storage, ignore_errors=True)
        shutil.rmtree(snapshots, ignore_errors=True)
    print(f"# {sum(results)}/{len(results)} checks passed", flush=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
