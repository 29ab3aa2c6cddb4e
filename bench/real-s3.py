#!/usr/bin/env python3
"""Backups into object storage and encrypted backups, against local ones (issue 21's targets).

A measurement by hand, never part of the test suite: it needs a real Qdrant binary and the
S3 server s3s-fs (`cargo install s3s-fs --version 0.14.1 --features binary --locked`), and
the age tools (Debian package age) for a key pair.

    QDRANT_BIN=/path/to/qdrant AIMEM=target/release/aimem python3 bench/real-s3.py \\
        [--collections 4] [--points 20000] [--dim 768] [--rounds 3] [--restore-rounds 2]

It starts a single Qdrant node and an s3s-fs server, both on loopback and in one temporary
folder (so the bucket is on the same disk as a local backup root), fills `--collections`
collections with random dense vectors as bench/real-backup.py does, waits until they are
green, then runs interleaved rounds (the order alternating each round) of `aimem backup`
(default settings) of the collections into:

- a local folder;
- the bucket (`--output s3://bench/aimem`);
- a local folder with `--encrypt` (a passphrase, AIMEM_PASSPHRASE);
- the bucket with `--encrypt`;
- a local folder with `--encrypt --recipient` (an age key made by age-keygen, which the
  restore opens with `--identity`);

and then, the collections deleted before each run, `aimem restore --force` of the last backup
of each kind, and `aimem verify` (deep) of the last local and bucket backups, the bucket's read
in place with the files aimem may write capped at 64 KiB. Every run's time is wall clock; aimem's peak RSS and CPU come from GNU time,
the S3 server's CPU from /proc (on a small machine the server's work competes with aimem's and
Qdrant's: the ratios then say as much about the server as about aimem). It
prints each round, the medians and the issue's targets: a backup to the bucket at most 1.1x the
local one, a restore from it at most 1.1x the local one, `--encrypt` adding at most 10%, and
aimem's peak RSS at most 64 MiB.
"""

import argparse
import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("real_backup", os.path.join(HERE, "real-backup.py"))
real_backup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(real_backup)

ACCESS_KEY = "AIMEMBENCHACCESSKEY"
SECRET_KEY = "aimem-bench-secret-key-0123456789"
BUCKET = "bench"
PASSPHRASE = "a bench passphrase, long enough to be a real one"


def s3s_fs_binary():
    found = os.environ.get("AIMEM_S3S_FS") or shutil.which("s3s-fs")
    if not found:
        sys.exit("s3s-fs not found: cargo install s3s-fs --version 0.14.1 --features binary --locked")
    return found


def start_s3(folder):
    root = os.path.join(folder, "s3")
    os.makedirs(os.path.join(root, BUCKET))
    port = real_backup.free_port()
    process = subprocess.Popen(
        [s3s_fs_binary(), "--host", "127.0.0.1", "--port", str(port),
         "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, root],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={"RUST_LOG": "error"},
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    sys.exit("s3s-fs did not start")


def cpu_seconds(pid):
    """User and system CPU seconds the process `pid` has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_cpu(command, env):
    """Runs `command` under GNU time: (seconds, peak RSS in KiB, CPU seconds, stdout)."""
    began = time.perf_counter()
    run = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", *command], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - began
    if run.returncode != 0:
        raise SystemExit(f"{command}: exit {run.returncode}\n{run.stderr[-2000:]}")
    rss, user, system = run.stderr.strip().splitlines()[-1].split()
    return seconds, int(rss), float(user) + float(system), run.stdout.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--collections", type=int, default=4)
    parser.add_argument("--points", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--restore-rounds", type=int, default=2)
    args = parser.parse_args()
    binary = os.environ.get("QDRANT_BIN") or sys.exit("set QDRANT_BIN to a qdrant binary")
    aimem = os.path.abspath(os.environ.get("AIMEM", "target/release/aimem"))
    folder = tempfile.mkdtemp(prefix="aimem-real-s3-")
    server = real_backup.Server(binary, folder)
    s3, s3_port = start_s3(folder)
    names = [f"bench{i}" for i in range(args.collections)]
    home = os.path.join(folder, "home")
    install = os.path.join(folder, "install")
    local_root = os.path.join(folder, "backups")
    for path in (home, install, local_root):
        os.makedirs(path)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": home,
        "NO_COLOR": "1",
        "QDRANT_URL": server.url,
        "AI_MEMORY_BACKUP_DIR": local_root,
        "AI_MEMORY_INSTALL_DIR": install,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
    }
    secret_env = dict(env, AIMEM_PASSPHRASE=PASSPHRASE)
    # An age key pair: the backup takes the public key, the restore the identity file.
    identity = os.path.join(folder, "key.txt")
    subprocess.run(["age-keygen", "-o", identity], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", identity], check=True, capture_output=True, text=True
    ).stdout.strip()
    keyed_env = dict(env)
    selected = [a for n in names for a in ("--collection", n)]
    bucket_root = f"s3://{BUCKET}/aimem"
    try:
        version = server.call("GET", "/").get("version", "?")
        print(
            f"# qdrant {version}; {args.collections} x {args.points} points x {args.dim} dims, "
            f"{args.rounds} backup rounds, {args.restore_rounds} restore rounds; aimem {aimem}",
            flush=True,
        )
        started = time.time()
        for i, name in enumerate(names):
            real_backup.fill(server, name, args.points, args.dim, seed=i)
        real_backup.wait_green(server, names)
        print(f"# filled in {time.time() - started:.0f} s", flush=True)

        kinds = {
            "local": ([], env),
            "bucket": (["--output", bucket_root], env),
            "local --encrypt": (["--encrypt"], secret_env),
            "bucket --encrypt": (["--output", bucket_root, "--encrypt"], secret_env),
            "local --encrypt --recipient": (["--encrypt", "--recipient", recipient], keyed_env),
        }
        backups = {}
        times = {}
        rss = {}
        cpu = {}

        def note(name, seconds, peak, own, server, qdrant):
            times.setdefault(name, []).append(seconds)
            rss[name] = max(rss.get(name, 0), peak)
            cpu.setdefault(name, []).append((own, server, qdrant))

        def run(name, command, kind_env):
            before = (cpu_seconds(s3.pid), cpu_seconds(server.process.pid))
            seconds, peak, own, out = timed_cpu(command, kind_env)
            note(
                name,
                seconds,
                peak,
                own,
                cpu_seconds(s3.pid) - before[0],
                cpu_seconds(server.process.pid) - before[1],
            )
            return out

        for round_ in range(args.rounds):
            order = list(kinds) if round_ % 2 == 0 else list(reversed(kinds))
            for kind in order:
                extra, kind_env = kinds[kind]
                out = run(
                    f"backup {kind}",
                    [aimem, "--no-progress", "-q", "backup", *selected, *extra],
                    kind_env,
                )
                backups[kind] = out.splitlines()[-1]
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{k} {times['backup ' + k][-1]:.2f} s" for k in kinds),
                flush=True,
            )

        for round_ in range(args.restore_rounds):
            order = list(kinds) if round_ % 2 == 0 else list(reversed(kinds))
            for kind in order:
                real_backup.drop_all(server, names)
                keys = ["--identity", identity] if "--recipient" in kind else []
                run(
                    f"restore {kind}",
                    [aimem, "--no-progress", "-q", "restore", backups[kind], "--force", *keys],
                    kinds[kind][1],
                )
                counts = [
                    server.call("POST", f"/collections/{n}/points/count", {"exact": True})[
                        "result"
                    ]["count"]
                    for n in names
                ]
                if counts != [args.points] * len(names):
                    raise SystemExit(f"restore {kind} restored {counts}")
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{k} {times['restore ' + k][-1]:.2f} s" for k in kinds),
                flush=True,
            )

        # verify (deep) of the last plain backup of each place: the bucket's is read in place,
        # so it runs with the files it may write capped at 64 KiB (`ulimit -f`).
        for round_ in range(args.restore_rounds):
            for kind in ("local", "bucket"):
                capped = ["bash", "-c", 'ulimit -f 64; exec "$@"', "bash"] if kind == "bucket" else []
                run(
                    f"verify {kind}",
                    [*capped, aimem, "--no-progress", "-q", "verify", backups[kind]],
                    env,
                )
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"verify {k} {times['verify ' + k][-1]:.2f} s" for k in ("local", "bucket")),
                flush=True,
            )

        medians = {w: statistics.median(t) for w, t in times.items()}
        print("# medians")
        cores = os.cpu_count() or 1
        for way, median in medians.items():
            own = statistics.median(c[0] for c in cpu[way])
            s3_cpu = statistics.median(c[1] for c in cpu[way])
            qdrant_cpu = statistics.median(c[2] for c in cpu[way])
            # No run can take less than all the CPU it needs spread over every core.
            floor = (own + s3_cpu + qdrant_cpu) / cores
            print(
                f"{way:30} {median:7.2f} s  ({' '.join(f'{t:.2f}' for t in times[way])}), "
                f"peak RSS {rss[way] / 1024:.1f} MiB, CPU: aimem {own:.2f} s, "
                f"s3s-fs {s3_cpu:.2f} s, qdrant {qdrant_cpu:.2f} s; CPU floor on {cores} cores "
                f"{floor:.2f} s"
            )

        def ratio(a, b):
            return medians[a] / medians[b]

        checks = [
            ("backup to the bucket / local", ratio("backup bucket", "backup local"), 1.1),
            ("restore from the bucket / local", ratio("restore bucket", "restore local"), 1.1),
            ("backup --encrypt / plain (local)", ratio("backup local --encrypt", "backup local"), 1.1),
            ("backup --encrypt / plain (bucket)", ratio("backup bucket --encrypt", "backup bucket"), 1.1),
            ("restore --encrypt / plain (local)", ratio("restore local --encrypt", "restore local"), 1.1),
            ("restore --encrypt / plain (bucket)", ratio("restore bucket --encrypt", "restore bucket"), 1.1),
            ("backup --recipient / plain (local)", ratio("backup local --encrypt --recipient", "backup local"), 1.1),
            ("restore --recipient / plain (local)", ratio("restore local --encrypt --recipient", "restore local"), 1.1),
            ("verify in the bucket / local (no target)", ratio("verify bucket", "verify local"), 1.1),
        ]
        print("# targets")
        for label, value, limit in checks:
            print(f"{label:38} {value:5.2f}x  (<= {limit}x: {'met' if value <= limit else 'NOT met'})")
        peak = max(rss.values()) / 1024
        print(f"{'peak RSS, any run':38} {peak:5.1f} MiB (<= 64 MiB: {'met' if peak <= 64 else 'NOT met'})")
    finally:
        server.stop()
        s3.terminate()
        s3.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
